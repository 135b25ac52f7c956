"""Times as people and other programs write them (papertrader/times.py)."""

from datetime import datetime, timezone

import pytest

from papertrader.times import parse_iso, read_time


@pytest.mark.parametrize("text, expected", [
    ("2024-01-02T15:04:05Z", datetime(2024, 1, 2, 15, 4, 5, tzinfo=timezone.utc)),
    ("2024-01-02T15:04:05.12Z", datetime(2024, 1, 2, 15, 4, 5, 120000, tzinfo=timezone.utc)),
    ("2024-01-02T15:04:05.123456789Z", datetime(2024, 1, 2, 15, 4, 5, 123456, tzinfo=timezone.utc)),
    ("2024-01-02T15:04Z", datetime(2024, 1, 2, 15, 4, tzinfo=timezone.utc)),
    ("2024-01-02 15:04:05-05:00", datetime(2024, 1, 2, 20, 4, 5, tzinfo=timezone.utc)),
    ("2024-01-02T15:04:05+0530", datetime(2024, 1, 2, 9, 34, 5, tzinfo=timezone.utc)),
    ("2024-01-02", datetime(2024, 1, 2, tzinfo=timezone.utc)),
])
def test_times_as_alpaca_py_and_people_write_them_are_read_on_every_supported_python(text, expected):
    """Python 3.10 (which the README supports) read neither a Z nor a fraction of 2 or 9 digits with
    fromisoformat: the HTTP API refused alpaca-py's own times there ('until must be a time in RFC 3339')."""
    assert read_time(text, timezone.utc) == expected


def test_a_text_that_is_not_a_time_or_names_no_real_one():
    assert read_time("yesterday") is None and read_time("2024-01-02T15") is None and read_time(None) is None
    assert read_time("2024-01-02T15:04:05") == datetime(2024, 1, 2, 15, 4, 5)  # naive: the caller decides
    with pytest.raises(ValueError):
        read_time("2024-02-30T10:00:00Z")


def test_stored_times_with_a_z_are_read_on_every_supported_python():
    """A game's rules keep their start and end with a Z: on Python 3.10 every game page and command failed with
    'Invalid isoformat string' (server_error)."""
    assert parse_iso("2026-09-01T00:00:00Z") == datetime(2026, 9, 1, tzinfo=timezone.utc)
    assert parse_iso("2026-09-01T00:00:00.000001+00:00") == datetime(2026, 9, 1, 0, 0, 0, 1, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        parse_iso("not a time")
