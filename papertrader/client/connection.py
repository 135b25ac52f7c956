"""Client-side connections: the master (for the worker list) and a worker (for the rest).

A :class:`Connection` picks a worker (by name, else the first listed), and if
that worker cannot be reached or cannot reach the master, moves on to the next
one.  Orders carry a client_order_id, so a command retried on another worker
never makes a second order.
"""

from OpenSSL import SSL
from twisted.internet import defer, error
from twisted.internet.endpoints import connectProtocol

from papertrader import commands, tls
from papertrader.client.protocol import ClientProtocol
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
    return connectProtocol(endpoint, ClientProtocol()).addErrback(_describe, what)


def call(reactor, proto, command, what, **kwargs):
    d = proto.callRemote(command, **kwargs)
    d.addTimeout(TIMEOUT, reactor)
    return d.addErrback(_describe, what)


class Connection:
    """Talks to one worker at a time, chosen from the master's list, and moves on when it fails.

    Choice: ``worker`` (a name) if given; else ``remembered`` (the last one used) if it is listed; else
    the least loaded worker, those in ``region`` first.
    """

    def __init__(self, reactor, master, ca_pem, worker=None, region=None, remembered=None):
        self.reactor = reactor
        self.master = master
        self.ca_pem = ca_pem
        self.wanted = worker
        self.region = region
        self.remembered = remembered
        self.worker = None
        self.proto = None
        self.avoid = set()

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

    def choose(self, workers):
        """The workers to try, best first (the master lists them least loaded first)."""
        if self.wanted:
            chosen = [w for w in workers if w["name"] == self.wanted]
            if not chosen:
                raise NoWorker(f"worker {self.wanted!r} is not available")
            return chosen
        workers = [w for w in workers if w["name"] not in self.avoid] or workers
        if self.region:
            workers = sorted(workers, key=lambda w: w.get("region") != self.region)
        if self.remembered:
            remembered = [w for w in workers if w["name"] == self.remembered and
                          (not self.region or w.get("region") == self.region)]
            workers = remembered + [w for w in workers if w["name"] != self.remembered]
        if not workers:
            raise NoWorker("the master lists no available worker")
        return workers

    @defer.inlineCallbacks
    def open(self):
        """Connect to the best available worker; fires with its ClientProtocol."""
        last = None
        for worker in self.choose((yield self.workers())):
            what = f"worker {worker['name']} ({worker['host']}:{worker['port']})"
            try:
                proto = yield connect(self.reactor, worker["host"], worker["port"], self.ca_pem, what)
            except (Unreachable, BadCertificate) as e:
                last = e  # a worker we cannot trust is skipped like one we cannot reach
                continue
            self.proto, self.worker = proto, worker
            return proto
        raise last or NoWorker()

    @defer.inlineCallbacks
    def call(self, command, **kwargs):
        """Call a worker, moving to another one if this one is unreachable, leaving or cut off.

        Safe for orders: a retried PlaceOrder carries the same client_order_id.
        """
        tried = 0
        while True:
            if self.proto is None:
                yield self.open()
            what = f"worker {self.worker['name']}"
            try:
                return (yield call(self.reactor, self.proto, command, what, **kwargs))
            except (Unreachable, MasterUnavailable, BadCertificate):
                tried += 1
                self.avoid.add(self.worker["name"])
                self.close()
                if tried >= 3:
                    raise

    def close(self):
        if self.proto is not None:
            self.proto.transport.loseConnection()
        self.proto = self.worker = None
