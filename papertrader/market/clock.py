"""Market time: what orders, fills, candles and ``clock`` show.

With a live or simulated source market time is the wall clock (:class:`MarketClock`): each
update covers the interval since the previous one.  The replay of history moves its own market
time (:class:`papertrader.market.replay.ReplayClock`).  Sessions, heartbeats and throttles always
use the wall clock.
"""

from datetime import timedelta

from papertrader.market.replay import Advance
from papertrader.times import utc


class MarketClock:
    name = "live"

    def __init__(self, calendar, clock, interval=5.0):
        self.calendar = calendar
        self.clock = clock
        self.interval = interval
        self.state = "running"
        self._last = None

    def now(self):
        return utc(self.clock.seconds())

    def info(self, moment=None):
        """The session in progress at ``moment`` (default: now), if any, and the next one."""
        return self.calendar.info(moment or self.now())

    def advance(self):
        """The interval since the previous update (the first one: one update interval)."""
        end = self.now()
        start = self._last or end - timedelta(seconds=self.interval)
        self._last = end
        return Advance(start, end)

    def restore(self, position, state):
        pass

    def describe(self):
        now = self.now()
        info = self.info(now)
        return dict(time=now, is_open=info.is_open, next_open=info.next.open,
                    next_close=(info.current or info.next).close, calendar=self.calendar.name,
                    timezone=self.calendar.timezone, mode="live", state=self.state)
