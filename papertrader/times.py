"""Time as the whole system writes it: aware UTC datetimes, ISO-8601 text in the database."""

from datetime import datetime, timezone


def utc(seconds: float) -> datetime:
    """The UTC datetime of a reactor/clock time (``IReactorTime.seconds()``)."""
    return datetime.fromtimestamp(seconds, timezone.utc)


def iso(moment: datetime) -> str:
    """Fixed-width ISO text (always with microseconds) so text order is time order."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)
