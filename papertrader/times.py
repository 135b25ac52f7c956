"""Time as the whole system writes it: aware UTC datetimes, ISO-8601 text in the database."""

from datetime import datetime, timedelta, timezone

#: The times a client may name (a query's start or end, a page token's): far enough either way for any history,
#: near enough that a day or a period more or less never leaves Python's dates (years 1 to 9999).
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)


def utc(seconds: float) -> datetime:
    """The UTC datetime of a reactor/clock time (``IReactorTime.seconds()``)."""
    return datetime.fromtimestamp(seconds, timezone.utc)


def iso(moment: datetime) -> str:
    """Fixed-width ISO text (always with microseconds) so text order is time order."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def parse_when(option, text):
    """A moment a person types: a day (its midnight, UTC) or an ISO 8601 time with its UTC offset.  An
    InvalidInput naming ``option`` otherwise."""
    from papertrader.errors import InvalidInput

    text = (text or "").strip()
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput(f"{option}: a day (YYYY-MM-DD) or a time with its UTC offset"
                           " (2024-03-04T14:30:00+00:00)")
    return moment


def parse_game_end(text, option="--end"):
    """A game's end as a person types it: a day means through that day (the next midnight UTC); a time is
    taken as it is."""
    moment = parse_when(option, text)
    return moment + timedelta(days=1) if len((text or "").strip()) == 10 else moment
