"""The worker's link to the master: TLS AMP, kept up by a ClientService, GPG handshake.

On every (re)connection (a ClientService reconnects with backoff) the worker says hello with its name and public
address, signs the master's challenge with its GPG key (in a thread: gpg is a
subprocess), and only then uses the link.  While there is no proven link,
commands fail at once with MasterUnavailable, so clients can go to another
worker instead of waiting.  While the master is far behind (every answer slower than ``max_master_wait`` for that
long, calls still waiting), new requests are refused at once, Throttled, instead of joining a queue whose answers
would come later and later, then as unknown outcomes (MasterLink.behind).
"""

import collections

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, protocol, task
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.protocols import amp
from zope.interface import implementer

from papertrader import __version__, commands, gpgkeys, pools, tls
from papertrader.errors import MasterUnavailable, OutcomeUnknown, PaperTraderError, ServerError, Throttled
from papertrader.wire import TypedAMP

CALL_TIMEOUT = 30
#: Bytes the link to the master reads at once: everything its clients' answers and pushes left waiting during a
#: long turn of the reactor, not 64 KiB of it (tls.read_at_most).
LINK_READ = 1 << 20
#: Seconds of a turn of the reactor after which the link is served between two clients' reads (MasterLink.between).
LINK_BETWEEN = 0.02


@implementer(IStreamClientEndpoint)
class MasterEndpoint:
    """The endpoint of the master, named by its address (in twisted's retry lines too), that keeps the
    reason of the last failed connection attempt for the worker's log."""

    def __init__(self, endpoint, address):
        self.endpoint = endpoint
        self.address = address
        self.last_failure = None

    def connect(self, factory):
        d = self.endpoint.connect(factory)

        def failed(reason):
            self.last_failure = reason
            return reason

        return d.addErrback(failed)

    def __repr__(self):
        return f"<the master at {self.address}>"


def sign_once(home, challenge):
    """Sign the master's challenge, then end the gpg-agent gpg started for it: the worker holds no agent
    between handshakes, so one killed with SIGKILL leaves none behind."""
    try:
        return gpgkeys.sign(home, challenge)
    finally:
        gpgkeys.stop_agent(home)


class WorkerToMaster(TypedAMP):
    """The worker's end of the link: answers the master's pushes."""

    def __init__(self, worker):
        super().__init__()
        self.worker = worker
        self.gone = False

    def log_failure(self, failure, what):
        self.worker.log.failure("{what} failed", failure, what=what)

    def ampBoxReceived(self, box):
        # Whatever the master sends proves it alive: its answers too (a master busy answering this worker's calls
        # may push late; the watchdog is for silence).
        if self.worker.link.proven is self:
            self.worker.link.heard()
        super().ampBoxReceived(box)

    @commands.QuotesTick.responder
    def quotes_tick(self, quotes, replace=False, market_time=None, market_open=None, market_state=None):
        market = None if market_time is None else {"time": market_time, "is_open": bool(market_open),
                                                   "state": market_state or "running"}
        self.worker.quotes.update(quotes, replace, market)
        if quotes or replace:
            self.worker.candles.clear()  # an update brings a new candle
        self.worker.fanout.publish([(quote["symbol"], quote) for quote in quotes])
        return {}

    @commands.OrderEvents.responder
    def order_events(self, events):
        self.worker.order_fanout.publish([(event.pop("username"), event) for event in events])
        return {}

    @commands.Heartbeat.responder
    def heartbeat(self):
        worker = self.worker
        return {"clients": len(worker.clients), "sessions": len(worker.sessions), "commands": worker.commands}

    @commands.LinkReplaced.responder
    def link_replaced(self, address):
        self.worker.log.warn("the master gave this worker's link to another connection of worker {name} (from"
                             " {address}): if that is not this worker reconnecting, another process is running with"
                             " this bundle: stop one (each worker name is one process)", name=self.worker.name,
                             address=address)
        return {}

    @commands.Kicked.responder
    def kicked(self, reason):
        self.worker.log.warn("the master disconnected this worker: {reason}", reason=reason)
        self.worker.tell_clients("worker_leaving", f"worker {self.worker.name} was {reason}; use another worker",
                                 disconnect=True)
        return {}

    @commands.WorkerStatus.responder
    def status(self, log_entries):
        worker = self.worker
        entries = worker.logs.newest(max(0, min(log_entries, 100)))
        return {
            "region": worker.region, "version": __version__, "clients": len(worker.clients),
            "sessions": len(worker.sessions), "commands": worker.commands, "watchers": len(worker.fanout),
            "cached_quotes": len(worker.quotes.all()),
            "logs": commands.fit(commands.WorkerStatus, "logs", [
                dict(time=e.time, level=e.level, file=e.file, function=e.function, line=e.line,
                     message=e.message[:2000]) for e in entries]),
        }

    @commands.KeyRevoked.responder
    def key_revoked(self, key_id, reason=None):
        self.worker.sessions.forget_key(key_id)
        streams = getattr(self.worker, "streams", None)
        if streams is not None:
            streams.key_revoked(key_id, reason)  # their stream connections close
        return {}

    @commands.MarketStepped.responder
    def market_stepped(self, time):
        for notify in list(self.worker.on_stepped):
            notify(time)
        return {}

    @commands.GamesChanged.responder
    def games_changed(self, name=None, usernames=None):
        for notify in list(self.worker.on_games_changed):
            notify(name, usernames or [])
        return {}

    @commands.PortfoliosChanged.responder
    def portfolios_changed(self, username, renamed=None, name=None, closed=None, reset=None):
        for notify in list(self.worker.on_portfolios_changed):
            notify(username, renamed=renamed, name=name, closed=closed, reset=reset)
        return {}

    @commands.SessionEnded.responder
    def session_ended(self, token_hash):
        self.worker.sessions.forget(token_hash)
        return {}

    def connectionMade(self):
        super().connectionMade()
        tls.no_delay(self.transport)
        tls.read_at_most(self.transport, LINK_READ)
        self.worker.link.handshake(self)

    def dataReceived(self, data):
        self.worker.link.served = self.worker.link.watch_clock.seconds()
        super().dataReceived(data)

    def connectionLost(self, reason):
        self.gone = True
        super().connectionLost(reason)
        self.worker.link.lost(self)


def _drop(proto):
    """Close a connection to the master, unless it is gone already (AMP forgets its transport then: a handshake
    cut short by the connection's loss found None to close, a traceback in the log)."""
    if proto.transport is not None:
        proto.transport.loseConnection()


#: What OpenSSL says of a peer whose first bytes are not TLS.
NOT_TLS = ("wrong version number", "unknown protocol", "http request", "packet length too long",
           "record layer failure")
#: What to do about a --master that is not the master's port.
WHICH_PORT = "give --master the port the master listens on (its DATA_DIR/master.port)"


def handshake_failure(e, host, address):
    """Why a TLS handshake with the master failed, saying what to do when it is its certificate (the exceptions'
    own text is a repr of service_identity's mismatch or OpenSSL's error tuple)."""
    import service_identity
    from OpenSSL import SSL

    if isinstance(e, (service_identity.VerificationError, service_identity.CertificateError)):
        return (f"the master has a certificate that is not valid for {host!r}: give --master the name or address the"
                f" master was started with as --host (localhost on its own machine), or restart the master with"
                f" --host {host}; if {address} is not the master's port (a worker's, whose certificate names"
                f" its own host), {WHICH_PORT}")
    if isinstance(e, SSL.Error) and "certificate verify failed" in str(e):
        return ("the master has a certificate that this bundle's CA (ca.pem) did not sign, or one that expired: the"
                " bundle is of another deployment, or the master has a new CA: register the worker again on the"
                " master and copy its new bundle here")
    if isinstance(e, SSL.Error) and any(sign in str(e) for sign in NOT_TLS):
        return (f"{address} does not speak TLS: it is not the master's port (another service, such as its console?):"
                f" {WHICH_PORT}")
    return str(e) or type(e).__name__


class MasterLink(ClientService):
    """Keeps one proven connection to the master.

    A watchdog (a LoopingCall on the worker's clock) drops a link the master has been silent on (no push, no
    answer) for more than ``heartbeat_misses + 1`` heartbeat intervals (a hung master, a black-holed network), so
    the worker reconnects and its watchers are told instead of waiting in silence.
    """

    def __init__(self, worker, endpoint, clock, watch_clock=None, interval=5.0, misses=3, address="the master",
                 max_wait=10.0):
        factory = protocol.Factory.forProtocol(lambda: WorkerToMaster(worker))
        self.address = address
        self.endpoint = MasterEndpoint(endpoint, address)
        self._backoff = backoffPolicy(maxDelay=10.0)
        super().__init__(self.endpoint, factory, retryPolicy=self._retry_delay, clock=clock)
        self.worker = worker
        self.clock = clock
        self.proven = None
        self.refusals = 0
        self._hold = None
        self._proven_waiters = []
        self.silence = interval * (misses + 1)
        self.watch_clock = watch_clock or clock
        self.last_heard = self.watch_clock.seconds()
        #: When the link was last read (by the reactor or between clients' reads; set before serving it, so a
        #: call of ``between`` while it is served returns at once).
        self.served = self.last_heard
        self._watchdog = task.LoopingCall(self._check)
        self._watchdog.clock = self.watch_clock
        self._watch_interval = interval
        #: Overload: the calls waiting for the master's answer (a number each: when it was sent, on watch_clock),
        #: oldest first; the last time an answer came back in less than ``max_wait``; requests refused since the
        #: master fell behind (None: it is not behind).
        self.max_wait = max_wait
        self._waiting = collections.OrderedDict()
        self._calls = 0
        self._last_prompt = self.watch_clock.seconds()
        self._refusing = None
        #: The one call let through while the master is behind (its number), to see whether it still is.
        self._probe = None
        #: Requests refused in all because the master was behind (the console's master()).
        self.refused_behind = 0

    def _retry_delay(self, attempt):
        """The delay before the next connection attempt; says in the log why the last one failed."""
        delay = self._backoff(attempt)
        reason, self.endpoint.last_failure = self.endpoint.last_failure, None
        if reason is not None:
            self.worker.log.warn("cannot reach the master at {address}: {reason} (attempt {attempt}; trying again"
                                 " in {delay:.1f} s)", address=self.address, reason=reason.getErrorMessage(),
                                 attempt=attempt, delay=delay)
        return delay

    def heard(self):
        self.last_heard = self.watch_clock.seconds()

    def _check(self):
        proto = self.proven
        if proto is not None and self.watch_clock.seconds() - self.last_heard > self.silence:
            self.worker.log.warn("no word from the master for {n:.0f} s; dropping the link to reconnect",
                                 n=self.watch_clock.seconds() - self.last_heard)
            proto.transport.abortConnection()

    def startService(self):
        super().startService()
        self._watchdog.start(self._watch_interval, now=False)

    def stopService(self):
        if self._watchdog.running:
            self._watchdog.stop()
        if self.proven is not None:
            self.proven = None
            self.worker.log.info("closing the link to the master")
        return super().stopService()

    def whenProven(self):
        """A Deferred firing once this link is proven (at once if it is)."""
        if self.proven is not None:
            return defer.succeed(self.proven)
        d = defer.Deferred()
        self._proven_waiters.append(d)
        return d

    @defer.inlineCallbacks
    def handshake(self, proto):
        """Prove who we are on a new connection; on failure drop it (ClientService retries)."""
        worker = self.worker
        try:
            port = yield worker.listener.whenListening()
            answer = yield proto.callRemote(commands.WorkerHello, name=worker.name, host=worker.public_host,
                                            port=port, version=__version__, region=worker.region)
            signature = yield pools.GPG.run(sign_once, worker.gnupg_home, answer["challenge"])
            yield proto.callRemote(commands.WorkerProve, signature=signature)
        except PaperTraderError as e:
            # Refused (not registered, kicked, revoked...): wait longer each time before trying again.
            self.refusals += 1
            delay = min(60, 2 ** self.refusals)
            if e.code == "unknown_command":  # a PaperTrader server, not the master: a worker's port, say
                worker.log.error("handshake with the master at {address} failed: {address} is not the master: it"
                                 " does not know a worker's first command (a worker's port?): {what} (trying again"
                                 " in {delay} s)", address=self.address, what=WHICH_PORT, delay=delay)
            else:
                worker.log.error("the master refused this worker: {error} (master at {address}; trying again in"
                                 " {delay} s)", address=self.address, error=e.message, delay=delay)
            self._hold = self.clock.callLater(delay, _drop, proto)
            return
        except Exception as e:
            worker.log.error("handshake with the master at {address} failed: {error}", address=self.address,
                             error=handshake_failure(e, worker.master_address[0], self.address))
            _drop(proto)
            return
        if proto.gone or not self.running:
            return  # the connection closed (or the worker is stopping) while the master answered
        self.proven = proto
        self.refusals = 0
        self.heard()
        self._last_prompt = self.watch_clock.seconds()  # (an outage is not the master being slow)
        # Sessions ended and API keys revoked while the link was down were pushed to nobody: check each
        # credential with the master again at its next use.
        worker.sessions.clear()
        worker.log.info("linked to the master at {address} as {name}", address=self.address, name=worker.name)
        waiters, self._proven_waiters = self._proven_waiters, []
        for d in waiters:
            d.callback(proto)
        self.tell_watching("replace", worker.order_fanout.keys())

    def between(self):
        """Serve the link (send what waits for the master, read what came from it) if it was last read more than
        LINK_BETWEEN s ago: called after each client's read (the listeners' guards' ``after_read``).

        A turn of a busy worker's reactor reads every client that sent something (3,000: hundreds of ms).  What it
        writes to the link leaves in the next turn (TLS gathers a turn's writes), and the master's answer is read
        where that turn's list of ready connections has the link: an order crossed the reactor twice, waiting a
        turn each time, where a quote waited one (bench_load at 4,000 calls/s: order p99 over quote p99 1.7-2.1
        within a load; 1.2-1.6 served so; bench/README).  Served here, an order goes to the master, and its answer
        comes back, within LINK_BETWEEN s."""
        now = self.watch_clock.seconds()
        if now - self.served < LINK_BETWEEN or self.proven is None:
            return
        self.served = now
        try:
            tls.serve_now(self.proven.transport)
        except Exception:
            self.worker.log.failure("serving the link to the master between clients' reads failed; it is closed")

    def lost(self, proto):
        if self._hold is not None and self._hold.active():
            self._hold.cancel()
        self._hold = None
        if self.proven is proto:
            self.proven = None
            self.worker.log.warn("lost the link to the master; reconnecting")
            self.worker.candles.clear()
            self.worker.tell_watchers("master_unavailable", f"worker {self.worker.name} lost the master")

    def tell_watching(self, action, usernames):
        """Tell the master whose order events this worker's clients watch (it pushes only those).  Returns a
        Deferred that fires (never fails) once the master has it, or could not be told."""
        if self.proven is None:
            return defer.succeed(None)  # the whole set is sent when the link is made
        return self.call(commands.OrderWatchers, _shed=False, usernames=list(usernames),
                         action=action).addErrback(
            lambda f: self.worker.log.warn("could not tell the master about order watchers: {error}",
                                           error=f.getErrorMessage()))

    def waiting(self):
        """How many calls wait for the master's answer now."""
        return len(self._waiting)

    def behind(self):
        """Seconds the master is behind (None: it is not): calls wait, the oldest for more than ``max_wait``, and
        no answer in the last ``max_wait`` seconds came back faster than that.  (One slow query among prompt
        answers is not the master falling behind.)"""
        if not self.max_wait or not self._waiting:
            return None
        now = self.watch_clock.seconds()
        oldest = now - next(iter(self._waiting.values()))
        if oldest > self.max_wait and now - self._last_prompt > self.max_wait:
            return oldest
        return None

    def _answered(self, result, number):
        if number == self._probe:
            self._probe = None
        sent = self._waiting.pop(number, None)
        now = self.watch_clock.seconds()
        if sent is not None and now - sent < self.max_wait:
            self._last_prompt = now
        if self._refusing is not None and self.behind() is None:
            self.worker.log.info("the master caught up; {n} requests were refused while it was behind",
                                 n=self._refusing)
            self._refusing = None
        return result

    def call(self, command, _shed=True, **kwargs):
        """Call the master; MasterUnavailable at once if not linked, or after CALL_TIMEOUT; OutcomeUnknown instead
        for a command that may place an order (commands.PLACING), which the master may have done without its
        answer reaching us.  While the master is behind (``behind``), Throttled at once: nothing was sent
        (``_shed=False``: the link's own calls, sent whatever the load)."""
        proto = self.proven
        if proto is None:
            return defer.fail(MasterUnavailable())
        if _shed:
            late = self.behind()
            if late is not None and self._probe is None:
                late = None  # one call at a time goes through meanwhile: a prompt answer to it ends the refusals
                probe = True
            else:
                probe = False
            if late is not None:
                if self._refusing is None:
                    self._refusing = 0
                    self.worker.log.warn("the master is behind: requests have waited {n:.0f} s for it; refusing"
                                         " new ones (throttled) until it catches up (max_master_wait {limit:g} s)",
                                         n=late, limit=self.max_wait)
                self._refusing += 1
                self.refused_behind += 1
                return defer.fail(Throttled(
                    f"the platform is busy: requests have waited {late:.0f} s for the master; this one was refused"
                    " and nothing was done; try again in a moment"))
        else:
            probe = False
        number = self._calls = self._calls + 1
        try:
            d = proto.callRemote(command, **kwargs)
        except Exception:  # (arguments AMP cannot send: nothing was sent, nothing waits)
            return defer.fail()
        self._waiting[number] = self.watch_clock.seconds()
        if probe:
            self._probe = number
        d.addTimeout(CALL_TIMEOUT, self.clock)
        d.addBoth(self._answered, number)

        def failed(failure):
            if failure.check(PaperTraderError):
                return failure
            if failure.check(amp.RemoteAmpError):
                # The master answered, but with an error it did not type: not a reason to fail over.
                self.worker.log.error("the master failed a {command}: {error}", command=command.__name__,
                                      error=failure.getErrorMessage())
                raise ServerError()
            self.worker.log.warn("call to master failed: {error}", error=failure.getErrorMessage())
            if issubclass(command, commands.PLACING):
                raise OutcomeUnknown("the master did not answer (it was stopped or lost): the order may have been"
                                     " placed; look it up before placing it again")
            raise MasterUnavailable()

        return d.addErrback(failed)
