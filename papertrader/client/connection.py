"""Client-side connections: the master (for the worker list) and a worker (for the rest).

A :class:`Connection` talks to one worker at a time, chosen from the master's
list.  Failover is its business, not each command's: when the worker cannot be
reached, cannot reach the master, is leaving, or fails in the middle of a
command, :meth:`Connection.call` sends the same command to another worker — the
same session (sessions live on the master), the same ``client_order_id`` (the
master makes one order per id).  With ``--worker NAME`` nothing moves: the
failure is reported as what it is.

Every failure becomes a typed error (``papertrader.client.errors``) whose
message says what happened and what to do, in a user's words: never a Python
exception's text or a raw AMP error.
"""

import os
from datetime import datetime, timezone

import service_identity
from OpenSSL import SSL
from twisted.internet import defer, error
from twisted.internet.endpoints import connectProtocol
from twisted.protocols import amp
from twisted.python.failure import Failure

from papertrader import commands, tls
from papertrader.client.errors import (  # noqa: F401 - the client's error types, importable from here too
    BadCAFile,
    BadCertificate,
    ClientError,
    ConfigError,
    InternalError,
    NoWorker,
    Unreachable,
    WorkerFailed,
    WrongServer,
)
from papertrader.client.protocol import ClientProtocol
from papertrader.errors import (
    InvalidInput,
    MasterUnavailable,
    NotLoggedIn,
    OutcomeUnknown,
    PaperTraderError,
    ServerError,
    UnknownCommand,
)

#: Seconds to set up a TCP connection.
CONNECT_TIMEOUT = 10
#: Seconds for the TLS handshake once connected: a server that does not speak TLS (or says nothing) fails fast.
HANDSHAKE_TIMEOUT = 5
#: Seconds to wait for the answer to a command.
TIMEOUT = 30
#: The largest value one AMP argument can carry, in bytes.
MAX_VALUE = 0xFFFF
#: Failures one command may meet before the client gives up (each worker is tried once anyway).
MAX_FAILURES = 10


def _os_reason(value):
    """The operating system's words for a connection error ('No route to host'), else None."""
    code = getattr(value, "osError", None)
    if isinstance(code, int):
        return os.strerror(code)
    if isinstance(code, OSError) and code.strerror:
        return code.strerror
    return None


def _connect_failed(failure, what):
    """Raise the typed error for a failed TCP connection."""
    if failure.check(error.ConnectionRefusedError):
        raise Unreachable(f"cannot reach {what}: connection refused (is it running? is the address right?)")
    if failure.check(error.DNSLookupError):
        raise Unreachable(f"cannot reach {what}: unknown host name (check the address)")
    if failure.check(error.TimeoutError, defer.TimeoutError):
        raise Unreachable(f"cannot reach {what}: no answer within {CONNECT_TIMEOUT} seconds (check the address"
                          " and the network)")
    reason = _os_reason(failure.value)
    raise Unreachable(f"cannot reach {what}" + (f": {reason[:1].lower()}{reason[1:]}" if reason else "")
                      + " (check the address and the network)")


def _handshake_failed(failure, what, host, ca_pem=None):
    """Raise the typed error for a failed TLS handshake."""
    if failure.check(service_identity.VerificationError, service_identity.CertificateError):
        raise BadCertificate(f"{what} has a certificate that is not valid for the host name {host!r}: the"
                             " deployment's operator must give it a certificate for that name")
    if failure.check(SSL.Error):
        if "certificate verify failed" in str(failure.value):
            until = tls.expires(ca_pem) if ca_pem else None
            if until is not None and until <= datetime.now(timezone.utc):
                raise BadCertificate(f"the deployment's CA certificate (the CA file given: --ca-file or"
                                     f" PAPERTRADER_CA) expired on {until.date().isoformat()}: its operator must"
                                     " make the deployment new certificates (README: Certificates)")
            raise BadCertificate(f"{what} has a certificate not signed by the CA file given (--ca-file or"
                                 " PAPERTRADER_CA), or one that has expired: use the ca.pem of this deployment;"
                                 " if it is that, ask its operator to renew the server's certificate")
        raise WrongServer(f"{what} does not speak TLS as a PaperTrader server does: check the address and port")
    raise Unreachable(f"{what} closed the connection before TLS was set up: it is not a PaperTrader server,"
                      " or it is shutting down")


class MasterProtocol(ClientProtocol):
    """The client's end of a connection to the master (for its list of workers), which makes an HTTP server
    given instead (a worker's website and HTTP API port, which speaks TLS with the same CA) answer at once.

    An HTTP server reads a request line up to its end (CR LF) and says nothing before: the AMP box of
    ListWorkers has no line end, so the server would wait and the client time out (30 s) with nothing to tell.
    Nothing may come before the box (AMP reads any bytes as a key's length: an empty key ends a box, and an
    empty box is a protocol error for a real master).  But each of the client's ``_ask`` tags, which AMP treats
    as opaque bytes that the server echoes in its answer, is made 13 bytes long and begins with LF: the box
    then holds the length prefix 00 0D and that LF, a CR LF, so an HTTP server answers the malformed request
    line at once ("HTTP/1.1 400 ...") and closes.  ``first_bytes`` keeps what the server said first.

    (Offering ALPN in the TLS handshake cannot tell them apart: the master's listener names no ALPN protocols
    and Twisted then fails every handshake that offers some, with an internal-error alert.)
    """

    first_bytes = b""

    def _nextTag(self):
        return b"\n" + super()._nextTag().rjust(12, b"0")

    def dataReceived(self, data):
        if len(self.first_bytes) < 16:
            self.first_bytes += data[:16 - len(self.first_bytes)]
        super().dataReceived(data)

    def spoke_http(self):
        """Whether the server answered as an HTTP server does."""
        return self.first_bytes.startswith(b"HTTP/")


@defer.inlineCallbacks
def connect(reactor, host, port, ca_pem, what, kind=ClientProtocol):
    """Connect over TLS and complete the handshake; fires with a ``kind`` (a ClientProtocol), or fails with a
    ClientError.

    ``what`` names the server in messages ("the master at localhost:2048").
    """
    endpoint = tls.client_endpoint(reactor, host, port, ca_pem, timeout=CONNECT_TIMEOUT)
    try:
        proto = yield connectProtocol(endpoint, kind())
    except defer.CancelledError:
        raise
    except Exception:
        _connect_failed(Failure(), what)
    try:
        yield proto.handshake.addTimeout(HANDSHAKE_TIMEOUT, reactor)
    except defer.TimeoutError:
        proto.abort()
        raise Unreachable(f"{what} accepted the connection but did not set up TLS within {HANDSHAKE_TIMEOUT}"
                          " seconds: it is not a PaperTrader server, or it is overloaded (check the address and"
                          " port)")
    except defer.CancelledError:
        proto.abort()
        raise
    except Exception:
        _handshake_failed(Failure(), what, host, ca_pem)
    return proto


def _check_arguments(kwargs):
    """Refuse, before sending, what AMP cannot carry: text that is not Unicode, a value over 64 kB."""
    for key, value in kwargs.items():
        for item in (value if isinstance(value, list) else [value]):
            if not isinstance(item, str):
                continue
            try:
                size = len(item.encode("utf-8"))
            except UnicodeEncodeError:
                raise InvalidInput(f"{key.replace('_', ' ')} is not valid text (it has bytes that are not UTF-8)")
            if size > MAX_VALUE:
                raise InvalidInput(f"{key.replace('_', ' ')} is too long ({size} bytes)")


def _call_failed(failure, what, command, proto):
    if failure.check(PaperTraderError, defer.CancelledError) and not failure.check(UnknownCommand):
        return failure
    if failure.check(amp.TooLong):
        if failure.value.isLocal:
            raise InvalidInput("the command's arguments are too long to send")
        # A key longer than AMP allows came in: the server speaks another protocol over TLS.
        raise WrongServer(f"{what} answered in another protocol than PaperTrader's: check the address and port")
    if failure.check(amp.UnhandledCommand, UnknownCommand):
        raise WrongServer(f"{what} does not know the command {command.__name__}: it is not the kind of server"
                          " expected, or runs another version of PaperTrader")
    if failure.check(amp.RemoteAmpError):
        raise ServerError(f"{what} failed the command without saying why; try again, or tell the operator")
    if failure.check(defer.TimeoutError):
        raise WorkerFailed(f"{what} did not answer within {TIMEOUT} seconds")
    notice = _notice(proto)
    raise WorkerFailed(f"{notice} and did not answer" if notice else f"{what} closed the connection before answering")


def _notice(proto):
    """What the worker said before it went away (a notice), in a few words; None if it said nothing."""
    for code, message in proto.notices:
        if code in ("worker_leaving", "master_unavailable", "slow_consumer"):
            return message.split(";")[0]
    return None


def call(reactor, proto, command, what, **kwargs):
    """Call ``command`` on ``proto``; failures become typed errors (a lost connection: WorkerFailed)."""
    try:
        _check_arguments(kwargs)
    except PaperTraderError:
        return defer.fail()
    d = defer.maybeDeferred(proto.callRemote, command, **kwargs)
    d.addTimeout(TIMEOUT, reactor)
    return d.addErrback(_call_failed, what, command, proto)


def describe(worker):
    return f"worker {worker['name']} ({tls.address_text(worker['host'], worker['port'])})"


class Connection:
    """Talks to one worker at a time, chosen from the master's list, and moves on when it fails.

    Choice: ``worker`` (a name: that one only) if given; else ``remembered`` (the last one used) if it is
    listed; else the least loaded worker, those in ``region`` first.  ``on_move(text)`` is told each time
    the client carries on through another worker, and why.
    """

    def __init__(self, reactor, master, ca_pem, worker=None, region=None, remembered=None, on_move=None):
        self.reactor = reactor
        self.master = master
        self.ca_pem = ca_pem
        self.wanted = worker
        self.region = region
        self.remembered = remembered
        self.on_move = on_move
        self.worker = None
        self.proto = None
        #: The market's time zone (an IANA name), as the master's list of workers last said it (None: not asked yet,
        #: or a master from before it said it).
        self.timezone = None
        #: Workers that failed since the last answer: not tried again for this command.
        self.avoid = set()
        #: Whether the last command was sent to a worker at all (an interrupt before that is harmless).
        self.sent = False
        #: True when the last command reached a worker that failed before answering: it may have been done.
        self.uncertain = False
        self._trouble = []
        self._told = 0
        #: How many times its owner closed the connection (a command in flight then stops: see ``call``).
        self._closes = 0
        #: Whether a command is running (one at a time), and the opening of a worker connection under way.
        self._busy = False
        self._opening = None

    def master_description(self):
        host, port = self.master
        return f"the master at {tls.address_text(host, port)}"

    @defer.inlineCallbacks
    def workers(self):
        """The master's list of workers (the only thing the client asks the master); ``timezone`` keeps the
        market's time zone, which the answer names too."""
        host, port = self.master
        what = self.master_description()
        try:
            proto = yield connect(self.reactor, host, port, self.ca_pem, what, MasterProtocol)
        except BadCertificate as e:
            mismatch = ": the deployment's operator must give it a certificate for that name"
            if not e.message.endswith(mismatch):
                raise
            # Often a mistyped --master (a worker's port, another address of the machine), not the master's fault.
            raise BadCertificate(e.message[:-len(mismatch)] + ": check --master (PAPERTRADER_MASTER): the master's"
                                 " name and port as its operator gives them (a worker's port has a certificate of its"
                                 " own); if they are right, the operator must give the master a certificate for that"
                                 " name")
        address = tls.address_text(host, port)
        wrong = (f"{address} is not a PaperTrader master (a worker's address?): give the master's HOST:PORT with"
                 " --master or PAPERTRADER_MASTER (its port is 2048 unless set otherwise)")
        try:
            answer = yield call(self.reactor, proto, commands.ListWorkers, what)
        except (WrongServer, WorkerFailed) as e:
            if proto.spoke_http():
                raise WrongServer(wrong.replace(" (a worker's address?)", ": it answers HTTP (a worker's website"
                                                " and HTTP API port?)"))
            if isinstance(e, WrongServer):
                raise WrongServer(wrong)
            if e.message.endswith(f"did not answer within {TIMEOUT} seconds"):
                raise Unreachable(f"{e.message}: is {address} the master's port (2048 unless set otherwise)? A"
                                  " worker's website and HTTP API port is not")
            raise Unreachable(e.message)
        finally:
            proto.close()
        self.timezone = answer.get("timezone") or self.timezone
        return answer["workers"]

    def choose(self, workers):
        """The workers to try, best first (the master lists them least loaded first)."""
        if self.wanted:
            chosen = [w for w in workers if w["name"] == self.wanted]
            if not chosen:
                listed = ", ".join(w["name"] for w in workers) or "none"
                raise NoWorker(f"worker {self.wanted!r} is not available (the master lists: {listed}); try again"
                               " later, or leave out --worker")
            return chosen
        if not workers:
            raise NoWorker("the master lists no available worker; try again later")
        workers = [w for w in workers if w["name"] not in self.avoid]
        if self.region:
            workers = sorted(workers, key=lambda w: w.get("region") != self.region)
        if self.remembered:
            # The worker used last goes first, unless another region is preferred: then it keeps its place
            # (after that region's workers, still a worker to try).
            remembered = [w for w in workers if w["name"] == self.remembered and
                          (not self.region or w.get("region") == self.region)]
            if remembered:
                workers = remembered + [w for w in workers if w["name"] != self.remembered]
        return workers

    def connected(self):
        """Whether the current worker connection is up and the worker has not said it is going."""
        return self.proto is not None and self.proto.transport is not None and not self.proto.ended.called

    @defer.inlineCallbacks
    def open(self):
        """Connect to the best available worker; fires with its ClientProtocol."""
        for worker in self.choose((yield self.workers())):
            try:
                proto = yield connect(self.reactor, worker["host"], worker["port"], self.ca_pem, describe(worker))
            except (Unreachable, BadCertificate, WrongServer) as e:
                if self.wanted:
                    raise type(e)(e.message + self._pinned_hint())
                self.avoid.add(worker["name"])  # one we cannot reach or trust is skipped
                self._trouble.append(e)
                continue
            self.proto, self.worker = proto, worker
            if self._trouble[self._told:] and self.on_move is not None:
                self.on_move("; ".join(e.message for e in self._trouble[self._told:])
                             + f"; moving to another worker: {worker['name']}")
            self._told = len(self._trouble)
            return proto
        raise self._exhausted()

    def _pinned_hint(self):
        return f" (--worker {self.wanted} allows no other: try again later, or leave out --worker)"

    def _exhausted(self):
        """The error when no worker is left to try: the cause's own type if all failures agree."""
        if not self._trouble:
            return NoWorker("the master lists no other available worker; try again later")
        kinds = {type(e) for e in self._trouble}
        kind = kinds.pop() if len(kinds) == 1 else NoWorker
        return kind("; ".join(e.message for e in self._trouble) + "; no other worker is available")

    def _gone(self):
        """Why the current worker went away between two commands."""
        code, message = self.proto.ended.result if self.proto.ended.called else ("connection_lost", "")
        what = describe(self.worker)
        if code == "master_unavailable":
            return MasterUnavailable(f"{what} lost the master")
        if code in ("worker_leaving", "slow_consumer"):
            return WorkerFailed(message.split(";")[0])
        if code == NotLoggedIn.code:  # the session ended (the worker is fine): no command of it can succeed
            return NotLoggedIn(message)
        return WorkerFailed(f"{what} closed the connection")

    def _failed(self, e):
        """The current worker failed with ``e``: raise it if nothing may move, else forget the worker."""
        name = self.worker["name"]
        self._drop()
        if self.wanted:
            raise type(e)(e.message + self._pinned_hint())
        self.avoid.add(name)
        self._trouble.append(e)
        if len(self._trouble) >= MAX_FAILURES:
            raise self._exhausted()

    def call(self, command, **kwargs):
        """Call ``command`` on a worker, carrying it on through another one if this one fails.

        Safe for orders: the retried PlaceOrder carries the same client_order_id, and the master makes one
        order per id.  ``uncertain`` tells afterwards whether a worker failed after the command was sent.
        One command at a time (its answer first, then the next; a watch's events keep coming after its
        answer): for commands at once, open a Connection for each.
        """
        if self._busy:
            return defer.fail(InvalidInput("a connection runs one command at a time: wait for the answer, or"
                                           " open another connection"))
        self._busy = True

        def idle(result):
            self._busy = False
            return result

        return self._call(command, kwargs).addBoth(idle)

    @defer.inlineCallbacks
    def _call(self, command, kwargs):
        self.sent = self.uncertain = False
        closes = self._closes
        while True:
            if not self.connected():
                if self.proto is not None:
                    gone = self._gone()
                    if isinstance(gone, NotLoggedIn):
                        self._drop()
                        raise gone
                    self._failed(gone)
                self._opening = self.open()
                try:
                    yield self._opening
                except Exception:
                    if self._closes == closes:
                        raise
                    # closed by its owner while it was opening (however the given-up opening ended)
                    raise WorkerFailed("the connection was closed before the command was sent")
                finally:
                    self._opening = None
            proto = self.proto
            self.sent = True
            try:
                answer = yield call(self.reactor, proto, command, describe(self.worker), **kwargs)
            except (WorkerFailed, MasterUnavailable, OutcomeUnknown) as e:
                if isinstance(e, OutcomeUnknown) and not kwargs.get("client_order_id"):
                    raise  # (sent again, it could be done twice: said as it is, "it may have been done")
                # (outcome_unknown of an order with its client order id: carried on through another worker, as for
                # a failed worker: the same id never makes a second order)
                self.uncertain = True
                if self._closes != closes:  # its owner closed the connection meanwhile: carry nothing on
                    raise
                if isinstance(e, (MasterUnavailable, OutcomeUnknown)):
                    # A worker shutting down says so, then drops its master link: the command in flight
                    # fails for the link, but what happened is the shutdown.
                    leaving = [m for code, m in proto.notices if code in ("worker_leaving", "slow_consumer")]
                    e = WorkerFailed(leaving[0].split(";")[0]) if leaving else \
                        MasterUnavailable(f"{describe(self.worker)} cannot reach the master right now")
                self._failed(e)
                continue
            self.avoid.clear()
            self._trouble, self._told = [], 0
            return answer

    def forget_failures(self):
        """Try every listed worker again (those that failed before too): for a new attempt after a pause."""
        self.avoid.clear()
        self._trouble, self._told = [], 0

    def close(self):
        """Close the connection; a command in flight fails at once (``worker_failed``; it is not carried on
        through another worker).  The next command opens a new one."""
        self._closes += 1
        if self._opening is not None:
            self._opening.cancel()  # the connection being opened is given up
        self._drop()

    def _drop(self):
        if self.proto is not None:
            self.proto.close()
        self.proto = self.worker = None
