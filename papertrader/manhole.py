"""Admin consoles: Twisted manholes on the master and the workers.

Nothing listens unless ``--manhole ENDPOINT`` is given.  Two kinds:

- **telnet**, only on loopback or a Unix socket (``--manhole 2049`` means
  ``tcp:2049:interface=127.0.0.1``).  Log in as ``admin`` with the password
  that ``DATA_DIR/manhole.passwd`` holds (one line; random, created on first
  use, readable by the owner only): other local users cannot get in.
- **SSH**, when ``--manhole-keys AUTHORIZED_KEYS`` is given: any interface,
  public-key login only (any user name), host key kept in
  ``DATA_DIR/manhole_host_key``.

The console's namespace is a set of plain functions (see ``help()``) that print
readable tables; see papertrader/master/console.py and worker/console.py.
Leaving a session (``exit()``, ``quit()``, Ctrl-D) closes that session only, and
a console call that fails prints why: neither leaves a traceback in the log.
"""

import os
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch import manhole, manhole_ssh, telnet
from twisted.conch.checkers import IAuthorizedKeysDB, SSHPublicKeyChecker
from twisted.conch.insults import insults
from twisted.conch.ssh import keys
from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, protocol
from twisted.internet.endpoints import serverFromString
from zope.interface import implementer

LOOPBACK = ("127.0.0.1", "::1", "localhost")
PASSWD = "manhole.passwd"
HOST_KEY = "manhole_host_key"
USER = "admin"
#: Telnet commands a line-mode client sends that Twisted's telnet parser does not know: EOF (its Ctrl-D),
#: SUSP, ABORT.  EOF ends the session like Ctrl-D; the others are ignored.
TELNET_EOF, TELNET_SUSP, TELNET_ABORT = b"\xec", b"\xed", b"\xee"


class ManholeError(ValueError):
    """A --manhole setting that would open the console unsafely or cannot be used."""


def telnet_description(listen):
    """A strports description for a telnet manhole, refusing anything but loopback or a Unix socket."""
    listen = str(listen).strip()
    if listen.isdigit():
        return f"tcp:{listen}:interface=127.0.0.1"
    kind, _, rest = listen.partition(":")
    if kind == "unix":
        return listen
    if kind == "tcp":
        params = dict(p.split("=", 1) for p in rest.split(":") if "=" in p)
        if params.get("interface") in LOOPBACK:
            return listen
    raise ManholeError(
        f"a telnet manhole listens only on loopback: use a port number, tcp:PORT:interface=127.0.0.1 or"
        f" unix:PATH, or give --manhole-keys for an SSH manhole (got {listen!r})")


def _password_file(data_dir):
    """DATA_DIR/manhole.passwd: the console password alone on one line (made on first use, 0600)."""
    path = os.path.join(data_dir, PASSWD)
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{secrets.token_urlsafe(18)}\n")
    return path


def read_password(path):
    """The password in a manhole.passwd file (an older file's ``admin:PASSWORD`` line works too)."""
    with open(path, encoding="utf-8") as f:
        line = f.readline().rstrip("\r\n")
    if line.startswith(f"{USER}:"):
        line = line[len(USER) + 1:]
    return line


@implementer(checkers.ICredentialsChecker)
class PasswordFileChecker:
    """User ``admin`` with the password of the file (re-read at each login, so it can be changed)."""

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, path):
        self.path = path

    def requestAvatarId(self, creds):
        try:
            password = read_password(self.path)
        except OSError:
            return defer.fail(error.UnauthorizedLogin())
        given = creds.password.decode("utf-8", "replace") if isinstance(creds.password, bytes) else creds.password
        user = creds.username.decode("utf-8", "replace") if isinstance(creds.username, bytes) else creds.username
        if password and user == USER and secrets.compare_digest(given.encode(), password.encode()):
            return defer.succeed(USER)
        return defer.fail(error.UnauthorizedLogin())


class ConsoleInterpreter(manhole.ManholeInterpreter):
    """The manhole's interpreter, made fit for operators: ``exit()`` (any SystemExit) ends this session
    only, and a Deferred that fails is shown as failed and not left unhandled."""

    def runcode(self, *args, **kwargs):
        try:
            super().runcode(*args, **kwargs)
        except SystemExit:
            self.handler.terminal.loseConnection()

    def displayhook(self, obj):
        if isinstance(obj, defer.Deferred) and obj.called and id(obj) not in self._pendingDeferreds:
            # Already fired (Twisted's manhole would only print its repr, and leave a failure unhandled):
            # show its result like a pending one's.
            self.locals["_"] = obj
            k = self.numDeferreds
            self.numDeferreds += 1
            self._pendingDeferreds[id(obj)] = (k, obj)
            obj.addCallbacks(self._cbDisplayDeferred, self._ebDisplayDeferred, callbackArgs=(k, obj),
                             errbackArgs=(k, obj))
            return
        super().displayhook(obj)

    def _ebDisplayDeferred(self, failure, k, obj):
        super()._ebDisplayDeferred(failure, k, obj)
        return None  # shown to the operator: handled


class Console(manhole.ColoredManhole):
    def connectionMade(self):
        super().connectionMade()
        self.interpreter = ConsoleInterpreter(self, self.namespace)


class ConsoleTelnet(telnet.TelnetTransport):
    """Telnet that understands what line-mode clients send: IAC EOF (Ctrl-D) ends the session."""

    def dataReceived(self, data):
        if telnet.IAC not in data and self.state == "data":
            return super().dataReceived(data)
        for i in range(len(data)):
            byte = data[i:i + 1]
            if self.state == "escaped" and byte in (TELNET_EOF, TELNET_SUSP, TELNET_ABORT):
                self.state = "data"
                if byte == TELNET_EOF:
                    self.applicationDataReceived(b"\x04")
                continue
            super().dataReceived(byte)


def _refusal_is_fine(failure):
    failure.trap(telnet.OptionRefused)  # a client may refuse a telnet option: not an error
    return None


class ConsoleBootstrap(telnet.TelnetBootstrapProtocol):
    """Twisted's telnet bootstrap, without logging a traceback each time a client refuses an option."""

    def connectionMade(self):
        transport = self.transport
        do, will = transport.do, transport.will
        transport.do = lambda option: do(option).addErrback(_refusal_is_fine)
        transport.will = lambda option: will(option).addErrback(_refusal_is_fine)
        try:
            super().connectionMade()
        finally:
            del transport.do, transport.will


class _ConsoleProtocol:
    """Builds the terminal protocol of one console session."""

    def __init__(self, namespace):
        self.namespace = namespace

    def __call__(self):
        return insults.ServerProtocol(Console, self.namespace)


@implementer(portal.IRealm)
class _TelnetRealm:
    def __init__(self, namespace):
        self.namespace = namespace

    def requestAvatar(self, avatarId, mind, *interfaces):
        if telnet.ITelnetProtocol in interfaces:
            return (telnet.ITelnetProtocol,
                    ConsoleBootstrap(insults.ServerProtocol, Console, self.namespace),
                    lambda: None)
        raise NotImplementedError()


def _host_key(data_dir):
    path = os.path.join(data_dir, HOST_KEY)
    if os.path.exists(path):
        with open(path, "rb") as f:
            return keys.Key.fromString(f.read())
    key = ed25519.Ed25519PrivateKey.generate()
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return keys.Key.fromString(data)


@implementer(IAuthorizedKeysDB)
class AuthorizedKeysFile:
    """The keys of one authorized_keys file, for any user name; re-read at each login."""

    def __init__(self, path):
        self.path = path

    def getAuthorizedKeys(self, username):
        try:
            with open(self.path, "rb") as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        found = []
        for line in lines:
            line = line.strip()
            if line and not line.startswith(b"#"):
                try:
                    found.append(keys.Key.fromString(line))
                except Exception:
                    continue
        return found


def manhole_service(listen, namespace, data_dir, authorized_keys=None, reactor=None, log=None):
    """The manhole service for ``listen`` (see the module docstring): a ListeningService its daemon starts
    once it holds its locks, and whose failure to listen stops the daemon's start like any other port."""
    from papertrader.services import ListeningService

    if reactor is None:
        from twisted.internet import reactor
    if log is None:
        from papertrader.services import _log as log

    def service(description, factory):
        try:
            endpoint = serverFromString(reactor, description)
        except (ValueError, KeyError, TypeError) as e:
            raise ManholeError(f"--manhole {description}: {e}")
        return ListeningService(endpoint, factory, log, "admin console")

    if authorized_keys:
        if not os.path.exists(authorized_keys):
            raise ManholeError(f"--manhole-keys: {authorized_keys} does not exist")
        listen = str(listen)
        if listen.isdigit():
            listen = f"tcp:{listen}"
        realm = manhole_ssh.TerminalRealm()
        realm.chainedProtocolFactory = _ConsoleProtocol(namespace)
        factory = manhole_ssh.ConchFactory(
            portal.Portal(realm, [SSHPublicKeyChecker(AuthorizedKeysFile(authorized_keys))]))
        key = _host_key(data_dir)
        factory.publicKeys = {key.sshType(): key.public()}
        factory.privateKeys = {key.sshType(): key}
        return service(listen, factory)
    checker = PasswordFileChecker(_password_file(data_dir))
    telnet_portal = portal.Portal(_TelnetRealm(namespace), [checker])
    factory = protocol.ServerFactory()
    factory.protocol = lambda: ConsoleTelnet(telnet.AuthenticatingTelnetProtocol, telnet_portal)
    return service(telnet_description(listen), factory)


def help_text(namespace):
    """One line per console function: its call and the first line of its docstring."""
    import inspect

    rows = []
    for name, value in sorted(namespace.items()):
        if callable(value) and not name.startswith("_") and getattr(value, "__doc__", None) and \
                getattr(value, "__module__", "").startswith("papertrader."):
            try:
                signature = str(inspect.signature(value))
            except (TypeError, ValueError):
                signature = "()"
            rows.append((name + signature, value.__doc__.strip().splitlines()[0]))
    width = max(len(call) for call, _ in rows)
    return "\n".join(f"{call:<{width}}  {doc}" for call, doc in rows)


class Table(list):
    """A list of dicts that shows itself as a table (the console prints results with repr)."""

    def __init__(self, rows, columns):
        super().__init__(rows)
        self.columns = columns

    def __repr__(self):
        from papertrader.client.output import table

        return table(list(self), self.columns) if self else "(none)"


class Record(dict):
    """A dict that shows itself as 'key: value' lines."""

    def __repr__(self):
        from papertrader.client.output import fields

        return fields(self, list(self)) if self else "(nothing)"


class Text(str):
    """A string the console shows as text, not as a quoted repr."""

    def __repr__(self):
        return str(self)
