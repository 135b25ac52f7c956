"""Time as the whole system writes it: aware UTC datetimes, ISO-8601 text in the database; and as people read
it: in the market's time zone with its abbreviation, a daily stamp as its date (its midnight UTC's, or in the market's
zone: ``day``; the website and the command line show times alike)."""

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: The times a client may name (a query's start or end, a page token's): far enough either way for any history,
#: near enough that a day or a period more or less never leaves Python's dates (years 1 to 9999).
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)


def utc(seconds: float) -> datetime:
    """The UTC datetime of a reactor/clock time (``IReactorTime.seconds()``)."""
    return datetime.fromtimestamp(seconds, timezone.utc)


def iso(moment: datetime) -> str:
    """Fixed-width ISO text (always with microseconds) so text order is time order."""
    found = _written.get(id(moment))
    if found is not None and found[0] is moment:
        return found[1]
    text = moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
    if len(_written) >= _WRITTEN:
        _written.clear()
    _written[id(moment)] = (moment, text)  # (it holds the moment: its id is not another's while it is here)
    return text


#: The text of the datetimes ``iso`` wrote last, by identity (a datetime is immutable): an order placed writes
#: the same moment several times (created, updated, submitted, its event's time), and a market step its time
#: for every order and fill (0.9 us each, 0.15 us from here).  At most this many.
_WRITTEN = 64
_written = {}


def parse_iso(text: str) -> datetime:
    """ISO text as ``iso`` writes it (or with a Z, as the games' rules keep their times), on every Python."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # (Python 3.10: a Z, a fraction of other than 3 or 6 digits)
        moment = read_time(text)
        if moment is None:
            raise
        return moment


#: An ISO 8601 / RFC 3339 date or time as people and programs write one: a T, t or space before the time, seconds
#: and their fraction (any number of digits) optional, an offset Z, z, +HH:MM or +HHMM optional.
_WRITTEN_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
                           r"\s*(Z|z|[+-]\d{2}:?\d{2})?")


def read_time(text, naive_zone=None):
    """A date or time written in ISO 8601 / RFC 3339 as a datetime, read alike on every Python this runs on (3.10's
    ``fromisoformat`` takes neither a Z nor a fraction of other than 3 or 6 digits, which alpaca-py and Alpaca
    write): a date alone is its midnight; a fraction past microseconds is cut off; a time without an offset is in
    ``naive_zone`` (None: left naive).  None if the text is not written so; ValueError if it names no real time
    (February 30th, 25:00)."""
    found = _WRITTEN_TIME.fullmatch(text.strip()) if isinstance(text, str) else None
    if found is None:
        return None
    y, mo, d, h, mi, sec, fraction, offset = found.groups()
    moment = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0),
                      int((fraction or "0")[:6].ljust(6, "0")))
    if offset is None:
        return moment if naive_zone is None else moment.replace(tzinfo=naive_zone)
    if offset in ("Z", "z"):
        return moment.replace(tzinfo=timezone.utc)
    sign = 1 if offset[0] == "+" else -1
    digits = offset[1:].replace(":", "")
    return moment.replace(tzinfo=timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))))


def zone(name):
    """The time zone of the IANA name ``name`` ('America/New_York': the market calendar's, as the master's clock
    names it); UTC for none, 'UTC', or a name this machine does not know."""
    try:
        return ZoneInfo(name) if name and name != "UTC" else timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def zone_name(market_clock):
    """The IANA name of the zone a market clock's calendar keeps ('America/New_York'; 'UTC' for always_open or a
    calendar that names none): what clients, papertrader-admin and the master's own messages show times in."""
    return getattr(market_clock.calendar, "timezone", None) or "UTC"


def market_zone(market_clock):
    """The time zone of a market clock's calendar (``zone`` of its ``zone_name``)."""
    return zone(zone_name(market_clock))


def local(moment, zone, seconds=False):
    """``moment`` in ``zone`` with the zone's abbreviation, for a person: '2010-03-04 09:30 EST' (with ``seconds``:
    '2010-03-04 09:30:00 EST'; UTC: '... UTC')."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def at_midnight_utc(moment):
    """Whether ``moment`` is a midnight UTC: a day given as a day (a game's start or end, '--start 2010-01-04')."""
    utc = moment.astimezone(timezone.utc)
    return (utc.hour, utc.minute, utc.second, utc.microsecond) == (0, 0, 0, 0)


def at_midnight(moment, zone):
    """Whether ``moment`` stands for a day: a midnight UTC (a day as a client sends it, '--start 2010-01-04') or a
    midnight in ``zone``, the market's (a game's days as the master keeps them: ``market_midnight``)."""
    here = moment.astimezone(zone)
    # The start of its day there, as market_midnight makes it (01:00 on a day whose midnight daylight saving time
    # skips, Santiago's in September), compared in UTC (a time in the gap is never equal to another zone's: PEP 495).
    start = datetime(here.year, here.month, here.day, tzinfo=zone).astimezone(timezone.utc)
    return at_midnight_utc(moment) or moment.astimezone(timezone.utc) == start


def market_midnight(moment, zone):
    """The start of a day given as its midnight UTC (``moment``), in ``zone``: the market's day, which a game plays.
    A game 'from 2024-01-29' on Sydney's market (10:00 AEDT, 23:00 UTC the evening before) began at midnight UTC,
    after that day's session had opened, and so played the day after its last one instead; in New York the day
    began at 19:00 the evening before."""
    date = moment.astimezone(timezone.utc).date()
    return datetime(date.year, date.month, date.day, tzinfo=zone).astimezone(timezone.utc)


def last_day(end, zone):
    """The date, '2010-06-30', of the last day an end given as a day plays through (the day before that midnight,
    UTC's or ``zone``'s), or None for an end given as a time."""
    if at_midnight_utc(end):
        date = end.astimezone(timezone.utc).date()
    elif at_midnight(end, zone):
        date = end.astimezone(zone).date()
    else:
        return None
    return (date - timedelta(days=1)).isoformat()


def local_midnight(date, zone):
    """Midnight of ``date`` in ``zone``, as a UTC time: the time a daily bar shows (as Alpaca's)."""
    return datetime(date.year, date.month, date.day, tzinfo=zone).astimezone(timezone.utc)


def day(moment, zone):
    """A date, '2010-03-04', of a daily stamp: a market day is kept as its midnight UTC (a day given as a day: a
    game's, the replay's first and last) or as its session's open (a daily candle, a point of a daily equity curve),
    which in UTC may fall on the day before (Sydney opens at 23:00 UTC in its summer).  A midnight UTC is its UTC
    date; any other moment its date in ``zone``, the market's."""
    return moment.astimezone(timezone.utc if at_midnight_utc(moment) else zone).strftime("%Y-%m-%d")


def day_start(moment, zone):
    """The earliest moment a daily stamp of ``moment``'s day (``day``) may have: its midnight UTC or its midnight in
    ``zone``, whichever comes first (Sydney's: 13:00 UTC the day before in its summer, before the session's open
    at 23:00 UTC; New York's midnight UTC comes before its own).  A daily curve from there starts with that day."""
    date = datetime.strptime(day(moment, zone), "%Y-%m-%d")
    return min(date.replace(tzinfo=timezone.utc), date.replace(tzinfo=zone)).astimezone(timezone.utc)


def local_or_day(moment, zone, seconds=False):
    """A moment that may stand for a day (its midnight UTC, which is the evening before in New York, or its midnight
    in ``zone``: '2010-01-04'), else ``local``."""
    return day(moment, zone) if at_midnight(moment, zone) else local(moment, zone, seconds)


def parse_when(option, text):
    """A moment a person types: a day (its midnight, UTC) or an ISO 8601 time with its UTC offset.  An
    InvalidInput naming ``option`` otherwise."""
    from papertrader.errors import InvalidInput

    text = (text or "").strip()
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
        moment = read_time(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(f"{option}: a day (YYYY-MM-DD) or a time with its UTC offset"
                           " (2024-03-04T14:30:00+00:00)")
    return moment


def game_window(start, end, start_option="--start", end_option="--end"):
    """A game's start and end as a person types them, as CreateGame takes them: ``start``, ``end`` (a day means
    through that day: its next midnight, UTC, which the master takes as the market's) and ``days``, which of the
    two were given as days (the master moves those to the market's midnights; a time, even one at midnight UTC,
    is taken as it is)."""
    days = [which for which, text in (("start", start), ("end", end)) if len((text or "").strip()) == 10]
    return dict(start=parse_when(start_option, start), end=parse_game_end(end, end_option), days=days)


def parse_game_end(text, option="--end"):
    """A game's end as a person types it: a day means through that day (the next midnight UTC); a time is
    taken as it is."""
    moment = parse_when(option, text)
    return moment + timedelta(days=1) if len((text or "").strip()) == 10 else moment
