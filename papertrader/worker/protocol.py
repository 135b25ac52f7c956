"""The worker's client-facing AMP protocol.

``assets`` and ``quote`` are answered from the quote cache.  Every other
client command is passed on to the master as its stamped twin: receive time,
the client's IP address and this worker's name.  Commands that carry a token
are first checked against the session cache (asking the master on a miss).

A client's commands are worked on at most MAX_IN_FLIGHT at a time: beyond that the connection is not read until
some are answered, so a client that pipelines thousands holds a few of the master's calls, not thousands, and
TCP pushes the rest back to it.
"""

import collections

from twisted.internet import defer, protocol
from twisted.protocols import amp

from papertrader import commands, tls
from papertrader.commands import FORWARDED
from papertrader.errors import InvalidInput, NotPermitted, PaperTraderError, QuoteUnavailable, ServerError
from papertrader.master import validation
from papertrader.master.api_keys import is_credential
from papertrader.wire import TypedAMP
from papertrader.worker.fanout import Prepared


#: Commands of one client connection a worker works on at once; while that many wait for their answers, it reads
#: no more of the connection (what the client sends meanwhile waits in TCP's buffers, then in the client).
MAX_IN_FLIGHT = 32


class WorkerProtocol(TypedAMP):
    #: The hash of the session whose order events this client watches (None: none).
    order_session = None

    def __init__(self, worker):
        super().__init__()
        self.worker = worker
        self.gone = False
        self._ip = None
        #: Commands being worked on, and those read while MAX_IN_FLIGHT were (at most what one read brought).
        self._in_flight = 0
        self._held = collections.deque()
        self._reading = True
        self._releasing = False

    def log_failure(self, failure, what):
        self.worker.log.failure("{what} failed", failure, what=what)

    def log_violation(self, message):
        self.worker.log.warn("{message}", message=message)

    def keeps_alive(self):
        """A client watching prices or order events waits for pushes, and one with requests being worked on waits
        for their answers (what it sends meanwhile may be unread: ``not_read``): it is not idle
        (papertrader/guard.py)."""
        return (self._in_flight > 0 or bool(self._held) or self.worker.fanout.is_watching(self)
                or self.worker.order_fanout.is_watching(self))

    def not_read(self):
        """Whether the worker has stopped reading this connection (MAX_IN_FLIGHT requests being worked on)."""
        return not self._reading

    def client_ip(self):
        """The client's address (kept once known: an answer may come after the connection is gone)."""
        if self._ip is None and self.transport is not None:
            self._ip = getattr(self.transport.getPeer(), "host", "unknown")
        return self._ip or "unknown"

    def connectionMade(self):
        super().connectionMade()
        tls.no_delay(self.transport)
        self.client_ip()
        self.worker.clients.add(self)

    def connectionLost(self, reason):
        self.gone = True
        super().connectionLost(reason)
        self.worker.clients.discard(self)
        self.worker.fanout.forget(self)
        self.worker.order_fanout.forget(self)

    def ampBoxReceived(self, box):
        # A command beyond MAX_IN_FLIGHT waits, and the connection is not read until some are answered; answers
        # (to the worker's pushes) never wait.
        if amp.COMMAND in box and (self._held or self._in_flight >= MAX_IN_FLIGHT):
            self._held.append(box)
            if self._reading and self.transport is not None:
                self._reading = False
                self.transport.pauseProducing()
            return
        super().ampBoxReceived(box)

    def dispatchCommand(self, box):
        d = super().dispatchCommand(box)
        if not d.called:
            self._in_flight += 1
            d.addBoth(self._answered)
        return d

    def _answered(self, result):
        self._in_flight -= 1
        if self._held and not self._releasing:
            self._releasing = True  # (a held command answered at once must not start this loop again)
            try:
                while self._held and self._in_flight < MAX_IN_FLIGHT and not self._closing():
                    super().ampBoxReceived(self._held.popleft())
            finally:
                self._releasing = False
        if not self._held and not self._reading and not self._closing():
            self._reading = True
            self.transport.resumeProducing()
        return result

    def _closing(self):
        """Gone, or being closed (the worker told it to go: held requests are not begun then)."""
        return self.gone or self.transport is None or bool(getattr(self.transport, "disconnecting", False))

    def locateResponder(self, name):
        if name == b"Quote":
            return self._quote_box
        return super().locateResponder(name)

    def _quote_box(self, box):
        """``Quote`` with its answer serialized once per update for every client (the cache's); a symbol the
        cache has no quote of goes to the responder below, which says why."""
        symbol = box.get(b"symbol", b"").decode("utf-8", "replace").strip().upper()
        body = self.worker.quotes.answer(symbol)
        if body is None:
            return super().locateResponder(b"Quote")(box)
        return defer.succeed(Prepared(body))

    def forward(self, command, arguments):
        """Pass a client command on to the master with this worker's stamp (see worker/gateway.py)."""
        return self.worker.gateway.forward(command, arguments, self.client_ip())

    for _command in FORWARDED:
        def _responder(self, _command=_command, **arguments):
            return self.forward(_command, arguments)

        _command.responder(_responder)
    del _command, _responder

    @commands.Assets.responder
    def assets(self):
        return {"quotes": self.worker.quotes.all()}

    @commands.Candles.responder
    @defer.inlineCallbacks
    def candles(self, symbol, limit, interval=None, start=None, end=None):
        """Candles from the cache while no new update has come; else from the master (then cached)."""
        key = ((symbol or "").strip().upper()[:16], limit, (interval or "")[:8], start, end)
        cached = self.worker.candles.get(key)
        if cached is not None:
            return cached
        arguments = {k: v for k, v in dict(symbol=symbol, limit=limit, interval=interval, start=start, end=end).items()
                     if v is not None}
        answer = yield self.forward(commands.Candles, arguments)
        self.worker.candles.put(key, answer)
        return answer

    @commands.Watch.responder
    def watch(self, symbols):
        known = {q["symbol"] for q in self.worker.quotes.all()}
        if not symbols or len(symbols) > 200:
            raise InvalidInput("watch between 1 and 200 symbols")
        wanted = []
        for symbol in symbols:
            symbol = (symbol or "").strip().upper()
            if symbol not in known:
                raise self._not_quoted(symbol)
            wanted.append(symbol)
        self.worker.fanout.watch(self, wanted)
        self.worker.log.info("client {ip} watches {symbols}", ip=self.client_ip(), symbols=" ".join(wanted))
        return {"symbols": wanted}

    @commands.WatchOrders.responder
    @defer.inlineCallbacks
    def watch_orders(self, token):
        """Push this client an OrderEvent for each event of its account's orders (a person's session: an API key
        acts for one portfolio, and watches its orders through the HTTP API's trade stream, which shows only
        that portfolio's)."""
        if is_credential(token):
            raise NotPermitted("an API key watches its portfolio's orders through the HTTP API's trade stream"
                               " (/stream), not here: sign in as yourself (papertrader login) to watch them all")
        try:
            username = yield self.worker.gateway.session(token, self.client_ip())
        except PaperTraderError:
            raise
        except Exception:
            self.worker.log.failure("watching order events failed")
            raise ServerError()
        if self.gone:
            # The client left while its session was being checked: watching for it would keep a dead
            # connection among the watchers (and the master pushing its account's events) for good.
            self.worker.log.info("client {ip} left before its watch of {username}'s order events began",
                                 ip=self.client_ip(), username=username)
            return {"username": username}
        self.order_session = self.worker.sessions.key(token)  # whose end stops them (Worker._session_ended)
        yield self.worker.order_fanout.watch(self, [username])  # answered once the master pushes them here
        self.worker.log.info("client {ip} watches the order events of {username}", ip=self.client_ip(),
                             username=username)
        return {"username": username}

    @commands.Quote.responder
    def quote(self, symbol):
        symbol = (symbol or "").strip().upper()
        quote = self.worker.quotes.get(symbol)
        if quote is None:
            raise self._not_quoted(symbol)
        return quote

    def _not_quoted(self, symbol):
        """The error for a symbol the quote cache does not hold (``quote`` and ``watch`` say the same): any such
        symbol, however long, is unknown (as the master says for orders), and the message lists the traded
        ones; only a worker with no prices at all yet cannot tell."""
        known = [q["symbol"] for q in self.worker.quotes.all()]
        if known:
            return validation.unknown_symbol(symbol, known)
        shown = symbol if len(symbol) <= 16 else symbol[:16] + "..."
        market = self.worker.quotes.market or {}
        if market.get("state") == "paused":  # a new replay started paused: no update comes by itself
            return QuoteUnavailable(
                f"no price is known yet for {shown}: the replay is paused before its first update, and plays when it"
                " is stepped or resumed ('papertrader market step' by an account market_control names, or the"
                " operator's 'papertrader-admin market step' or 'market resume')")
        return QuoteUnavailable(f"no price is known yet for {shown}; try again after the next update")


class WorkerFactory(protocol.Factory):
    def __init__(self, worker):
        self.worker = worker

    def buildProtocol(self, addr):
        return WorkerProtocol(self.worker)
