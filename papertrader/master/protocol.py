"""The master's AMP protocol: what workers (and, for the worker list, clients) may ask.

A connection starts anonymous: it may only ask for the worker list or start
the worker handshake (WorkerHello -> challenge, WorkerProve -> signature).
Everything else needs a linked worker; an anonymous peer gets WorkerRefused
and no data.
"""

import functools
import secrets

from twisted.internet import defer, protocol
from twisted.protocols import amp

from papertrader import commands, tls
from papertrader.app import Stamp, method_name
from papertrader.commands import stamped
from papertrader.errors import DatabaseUnavailable, PaperTraderError, ServerError, WorkerRefused
from papertrader.master.db import is_unavailable
from papertrader.wire import TypedAMP

MAX_NAME = 64
#: Seconds an anonymous connection may stay open without becoming a linked worker.
ANONYMOUS_TIMEOUT = 60


def guarded(method):
    """Turn any unexpected failure into a logged ServerError: never a traceback to a peer."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        d = defer.maybeDeferred(method, self, *args, **kwargs)

        def failed(failure):
            if failure.check(PaperTraderError):
                return failure
            if is_unavailable(failure):  # logged once per outage, not a traceback per command
                self.master.database_away(failure)
                raise DatabaseUnavailable()
            self.master.log.failure("{command} failed", failure, command=method.__name__)
            raise ServerError()

        return d.addErrback(failed)

    return wrapper


def worker_only(method):
    """Refuse unless this connection is a linked worker; count its commands."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        linked = self.master.workers.linked.get(self.worker) if self.worker is not None else None
        if linked is None or linked.protocol is not self:
            # Never linked, or dropped since (kicked, revoked, marked down, replaced).
            self.master.log.warn("refused {command} from unauthenticated peer {peer}",
                                 command=method.__name__, peer=self.peer())
            raise WorkerRefused("this connection is not an authenticated worker")
        linked.commands += 1
        return method(self, *args, **kwargs)

    return guarded(wrapper)


#: How many times a client's max_unsent_bytes a linked worker may leave unread (64 MiB by default).
LINKED_WORKER_UNSENT = 64


class MasterProtocol(TypedAMP):
    def __init__(self, master):
        super().__init__()
        self.master = master
        self.worker = None
        self._pending = None
        self.connected = False
        self._anonymous = None
        #: Boxes received (commands and answers): what a linked worker sends proves it alive to the heartbeats.
        self.boxes = 0
        #: Fires when the connection is gone (the master waits for it when it stops).
        self.lost = defer.Deferred()

    def connectionMade(self):
        super().connectionMade()
        self.connected = True
        self.master.connections.add(self)
        tls.no_delay(self.transport)
        from twisted.internet import reactor

        self._anonymous = reactor.callLater(ANONYMOUS_TIMEOUT, self._expire_anonymous)

    def ampBoxReceived(self, box):
        self.boxes += 1
        super().ampBoxReceived(box)

    def unsent_allowed(self, limit):
        """Output a peer may leave unread before it is cut (papertrader/guard.py): a linked worker, 64 times a
        client's (a burst of orders' answers and events; its silence is the heartbeats' to judge, and cutting its
        link would leave every order in flight with an unknown outcome)."""
        return limit * LINKED_WORKER_UNSENT if self.worker is not None else limit

    def keeps_alive(self):
        """A linked worker is never idle (papertrader/guard.py): the heartbeats judge whether it is alive."""
        return self.worker is not None

    def log_failure(self, failure, what):
        self.master.log.failure("{what} failed", failure, what=what)

    def log_violation(self, message):
        self.master.log.warn("{message}", message=message)

    def _expire_anonymous(self):
        if self.worker is None and self.transport is not None:
            self.transport.abortConnection()

    def peer(self):
        peer = self.transport.getPeer() if self.transport else None
        return getattr(peer, "host", "?")

    def connectionLost(self, reason):
        self.connected = False
        if self._anonymous is not None and self._anonymous.active():
            self._anonymous.cancel()
        super().connectionLost(reason)
        if self.worker is not None:
            self.master.workers.unlink(self.worker, self)
        self.master.connections.discard(self)
        self.lost.callback(None)

    # --- anyone -------------------------------------------------------------

    @commands.ListWorkers.responder
    def list_workers(self):
        return {"workers": self.master.workers.listing(),
                "timezone": self.master.timezone()}

    @commands.WorkerHello.responder
    @guarded
    @defer.inlineCallbacks
    def hello(self, name, host, port, version, region=None):
        name = name[:MAX_NAME]
        registration = yield self.master.workers.admit(name, self.peer())
        if not host or len(host) > 255 or not 0 < port < 65536:
            raise WorkerRefused("worker announced an invalid public address")
        challenge = f"papertrader-worker-challenge:{name}:{secrets.token_hex(32)}"
        self._pending = (name, (region or "default")[:64], host, port, version[:32], registration["fingerprint"],
                         challenge)
        return {"challenge": challenge}

    @commands.WorkerProve.responder
    @guarded
    @defer.inlineCallbacks
    def prove(self, signature):
        pending, self._pending = self._pending, None  # a challenge is good for one answer
        if pending is None:
            raise WorkerRefused("no challenge was issued on this connection")
        name, region, host, port, version, fingerprint, challenge = pending
        ok, why = yield self.master.workers.verify(challenge, signature, fingerprint)
        if not ok and why == "clock":
            self.master.workers.refused(name, self.peer(), "its key is dated in the master's future: a clock is wrong")
            self.master.log.warn("refused worker {name!r} from {peer}: its key {fingerprint} was made later than this"
                                 " machine's clock says it is now, so gpg does not trust it yet: this machine's"
                                 " clock is behind (keep every machine's clock set, by NTP)", name=name,
                                 peer=self.peer(), fingerprint=fingerprint)
            raise WorkerRefused(f"the master's clock is behind the time worker {name!r}'s key was made: set the"
                                " master's clock (NTP)")
        if not ok and why == "missing":
            self.master.workers.refused(name, self.peer(), "its registered key missing from the master's keyring:"
                                                           f" papertrader-admin revoke {name}, or register-worker"
                                                           f" {name} --replace --out NEW_DIR")
            self.master.log.warn("refused worker {name!r} from {peer}: its registered key {fingerprint} is not in the"
                                 " master's keyring ({keyring}): the database was restored from a backup made before"
                                 " the worker was revoked or given a new key (or gnupg/ was not copied with the data"
                                 " dir): to keep it out, revoke it again: papertrader-admin revoke {name}; to let it"
                                 " in, give it a new key: papertrader-admin register-worker {name} --replace --out"
                                 " NEW_DIR, and copy that bundle to the worker", name=name, peer=self.peer(),
                                 fingerprint=fingerprint, keyring=self.master.workers.keyring.home)
            raise WorkerRefused(f"the master does not have the key registered for worker {name!r} (its database was"
                                " restored from a backup made before the worker was revoked or given a new key): on"
                                f" the master, revoke it again ('papertrader-admin revoke {name}') or give it a new"
                                f" key ('register-worker {name} --replace --out NEW_DIR') and copy that bundle here")
        if not ok:
            self.master.workers.refused(name, self.peer(), "bad signature: not made with its registered key")
            self.master.log.warn("refused worker {name!r} from {peer}: bad signature (not made with its registered key"
                                 " {fingerprint}: a worker given a new key, or a backup restored, needs its current"
                                 " bundle)", name=name, peer=self.peer(), fingerprint=fingerprint)
            raise WorkerRefused(f"the signature does not match the key registered for worker {name!r}: this bundle's"
                                " key is not the one the master has (an old bundle, or the master's database"
                                " restored from a backup made before this key): on the master, register the worker"
                                f" again with 'register-worker {name} --replace --out NEW_DIR' and copy that bundle"
                                " here")
        # The registration may have changed while gpg was verifying (a kick, a revoke), or the
        # worker may be gone: never link a closed connection.
        registration = yield self.master.workers.admit(name, self.peer())
        if not self.connected:
            raise WorkerRefused("the connection closed during the handshake")
        self.master.workers.link(name, region, host, port, version, self.peer(), self, bars=registration["bars"],
                                 readdressed=registration["readdressed"])
        self.worker = name
        if self._anonymous.active():
            self._anonymous.cancel()
        self.master.send_snapshot(self)
        return {}

    # --- linked workers only ------------------------------------------------

    def _check_stamp(self, worker):
        if worker != self.worker:
            self.master.log.warn("worker {name} stamped a command as {claimed!r}", name=self.worker, claimed=worker)

    @defer.inlineCallbacks
    def forward(self, command, received, client_ip, worker, **arguments):
        """A stamped client command: the application answers it; lists are fitted to one AMP value (the list
        ``next_before`` pages, ``command.pages`` if it has more than one, then starts the next page where it ends)."""
        self._check_stamp(worker)
        stamp = Stamp(received, client_ip[:64], self.worker)
        answer = yield self.master.app.handle(command.__name__, stamp, arguments)
        for key, argument in command.response:
            key = key.decode()
            if isinstance(argument, amp.AmpList) and key in answer:
                rows = answer[key]
                answer[key] = commands.fit(command, key, rows)
                if len(answer[key]) < len(rows) and answer[key] and "id" in answer[key][0] and \
                        any(k == b"next_before" for k, _ in command.response) and getattr(command, "pages", key) == key:
                    answer["next_before"] = answer[key][0]["id"]  # the next page starts where this one ends
        return answer

    # One responder per client command, named like its application method (StampedPlaceOrder -> place_order).
    for _command in commands.FORWARDED:
        def _responder(self, _command=_command, **arguments):
            return self.forward(_command, **arguments)

        _responder.__name__ = _command.__name__
        locals()[method_name(_command.__name__)] = stamped(_command).responder(worker_only(_responder))
    del _command, _responder

    @commands.Authenticate.responder
    @worker_only
    @defer.inlineCallbacks
    def authenticate(self, token, received, client_ip, worker, use=True):
        session = yield self.master.accounts.authenticate(token, use=use is not False)
        return {"username": session.username, "expires": session.expires}

    @commands.OrderWatchers.responder
    @worker_only
    def order_watchers(self, usernames, action):
        self.master.workers.watching(self.worker, usernames[:100_000], action)
        return {}


class MasterFactory(protocol.Factory):
    def __init__(self, master):
        self.master = master

    def buildProtocol(self, addr):
        return MasterProtocol(self.master)
