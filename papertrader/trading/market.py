"""What the market tells the core: bars, trading sessions, and one step of market time."""

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Mapping, Optional


class BadBar(ValueError):
    """A bar that cannot be true (high below low, a price outside the range, a negative volume...)."""


@dataclass(frozen=True)
class Bar:
    """OHLCV of one symbol over the interval ``[start, end)``: what traded, and how much."""

    symbol: str
    start: datetime
    end: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    #: The one-minute bars this one folds, where its source had them (a live provider's minutes since the last
    #: update): the minute candles keep each; the core trades the bar itself.
    minutes: tuple = field(default=(), compare=False, repr=False)

    def check(self):
        """Raise BadBar unless the bar could have happened; returns the bar."""
        if not self.end > self.start:
            raise BadBar(f"{self.symbol}: bar ends at {self.end} before it starts at {self.start}")
        if min(self.open, self.high, self.low, self.close) <= 0:
            raise BadBar(f"{self.symbol}: a price is not positive")
        if self.high < self.low:
            raise BadBar(f"{self.symbol}: high {self.high} is below low {self.low}")
        if not (self.low <= self.open <= self.high and self.low <= self.close <= self.high):
            raise BadBar(f"{self.symbol}: open or close outside the high-low range")
        if self.volume < 0:
            raise BadBar(f"{self.symbol}: negative volume")
        return self

    def contains(self, moment):
        return self.start <= moment < self.end


@dataclass(frozen=True)
class Session:
    """One trading session of the calendar: regular hours from ``open`` to ``close``."""

    open: datetime
    close: datetime

    def contains(self, moment):
        return self.open <= moment < self.close


@dataclass(frozen=True)
class MarketStep:
    """One update: the market time reached (``time``) and the fresh bars of the interval that led to it.

    A symbol without a bar (no data, stale data, market closed) simply does not trade in this step.
    ``actions`` are the splits and dividends that take effect in this step (dated ``today`` or before,
    not applied yet); ``due`` the dividend entitlements whose pay date has come.  They are applied
    before the bars trade.  ``prices`` are the last prices known before this step (margin accounts are
    valued at them; a symbol missing there is valued at its bar's open).
    """

    time: datetime
    bars: Mapping[str, Bar] = field(default_factory=dict)
    actions: tuple = ()
    due: tuple = ()
    today: Optional[date] = None
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    #: {(account id, symbol): shares} that a split of ``actions`` gives back exactly: the shares held before a
    #: seek back undid that split, when nothing changed the position since (papertrader/trading/corporate.py).
    restores: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class SessionInfo:
    """Where a moment stands in the calendar: the session in progress (if any), and the next session
    (the first one that opens after that moment)."""

    current: Optional[Session]
    next: Session

    @property
    def is_open(self):
        return self.current is not None

    @property
    def upcoming(self):
        """The session an order placed now trades in: the current one, else the next."""
        return self.current or self.next
