"""Helpers for the stream tests: alpaca-py's streams in a thread, what they log, a raw WebSocket client.

alpaca-py's ``TradingStream`` and ``StockDataStream`` run their own asyncio loop (``run()`` blocks): a
:class:`SdkStream` runs one in a reactor thread, hands what its handlers receive to the reactor, and
stops it with its own ``stop()``. :class:`SdkLog` watches what alpaca-py logs (its refusals, its
subscriptions). :class:`RawClient` is autobahn's Twisted WebSocket client, for frames alpaca-py never
sends. Every wait is bounded.
"""

import json
import logging
import socket

import msgpack
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor, threads
from twisted.internet.endpoints import TCP4ClientEndpoint

from tests.conftest import WAIT, bounded
from tests.http_helpers import in_thread


class Inbox:
    """Values arriving one by one (from any thread); ``get()`` is a bounded wait for the next one."""

    def __init__(self, what):
        self.what = what
        self.queue = defer.DeferredQueue()
        self.seen = []

    def put(self, value):
        """Callable from any thread."""
        reactor.callFromThread(self._put, value)

    def _put(self, value):
        self.seen.append(value)
        self.queue.put(value)

    def get(self, timeout=WAIT):
        return bounded(self.queue.get(), f"the next {self.what}", timeout)

    async def until(self, predicate, timeout=WAIT, what=None):
        """The first value (from now on) for which ``predicate`` holds; the others are skipped."""
        while True:
            value = await bounded(self.queue.get(), what or f"a matching {self.what}", timeout)
            if predicate(value):
                return value


class SdkLog(logging.Handler):
    """What alpaca-py logs (logger ``alpaca``), each record's message; ``wait_for(text)`` is bounded."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []
        self._waiting = []

    def __enter__(self):
        logger = logging.getLogger("alpaca")
        self._level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        logger = logging.getLogger("alpaca")
        logger.removeHandler(self)
        logger.setLevel(self._level)

    def emit(self, record):
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" [{record.exc_info[1]!r}]"
        reactor.callFromThread(self._seen, text)

    def _seen(self, text):
        self.messages.append(text)
        for needle, d in list(self._waiting):
            if needle in text:
                self._waiting.remove((needle, d))
                d.callback(text)

    def wait_for(self, text, timeout=WAIT, after=0):
        """The first message containing ``text`` (among those logged from index ``after`` on)."""
        for message in self.messages[after:]:
            if text in message:
                return defer.succeed(message)
        d = defer.Deferred()
        self._waiting.append((text, d))

        def timed_out(failure):
            failure.trap(AssertionError)
            raise AssertionError(f"alpaca-py did not log {text!r} within {timeout} s; it logged:\n"
                                 + "\n".join(self.messages[-20:]))

        return bounded(d, f"alpaca-py to log {text!r}", timeout).addErrback(timed_out)


class SdkStream:
    """An alpaca-py stream running in a reactor thread; ``inbox`` gets what its handlers receive."""

    def __init__(self, stream, what):
        self.stream = stream
        self.inbox = Inbox(what)
        self.done = None

    def handler(self):
        inbox = self.inbox

        async def handle(value):
            inbox.put(value)

        return handle

    def start(self):
        self.done = threads.deferToThread(self.stream.run)
        return self

    async def stop(self, streams=None):
        """``stop()`` the stream (once its loop runs), close the server's side (so its receive loop sees it
        at once instead of at its 5 s poll), and wait for ``run()`` to return."""
        if self.done is None:
            return
        if getattr(self.stream, "_loop", None) is not None:
            await in_thread(self.stream.stop, what="the stream's stop()")
        if streams is not None:
            streams.close_all("test over")
        await bounded(self.done, "alpaca-py's stream to stop", timeout=WAIT)
        self.done = None


class RawClient(WebSocketClientProtocol):
    """A WebSocket client that records every message and how the connection closed."""

    def __init__(self):
        super().__init__()
        self.inbox = Inbox("message from the server")
        self.opened = defer.Deferred()
        self.closed = defer.Deferred()
        self.close_code = None

    def onOpen(self):
        self.opened.callback(self)

    def onMessage(self, payload, isBinary):
        self.inbox._put((payload, isBinary))

    def onClose(self, wasClean, code, reason):
        self.close_code = code
        self.close_reason = reason
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"refused: {code} {reason}"))
        if not self.closed.called:
            self.closed.callback((code, reason))

    async def next(self, timeout=WAIT):
        """The next message, decoded (msgpack if binary and not JSON, else JSON)."""
        payload, binary = await self.inbox.get(timeout)
        if binary:
            try:
                return json.loads(payload)
            except ValueError:
                return msgpack.unpackb(payload, timestamp=3)
        return json.loads(payload)

    def send_json(self, value, binary=False):
        self.sendMessage(json.dumps(value).encode(), isBinary=binary)

    def send_msgpack(self, value):
        self.sendMessage(msgpack.packb(value), isBinary=True)

    def wait_closed(self, timeout=WAIT):
        return bounded(self._closed_copy(), "the server to close the connection", timeout)

    def _closed_copy(self):
        d = defer.Deferred()
        self.closed.addBoth(lambda result: (d.callback(result), result)[1])
        return d


async def raw_connect(port, path, headers=None, receive_buffer=None):
    """A RawClient connected to ws://127.0.0.1:PORT/PATH (the upgrade done); ``receive_buffer``: the socket's
    SO_RCVBUF, set before it connects (so the window it offers stays that small)."""
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}{path}", headers=headers or {})
    made = []
    factory.protocol = lambda: made.append(RawClient()) or made[-1]
    factory.setProtocolOptions(autoPingInterval=0, maxMessagePayloadSize=0, maxFramePayloadSize=0)
    if receive_buffer is None:
        proto = await bounded(TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory), "a TCP connection")
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(WAIT)
        sock.connect(("127.0.0.1", port))  # loopback: at once
        sock.setblocking(False)
        reactor.adoptStreamConnection(sock.fileno(), socket.AF_INET, factory)
        sock.close()  # the reactor holds its own duplicate
        proto = made[0]
    await bounded(proto.opened, "the WebSocket upgrade")
    return proto
