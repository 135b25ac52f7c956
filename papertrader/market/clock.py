"""Market time: what orders, fills, candles and ``clock`` show.

With a live or simulated source market time is the wall clock.  (A replay of
history moves its own market time; sessions, heartbeats and throttles always
use the wall clock.)
"""

from papertrader.times import utc


class MarketClock:
    def __init__(self, calendar, clock):
        self.calendar = calendar
        self.clock = clock

    def now(self):
        return utc(self.clock.seconds())

    def info(self, moment=None):
        """The session in progress at ``moment`` (default: now), if any, and the next one."""
        return self.calendar.info(moment or self.now())

    def describe(self):
        now = self.now()
        info = self.info(now)
        return dict(time=now, is_open=info.is_open, next_open=info.next.open,
                    next_close=(info.current or info.next).close, calendar=self.calendar.name)
