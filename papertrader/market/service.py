"""The market update loop: one LoopingCall per update interval.

Each update: ask the source for the bars of the interval since the last
update (only while the calendar has the market open), check them, put their
closes on the quote board, store them as candles, then hand the step
(market time + bars) to the listeners in order: the push of the new quotes to
the workers, then the trading step over the open orders.  One LoopingCall
drives all of it, so a trading step always follows the update whose bars it
uses.  A failure is logged and the next interval tries again.
"""

from datetime import timedelta

from twisted.application import service
from twisted.internet import defer, task

from papertrader.market.board import Quote
from papertrader.trading.market import BadBar, MarketStep


class MarketService(service.Service):
    def __init__(self, source, board, market_clock, candles, interval, clock, log):
        self.source = source
        self.board = board
        self.market_clock = market_clock
        self.candles = candles
        self.interval = interval
        self.clock = clock
        self.log = log
        self.listeners = []
        self.ticks = 0
        self.last = None
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = clock
        #: Fires once the board is resumed and the first update has started.
        self.started = None
        #: The update in progress, if any (tests wait on it after advancing the clock).
        self.busy = None

    @defer.inlineCallbacks
    def _resume(self):
        """Continue each asset (and the board) from its newest stored candle."""
        closes = yield self.candles.last_closes(self.board.assets)
        for symbol, (price, time) in closes.items():
            self.source.resume(symbol, price)
            self.board.update([Quote(symbol, price, time)])

    def startService(self):
        super().startService()
        self.started = self._resume()
        self.started.addErrback(lambda f: self.log.failure("could not resume market data", f))
        self.started.addCallback(lambda _: self._loop.start(self.interval, now=True) and None)

    def stopService(self):
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        return self.busy

    def tick(self):
        """One update (never raises: a failure is logged and the next interval tries again)."""
        self.busy = self._tick()
        return self.busy

    def _checked(self, bars, start, end):
        good = {}
        for symbol, bar in bars.items():
            if symbol not in self.board.assets:
                self.log.warn("market data: ignored a bar of {symbol}, which is not traded here", symbol=symbol)
                continue
            try:
                bar.check()
            except BadBar as e:
                self.log.warn("market data: refused a bad bar: {error}", error=str(e))
                continue
            quote = self.board.get(symbol)
            if quote is not None and bar.end <= quote.time:
                self.log.warn("market data: refused a bar of {symbol} that goes back in time", symbol=symbol)
                continue
            good[symbol] = bar
        return good

    @defer.inlineCallbacks
    def _tick(self):
        try:
            now = self.market_clock.now()
            start = self.last or now - timedelta(seconds=self.interval)
            info, before = self.market_clock.info(now), self.market_clock.info(start)
            bars = {}
            if info.is_open or before.is_open:  # the interval overlaps a session
                fetched = yield self.source.fetch(self.board.assets, start, now)
                bars = self._checked(fetched, start, now)
            self.last = now
            session = before.current or info.current or info.next
            quotes = self.board.update_bars(bars, session.open)
            self.ticks += 1
            if bars:
                yield self.candles.store(list(bars.values()))
        except Exception:
            self.log.failure("market data update failed; will try again next interval")
            return
        step = MarketStep(now, bars)
        for listener in self.listeners:
            try:
                yield listener(step, quotes)
            except Exception:
                self.log.failure("after the market update, {listener} failed", listener=listener)
