"""Trading sessions: when the market is open.

``always_open`` (the simulated market's default) has one session per UTC day,
00:00 to 24:00, so the market never closes but ``day`` orders still expire at
midnight UTC and ``opg``/``cls`` orders trade at midnight.  Any other name is an
exchange calendar from the maintained ``exchange_calendars`` library (``XNYS``,
the New York Stock Exchange, with its holidays and early closes; ``XNAS``;
``XLON``...), read once at start into a sorted list of sessions.
"""

import bisect
import warnings
from datetime import datetime, timedelta, timezone

from papertrader.trading.market import Session, SessionInfo

ALWAYS_OPEN = "always_open"
DAY = timedelta(days=1)


class CalendarError(ValueError):
    """The calendar cannot be used (unknown name, or a moment outside the years it covers)."""


class CalendarBounds(CalendarError):
    """The exchange's calendar does not reach back to the first year asked for: it begins on ``earliest``."""

    def __init__(self, message, earliest):
        super().__init__(message)
        self.earliest = earliest


class AlwaysOpen:
    name = ALWAYS_OPEN
    #: The time zone its days are counted in.
    timezone = "UTC"

    def session_at(self, moment):
        start = datetime(moment.year, moment.month, moment.day, tzinfo=timezone.utc)
        return Session(start, start + DAY)

    def info(self, moment):
        current = self.session_at(moment)
        return SessionInfo(current, Session(current.close, current.close + DAY))

    def session_on(self, day):
        """The session of a calendar day (a date)."""
        start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        return Session(start, start + DAY)

    def date_of(self, session):
        return session.open.date()

    def sessions(self, start, end):
        """Sessions that open in [start, end)."""
        session = self.session_at(start)
        if session.open < start:
            session = Session(session.close, session.close + DAY)
        out = []
        while session.open < end:
            out.append(session)
            session = Session(session.close, session.close + DAY)
        return out


class ExchangeCalendar:
    """An exchange's sessions between two years, as plain (open, close) UTC datetimes."""

    def __init__(self, name, sessions, dates, timezone="UTC"):
        self.name = name
        #: The exchange's time zone (an IANA name): its session dates and local times are counted in it.
        self.timezone = timezone
        self._sessions = sessions
        self._opens = [s.open for s in sessions]
        self._by_date = dict(zip(dates, sessions))
        self._dates = {s.open: d for d, s in self._by_date.items()}

    def session_on(self, day):
        """The session of a calendar day (a date in the exchange's time zone), or None if it has none."""
        return self._by_date.get(day)

    def _index(self, moment):
        """Index of the last session that opened at or before ``moment`` (-1 if none)."""
        return bisect.bisect_right(self._opens, moment) - 1

    def info(self, moment):
        i = self._index(moment)
        current = self._sessions[i] if i >= 0 and self._sessions[i].contains(moment) else None
        if i + 1 >= len(self._sessions):
            raise CalendarError(f"the {self.name} calendar has no session after {moment:%Y-%m-%d}")
        return SessionInfo(current, self._sessions[i + 1])

    def date_of(self, session):
        """The exchange's date of one of its sessions."""
        return self._dates.get(session.open) or session.open.date()

    def sessions(self, start, end):
        lo = bisect.bisect_left(self._opens, start)
        hi = bisect.bisect_left(self._opens, end)
        return self._sessions[lo:hi]


def load(name, first_year=1995, last_year=None):
    """The calendar called ``name``: ``always_open``, or an exchange_calendars code such as XNYS."""
    if name == ALWAYS_OPEN:
        return AlwaysOpen()
    try:
        import exchange_calendars
    except ImportError:  # pragma: no cover - it is a dependency
        raise CalendarError("exchange calendars need the exchange_calendars package")
    last_year = last_year or datetime.now(timezone.utc).year + 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's own deprecation warnings are not ours to show
        try:
            calendar = exchange_calendars.get_calendar(name, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
        except Exception as e:
            earliest = _earliest(exchange_calendars, name)
            if earliest is not None and earliest.year > first_year:
                raise CalendarBounds(f"the {name} calendar begins on {earliest:%Y-%m-%d}", earliest.date())
            raise CalendarError(f"unknown calendar {name!r} (use always_open, or an exchange code such as XNYS):"
                                f" {type(e).__name__}")
        schedule = calendar.schedule
    sessions = [Session(o.to_pydatetime(), c.to_pydatetime()) for o, c in zip(schedule["open"], schedule["close"])]
    return ExchangeCalendar(name, sessions, [d.date() for d in schedule.index], str(calendar.tz))


def _earliest(exchange_calendars, name):
    """The first day the library's calendar ``name`` can give (None: unknown name, or no bound)."""
    try:
        return exchange_calendars.get_calendar(name).bound_min()
    except Exception:
        return None
