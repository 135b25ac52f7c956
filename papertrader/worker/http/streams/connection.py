"""One WebSocket connection of the streams: decoding, authentication, limits, a bounded outgoing queue.

The trade-update stream (:mod:`.trading`) and the market-data streams (:mod:`.market_data`) share it.
Client messages are handled one at a time, in order (an authentication waits for the master), at most
``MAX_INBOX`` waiting; each is JSON (a text frame, or a binary frame holding JSON) or msgpack (a
binary frame). Errors are Alpaca's stream codes (``CODES``); an error that ends the connection closes
it with the WebSocket status ``4000 + code``.

Sending never waits: the connection is its transport's producer, so once the socket's buffers are
full the messages wait in a backlog of at most ``MAX_BACKLOG`` messages and ``MAX_BACKLOG_BYTES``
bytes; a client that lets it overflow is disconnected (407, slow client). A slow client costs the
worker that much memory and never delays the others.
"""

import json
import socket
from collections import deque
from datetime import datetime, timezone
from decimal import Decimal

import msgpack
from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from zope.interface import implementer
from twisted.internet.interfaces import IPushProducer

from papertrader.errors import MasterUnavailable, NotLoggedIn, PaperTraderError, Throttled
from papertrader.master.api_keys import credential
from papertrader.worker.http.streams import limits

#: Alpaca's stream error codes and their messages (the data streams send them as they are; the
#: trade stream with the same codes).
CODES = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    410: "invalid subscribe action",
    429: "too many messages",
    500: "internal error",
    503: "service unavailable",
}

#: WebSocket close status of an error that ends the connection: 4000 + its code.
CLOSE_BASE = 4000
GOING_AWAY = 1001


class BadMessage(ValueError):
    """A client message that is not a JSON or msgpack map."""


def decode(payload, binary):
    """A client message as (map, was_msgpack); BadMessage if it is neither JSON nor msgpack of a map."""
    value, packed = None, False
    if binary:
        try:
            value, packed = msgpack.unpackb(payload, raw=False, strict_map_key=True), True
        except Exception:
            value = None
    if value is None:
        try:
            value = json.loads(payload.decode("utf-8") if binary else payload)
        except (ValueError, UnicodeDecodeError, RecursionError, TypeError):
            raise BadMessage("not JSON or msgpack")
    if not isinstance(value, dict):
        raise BadMessage("not a map")
    return value, packed


def _json_default(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    raise TypeError(f"cannot send {type(value).__name__}")


def _msgpack_default(value):
    if isinstance(value, Decimal):
        return float(value)  # Alpaca sends prices as floats; our exact values become floats only here
    raise TypeError(f"cannot send {type(value).__name__}")


def rfc3339(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode(value, packed):
    if packed:
        return msgpack.packb(value, default=_msgpack_default, datetime=True, use_bin_type=True)
    return json.dumps(value, default=_json_default, separators=(",", ":")).encode("utf-8")


class Watcher:
    """A stream connection as the worker's fanouts see a client: a push target that answers at once (the
    connection bounds its own backlog, so the fanout's window never applies to it)."""

    def __init__(self, connection):
        self.connection = connection

    def callRemote(self, command, **arguments):
        try:
            self.connection.pushed(command, arguments)
        except Exception:
            # One connection's failure must not stop the fanout's loop over the others.
            self.connection.hub.log.failure("stream {path}: a push to {ip} failed", path=self.connection.path,
                                            ip=self.connection.ip)
            self.connection.fail(500)
        return defer.succeed(None)

    def client_ip(self):
        return self.connection.ip

    @property
    def transport(self):
        return self.connection.transport


@implementer(IPushProducer)
class StreamProtocol(WebSocketServerProtocol):
    """The common part of both streams; subclasses define ``opened``, ``received``, ``authorized``,
    ``refuse_auth``, ``send_error`` and ``pushed``."""

    #: Whether JSON goes out in binary frames (Alpaca's trade stream) or text frames (its data stream).
    binary_json = False

    def __init__(self, hub, path):
        super().__init__()
        self.hub = hub
        self.path = path
        self.ip = "unknown"
        self.packed = False
        self.username = self.key_id = self.token = None
        self.authenticating = False
        self.closed = False
        self.admitted = False
        self.watcher = Watcher(self)
        self._chain = defer.succeed(None)
        self._inbox = 0
        self._recent = deque()
        self._errors = 0
        self._backlog = deque()
        self._backlog_bytes = 0
        self._paused = False
        self._auth_timer = None

    @property
    def authenticated(self):
        return self.username is not None

    # --- opening ------------------------------------------------------------------------------

    def onConnect(self, request):
        self.ip = getattr(self.transport.getPeer(), "host", "unknown")
        if not self.hub.admit(self):
            raise ConnectionDeny(429, "too many connections from your address are waiting to authenticate")
        content_type = (request.headers.get("content-type") or "").lower()
        self.packed = "msgpack" in content_type
        return None

    def onOpen(self):
        # Be the transport's producer (twisted.web's channel was, until the upgrade): it pauses us when its
        # buffers are full.
        self.transport.unregisterProducer()
        self.transport.registerProducer(self, True)
        _set_send_buffer(self.transport, limits.SEND_BUFFER)
        self._auth_timer = self.hub.clock.callLater(limits.AUTH_TIMEOUT, self._auth_timed_out)
        self.opened()

    def _auth_timed_out(self):
        self._auth_timer = None
        if not self.authenticated and not self.closed:
            self.fail(404)

    # --- receiving ----------------------------------------------------------------------------

    def onMessage(self, payload, isBinary):
        if self.closed:
            return
        now = self.hub.clock.seconds()
        while self._recent and self._recent[0] <= now - 60:
            self._recent.popleft()
        self._recent.append(now)
        if len(self._recent) > limits.MESSAGES_PER_MINUTE or self._inbox >= limits.MAX_INBOX:
            self.fail(429, f"more than {limits.MESSAGES_PER_MINUTE} messages a minute, or"
                           f" {limits.MAX_INBOX} waiting")
            return
        self._inbox += 1
        self._chain.addBoth(lambda _: self._handle(payload, isBinary)).addErrback(self._unexpected)

    def _handle(self, payload, binary):
        self._inbox -= 1
        if self.closed:
            return None
        try:
            message, packed = decode(payload, binary)
        except BadMessage:
            self.error(400)
            return None
        if packed and not self.authenticated and not self.authenticating:
            self.packed = True  # a client that speaks msgpack is answered in msgpack
        d = defer.maybeDeferred(self.received, message)
        d.addErrback(self._unexpected)
        return d

    def _unexpected(self, failure):
        self.hub.log.failure("stream {path}: handling a message from {ip} failed", failure, path=self.path,
                             ip=self.ip)
        self.fail(500)

    def error(self, code, detail=None):
        """Reply with an error that keeps the connection (closing it after MAX_ERRORS of them)."""
        self._errors += 1
        if self._errors > limits.MAX_ERRORS:
            self.fail(400, f"more than {limits.MAX_ERRORS} invalid messages")
            return
        self.send_error(code, detail)

    def fail(self, code, detail=None):
        """Reply with an error and close the connection (WebSocket status 4000 + code)."""
        if self.closed:
            return
        self.send_error(code, detail)
        self.hub.log.info("stream {path}: closing the connection of {ip}{who}: {code} {message}", path=self.path,
                          ip=self.ip, who=f" ({self.username})" if self.username else "", code=code,
                          message=message_of(code, detail))
        self.close(CLOSE_BASE + code, message_of(code, detail))

    def close(self, status, reason):
        if self.closed:
            return
        self.closed = True
        self._backlog.clear()
        self._backlog_bytes = 0
        self.hub.forget(self)
        try:
            self.sendCloseFrame(code=status, reasonUtf8=reason.encode("utf-8")[:120], isReply=False)
        except Exception:
            self.dropConnection(abort=True)

    # --- authentication -----------------------------------------------------------------------

    @defer.inlineCallbacks
    def authenticate(self, key, secret):
        """Check an API key with the worker's gateway (its cache, else the master)."""
        if self.authenticated:
            self.error(403)
            return
        if self.authenticating:
            self.error(400, "an authentication is already under way")
            return
        if (not isinstance(key, str) or not isinstance(secret, str) or not key or not secret or len(key) > 64
                or len(secret) > 256):
            self.refuse_auth("send your API key id and secret")
            return
        token = credential(key, secret)
        self.authenticating = True
        try:
            username = yield self.hub.worker.gateway.session(token, self.ip)
        except NotLoggedIn:
            self.refuse_auth()
            return
        except Throttled as e:
            self.fail(429, e.message)
            return
        except MasterUnavailable:
            self.fail(503, "the worker cannot reach the master; try again")
            return
        except PaperTraderError as e:
            self.refuse_auth(e.message)
            return
        finally:
            self.authenticating = False
        if self.closed:
            return
        if not self.hub.authenticated(self, key, token, username):
            self.fail(406)
            return
        if self._auth_timer is not None and self._auth_timer.active():
            self._auth_timer.cancel()
        self._auth_timer = None
        self.authorized()

    def refuse_auth(self, detail=None):
        """A refused key: the stream's refusal, then the connection closes."""
        self.fail(402, detail)

    # --- sending ------------------------------------------------------------------------------

    def send(self, value):
        """Send one message (a map, or a list of maps) in this connection's codec; never waits."""
        if self.closed:
            return
        payload = encode(value, self.packed)
        binary = self.packed or self.binary_json
        if self._paused or self._backlog:
            full = len(self._backlog) >= limits.MAX_BACKLOG
            if full or self._backlog_bytes + len(payload) > limits.MAX_BACKLOG_BYTES:
                self.slow()
                return
            self._backlog.append((payload, binary))
            self._backlog_bytes += len(payload)
            return
        self.sendMessage(payload, isBinary=binary)

    def slow(self):
        self.hub.cut_off += 1
        self.hub.log.warn("stream {path}: disconnecting a slow client at {ip}{who}: {n} messages not read",
                          path=self.path, ip=self.ip, who=f" ({self.username})" if self.username else "",
                          n=len(self._backlog))
        self._backlog.clear()
        self._backlog_bytes = 0
        self.closed = True
        self.hub.forget(self)
        self.dropConnection(abort=True)

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        while self._backlog and not self._paused and not self.closed:
            payload, binary = self._backlog.popleft()
            self._backlog_bytes -= len(payload)
            self.sendMessage(payload, isBinary=binary)

    def stopProducing(self):
        self._backlog.clear()
        self._backlog_bytes = 0

    # --- closing ------------------------------------------------------------------------------

    def onClose(self, wasClean, code, reason):
        self._gone()

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self._gone()

    def _gone(self):
        self.closed = True
        if self._auth_timer is not None and self._auth_timer.active():
            self._auth_timer.cancel()
        self._auth_timer = None
        self._backlog.clear()
        self._backlog_bytes = 0
        self.hub.forget(self)

    # --- the subclasses' part -----------------------------------------------------------------

    def opened(self):
        """The upgrade is done (the data streams greet the client)."""

    def received(self, message):
        raise NotImplementedError

    def authorized(self):
        raise NotImplementedError

    def send_error(self, code, detail=None):
        raise NotImplementedError

    def pushed(self, command, arguments):
        """A push from the worker's fanouts (an order event, a quote)."""


def _set_send_buffer(transport, size):
    """SO_SNDBUF of the socket under ``transport`` (through a TLS layer)."""
    for _ in range(3):
        handle = getattr(transport, "getHandle", lambda: None)()
        if isinstance(handle, socket.socket):
            try:
                handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            except OSError:
                pass
            return
        transport = getattr(transport, "transport", None)
        if transport is None:
            return


def message_of(code, detail=None):
    text = CODES.get(code, "error")
    return f"{text}: {detail}" if detail else text
