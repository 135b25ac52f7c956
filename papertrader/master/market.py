"""Market data: providers, the in-memory quote board, and the polling service.

A provider answers one question: the bar (open/high/low/close/volume) of each
asset for the interval that just ended.  The master polls it with a
LoopingCall every update interval, keeps the newest quote of every asset in
memory for all readers, stores one candle per asset per interval, and tells
its listeners: the worker links get the new quotes, then the order queue
is processed at them.  One LoopingCall drives both, so a queue pass always
follows the update whose prices it uses.
"""

import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from twisted.application import service
from twisted.internet import defer, task
from zope.interface import Interface, implementer

from papertrader.money import from_price_units, to_price_units
from papertrader.times import iso, parse_iso, utc


@dataclass(frozen=True)
class Bar:
    symbol: str
    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


@dataclass(frozen=True)
class Quote:
    symbol: str
    price: Decimal
    time: datetime


class IMarketDataProvider(Interface):
    def fetch(symbols, time):
        """Fire with {symbol: Bar} for the interval ending at ``time`` (missing symbols allowed)."""

    def resume(symbol, price):
        """Continue ``symbol`` from its last known ``price`` (after a restart)."""


@implementer(IMarketDataProvider)
class SimulatedProvider:
    """A seeded random walk per asset, in integer cents: same seed, same prices.

    Each interval is ``steps`` moves of -0.20%..+0.20%; the bar spans them.
    """

    def __init__(self, seed, steps=12):
        self.seed = seed
        self.steps = steps
        self._cents = {}
        self._rngs = {}

    def _rng(self, symbol):
        if symbol not in self._rngs:
            self._rngs[symbol] = random.Random(f"papertrader:{self.seed}:{symbol}")
        return self._rngs[symbol]

    def resume(self, symbol, price):
        self._cents[symbol] = max(100, int(price * 100))

    def fetch(self, symbols, time):
        bars = {}
        for symbol in symbols:
            rng = self._rng(symbol)
            cents = self._cents.get(symbol)
            if cents is None:
                cents = rng.randint(2_000, 50_000)
            opening, high, low = cents, cents, cents
            for _ in range(self.steps):
                cents = max(100, cents + cents * rng.randint(-20, 20) // 10_000)
                high, low = max(high, cents), min(low, cents)
            self._cents[symbol] = cents
            bars[symbol] = Bar(
                symbol, time,
                *(Decimal(c).scaleb(-2) for c in (opening, high, low, cents)),
                volume=rng.randint(1_000, 100_000),
            )
        return defer.succeed(bars)


class QuoteBoard:
    """The newest quote of every asset, read by everyone in the master."""

    def __init__(self, assets):
        self.assets = tuple(assets)
        self._quotes = {}

    def update(self, quotes):
        for quote in quotes:
            self._quotes[quote.symbol] = quote

    def get(self, symbol):
        return self._quotes.get(symbol)

    def all(self):
        return [self._quotes[s] for s in self.assets if s in self._quotes]

    def prices(self):
        return {s: q.price for s, q in self._quotes.items()}


class MarketService(service.Service):
    """Polls the provider every ``interval`` seconds (LoopingCall on ``clock``)."""

    def __init__(self, db, provider, board, interval, clock, log):
        self.db = db
        self.provider = provider
        self.board = board
        self.interval = interval
        self.clock = clock
        self.log = log
        self.listeners = []
        self.ticks = 0
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = clock
        self.started = None
        #: The update in progress, if any (tests wait on it after advancing the clock).
        self.busy = None

    @defer.inlineCallbacks
    def _resume(self):
        """Continue each walk and the board from the newest stored candle."""
        for symbol in self.board.assets:
            rows = yield self.db.query(
                "SELECT time, close_units FROM candles WHERE symbol = ? ORDER BY time DESC LIMIT 1", (symbol,)
            )
            if rows:
                price = from_price_units(rows[0][1])
                self.provider.resume(symbol, price)
                self.board.update([Quote(symbol, price, parse_iso(rows[0][0]))])

    def startService(self):
        super().startService()
        #: Fires once the walks are resumed and the first update has started.
        self.started = self._resume()
        self.started.addErrback(lambda f: self.log.failure("could not resume market data", f))
        self.started.addCallback(lambda _: self._loop.start(self.interval, now=True) and None)

    def stopService(self):
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        return self.busy

    def tick(self):
        """One update: fetch, publish in memory, store candles, then run the listeners in order.

        The listeners are the push to the workers and the order queue pass, so
        each pass trades at the prices of the update that just happened.
        Never raises: a failure is logged and the next interval tries again.
        """
        self.busy = self._tick()
        return self.busy

    @defer.inlineCallbacks
    def _tick(self):
        try:
            now = utc(self.clock.seconds())
            bars = yield self.provider.fetch(self.board.assets, now)
            quotes = [Quote(b.symbol, b.close, now) for b in bars.values() if b.symbol in self.board.assets]
            self.board.update(quotes)
            self.ticks += 1
            yield self.db.run(self._store, list(bars.values()))
        except Exception:
            self.log.failure("market data update failed; will try again next interval")
            return
        for listener in self.listeners:
            try:
                yield listener(quotes)
            except Exception:
                self.log.failure("after the market update, {listener} failed", listener=listener)

    def _store(self, cursor, bars):
        cursor.executemany(
            self.db.sql(
                "INSERT INTO candles (symbol, time, open_units, high_units, low_units, close_units, volume)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (symbol, time) DO NOTHING"
            ),
            [
                (b.symbol, iso(b.time), to_price_units(b.open), to_price_units(b.high),
                 to_price_units(b.low), to_price_units(b.close), b.volume)
                for b in bars
            ],
        )

    @defer.inlineCallbacks
    def candles(self, symbol, limit):
        rows = yield self.db.query(
            "SELECT time, open_units, high_units, low_units, close_units, volume FROM candles"
            " WHERE symbol = ? ORDER BY time DESC LIMIT ?",
            (symbol, limit),
        )
        return [
            dict(time=parse_iso(r[0]), open=from_price_units(r[1]), high=from_price_units(r[2]),
                 low=from_price_units(r[3]), close=from_price_units(r[4]), volume=r[5])
            for r in reversed(rows)
        ]
