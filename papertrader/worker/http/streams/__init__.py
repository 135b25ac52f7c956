"""The WebSocket streams of the Alpaca-compatible API (autobahn inside the worker's twisted.web Site).

- ``/stream`` — trade updates (:mod:`.trading`): authenticate with an API key, listen to
  ``trade_updates``, then one message per event of the key's account's orders, from the order events
  the master pushes to this worker (the worker's order fanout).
- ``/v2/iex`` and ``/v2/sip`` — live market data (:mod:`.market_data`): authenticate, subscribe to
  trades, quotes and bars of symbols (or ``*``), then a trade and a quote per new price and a bar per
  new bar, from the quotes the master pushes each update (the worker's price fanout).

:class:`Streams` holds the connections of one worker: who is authenticated with which key, the limits
per key and per address, the cut-off of revoked keys, and the closing of everything when the worker
stops. Every connection leaves the worker's fanouts when it closes, however it closes.
"""

from collections import Counter, defaultdict

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.internet import defer, task
from twisted.web import resource

from papertrader.errors import MasterUnavailable, NotLoggedIn, PaperTraderError
from papertrader.worker.http.streams import limits
from papertrader.worker.http.streams.connection import GOING_AWAY

TRADE_PATH = "/stream"
DATA_PATHS = ("/v2/iex", "/v2/sip")


class Streams:
    """The stream connections of one worker."""

    def __init__(self, worker):
        self.worker = worker
        self.log = worker.log
        self.clock = worker.clock
        self.connections = set()
        self._waiting = Counter()  # client address -> connections not yet authenticated
        self._by_key = defaultdict(set)  # (key id, path) -> authenticated connections
        self.cut_off = 0
        self._revalidation = task.LoopingCall(self.revalidate)
        self._revalidation.clock = self.clock
        self._revalidation.start(limits.REVALIDATE_INTERVAL, now=False)

    def resources(self):
        from papertrader.worker.http.streams.market_data import MarketDataProtocol
        from papertrader.worker.http.streams.trading import TradeUpdatesProtocol

        out = {TRADE_PATH: self._resource(TradeUpdatesProtocol, TRADE_PATH)}
        for path in DATA_PATHS:
            out[path] = self._resource(MarketDataProtocol, path)
        return out

    def _resource(self, protocol_class, path):
        factory = WebSocketServerFactory(server="PaperTrader")
        factory.protocol = lambda: protocol_class(self, path)
        factory.setProtocolOptions(
            maxFramePayloadSize=limits.MAX_MESSAGE, maxMessagePayloadSize=limits.MAX_MESSAGE,
            autoPingInterval=limits.PING_INTERVAL, autoPingTimeout=limits.PING_TIMEOUT,
            openHandshakeTimeout=limits.AUTH_TIMEOUT, closeHandshakeTimeout=5, failByDrop=False,
            perMessageCompressionAccept=None, webStatus=False)
        return StreamResource(WebSocketResource(factory), path)

    # --- connections --------------------------------------------------------------------------

    def admit(self, connection):
        """A new connection from ``connection.ip``: False if its address has too many unauthenticated ones."""
        if self._waiting[connection.ip] >= limits.UNAUTHENTICATED_PER_ADDRESS:
            self.log.warn("stream {path}: refused a connection from {ip}: {n} waiting to authenticate",
                          path=connection.path, ip=connection.ip, n=self._waiting[connection.ip])
            return False
        self._waiting[connection.ip] += 1
        connection.admitted = True
        self.connections.add(connection)
        return True

    def authenticated(self, connection, key_id, token, username):
        """Record an authenticated connection; False if its key holds too many on this path already."""
        held = self._by_key[(key_id, connection.path)]
        if len(held) >= limits.CONNECTIONS_PER_KEY:
            if not held:
                del self._by_key[(key_id, connection.path)]
            return False
        self._unwait(connection)
        held.add(connection)
        connection.key_id, connection.token, connection.username = key_id, token, username
        self.log.info("stream {path}: {username} (API key {key}) from {ip}", path=connection.path,
                      username=username, key=key_id, ip=connection.ip)
        return True

    def _unwait(self, connection):
        if connection.admitted:
            connection.admitted = False
            self._waiting[connection.ip] -= 1
            if self._waiting[connection.ip] <= 0:
                del self._waiting[connection.ip]

    def forget(self, connection):
        """A connection closed (or is closing): out of every fanout and every count. Idempotent."""
        self._unwait(connection)
        self.connections.discard(connection)
        self.worker.fanout.forget(connection.watcher)
        self.worker.order_fanout.forget(connection.watcher)
        if connection.key_id is not None:
            held = self._by_key.get((connection.key_id, connection.path))
            if held is not None and connection in held:
                held.discard(connection)
                if not held:
                    del self._by_key[(connection.key_id, connection.path)]
                self.log.info("stream {path}: {username} (API key {key}) from {ip} left", path=connection.path,
                              username=connection.username, key=connection.key_id, ip=connection.ip)

    def count(self, key_id=None):
        """Open connections (of one API key)."""
        if key_id is None:
            return len(self.connections)
        return sum(len(held) for (key, _), held in self._by_key.items() if key == key_id)

    # --- what the worker tells the streams ------------------------------------------------------

    def key_revoked(self, key_id, reason=None):
        """Close every connection of a revoked API key (or one whose account was disabled: ``reason``)."""
        for (key, _), held in list(self._by_key.items()):
            if key == key_id:
                for connection in list(held):
                    connection.refuse_auth(reason or "the API key was revoked")

    def master_lost(self):
        """The worker lost the master: order events may be missed, so the trade streams close (clients
        reconnect and can reconcile); the market-data streams stay (prices resume when the link is back)."""
        for connection in list(self.connections):
            if connection.path == TRADE_PATH:
                connection.fail(503, "the worker lost the master; reconnect")

    @defer.inlineCallbacks
    def revalidate(self):
        """Ask again whether each authenticated connection's key is still valid (every
        REVALIDATE_INTERVAL): a revocation pushed while this worker was cut off still ends them."""
        for connection in [c for c in self.connections if c.authenticated and not c.closed]:
            try:
                yield self.worker.gateway.session(connection.token, connection.ip)
            except NotLoggedIn as e:
                connection.refuse_auth(e.message if e.code == "account_disabled" else "the API key was revoked")
            except (MasterUnavailable, PaperTraderError):
                pass  # asked again next time
            except Exception:
                self.log.failure("stream {path}: checking an API key failed", path=connection.path)

    def close_all(self, reason="the worker is shutting down"):
        """Close every connection (the worker stops)."""
        if self._revalidation.running:
            self._revalidation.stop()
        for connection in list(self.connections):
            connection.close(GOING_AWAY, reason)


class StreamResource(resource.Resource):
    """A stream's path: the WebSocket; a request that is not an upgrade gets the API's JSON error (426), never
    autobahn's own page."""

    isLeaf = True

    def __init__(self, websocket, path):
        super().__init__()
        self.websocket = websocket
        self.path = path

    def render(self, request):
        from papertrader.worker.http.rest import error_body, respond

        if (request.getHeader(b"upgrade") or b"").lower() != b"websocket":
            request.setHeader(b"Upgrade", b"websocket")
            return respond(request, 426, error_body(42610000, f"{self.path} is a WebSocket stream: connect with a"
                                                              " WebSocket client (alpaca-py's streams)"))
        return self.websocket.render(request)


def stream_resources(worker, settings):
    """{path: twisted.web resource} of the streams; the worker keeps the :class:`Streams` as ``streams``."""
    streams = Streams(worker)
    worker.streams = streams
    return streams.resources()
