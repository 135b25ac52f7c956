"""The replay of real history: a market clock that moves through the sessions of its calendar, and a
source that hands out the bars of each step.

Market time starts at the open of the first session on or after ``replay_start``.  Each update
moves it one ``replay_step``: ``1d`` plays one whole session (its daily bars), a duration such as
``1m``, ``5m`` or ``1h`` plays that much of a session (intraday bars; a symbol with only daily bars
trades in the step that reaches the close).  After a session's last step market time waits at the
next session's open, so an order placed between updates trades in the next step, as it would at
that moment.  At ``replay_end`` the replay stops (``replay_loop``: it starts over, and orders still
open then are expired).  An operator can pause it, resume it, or move it to another date (``seek``).

Market time is what orders, fills, candles and ``clock`` show; sessions, heartbeats and throttles
keep to the wall clock.
"""

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone

from twisted.internet import defer
from zope.interface import implementer

from papertrader.errors import InvalidInput
from papertrader.market.history import day
from papertrader.market.sources import IMarketDataSource
from papertrader.money import from_price_units
from papertrader.trading.market import Bar

STEP_RE = re.compile(r"^(1d|[1-9][0-9]{0,3}[mh])$")


class ReplayError(ValueError):
    """The replay cannot be set up as configured."""


class SeekRefused(InvalidInput):
    """An operator's seek to a day the replay does not play (the message says which days it plays)."""


class ReplayEnded(InvalidInput):
    """The replay has ended: no session will open, so no order placed now could ever trade."""


DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def parse_seek_date(text):
    """The day of ``seek DATE``; InvalidInput saying what is wrong (not a YYYY-MM-DD, or no such day)."""
    text = (text or "").strip()
    shown = text if len(text) <= 24 else text[:24] + "..."
    if not DATE_RE.fullmatch(text):
        raise InvalidInput(f"seek needs a date, YYYY-MM-DD (not {shown!r})")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"seek: there is no day {text} (the month has fewer days, or there is no such month)")


def parse_step(text):
    """'1d' -> None (one session); '5m' -> 5 minutes; '1h' -> an hour."""
    if not STEP_RE.fullmatch(text or ""):
        raise ReplayError("replay_step: 1d, or a number of minutes or hours such as 1m, 5m, 1h")
    if text == "1d":
        return None
    number, unit = int(text[:-1]), text[-1]
    return timedelta(minutes=number) if unit == "m" else timedelta(hours=number)


@dataclass(frozen=True)
class Advance:
    """One step of market time: the bars of (start, end] trade; ``reset`` if time went back (loop, seek);
    ``skipped`` if a seek moved it forward: the time between was not played (its bars do not trade)."""

    start: datetime
    end: datetime
    reset: bool = False
    skipped: bool = False


class ReplayClock:
    """Market time of a replay; see the module's docstring.  ``state`` is 'running', 'paused' or 'ended'."""

    def __init__(self, calendar, start, end=None, step="1d", loop=False):
        self.calendar = calendar
        self.start_date = start
        self.end_date = end
        self.step_text = step
        self.step = parse_step(step)
        self.loop = loop
        self.state = "running"
        #: The state it had when it ended ('running', or 'paused': stepped to its end by an operator or a program
        #: in lockstep), which a seek back returns to.
        self._before_end = "running"
        self._reset = False
        self._skipped = False
        self.position = self._open_on_or_after(start)
        #: The open of the replay's first session, and its first and last days (no last day without an end).
        self.first_open = self.position
        self.first_day = self._day_of(self.first_open)
        self.last_day = self._last_day() if end is not None else None

    name = "replay"

    def _last_day(self):
        """The day of the last session the replay plays: the last one of a day on or before ``end_date``."""
        for weeks in (2, 8, 53):
            since = datetime.combine(self.end_date - timedelta(weeks=weeks), time(0), timezone.utc)
            until = datetime.combine(self.end_date + timedelta(days=2), time(0), timezone.utc)
            days = [d for d in map(self.calendar.date_of, self.calendar.sessions(max(since, self.first_open), until))
                    if d <= self.end_date]
            if days:
                return days[-1]
        return self.first_day

    def _day_of(self, moment):
        """The exchange's day (a date) of the session open at ``moment``, or of the next one: an exchange's own
        date, not UTC's or New York's (Sydney's Monday session opens on Sunday at 23:00 UTC in its summer)."""
        info = self.calendar.info(moment)
        return self.calendar.date_of(info.current or info.next)

    def _open_on_or_after(self, when):
        """The open of the first session of a day (the exchange's) on or after ``when``."""
        info = self.calendar.info(datetime.combine(when - timedelta(days=2), time(0), timezone.utc))
        session = info.current or info.next
        while self.calendar.date_of(session) < when:
            session = self.calendar.info(session.open).next
        return session.open

    def now(self):
        return self.position

    def info(self, moment=None):
        """The session at ``moment`` (default: market time now) and the next one.  Once the replay has ended,
        asking about market time now (what placing or replacing an order does) is refused with ReplayEnded:
        the calendar's next session would never come."""
        if self.state == "ended" and (moment is None or moment >= self.position):
            ended = self.last_day or self._day_of(self.position)
            raise ReplayEnded(f"the replay ended on {ended}: no session opens after"
                              f" it, so no order can trade; an operator can move it back (papertrader-admin market"
                              f" seek DATE, a day from {self.first_day} to {self.last_day})")
        return self.calendar.info(moment or self.position)

    def restore(self, position, state):
        """Continue from a saved position and state (after a restart)."""
        self.position = position
        self.state = state if state in ("running", "paused", "ended") else "running"
        if self._past_end():
            self.state = "ended"

    def _past_end(self):
        """Whether market time stands after the last session the replay plays (and it does not start over)."""
        if self.loop or self.end_date is None:
            return False
        return self._day_of(self.position) > self.end_date

    def pause(self):
        if self.state == "running":
            self.state = "paused"

    def resume(self):
        if self.state == "paused":
            self.state = "running"

    def seek(self, when):
        """Move market time to the open of the first session on or after ``when`` (a date).  SeekRefused if
        that session is not one the replay plays: before its first day or after its last."""
        plays = f"it plays {self.first_day} to {self.last_day}" if self.last_day else f"it starts on {self.first_day}"
        if self.last_day is not None and when > self.last_day:
            raise SeekRefused(f"seek {when}: that is after the replay's last day, {self.last_day} ({plays})")
        target = self._open_on_or_after(when)
        if target < self.first_open:
            raise SeekRefused(f"seek {when}: that is before the replay's first day, {self.first_day} ({plays})")
        self._reset = self._reset or target < self.position
        self._skipped = self._skipped or target > self.position
        self.position = target
        if self.state == "ended":
            self.state = self._before_end  # (a backtest stepped in lockstep stays paused: it was running on its own)
        return target

    def advance(self, paused_too=False):
        """The next step (an Advance), or None while paused (unless ``paused_too``: an operator's ``step``) or
        after the end."""
        if self.state != "running" and not (paused_too and self.state == "paused"):
            return None
        info = self.calendar.info(self.position)
        session = info.current or info.next
        if self.end_date is not None and self.calendar.date_of(session) > self.end_date:
            if not self.loop:
                self._end()
                return None
            self.position = self._open_on_or_after(self.start_date)
            self._reset = True
            info = self.calendar.info(self.position)
            session = info.current or info.next
        start = max(self.position, session.open)
        end = session.close if self.step is None else min(start + self.step, session.close)
        reset, self._reset = self._reset, False
        skipped, self._skipped = self._skipped and not reset, False
        previous = self.position
        self.position = end if end < session.close else self.calendar.info(end).next.open
        if self._past_end():  # the last session played: ended now, not at the next update (an order placed
            self._end()  # between them would wait for a session that never opens)
        return Advance(previous, end, reset, skipped)

    def _end(self):
        if self.state != "ended":
            self._before_end = self.state
        self.state = "ended"

    def describe(self):
        """What ``clock`` shows.  Once the replay has ended the market is closed for good (``is_open`` false,
        ``state`` 'ended'); ``start`` and ``end`` are the days of the first and last sessions it plays (not
        replay_start's Saturday).  (``next_open`` and ``next_close`` are still the calendar's,
        as the Clock answer requires them: with state 'ended' no session opens.)"""
        info = self.calendar.info(self.position)
        last = self.last_day or self.end_date
        return dict(time=self.position, is_open=info.is_open and self.state != "ended", next_open=info.next.open,
                    next_close=(info.current or info.next).close, calendar=self.calendar.name,
                    timezone=self.calendar.timezone, mode="replay", state=self.state, step=self.step_text,
                    start=datetime.combine(self.first_day, time(0), timezone.utc),
                    end=datetime.combine(last, time(0), timezone.utc) if last else None)


@implementer(IMarketDataSource)
class ReplaySource:
    """Bars of a History, step by step: daily rows trade in the step that reaches their session's close."""

    name = "replay"

    def __init__(self, history, calendar):
        self.history = history
        self.calendar = calendar
        self._lengths = {}

    def resume(self, symbol, price):
        pass

    def assets(self, symbols):
        from papertrader.market.sources import Asset

        return defer.succeed([replace(self.history.assets.get(s, Asset(s)), first_day=self._first_day(s))
                              for s in symbols if s in self.history.series])

    def _first_day(self, symbol):
        series = self.history.series[symbol]
        if not len(series):
            return None
        if series.daily:
            return date.fromordinal(series.keys[0])
        return date.fromordinal(day(datetime.fromtimestamp(series.keys[0], timezone.utc)))

    def corporate_actions(self, symbols, start, end):
        wanted = set(symbols)
        return defer.succeed([e for e in self.history.events if e.symbol in wanted and
                              start < (getattr(e, "date", None) or e.ex_date) <= end])

    def _length(self, series):
        if series.symbol not in self._lengths:
            gaps = [b - a for a, b in zip(series.keys, series.keys[1:]) if b > a]
            self._lengths[series.symbol] = timedelta(seconds=min(gaps) if gaps else 60)
        return self._lengths[series.symbol]

    def bars(self, symbol, start, end):
        """The bars of ``symbol`` that end in (start, end], each with its own start and end."""
        series = self.history.series.get(symbol)
        if series is None or not len(series):
            return []
        out = []
        if series.daily:
            for i in series.between(day(start), day(end) + 1):
                session = self.calendar.session_on(date.fromordinal(series.keys[i]))
                if session is None:
                    continue  # a row on a day the calendar has no session (or outside its years)
                if start < session.close <= end:
                    out.append((session.open, session.close, i))
        else:
            length = self._length(series)
            for i in series.between(int((start - length).timestamp()) + 1, int(end.timestamp()) + 1):
                bar_start = datetime.fromtimestamp(series.keys[i], timezone.utc)
                bar_end = bar_start + length
                if i + 1 < len(series):
                    bar_end = min(bar_end, datetime.fromtimestamp(series.keys[i + 1], timezone.utc))
                if start < bar_end <= end:
                    out.append((bar_start, bar_end, i))
        return [(s, e, series, i) for s, e, i in out]

    def fetch(self, symbols, start, end):
        bars = {}
        for symbol in symbols:
            found = self.bars(symbol, start, end)
            if not found:
                continue
            first, last = found[0], found[-1]
            opens = [from_price_units(series.open[i]) for _, _, series, i in found]
            highs = [from_price_units(series.high[i]) for _, _, series, i in found]
            lows = [from_price_units(series.low[i]) for _, _, series, i in found]
            closes = [from_price_units(series.close[i]) for _, _, series, i in found]
            minutes = ()
            if len(found) > 1 and all(e - s <= timedelta(minutes=1) for s, e, _, _ in found):
                # An update of several minutes of intraday history: each minute keeps its own candle.
                minutes = tuple(Bar(symbol, s, e, o, h, l, c, series.volume[i]) for (s, e, series, i), o, h, l, c
                                in zip(found, opens, highs, lows, closes))
            bars[symbol] = Bar(symbol, first[0], last[1], opens[0], max(highs), min(lows), closes[-1],
                               sum(series.volume[i] for _, _, series, i in found), minutes=minutes)
        return defer.succeed(bars)

    def last_bars(self, symbols, moment):
        """{symbol: its last Bar that ended at or before ``moment``} (within a year), the prices as market time is
        moved to ``moment``: a symbol listed later has none."""
        out = {}
        for symbol in symbols:
            for back in (timedelta(days=7), timedelta(days=366)):
                found = self.bars(symbol, moment - back, moment)
                if found:
                    bar_start, bar_end, series, i = found[-1]
                    o, h, l, c = series.prices(i)
                    out[symbol] = Bar(symbol, bar_start, bar_end, o, h, l, c, series.volume[i])
                    break
        return out

    def history_before(self, symbol, moment):
        """Daily bars of ``symbol`` whose session closed at or before ``moment`` (to seed candles at start)."""
        series = self.history.series.get(symbol)
        if series is None or not series.daily or not len(series):
            return []
        epoch = datetime(1900, 1, 1, tzinfo=timezone.utc)
        out = []
        for session_open, session_close, series, i in self.bars(symbol, epoch, moment):
            o, h, l, c = series.prices(i)
            out.append(Bar(symbol, session_open, session_close, o, h, l, c, series.volume[i]))
        return out

