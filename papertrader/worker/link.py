"""The worker's link to the master: TLS AMP, kept up by a ClientService, GPG handshake.

On every (re)connection (a ClientService reconnects with backoff) the worker says hello with its name and public
address, signs the master's challenge with its GPG key (in a thread: gpg is a
subprocess), and only then uses the link.  While there is no proven link,
commands fail at once with MasterUnavailable, so clients can go to another
worker instead of waiting.
"""

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, protocol, threads
from twisted.protocols import amp

from papertrader import __version__, commands, gpgkeys
from papertrader.errors import MasterUnavailable, PaperTraderError

CALL_TIMEOUT = 30


class WorkerToMaster(amp.AMP):
    """The worker's end of the link: answers the master's pushes."""

    def __init__(self, worker):
        super().__init__()
        self.worker = worker

    @commands.QuotesTick.responder
    def quotes_tick(self, quotes):
        self.worker.quotes.update(quotes)
        return {}

    @commands.SessionEnded.responder
    def session_ended(self, token_hash):
        self.worker.sessions.forget(token_hash)
        return {}

    def connectionMade(self):
        super().connectionMade()
        self.worker.link.handshake(self)

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.worker.link.lost(self)


class MasterLink(ClientService):
    """Keeps one proven connection to the master."""

    def __init__(self, worker, endpoint, clock):
        factory = protocol.Factory.forProtocol(lambda: WorkerToMaster(worker))
        super().__init__(endpoint, factory, retryPolicy=backoffPolicy(maxDelay=10.0), clock=clock)
        self.worker = worker
        self.clock = clock
        self.proven = None

    @defer.inlineCallbacks
    def handshake(self, proto):
        """Prove who we are on a new connection; on failure drop it (ClientService retries)."""
        worker = self.worker
        try:
            port = yield worker.listener.whenListening()
            answer = yield proto.callRemote(commands.WorkerHello, name=worker.name, host=worker.public_host,
                                            port=port, version=__version__)
            signature = yield threads.deferToThread(gpgkeys.sign, worker.gnupg_home, answer["challenge"])
            yield proto.callRemote(commands.WorkerProve, signature=signature)
        except PaperTraderError as e:
            worker.log.error("the master refused this worker: {error}", error=e.message)
            proto.transport.loseConnection()
            return
        except Exception as e:
            worker.log.error("handshake with the master failed: {error}", error=str(e))
            proto.transport.loseConnection()
            return
        self.proven = proto
        worker.log.info("linked to the master as {name}", name=worker.name)

    def lost(self, proto):
        if self.proven is proto:
            self.proven = None
            self.worker.log.warn("lost the link to the master; reconnecting")

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
            self.worker.log.warn("call to master failed: {error}", error=failure.getErrorMessage())
            raise MasterUnavailable()

        return d.addErrback(failed)
