"""A service that listens on an endpoint and remembers the port it got (port 0 in tests)."""

from twisted.application import service
from twisted.internet import defer
from twisted.python import failure


class ListeningService(service.Service):
    """Like StreamServerEndpointService, plus ``whenListening()`` (fires with the port number)."""

    def __init__(self, endpoint, factory, log, what):
        self.endpoint = endpoint
        self.factory = factory
        self.log = log
        self.what = what
        self.port = None
        self._outcome = None
        self._waiting = []

    def startService(self):
        super().startService()
        d = self.endpoint.listen(self.factory)

        def listening(port):
            self.port = port
            number = port.getHost().port
            self.log.info("{what} listening on port {port}", what=self.what, port=number)
            return number

        def failed(failure):
            self.log.critical("{what} cannot listen: {error}", what=self.what, error=failure.getErrorMessage())
            return failure

        d.addCallbacks(listening, failed).addBoth(self._settle)

    def _settle(self, outcome):
        self._outcome = outcome
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            self._fire(d)

    def _fire(self, d):
        if isinstance(self._outcome, failure.Failure):
            d.errback(self._outcome)
        else:
            d.callback(self._outcome)

    def whenListening(self):
        """A new Deferred firing with the port number once listening (or with why it cannot)."""
        d = defer.Deferred()
        if self._outcome is None:
            self._waiting.append(d)
        else:
            self._fire(d)
        return d

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return defer.succeed(None)
