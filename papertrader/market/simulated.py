"""A simulated market: a seeded random walk per asset, in integer cents: same seed, same prices.

Each bar is ``steps`` moves of -0.20%..+0.20% from the previous close; its
open is the previous close, its high and low the extremes the walk reached,
its volume a random number of shares.  For tests, benchmarks and a first run
without data.
"""

import random
from decimal import Decimal

from twisted.internet import defer
from zope.interface import implementer

from papertrader.market.sources import Asset, IMarketDataSource
from papertrader.trading.market import Bar


@implementer(IMarketDataSource)
class SimulatedSource:
    name = "simulated"

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

    def assets(self, symbols):
        return defer.succeed([Asset(s, name=f"{s} (simulated)", exchange="SIM") for s in symbols])

    def corporate_actions(self, symbols, start, end):
        return defer.succeed([])

    def fetch(self, symbols, start, end):
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
            bars[symbol] = Bar(symbol, start, end, *(Decimal(c).scaleb(-2) for c in (opening, high, low, cents)),
                               volume=rng.randint(1_000, 100_000))
        return defer.succeed(bars)
