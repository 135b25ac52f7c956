"""Service building blocks: a listener that reports its port, a MultiService that starts in stages, and how a
twistd process that cannot start ends (one clear line in the log, a non-zero exit status)."""

import atexit
import errno
import os
import sys

from twisted.application import service
from twisted.internet import defer, error
from twisted.logger import Logger
from twisted.python import failure

#: What keeps a daemon from writing its files (said in one line when it cannot start, as a StartError is).
UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EISDIR)

#: Exit status of a twistd process whose service could not start.
START_FAILED = 1

_log = Logger(namespace="papertrader.services")


class StartError(RuntimeError):
    """An expected reason a service cannot start (port in use, lock held, database unreachable...).

    Its message is the whole story: it is logged as one line, without a traceback.
    """

    #: Set once a service has logged it, so an enclosing service does not log it again.
    logged = False
    #: Set when a Unix socket could not listen because another live process holds its lock file.
    lock_held = False


class Outcome:
    """A result that arrives once and can be awaited any number of times (a Deferred is consumed)."""

    def __init__(self):
        self._result = None
        self._settled = False
        self._waiting = []

    @property
    def settled(self):
        return self._settled

    def settle(self, result):
        self._result, self._settled = result, True
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            self._fire(d)
        return None

    def _fire(self, d):
        if isinstance(self._result, failure.Failure):
            d.errback(self._result)
        else:
            d.callback(self._result)

    def wait(self):
        d = defer.Deferred()
        if self._settled:
            self._fire(d)
        else:
            self._waiting.append(d)
        return d


_exit_status = []


def _exit_now():
    """atexit: end the process with the status asked for, after twistd has cleaned up (pid file, logs)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(_exit_status[0])


def end_process(reactor, status=START_FAILED):
    """Stop ``reactor`` (now, or as soon as it runs) and make the process exit with ``status``.

    twistd exits 0 whenever its reactor stops; a service manager must see that this one failed, so
    the status is set once twistd has finished its own shutdown (an atexit handler).
    """
    if not _exit_status:
        _exit_status.append(status)
        atexit.register(_exit_now)

    def stop():
        try:
            reactor.stop()
        except error.ReactorNotRunning:
            pass

    reactor.callWhenRunning(stop)


def quiet_repeated_signals(reactor):
    """A second Ctrl-C or SIGTERM is noted, not an error.

    Twisted's handlers ask ``reactor.stop()`` for each signal; a second one found the reactor already stopping
    and left a ReactorNotRunning traceback in the log (an impatient operator, or a service manager that
    signals twice).  Once the reactor runs, the first SIGINT or SIGTERM still goes to Twisted's handler (the
    shutdown, and twistd's exit by that signal); any after it is only logged."""
    import signal
    import threading

    signals = (signal.SIGINT, signal.SIGTERM)

    def install():
        if threading.current_thread() is not threading.main_thread():
            return
        # Only the handlers Twisted installed (a SIGINT a background job ignores stays ignored).
        handlers = {signum: signal.getsignal(signum) for signum in signals}
        handlers = {signum: handler for signum, handler in handlers.items() if callable(handler)}
        received = []

        def handle(signum, frame):
            if received:
                _log.info("received {name} again: already shutting down", name=signal.Signals(signum).name)
                return
            received.append(signum)
            handlers[signum](signum, frame)

        for signum in handlers:
            signal.signal(signum, handle)

    reactor.callWhenRunning(install)


def describe_failure(reason):
    """One line for an exception: its message, without the class name when the message says enough."""
    value = reason.value if isinstance(reason, failure.Failure) else reason
    text = " ".join(str(value).split())
    return text or type(value).__name__


def _unix_socket_failure(value):
    """Why a Unix socket (a console's ``unix:PATH``) cannot listen, in the operator's words, or None.

    Twisted says "Cannot acquire lock" with the path as bytes when a live process holds PATH.lock, and lets the
    os.symlink making that lock file fail with its own arguments ('PID' -> b'PATH.lock')."""
    if isinstance(value, error.CannotListenError) and isinstance(value.port, (bytes, str)):
        path = os.fsdecode(value.port)
        cause = value.socketError
        if cause == "Cannot acquire lock":
            try:
                holder = f" (pid {int(os.readlink(path + '.lock'))})"
            except (OSError, ValueError):
                holder = ""
            return (f"cannot listen on {path}: another process{holder} listens on it (its lock file {path}.lock):"
                    " stop it, or give another path")
        if isinstance(cause, OSError) and cause.errno is not None:
            cause = os.strerror(cause.errno)
        return f"cannot listen on {path}: {cause}"
    if isinstance(value, OSError) and value.filename2 is not None:
        lock = os.fsdecode(value.filename2)
        if lock.endswith(".lock"):
            path = lock[:-len(".lock")]
            directory = os.path.dirname(path) or "."
            if value.errno == errno.ENOENT and not os.path.isdir(directory):
                return f"cannot listen on {path}: its directory {directory} does not exist"
            return f"cannot listen on {path}: cannot make its lock file {lock}: {os.strerror(value.errno)}"
    return None


def listen_failure(what, reason):
    """A StartError for a listener that could not listen, saying where and why in one line."""
    value = reason.value if isinstance(reason, failure.Failure) else reason
    unix = _unix_socket_failure(value)
    if unix is not None:
        failed = StartError(unix)
        failed.lock_held = isinstance(value, error.CannotListenError) and value.socketError == "Cannot acquire lock"
        return failed
    if isinstance(value, error.CannotListenError):
        where = f"port {value.port}" if isinstance(value.port, int) else str(value.port)
        if value.interface:
            where = f"{value.interface} {where}"
        cause = value.socketError
        if isinstance(cause, OSError) and cause.errno is not None:
            cause = os.strerror(cause.errno)
        return StartError(f"cannot listen on {where}: {cause}")
    return StartError(f"cannot listen: {describe_failure(value)}")


class StagedService(service.MultiService):
    """A MultiService whose start is asynchronous (``_start``), e.g. take a lock, migrate, then listen.

    ``whenReady()`` fires with what ``_start`` returned.  A failed start is logged by the service
    itself: one critical line for a :class:`StartError` (an expected failure), a traceback for
    anything else (a bug).  Under twistd (``exit_on_failure`` set by makeService to the reactor) the
    reactor is then stopped and the process exits with a non-zero status, so a service manager sees
    the failure.
    """

    #: The reactor to stop, with a non-zero exit status, if the start fails (set by makeService).
    exit_on_failure = None
    #: What the service is called in its log lines.
    what = "service"
    log = _log

    def __init__(self):
        super().__init__()
        self._ready = Outcome()
        self._starting = None

    def privilegedStartService(self):
        # The children are started by _start, in order (locks before ports): none may listen before.
        service.Service.privilegedStartService(self)

    def startService(self):
        service.Service.startService(self)
        if self.exit_on_failure is not None:  # under twistd: the process's reactor
            quiet_repeated_signals(self.exit_on_failure)
        self._starting = defer.maybeDeferred(self._start)
        self._starting.addErrback(self._start_failed).addBoth(self._ready.settle)

    def _start_failed(self, reason):
        if not getattr(reason.value, "logged", False):
            if reason.check(StartError):
                self.log.critical("{what} cannot start: {reason}", what=self.what, reason=str(reason.value))
            elif reason.check(OSError) and reason.value.errno in UNWRITABLE:
                # The machine's, not a bug: a full disk, a file it may not write.
                self.log.critical("{what} cannot start: cannot write {file}: {error}", what=self.what,
                                  file=reason.value.filename or "a file", error=reason.value.strerror)
            else:
                self.log.failure("{what} could not start", reason, what=self.what)
            try:
                reason.value.logged = True
            except (AttributeError, TypeError):
                pass
        if self.exit_on_failure is not None:
            end_process(self.exit_on_failure)
        return reason

    def whenReady(self):
        return self._ready.wait()

    @defer.inlineCallbacks
    def stopService(self):
        if self._starting is not None:
            yield self.whenReady().addErrback(lambda _: None)
        yield self._stop()

    def _start(self):
        raise NotImplementedError

    def _stop(self):
        return super().stopService()


class ListeningService(service.Service):
    """Like StreamServerEndpointService, plus ``whenListening()`` (fires with the port number).

    A failure to listen fires ``whenListening()`` with a :class:`StartError` saying where and why;
    the service that owns the listener logs it.
    """

    def __init__(self, endpoint, factory, log, what):
        self.endpoint = endpoint
        self.factory = factory
        self.log = log
        self.what = what
        self.port = None
        self._listening = Outcome()

    def startService(self):
        super().startService()
        d = self.endpoint.listen(self.factory)

        def listening(port):
            self.port = port
            host = port.getHost()
            number = getattr(host, "port", None)
            if number is None:  # a Unix socket
                self.log.info("{what} listening on {path}", what=self.what, path=host.name.decode()
                              if isinstance(host.name, bytes) else host.name)
            else:
                self.log.info("{what} listening on port {port}", what=self.what, port=number)
            return number

        def failed(reason):
            raise listen_failure(self.what, reason)

        d.addCallbacks(listening, failed).addBoth(self._listening.settle)

    def whenListening(self):
        """A new Deferred firing with the port number once listening (or with why it cannot)."""
        return self._listening.wait()

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return defer.succeed(None)


def port_endpoint(reactor, listen, cert_path):
    """The TLS server endpoint for ``--port``; a description that makes no sense is a usage mistake."""
    from twisted.python import usage

    from papertrader import tls

    try:
        return tls.server_endpoint(reactor, listen, cert_path)
    except (ValueError, KeyError, TypeError) as e:
        raise usage.UsageError(f"--port {listen}: {e}")


def usage_exit(command, message):
    """Print a usage mistake as one line on stderr and exit with status 2 (no traceback, no usage text)."""
    sys.stderr.write(f"twistd {command}: {message}\n")
    sys.stderr.flush()
    raise SystemExit(2)
