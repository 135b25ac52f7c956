"""The quote board: the newest quote of every asset, read by everyone in the master.

Each quote keeps its source time (the end of the bar it came from), the close of the previous
session (for "today's change"), and whether it is stale: no fresh bar for longer than the
market's ``max_quote_age`` while the market was open.  Asset names and flags (from the source)
sit beside the quotes.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Optional

from papertrader.market.sources import Asset


@dataclass(frozen=True)
class Quote:
    symbol: str
    price: Decimal
    time: datetime
    previous_close: Optional[Decimal] = None
    session_open: Optional[datetime] = None
    stale: bool = False
    #: On a split's first session: the previous close unrounded (the last price before the split x old / new
    #: shares), where ``previous_close`` is rounded to a price's step, as shown: what a position held since
    #: then was worth, counted in today's shares, to the cent.
    previous_exact: Optional[Decimal] = None

    @property
    def reference(self):
        """The previous close as today's figures count from it (unrounded on a split's first session)."""
        return self.previous_exact if self.previous_exact is not None else self.previous_close


class QuoteBoard:
    def __init__(self, assets):
        self.assets = tuple(assets)
        self._quotes = {}
        self._prices = None  # (prices(), made once per change of the quotes: every order placed reads them)
        self.info = {s: Asset(s) for s in self.assets}
        #: The symbols the source's asset list leaves out (a typo in the setting assets), and the source's name:
        #: without a price, their orders are refused (no bar of them will come to trade them).
        self.unlisted = frozenset()
        self.lister = None

    def describe(self, assets, lister=None):
        """Take the source's descriptions of the assets (name, exchange, class, tradable, fractionable): all it
        lists (``lister``: its name), the others being unlisted."""
        for asset in assets:
            if asset.symbol in self.info:
                self.info[asset.symbol] = asset
        self.unlisted = frozenset(self.info) - {asset.symbol for asset in assets}
        self.lister = lister

    def update(self, quotes):
        self._prices = None
        for quote in quotes:
            self._quotes[quote.symbol] = quote

    def rewind(self, quotes):
        """Market time was moved (a replay sought or looped): the quotes are ``quotes``, each symbol's last price
        before the new time; a symbol without one (listed later) has no quote."""
        self._quotes = {q.symbol: q for q in quotes if q.symbol in self.info}
        self._prices = None

    def update_bars(self, bars, session_open, now=None, max_age=None, splits=()):
        """New quotes from ``bars`` (symbol -> Bar) in the session that opened at ``session_open``; with
        ``now`` (the market was open), quotes without a fresh bar for longer than ``max_age`` turn stale.
        ``splits``: those that took effect since the last update (a new session's reference price, the last
        one before it, is divided by them, as brokers show the previous close).
        Returns the quotes that changed (new prices, or a change of staleness)."""
        changed = []
        for symbol, bar in bars.items():
            old = self._quotes.get(symbol)
            previous = old.previous_close if old else None
            exact = old.previous_exact if old else None
            if old is not None and old.session_open != session_open:
                previous, exact = old.price, None  # a new session: the last price of the one before is its reference
                for split in splits:
                    if split.symbol == symbol:
                        exact = (exact if exact is not None else previous) * split.old / split.new
                        previous = split.price(previous)
            changed.append(Quote(symbol, bar.close, bar.end, previous, session_open, previous_exact=exact))
        self.update(changed)
        if now is not None and max_age is not None:
            for symbol, quote in list(self._quotes.items()):
                stale = now - quote.time > max_age
                if stale != quote.stale and symbol not in bars:
                    self._quotes[symbol] = replace(quote, stale=stale)
                    self._prices = None
                    changed.append(self._quotes[symbol])
        return changed

    def get(self, symbol):
        return self._quotes.get(symbol)

    def all(self):
        return [self._quotes[s] for s in self.assets if s in self._quotes]

    def prices(self):
        """{symbol: last price}, read-only (the same mapping until the quotes change)."""
        if self._prices is None:
            self._prices = MappingProxyType({s: q.price for s, q in self._quotes.items()})
        return self._prices
