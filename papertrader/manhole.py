"""Admin consoles: Twisted manholes on the master and the workers.

Nothing listens unless ``--manhole ENDPOINT`` is given.  Two kinds:

- **telnet**, only on loopback or a Unix socket (``--manhole 2049`` means
  ``tcp:2049:interface=127.0.0.1``).  Log in as ``admin`` with the password
  that ``DATA_DIR/manhole.passwd`` holds (one line; random, created on first
  use, readable by the owner only): other local users cannot get in.
- **SSH**, when ``--manhole-keys AUTHORIZED_KEYS`` is given: any interface,
  public-key login only (any user name), host key kept in
  ``DATA_DIR/manhole_host_key``.

Each login is logged with the address it came from, let in or refused (a warning).

The console's namespace is a set of plain functions (see ``help()``) that print
readable tables; see papertrader/master/console.py and worker/console.py.
Leaving a session (``exit()``, ``quit()``, Ctrl-D) closes that session only, and
a console call that fails prints why: neither leaves a traceback in the log.
"""

import os
import secrets
import struct
import traceback
from datetime import timezone

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch import interfaces as conch_interfaces
from twisted.conch import manhole, manhole_ssh, telnet
from twisted.conch.checkers import IAuthorizedKeysDB, SSHPublicKeyChecker
from twisted.conch.insults import insults
from twisted.conch.error import IgnoreAuthentication
from twisted.conch.ssh import keys, transport as ssh_transport, userauth
from twisted.conch.ssh.common import getNS
from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, protocol
from twisted.internet import error as net_error
from twisted.python.failure import Failure
from twisted.internet.endpoints import serverFromString
from zope.interface import implementer

from papertrader import tls

LOOPBACK = ("127.0.0.1", "::1", "localhost")
PASSWD = "manhole.passwd"
HOST_KEY = "manhole_host_key"
USER = "admin"
#: Telnet commands a line-mode client sends that Twisted's telnet parser does not know: EOF (its Ctrl-D),
#: SUSP, ABORT.  EOF ends the session like Ctrl-D; the others are ignored.
TELNET_EOF, TELNET_SUSP, TELNET_ABORT = b"\xec", b"\xed", b"\xee"
#: Seconds an SSH session whose client ended its input (``ssh ... < commands``) waits for the answers of the
#: Deferreds still pending before it closes anyway.
EOF_GRACE = 30.0
#: The longest line an SSH console without a terminal takes (bytes).
PLAIN_LINE_MAX = 64 * 1024


def _peer_text(peer):
    """Where a console login came from, as the log says it."""
    return tls.address_text(peer.host, peer.port) if hasattr(peer, "port") else "a Unix socket"


class ManholeError(ValueError):
    """A --manhole setting that would open the console unsafely or cannot be used."""


def telnet_description(listen):
    """A strports description for a telnet manhole, refusing anything but loopback or a Unix socket."""
    listen = str(listen).strip()
    if listen.isdigit():
        return f"tcp:{listen}:interface=127.0.0.1"
    kind, _, rest = listen.partition(":")
    if kind == "unix":
        return private_socket(listen)
    if kind == "tcp":
        params = dict(p.split("=", 1) for p in rest.split(":") if "=" in p)
        if params.get("interface") in LOOPBACK:
            return listen
    raise ManholeError(
        f"a telnet manhole listens only on loopback: use a port number, tcp:PORT:interface=127.0.0.1 or"
        f" unix:PATH, or give --manhole-keys for an SSH manhole (got {listen!r})")


def private_socket(description):
    """A ``unix:`` description whose socket only its owner may connect to (mode 0600, unless it says a
    ``mode=``): Twisted's default, 0666, lets any local user reach the console's login."""
    if any(part.startswith("mode=") for part in description.split(":")[2:]):
        return description
    return f"{description}:mode=0600"


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


class _Setup:
    """What every console session shares: its namespace, the daemon's logger and reactor."""

    def __init__(self, namespace, log, reactor):
        self.namespace = namespace
        self.log = log
        self.reactor = reactor


class ConsoleInterpreter(manhole.ManholeInterpreter):
    """The manhole's interpreter, made fit for operators: ``exit()`` (any SystemExit) ends this session
    only, and a Deferred that fails is shown as failed and not left unhandled."""

    def runcode(self, *args, **kwargs):
        try:
            super().runcode(*args, **kwargs)
        except SystemExit:
            self.handler.terminal.loseConnection()

    def displayhook(self, obj):
        if isinstance(obj, defer.Deferred) and id(obj) not in self._pendingDeferreds and (
                obj.called or isinstance(self.handler, PlainConsole)):
            # Already fired (Twisted's manhole would only print its repr, and leave a failure unhandled): its
            # result shown like a pending one's.  Without a terminal, a pending one's "<Deferred #N>" is not
            # written either: only answers are.
            self.locals["_"] = obj
            k = self.numDeferreds
            self.numDeferreds += 1
            self._pendingDeferreds[id(obj)] = (k, obj)
            obj.addCallbacks(self._cbDisplayDeferred, self._ebDisplayDeferred, callbackArgs=(k, obj),
                             errbackArgs=(k, obj))
            return
        super().displayhook(obj)

    def _cbDisplayDeferred(self, result, k, obj):
        result = super()._cbDisplayDeferred(result, k, obj)
        self.handler.answered()
        return result

    def _ebDisplayDeferred(self, failure, k, obj):
        super()._ebDisplayDeferred(failure, k, obj)
        self.handler.answered()
        return None  # shown to the operator: handled


class _EndOfInput:
    """What both kinds of session do when the client's input ends: close once the pending answers are shown."""

    def end_of_input(self):
        """The client will send nothing more (an SSH client's stdin ended): close the session once the
        answers still pending are shown (at most EOF_GRACE seconds from now)."""
        if not self.interpreter._pendingDeferreds:
            self.terminal.loseConnection()
        elif self._closing is None:
            self._closing = self.setup.reactor.callLater(EOF_GRACE, self.terminal.loseConnection)

    def answered(self):
        """A pending Deferred's answer was shown."""
        if self._closing is not None and not self.interpreter._pendingDeferreds and not self._gone:
            self._closing.cancel()
            self.terminal.loseConnection()


class Console(_EndOfInput, manhole.ColoredManhole):
    """One operator's session: Twisted's colored manhole, whose answers that come later (a Deferred's) are
    shown as soon as they come, also while the operator is typing the next line."""

    def __init__(self, setup):
        super().__init__(setup.namespace)
        self.setup = setup
        self._closing = None  # the input ended: the timer that closes the session if answers are late
        self._gone = False

    def connectionMade(self):
        super().connectionMade()
        self.interpreter = ConsoleInterpreter(self, self.namespace)

    def connectionLost(self, reason):
        self._gone = True
        if self._closing is not None and self._closing.active():
            self._closing.cancel()
        super().connectionLost(reason)

    def addOutput(self, data, isAsync=None):
        """Twisted's Manhole.addOutput, except that the line being typed when an answer comes is redrawn
        from its bytes (Twisted hands the list of them on, which breaks the line and then the session), the
        cursor back where it was."""
        if self._gone:
            return
        if not isAsync:
            self.terminal.write(data)
            return
        try:
            self.terminal.eraseLine()
            self.terminal.cursorBackward(len(self.lineBuffer) + len(self.ps[self.pn]))
            self.terminal.write(data)
            if self._needsNewline():
                self.terminal.nextLine()
            self.terminal.write(self.ps[self.pn])
            typed, index = b"".join(self.lineBuffer), self.lineBufferIndex
            self.lineBuffer, self.lineBufferIndex = [], 0
            self._deliverBuffer(typed)
            if index < len(typed):
                self.terminal.cursorBackward(len(typed) - index)
                self.lineBufferIndex = index
        except Exception:
            self.setup.log.failure("admin console: showing an answer failed; the session is closed")
            self.terminal.loseConnection()


class PlainConsole(_EndOfInput, protocol.Protocol):
    """An SSH session that asked for no terminal (``ssh ... < commands.py``): its lines are run one by one as
    the console runs typed ones, and the answers are written as they are, without prompt, echo or terminal
    escape codes, so that they can be kept in a file or read by a program.  A Deferred's answer is written
    when it comes.  When the input ends, an unfinished line and an unfinished block (a ``for`` without the
    blank line after it) are run, as Python runs a script."""

    def __init__(self, setup):
        self.setup = setup
        self.terminalProtocol = self.terminal = self  # as a terminal session's: what the session reaches for
        self._partial = b""
        self._closing = None
        self._gone = False
        self._last = b"\n"

    def connectionMade(self):
        self.interpreter = ConsoleInterpreter(self, self.setup.namespace)

    def terminalSize(self, width, height):
        pass

    def dataReceived(self, data):
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._run(line.rstrip(b"\r"))
        if len(self._partial) > PLAIN_LINE_MAX and not self._gone:
            self.addOutput(f"refused: a line longer than {PLAIN_LINE_MAX} bytes; the session is closed\n")
            self.loseConnection()

    def _run(self, line):
        if self._gone:
            return
        try:
            self.interpreter.push(line)
        except Exception:
            self.setup.log.failure("admin console: running the operator's input failed; the session is closed")
            self.loseConnection()
        self._end_line()

    def flush_input(self):
        """The input ended: run its unfinished line, then end an unfinished block as a blank line does."""
        if self._partial:
            line, self._partial = self._partial, b""
            self._run(line.rstrip(b"\r"))
        if self.interpreter.buffer:
            self._run(b"")
        if self.interpreter.buffer and not self._gone:
            # Still unfinished (a bracket never closed): what Python says of it at the end of a file.
            source = "\n".join(line.decode("utf-8", "replace") if isinstance(line, bytes) else line
                               for line in self.interpreter.buffer)
            self.interpreter.resetBuffer()
            try:
                compile(source, "<console>", "exec")
            except SyntaxError as e:
                # Written here, not by showsyntaxerror: on Python 3.10 that hands it to a replaced sys.excepthook
                # (a test runner's, a debugger's), and the operator saw nothing.
                self.interpreter.write("".join(traceback.format_exception_only(type(e), e)))
            self._end_line()

    def addOutput(self, data, isAsync=None):
        if self._gone:
            return
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        if data:
            self.transport.write(data)
            self._last = data[-1:]
        if isAsync:
            self._end_line()

    def _end_line(self):
        if self._last != b"\n" and not self._gone:
            self.transport.write(b"\n")
            self._last = b"\n"

    def loseConnection(self):
        if not self._gone:
            self._gone = True
            self.transport.loseConnection()

    def connectionLost(self, reason=None):
        self._gone = True
        if self._closing is not None and self._closing.active():
            self._closing.cancel()


class ConsoleTerminal(insults.ServerProtocol):
    """The console's terminal: a failure while handling what the operator typed goes to the daemon's log
    (its log file too, not only twistd's output) and closes that session only."""

    def __init__(self, setup):
        super().__init__(Console, setup)
        self.setup = setup

    def dataReceived(self, data):
        try:
            super().dataReceived(data)
        except Exception:
            self.setup.log.failure("admin console: handling the operator's input failed; the session is closed")
            self.loseConnection()


def _negotiation_settled(failure, option):
    """A telnet option negotiation that did not succeed: nothing to log.

    A client may refuse an option, or not have answered yet (AlreadyNegotiating), or the option may already
    be as asked: the session goes on without it (whoever waited for it goes on too).  If the connection was
    lost meanwhile, whoever waited has nothing left to do: the chain stops there, silently."""
    if failure.check(net_error.ConnectionDone, net_error.ConnectionLost):
        return defer.Deferred()  # never fires: what waited on the option was for a session now gone
    failure.trap(telnet.NegotiationError)
    return None


class ConsoleTelnet(telnet.TelnetTransport):
    """Telnet as the console needs it:

    - option negotiations never fail (see _negotiation_settled): a client that refuses ECHO or SGA, or
      answers late, or leaves mid-negotiation, logs in all the same and leaves no error in the log;
    - IAC EOF (a line-mode client's Ctrl-D) ends the session;
    - a carriage return that ends what the client sent is a line end at once: Twisted's telnet would hold
      it until the next byte (to see whether LF or NUL follows), so that with a client that ends lines with
      a bare CR, a line would run only when the operator types the next one;
    - a failure while handling the input goes to the daemon's log and closes this session only."""

    _swallow = False  # a CR was taken as a line end: an LF or NUL right after it belongs to it

    def __init__(self, setup, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setup = setup

    def will(self, option):
        return super().will(option).addErrback(_negotiation_settled, option)

    def wont(self, option):
        return super().wont(option).addErrback(_negotiation_settled, option)

    def do(self, option):
        return super().do(option).addErrback(_negotiation_settled, option)

    def dont(self, option):
        return super().dont(option).addErrback(_negotiation_settled, option)

    def dataReceived(self, data):
        try:
            self._received(data)
        except Exception:
            self.setup.log.failure("admin console: handling the telnet client's input failed; the session is"
                                   " closed")
            self.transport.loseConnection()

    def _received(self, data):
        if self._swallow and data:
            self._swallow = False
            if data[:1] in (b"\n", b"\0"):
                data = data[1:]
        if telnet.IAC not in data and self.state == "data":
            super().dataReceived(data)
        else:
            for i in range(len(data)):
                byte = data[i:i + 1]
                if self.state == "escaped" and byte in (TELNET_EOF, TELNET_SUSP, TELNET_ABORT):
                    self.state = "data"
                    if byte == TELNET_EOF:
                        self.applicationDataReceived(b"\x04")
                    continue
                super().dataReceived(byte)
        if self.state == "newline":  # the data ended with a CR
            self.state = "data"
            self._swallow = True
            self.applicationDataReceived(b"\n")


class _ConsoleProtocol:
    """Builds the terminal protocol of one console session."""

    def __init__(self, setup):
        self.setup = setup

    def __call__(self):
        return ConsoleTerminal(self.setup)


class ConsoleLogin(telnet.AuthenticatingTelnetProtocol):
    """Twisted's telnet login, which also logs each login to the console, refused or let in, with the
    address it came from (never what was typed: a password typed at the user name prompt stays unlogged)."""

    def __init__(self, setup, portal):
        super().__init__(portal)
        self.setup = setup

    def _peer(self):
        return _peer_text(self.transport.getPeer())

    def telnet_Password(self, line):
        """Twisted's, without its warning "state changed and new state returned" at every login: a login whose
        answer came at once (the password file is read then and there) has set the next state itself."""
        before = self.state
        after = super().telnet_Password(line)
        return after if self.state == before else None

    def _cbLogin(self, ial):
        self.setup.log.info("admin console: a telnet login from {peer} was let in", peer=self._peer())
        return super()._cbLogin(ial)

    def _ebLogin(self, failure):
        self.setup.log.warn("admin console: a telnet login from {peer} was refused", peer=self._peer())
        return super()._ebLogin(failure)


@implementer(portal.IRealm)
class _TelnetRealm:
    def __init__(self, setup):
        self.setup = setup

    def requestAvatar(self, avatarId, mind, *interfaces):
        if telnet.ITelnetProtocol in interfaces:
            return (telnet.ITelnetProtocol, telnet.TelnetBootstrapProtocol(ConsoleTerminal, self.setup),
                    lambda: None)
        raise NotImplementedError()


class _Glue:
    """A transport made of the callables given (as Twisted's manhole_ssh._Glue)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


class ConsoleSessionTransport:
    """Joins an SSH session channel and the console's terminal (as Twisted's TerminalSessionTransport),
    except that the console ending the session tells the client it ended well (exit status 0)."""

    def __init__(self, proto, chainedProtocol, avatar, width, height):
        self.proto = proto
        channel = proto.session
        proto.makeConnection(_Glue(write=chainedProtocol.dataReceived,
                                   loseConnection=lambda: avatar.conn.sendClose(channel), name="SSH console"))

        def end():
            channel.conn.sendRequest(channel, b"exit-status", struct.pack(">L", 0))
            proto.loseConnection()

        chainedProtocol.makeConnection(_Glue(write=proto.write, loseConnection=end, name="console terminal"))
        chainedProtocol.terminalProtocol.terminalSize(width, height)


class ConsoleSSHTransport(ssh_transport.SSHServerTransport):
    """Twisted's SSH server, except that a client leaving as clients do (``disconnected by user``) is not
    logged as an error."""

    def receiveError(self, reasonCode, description):
        if reasonCode == ssh_transport.DISCONNECT_BY_APPLICATION:
            self._log.info("SSH client disconnected: {description}", description=description)
        else:
            super().receiveError(reasonCode, description)


class ConsoleUserAuth(userauth.SSHUserAuthServer):
    """Twisted's SSH authentication, which also logs each login to the console with the address it came from, as
    the telnet console does: let in (with the user name given and the key's fingerprint), or refused (a warning,
    once per connection that tried keys and got in with none: a client offers each key it has in turn, so a
    key it offers first and the console does not know is not a refusal yet)."""

    _key = None
    _tried = 0
    _let_in = False

    def _peer(self):
        return _peer_text(self.transport.transport.getPeer())

    def _user(self):
        """The user name the client gave, as it may be logged: printable, at most 64 characters."""
        return repr("".join(c if c.isprintable() else "?" for c in (self.user or b"").decode("utf-8", "replace")[:64]))

    @property
    def _log_to(self):
        return self.transport.factory.console_setup.log

    def auth_publickey(self, packet):
        try:
            self._key = "SHA256:" + keys.Key.fromString(getNS(packet[1:], 2)[1]).fingerprint(
                keys.FingerprintFormats.SHA256_BASE64).rstrip("=")  # (as ssh-keygen -l shows it)
        except Exception:
            self._key = None  # (Twisted's own refuses it, and says why)
        return super().auth_publickey(packet)

    def _cbFinishedAuth(self, result):
        self._let_in = True
        self._log_to.info("admin console: an SSH login from {peer} was let in (user {user}, key {key})",
                          peer=self._peer(), user=self._user(), key=self._key)
        return super()._cbFinishedAuth(result)

    def _ebBadAuth(self, reason):
        if not reason.check(IgnoreAuthentication) and self.method != b"none":
            self._tried += 1
        return super()._ebBadAuth(reason)

    def serviceStopped(self):
        if self._tried and not self._let_in:
            self._log_to.warn("admin console: an SSH login from {peer} was refused ({tried} attempt(s), user {user})",
                              peer=self._peer(), tried=self._tried, user=self._user())
        return super().serviceStopped()


@implementer(conch_interfaces.ISession)
class ConsoleSession(manhole_ssh.TerminalSession):
    """An SSH console session: works without a terminal too (``ssh ... < commands`` asks for none: a
    PlainConsole), follows the window's size, and ends when the client's input ends (once the pending
    answers are shown)."""

    transportFactory = ConsoleSessionTransport
    width, height = 80, 24  # when the client asks for no terminal
    terminal = None
    pty = False

    def getPty(self, term, windowSize, attrs):
        super().getPty(term, windowSize, attrs)
        self.pty = True

    def openShell(self, proto):
        factory = self.chainedProtocolFactory
        self.terminal = factory() if self.pty else PlainConsole(factory.setup)
        self.transportFactory(proto, self.terminal, conch_interfaces.IConchUser(self.original), self.width,
                              self.height)

    def execCommand(self, proto, cmd):
        proto.write(b"the admin console runs no command: connect without one, or send the lines to its input"
                    b" (ssh ... < commands.py)\r\n")
        channel = proto.session
        channel.conn.sendRequest(channel, b"exit-status", struct.pack(">L", 2))
        proto.loseConnection()

    def windowChanged(self, newWindowSize):
        self.height, self.width = newWindowSize[:2]
        if self.terminal is not None and self.terminal.terminalProtocol is not None:
            self.terminal.terminalProtocol.terminalSize(self.width, self.height)

    def eofReceived(self):
        if self.terminal is not None and self.terminal.terminalProtocol is not None:
            console = self.terminal.terminalProtocol
            if isinstance(console, PlainConsole):
                console.flush_input()
                if console._gone:  # its last lines ended the session (exit())
                    return
            pending = len(console.interpreter._pendingDeferreds)
            self.chainedProtocolFactory.setup.log.info(
                "admin console: the SSH client ended its input; session closed" if not pending else
                "admin console: the SSH client ended its input; session closes once {pending} pending answer(s)"
                " are shown", pending=pending)
            console.end_of_input()

    def closed(self):
        if self.terminal is not None and self.terminal.terminalProtocol is not None:
            self.terminal.connectionLost(Failure(net_error.ConnectionDone()))


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


def check_authorized_keys(path):
    """Refuse an authorized_keys file no one could log in with: missing, unreadable, a private key, or without
    one public key this console reads (it is read again at each login, so keys may be added later)."""
    if not os.path.exists(path):
        raise ManholeError(f"--manhole-keys: {path} does not exist")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ManholeError(f"--manhole-keys: cannot read {path}: {e.strerror}")
    if b"PRIVATE KEY-----" in data:
        raise ManholeError(f"--manhole-keys: {path} is a private key: give the public keys allowed in (an"
                           " authorized_keys file, or the key's .pub)")
    if not AuthorizedKeysFile(path).getAuthorizedKeys(b"admin"):
        raise ManholeError(f"--manhole-keys: {path} holds no public key (one per line, as in ~/.ssh/authorized_keys:"
                           " ssh-ed25519 AAAA... COMMENT): no one could log in")


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
    setup = _Setup(namespace, log, reactor)

    def service(description, factory):
        try:
            endpoint = serverFromString(reactor, description)
        except (ValueError, KeyError, TypeError) as e:
            raise ManholeError(f"--manhole {description}: {e}")
        return ListeningService(endpoint, factory, log, "admin console")

    if authorized_keys:
        if not os.path.exists(authorized_keys):
            raise ManholeError(f"--manhole-keys: {authorized_keys} does not exist")
        listen = str(listen).strip()
        if listen.isdigit():  # as for telnet: a bare port is loopback (tcp:PORT opens it to the network)
            listen = f"tcp:{listen}:interface=127.0.0.1"
        elif listen.startswith("unix:"):
            listen = private_socket(listen)
        realm = manhole_ssh.TerminalRealm()
        realm.sessionFactory = ConsoleSession
        realm.transportFactory = ConsoleSessionTransport
        realm.chainedProtocolFactory = _ConsoleProtocol(setup)
        factory = manhole_ssh.ConchFactory(
            portal.Portal(realm, [SSHPublicKeyChecker(AuthorizedKeysFile(authorized_keys))]))
        factory.protocol = ConsoleSSHTransport
        factory.services = {**factory.services, b"ssh-userauth": ConsoleUserAuth}
        factory.console_setup = setup
        key = _host_key(data_dir)
        factory.publicKeys = {key.sshType(): key.public()}
        factory.privateKeys = {key.sshType(): key}
        return service(listen, factory)
    checker = PasswordFileChecker(_password_file(data_dir))
    telnet_portal = portal.Portal(_TelnetRealm(setup), [checker])
    factory = protocol.ServerFactory()
    factory.protocol = lambda: ConsoleTelnet(setup, ConsoleLogin, setup, telnet_portal)
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


#: The levels a console's logs(level=...) takes (Twisted's names).
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


def log_text(logs, n=20, level=None):
    """A console's ``logs()``: the newest ``n`` entries of a LogSystem's memory (of one ``level`` only), one line each;
    if there are none, what was looked at and where the rest are; a level or count it cannot take, refused."""
    if level is not None and level not in LOG_LEVELS:
        return Text("refused: level must be one of " + ", ".join(LOG_LEVELS))
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
        return Text("refused: n must be a whole number of entries, 0 or more (or None: all kept in memory)")
    entries = logs.newest(n, level)
    if entries or n == 0:
        return Text("\n".join(e.format() for e in entries))
    where = f"the log file has every line: {logs.path}" if logs.path else "no log file is written"
    return Text(f"no {level + ' ' if level else ''}entries among the newest {logs.memory.entries.maxlen} kept in"
                f" memory; {where}")


class Table(list):
    """A list of dicts that shows itself as a table (the console prints results with repr), its times in ``zone``
    (the market's, as the admin tool shows them) with the zone's abbreviation."""

    def __init__(self, rows, columns, zone=timezone.utc):
        super().__init__(rows)
        self.columns = columns
        self.zone = zone

    def __repr__(self):
        from papertrader.client.output import table

        return table(list(self), self.columns, self.zone) if self else "(none)"


class Record(dict):
    """A dict that shows itself as 'key: value' lines (times in ``zone``, set after it is made: UTC)."""

    zone = timezone.utc

    def __repr__(self):
        from papertrader.client.output import fields

        return fields(self, list(self), self.zone) if self else "(nothing)"


class Text(str):
    """A string the console shows as text, not as a quoted repr."""

    def __repr__(self):
        return str(self)
