"""The worker's link to the master: TLS AMP, kept up by a ClientService, GPG handshake.

On every (re)connection (a ClientService reconnects with backoff) the worker says hello with its name and public
address, signs the master's challenge with its GPG key (in a thread: gpg is a
subprocess), and only then uses the link.  While there is no proven link,
commands fail at once with MasterUnavailable, so clients can go to another
worker instead of waiting.
"""

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, protocol, task, threads
from twisted.protocols import amp

from papertrader import __version__, commands, gpgkeys, tls
from papertrader.errors import MasterUnavailable, PaperTraderError, ServerError

CALL_TIMEOUT = 30


class WorkerToMaster(amp.AMP):
    """The worker's end of the link: answers the master's pushes."""

    def __init__(self, worker):
        super().__init__()
        self.worker = worker

    @commands.QuotesTick.responder
    def quotes_tick(self, quotes):
        self.worker.link.heard()
        self.worker.quotes.update(quotes)
        self.worker.candles.clear()  # an update brings a new candle
        self.worker.fanout.publish([(quote["symbol"], quote) for quote in quotes])
        return {}

    @commands.OrderEvents.responder
    def order_events(self, events):
        self.worker.link.heard()
        self.worker.order_fanout.publish([(event.pop("username"), event) for event in events])
        return {}

    @commands.Heartbeat.responder
    def heartbeat(self):
        worker = self.worker
        worker.link.heard()
        return {"clients": len(worker.clients), "sessions": len(worker.sessions), "commands": worker.commands}

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

    @commands.SessionEnded.responder
    def session_ended(self, token_hash):
        self.worker.sessions.forget(token_hash)
        return {}

    def connectionMade(self):
        super().connectionMade()
        tls.no_delay(self.transport)
        self.worker.link.handshake(self)

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.worker.link.lost(self)


class MasterLink(ClientService):
    """Keeps one proven connection to the master.

    A watchdog (a LoopingCall on the worker's clock) drops a link the master has been silent on for
    more than ``heartbeat_misses + 1`` heartbeat intervals (a hung master, a black-holed network), so
    the worker reconnects and its watchers are told instead of waiting in silence.
    """

    def __init__(self, worker, endpoint, clock, watch_clock=None, interval=5.0, misses=3):
        factory = protocol.Factory.forProtocol(lambda: WorkerToMaster(worker))
        super().__init__(endpoint, factory, retryPolicy=backoffPolicy(maxDelay=10.0), clock=clock)
        self.worker = worker
        self.clock = clock
        self.proven = None
        self.refusals = 0
        self._hold = None
        self.silence = interval * (misses + 1)
        self.watch_clock = watch_clock or clock
        self.last_heard = self.watch_clock.seconds()
        self._watchdog = task.LoopingCall(self._check)
        self._watchdog.clock = self.watch_clock
        self._watch_interval = interval

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
        return super().stopService()

    @defer.inlineCallbacks
    def handshake(self, proto):
        """Prove who we are on a new connection; on failure drop it (ClientService retries)."""
        worker = self.worker
        try:
            port = yield worker.listener.whenListening()
            answer = yield proto.callRemote(commands.WorkerHello, name=worker.name, host=worker.public_host,
                                            port=port, version=__version__, region=worker.region)
            signature = yield threads.deferToThread(gpgkeys.sign, worker.gnupg_home, answer["challenge"])
            yield proto.callRemote(commands.WorkerProve, signature=signature)
        except PaperTraderError as e:
            # Refused (not registered, kicked, revoked...): wait longer each time before trying again.
            self.refusals += 1
            delay = min(60, 2 ** self.refusals)
            worker.log.error("the master refused this worker: {error} (trying again in {delay} s)",
                             error=e.message, delay=delay)
            self._hold = self.clock.callLater(delay, proto.transport.loseConnection)
            return
        except Exception as e:
            worker.log.error("handshake with the master failed: {error}", error=str(e))
            proto.transport.loseConnection()
            return
        self.proven = proto
        self.refusals = 0
        self.heard()
        worker.log.info("linked to the master as {name}", name=worker.name)
        self.tell_watching("replace", worker.order_fanout.keys())

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
        """Tell the master whose order events this worker's clients watch (it pushes only those)."""
        if self.proven is None:
            return  # the whole set is sent when the link is made
        self.call(commands.OrderWatchers, usernames=list(usernames), action=action).addErrback(
            lambda f: self.worker.log.warn("could not tell the master about order watchers: {error}",
                                           error=f.getErrorMessage()))

    def call(self, command, **kwargs):
        """Call the master; MasterUnavailable at once if not linked, or after CALL_TIMEOUT."""
        proto = self.proven
        if proto is None:
            return defer.fail(MasterUnavailable())
        d = proto.callRemote(command, **kwargs)
        d.addTimeout(CALL_TIMEOUT, self.clock)

        def failed(failure):
            if failure.check(PaperTraderError):
                return failure
            if failure.check(amp.RemoteAmpError):
                # The master answered, but with an error it did not type: not a reason to fail over.
                self.worker.log.error("the master failed a {command}: {error}", command=command.__name__,
                                      error=failure.getErrorMessage())
                raise ServerError()
            self.worker.log.warn("call to master failed: {error}", error=failure.getErrorMessage())
            raise MasterUnavailable()

        return d.addErrback(failed)
