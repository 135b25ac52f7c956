"""Service building blocks: a listener that reports its port, and a MultiService that starts in stages."""

from twisted.application import service
from twisted.internet import defer
from twisted.python import failure


class Outcome:
    """A result that arrives once and can be awaited any number of times (a Deferred is consumed)."""

    def __init__(self):
        self._result = None
        self._settled = False
        self._waiting = []

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


class StagedService(service.MultiService):
    """A MultiService whose start is asynchronous (``_start``), e.g. migrate the database, then listen.

    ``whenReady()`` fires with what ``_start`` returned.  If the start fails and
    ``reactor_to_stop`` is set (by makeService, under twistd), the reactor is stopped
    so a broken server does not linger; the reason is in the log.
    """

    reactor_to_stop = None

    def __init__(self):
        super().__init__()
        self._ready = Outcome()
        self._starting = None

    def startService(self):
        service.Service.startService(self)
        self._starting = defer.maybeDeferred(self._start)
        self._starting.addErrback(self._start_failed).addBoth(self._ready.settle)

    def _start_failed(self, reason):
        if self.reactor_to_stop is not None and self.reactor_to_stop.running:
            self.reactor_to_stop.stop()
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
    """Like StreamServerEndpointService, plus ``whenListening()`` (fires with the port number)."""

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

        def failed(failure):
            self.log.critical("{what} cannot listen: {error}", what=self.what, error=failure.getErrorMessage())
            return failure

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
