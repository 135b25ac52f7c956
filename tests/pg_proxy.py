"""A TCP proxy to PostgreSQL on loopback that fails the way a database fails: a COMMIT whose answer is lost,
or the database gone away (every connection cut, new ones refused) and back."""

from urllib.parse import urlsplit, urlunsplit

from twisted.internet import protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint


class _Upstream(protocol.Protocol):
    def connectionMade(self):
        self.factory.client.upstream = self
        self.factory.client.transport.resumeProducing()

    def dataReceived(self, data):
        self.factory.client.transport.write(data)

    def connectionLost(self, reason):
        self.factory.client.transport.loseConnection()


class _Client(protocol.Protocol):
    upstream = None

    def connectionMade(self):
        proxy = self.factory.proxy
        if proxy.refuse:
            self.transport.abortConnection()
            return
        proxy.clients.add(self)
        self.transport.pauseProducing()
        up = protocol.ClientFactory.forProtocol(_Upstream)
        up.client = self
        TCP4ClientEndpoint(reactor, proxy.host, proxy.port).connect(up).addErrback(
            lambda _: self.transport.abortConnection())

    def dataReceived(self, data):
        proxy = self.factory.proxy
        self.upstream.transport.write(data)
        if proxy.armed and data[:1] == b"Q" and b"COMMIT" in data:
            proxy.armed = False
            self.upstream.transport.loseConnection()  # the server gets the COMMIT, then the end
            self.transport.abortConnection()  # its answer never reaches the client
            proxy.cut += 1
            if proxy.then_refuse:
                proxy.away()  # and the database is gone: the pool's other connections too

    def connectionLost(self, reason):
        self.factory.proxy.clients.discard(self)
        if self.upstream is not None:
            self.upstream.transport.loseConnection()


class CommitCutter:
    """A proxy to PostgreSQL that, once ``armed``, cuts the connection that sends the next COMMIT (after passing
    it on); with ``then_refuse``, it then refuses every new connection (the database is away)."""

    def __init__(self, url):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 5432
        self.url = url
        self.armed = self.refuse = self.then_refuse = False
        self.cut = 0
        self.clients = set()

    def away(self):
        """The database goes away: every connection cut, new ones refused (until ``back``)."""
        self.refuse = True
        for client in list(self.clients):
            client.transport.abortConnection()

    def back(self):
        self.refuse = False

    async def start(self):
        factory = protocol.Factory.forProtocol(_Client)
        factory.proxy = self
        self.listening = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        parts = urlsplit(self.url)
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0] + "@" if len(netloc) == 2 else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.listening.getHost().port}"))
