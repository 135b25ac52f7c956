"""The quote board: the newest quote of every asset, read by everyone in the master.

Each quote remembers the close of the previous session (for "today's change").
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Optional


@dataclass(frozen=True)
class Quote:
    symbol: str
    price: Decimal
    time: datetime
    previous_close: Optional[Decimal] = None
    session_open: Optional[datetime] = None


class QuoteBoard:
    def __init__(self, assets):
        self.assets = tuple(assets)
        self._quotes = {}

    def update(self, quotes):
        for quote in quotes:
            self._quotes[quote.symbol] = quote

    def update_bars(self, bars, session_open):
        """New quotes from ``bars`` (symbol -> Bar), in the session that opened at ``session_open``."""
        quotes = []
        for symbol, bar in bars.items():
            old = self._quotes.get(symbol)
            previous = old.previous_close if old else None
            if old is not None and old.session_open != session_open:
                previous = old.price  # a new session: the last price of the one before is its reference
            quotes.append(Quote(symbol, bar.close, bar.end, previous, session_open))
        self.update(quotes)
        return quotes

    def get(self, symbol):
        return self._quotes.get(symbol)

    def all(self):
        return [self._quotes[s] for s in self.assets if s in self._quotes]

    def prices(self):
        return {s: q.price for s, q in self._quotes.items()}
