"""Client-side connections: the master (for the worker list) and a worker (for the rest).

A :class:`Connection` picks a worker (by name, else the first listed), and if
that worker cannot be reached or cannot reach the master, moves on to the next
one.  Orders carry a client_order_id, so a command retried on another worker
never makes a second order.
"""

from OpenSSL import SSL
from twisted.internet import defer, error
from twisted.internet.endpoints import connectProtocol
from twisted.protocols import amp

from papertrader import commands, tls
from papertrader.errors import MasterUnavailable, PaperTraderError

TIMEOUT = 30


class ClientError(PaperTraderError):
    """A failure on the client's side of the wire."""


class NoWorker(ClientError):
    """No worker is available."""

    code = "no_worker"


class Unreachable(ClientError):
    """Cannot reach the server."""

    code = "unreachable"


class BadCAFile(ClientError):
    """The CA file cannot be read."""

    code = "bad_ca_file"


class BadCertificate(ClientError):
    """The server's certificate is not trusted (wrong CA file, or wrong host name)."""

    code = "bad_certificate"


def _describe(failure, what):
    if failure.check(SSL.Error) or "certificate verify failed" in failure.getErrorMessage():
        raise BadCertificate(f"{what}: the server's certificate is not signed by the CA file given, or is not"
                             " valid for that host name")
    if failure.check(PaperTraderError):
        return failure
    if failure.check(defer.TimeoutError, defer.CancelledError):
        raise Unreachable(f"{what}: no answer within {TIMEOUT} seconds")
    if failure.check(error.ConnectionRefusedError):
        raise Unreachable(f"{what}: connection refused (is it running?)")
    if failure.check(error.DNSLookupError):
        raise Unreachable(f"{what}: unknown host")
    raise Unreachable(f"{what}: {failure.getErrorMessage()}")


def connect(reactor, host, port, ca_pem, what):
    endpoint = tls.client_endpoint(reactor, host, port, ca_pem, timeout=TIMEOUT)
    return connectProtocol(endpoint, amp.AMP()).addErrback(_describe, what)


def call(reactor, proto, command, what, **kwargs):
    d = proto.callRemote(command, **kwargs)
    d.addTimeout(TIMEOUT, reactor)
    return d.addErrback(_describe, what)


class Connection:
    def __init__(self, reactor, master, ca_pem, worker=None):
        self.reactor = reactor
        self.master = master
        self.ca_pem = ca_pem
        self.wanted = worker
        self.worker = None
        self._proto = None

    @defer.inlineCallbacks
    def workers(self):
        host, port = self.master
        what = f"master {host}:{port}"
        proto = yield connect(self.reactor, host, port, self.ca_pem, what)
        try:
            answer = yield call(self.reactor, proto, commands.ListWorkers, what)
        finally:
            proto.transport.loseConnection()
        return answer["workers"]

    @defer.inlineCallbacks
    def _candidates(self):
        workers = yield self.workers()
        if self.wanted:
            workers = [w for w in workers if w["name"] == self.wanted]
            if not workers:
                raise NoWorker(f"worker {self.wanted!r} is not available")
        if not workers:
            raise NoWorker("the master lists no available worker")
        return workers

    @defer.inlineCallbacks
    def call(self, command, **kwargs):
        """Call a worker, moving to another one if this one is unreachable or cut off."""
        if self._proto is not None:
            try:
                return (yield call(self.reactor, self._proto, command, self._what(), **kwargs))
            except (Unreachable, MasterUnavailable):
                self.close()
        last = None
        for worker in (yield self._candidates()):
            what = f"worker {worker['name']} ({worker['host']}:{worker['port']})"
            try:
                proto = yield connect(self.reactor, worker["host"], worker["port"], self.ca_pem, what)
                answer = yield call(self.reactor, proto, command, what, **kwargs)
            except (Unreachable, MasterUnavailable) as e:
                last = e
                continue
            self._proto, self.worker = proto, worker
            return answer
        raise last or NoWorker()

    def _what(self):
        return f"worker {self.worker['name']}"

    def close(self):
        if self._proto is not None:
            self._proto.transport.loseConnection()
        self._proto = self.worker = None
