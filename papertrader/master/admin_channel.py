"""The master's admin channel: AMP over a Unix socket only the data dir's owner can open.

``papertrader-admin`` uses it to list, kick, allow and revoke workers of a
running master and change the addresses they may connect from, to set up a
game for a class, and to manage accounts (list, show, disable, enable, reset a
password).  The socket is ``DATA_DIR/admin.sock`` (mode 0600); when that
path is too long for a Unix socket, a private per-user directory in the
system's temp dir holds it, named after the data dir.
"""

import functools
import hashlib
import os
import tempfile

from twisted.internet import defer, protocol
from twisted.internet.endpoints import UNIXClientEndpoint, UNIXServerEndpoint, connectProtocol
from twisted.protocols import amp
from twisted.python import lockfile

from papertrader import commands
from papertrader.errors import InvalidInput, ServerError
from papertrader.master.protocol import guarded
from papertrader.master.workers import parse_allowed
from papertrader.wire import TypedAMP

MAX_SOCKET_PATH = 100


def private_dir():
    """A directory in the temp dir that only this user can use (created if needed, checked if present)."""
    base = os.path.join(tempfile.gettempdir(), f"papertrader-{os.getuid()}")
    os.makedirs(base, mode=0o700, exist_ok=True)
    info = os.lstat(base)
    if info.st_uid != os.getuid() or (info.st_mode & 0o077) or os.path.islink(base):
        raise RuntimeError(f"{base} is not a private directory of this user; remove it")
    return base


def socket_path(data_dir):
    path = os.path.join(os.path.abspath(data_dir), "admin.sock")
    if len(path) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:16]
    return os.path.join(private_dir(), f"admin-{digest}.sock")


def when_ready(method):
    """Answer once the master has started: the channel opens first, as the data dir's lock."""

    @functools.wraps(method)
    @defer.inlineCallbacks
    def wrapper(self, *args, **kwargs):
        try:
            yield self.master.whenReady()
        except Exception:
            raise ServerError("the master could not start; see its log")
        answer = yield method(self, *args, **kwargs)
        return answer

    return wrapper


class AdminProtocol(TypedAMP):
    def __init__(self, master):
        super().__init__()
        self.master = master

    def log_failure(self, failure, what):
        self.master.log.failure("{what} failed", failure, what=what)

    def zoned(self, answer):
        """``answer`` with the market's time zone, which papertrader-admin shows its times in (the command line's
        comes with ListWorkers the same way: no question of its own)."""
        return dict(answer, timezone=self.master.timezone())

    @commands.AdminWorkers.responder
    @guarded
    @when_ready
    def workers(self):
        return self.master.workers.overview().addCallback(
            lambda rows: self.zoned({"workers": commands.fit(commands.AdminWorkers, "workers", rows)}))

    @commands.AdminMarket.responder
    @guarded
    @when_ready
    def market(self, action, date=None):
        return self.master.market.control(action, date)

    @commands.AdminKick.responder
    @guarded
    @when_ready
    def kick(self, name):
        return self.master.workers.kick(name).addCallback(lambda done: {"done": done})

    @commands.AdminAllow.responder
    @guarded
    @when_ready
    def allow(self, name):
        return self.master.workers.allow(name).addCallback(lambda done: {"done": done})

    @commands.AdminRevoke.responder
    @guarded
    @when_ready
    def revoke(self, name):
        return self.master.workers.revoke(name).addCallback(lambda done: {"done": done})

    @commands.AdminAllowIp.responder
    @guarded
    @when_ready
    def allow_ip(self, name, allowed=None, any=False):
        return change_allowed(self.master.workers, name, allowed, any)

    @commands.AdminCreateGame.responder
    @guarded
    @when_ready
    @defer.inlineCallbacks
    def create_game(self, creator, **arguments):
        rows = yield self.master.db.query("SELECT id, username FROM accounts WHERE username_key = ? AND deleted IS"
                                          " NULL", ((creator or "")[:64].lower(),))
        if not rows:
            raise InvalidInput(f"--creator: no account named {creator[:24]!r}")
        view = yield self.master.games.create(rows[0][0], rows[0][1], **arguments)
        return self.zoned(view)

    @commands.AdminEnrol.responder
    @guarded
    @when_ready
    def enrol(self, name, usernames, dry_run=False):
        return self.master.games.enrol(name, usernames, dry_run)

    # --- accounts (papertrader-admin user ...): each action is logged by Accounts as the operator's ---------

    @commands.AdminUsers.responder
    @guarded
    @when_ready
    def users(self, search=None, after=None):
        return self.master.accounts.users(search, after).addCallback(self.zoned)

    @commands.AdminUser.responder
    @guarded
    @when_ready
    def user(self, username):
        return self.master.accounts.user(username).addCallback(self.zoned)

    @commands.AdminDisableUser.responder
    @guarded
    @when_ready
    def disable_user(self, username, reason=None):
        return self.master.accounts.disable(username, reason).addCallback(self.zoned)

    @commands.AdminEnableUser.responder
    @guarded
    @when_ready
    def enable_user(self, username):
        return self.master.accounts.enable(username)

    @commands.AdminDeleteUser.responder
    @guarded
    @when_ready
    def delete_user(self, username):
        return self.master.accounts.operator_delete(username)

    @commands.AdminResetPassword.responder
    @guarded
    @when_ready
    def reset_password(self, username, password):
        return self.master.accounts.reset_password(username, password)


@defer.inlineCallbacks
def change_allowed(workers, name, allowed=None, any=False):
    """``allow-ip``: set a worker's allowed addresses (``allowed``, or any address with ``any``), or with neither
    only read them; AdminAllowIp's answer (None values left out).  The running master's, and papertrader-admin's on
    the database when none runs."""
    if any and allowed is not None:
        raise InvalidInput("give addresses or --any, not both")
    if any or allowed is not None:
        if not any and parse_allowed(allowed) is None:
            raise InvalidInput("no address or network given (--any allows any address)")
        done = yield workers.set_allowed(name, None if any else allowed)
    else:
        now = yield workers.allowed_addresses(name)
        done = {"before": now, "after": now, "disconnected": False}
    return {k: v for k, v in done.items() if k in ("before", "after", "disconnected", "address") and v is not None}


class AdminFactory(protocol.Factory):
    def __init__(self, master):
        self.master = master

    def buildProtocol(self, addr):
        return AdminProtocol(self.master)


def data_dir_lock(data_dir):
    """The lock a running master holds on its data dir from its start to its very end: its admin socket's lock
    file (a symbolic link naming the holder's pid; a dead holder's lock is broken by the next taker).
    ``papertrader-admin restore`` and ``migrate`` take it too, so no master starts while they work."""
    return lockfile.FilesystemLock(socket_path(data_dir) + ".lock")


def lock_holder(data_dir):
    """The pid holding the data dir's lock, if any is readable."""
    try:
        return int(lockfile.readlink(socket_path(data_dir) + ".lock"))
    except (OSError, ValueError):
        return None


def server_endpoint(reactor, data_dir):
    # wantPID: a lock file keeps a second master off a live socket, and clears a dead master's one.
    return UNIXServerEndpoint(reactor, socket_path(data_dir), mode=0o600, wantPID=True)


def connect(reactor, data_dir):
    return connectProtocol(UNIXClientEndpoint(reactor, socket_path(data_dir), timeout=10), amp.AMP())
