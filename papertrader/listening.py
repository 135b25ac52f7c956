"""A service that listens on an endpoint and remembers the port it got (port 0 in tests)."""

from twisted.application import service
from twisted.internet import defer


class ListeningService(service.Service):
    """Like StreamServerEndpointService, plus ``ready`` (fires with the port number)."""

    def __init__(self, endpoint, factory, log, what):
        self.endpoint = endpoint
        self.factory = factory
        self.log = log
        self.what = what
        self.port = None
        self.ready = defer.Deferred()

    def startService(self):
        super().startService()
        d = self.endpoint.listen(self.factory)

        def listening(port):
            self.port = port
            number = port.getHost().port
            self.log.info("{what} listening on port {port}", what=self.what, port=number)
            self.ready.callback(number)

        def failed(failure):
            self.log.critical("{what} cannot listen: {error}", what=self.what, error=failure.getErrorMessage())
            self.ready.errback(failure)

        d.addCallbacks(listening, failed)

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return defer.succeed(None)
