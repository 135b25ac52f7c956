"""What the website says of the browsers that signed in (their sessions list)."""

from decimal import Decimal

import pytest

from papertrader.master import validation
from papertrader.worker.web import formatting as fmt

AGENTS = [
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
     "Chrome on Linux"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0"
     " Safari/537.36 Edg/131.0.2903.86", "Edge on Windows"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1"
     " Safari/605.1.15", "Safari on macOS"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
     " Version/18.1 Mobile/15E148 Safari/604.1", "Safari on iOS"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81"
     " Mobile Safari/537.36", "Chrome on Android"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Windows"),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0"
     " Safari/537.36", "Chrome on ChromeOS"),
    ("curl/8.5.0", "a browser"),
    ("", None),
]


@pytest.mark.parametrize("agent, said", AGENTS)
def test_a_browser_is_named_as_a_person_knows_it(agent, said):
    assert fmt.device(agent) == said


def test_what_a_client_says_it_is_is_kept_printable_and_short():
    assert validation.device("Firefox\n on\tWindows\x1b[31m") == "Firefox on Windows [31m"
    assert validation.device("x" * 5000) == "x" * validation.MAX_DEVICE
    assert validation.device("  \n ") is None and validation.device(None) is None and validation.device(7) is None


def test_a_change_too_small_to_show_is_no_negative_zero():
    assert fmt.percent(fmt.change_percent(Decimal("99996.10"), Decimal("100000"))) == "0.00%"
    assert fmt.percent(Decimal("-0.006")) == "-0.01%" and fmt.percent(Decimal("1.25")) == "+1.25%"


def test_times_are_shown_in_the_markets_time_zone_with_its_abbreviation():
    """A session of the New York exchange reads 09:30 to 16:00 (EST in winter, EDT in summer), as its traders
    say it; a game's first day (its midnight UTC) stays a date; the always-open market's zone is UTC."""
    from datetime import datetime, timezone

    utc = timezone.utc
    fmt.show_times_in("America/New_York")
    assert fmt.when(datetime(2024, 3, 4, 14, 30, tzinfo=utc)) == "2024-03-04 09:30 EST"
    assert fmt.when(datetime(2024, 7, 1, 20, 0, 5, tzinfo=utc), seconds=True) == "2024-07-01 16:00:05 EDT"
    assert fmt.when_or_day(datetime(2010, 1, 4, tzinfo=utc)) == "2010-01-04"
    assert fmt.when_or_day(datetime(2010, 1, 4, 15, 0, tzinfo=utc)) == "2010-01-04 10:00 EST"
    assert fmt.when(None) == fmt.when_or_day(None) == "—"
    for name in ("UTC", "", "Not/AZone"):
        fmt.show_times_in(name)
        assert fmt.when(datetime(2024, 3, 4, 14, 30, tzinfo=utc)) == "2024-03-04 14:30 UTC"
        assert fmt.zone_name() == "UTC"


def test_a_daily_stamp_is_shown_as_its_markets_date():
    """A market day is kept as its midnight UTC (a day given as a day) or as its session's open (a daily candle, a
    point of a daily equity curve). Sydney's session opens at 10:00 AEDT, 23:00 UTC the day before: its UTC date
    was the day before. A midnight UTC is its UTC date (in New York the evening before); any other moment its date in
    the market's zone."""
    from datetime import datetime, timezone

    from papertrader import times

    utc = timezone.utc
    sydney_open = datetime(2024, 1, 14, 23, 0, tzinfo=utc)  # Monday 15 January, 10:00 AEDT
    fmt.show_times_in("Australia/Sydney")
    assert fmt.day(sydney_open) == "2024-01-15"
    assert fmt.day(datetime(2024, 1, 15, tzinfo=utc)) == "2024-01-15"  # (11:00 AEDT: the same day either way)
    # A midnight UTC is the day it stands for (10:00 AEST on that day in the southern winter).
    assert fmt.day(datetime(2024, 7, 15, 0, 0, tzinfo=utc)) == "2024-07-15"
    assert fmt.day(datetime(2024, 7, 15, 14, 0, tzinfo=utc)) == "2024-07-16"  # (00:00 AEST: Sydney's date)
    assert fmt.when_or_day(datetime(2024, 1, 15, tzinfo=utc)) == "2024-01-15"
    fmt.show_times_in("America/New_York")
    assert fmt.day(datetime(2024, 3, 4, 14, 30, tzinfo=utc)) == "2024-03-04"  # a New York session's open
    assert fmt.day(datetime(2010, 1, 4, tzinfo=utc)) == "2010-01-04"  # (not the evening before, 3 January)
    assert fmt.day(datetime(2024, 3, 5, 1, 0, tzinfo=utc)) == "2024-03-04"  # 20:00 EST: New York's date
    assert fmt.day(None) == "—"
    assert times.day(sydney_open, times.zone("Australia/Sydney")) == "2024-01-15"
    assert times.day(sydney_open, timezone.utc) == "2024-01-14"


def test_a_market_days_first_moment_comes_before_any_of_its_daily_stamps():
    """``times.day_start``: where a daily curve of a moment's market day starts, its midnight UTC or its midnight in
    the market's zone, whichever is first: Sydney's session opening at 23:00 UTC the evening before is in it."""
    from datetime import datetime, timezone

    from papertrader import times

    utc = timezone.utc
    sydney, new_york = times.zone("Australia/Sydney"), times.zone("America/New_York")
    # A game starting on Monday 29 January (its midnight UTC), and a moment of that session (16:00 AEDT): from
    # Sydney's midnight, 13:00 UTC on Sunday, before the session's open at 23:00 UTC.
    for moment in (datetime(2024, 1, 29, tzinfo=utc), datetime(2024, 1, 29, 5, tzinfo=utc),
                   datetime(2024, 1, 28, 23, tzinfo=utc)):
        assert times.day_start(moment, sydney) == datetime(2024, 1, 28, 13, tzinfo=utc), moment
    assert times.day_start(datetime(2024, 7, 15, tzinfo=utc), sydney) == datetime(2024, 7, 14, 14, tzinfo=utc)
    # New York: its midnight UTC comes first; 20:00 EST is still that day.
    assert times.day_start(datetime(2024, 3, 4, 14, 30, tzinfo=utc), new_york) == datetime(2024, 3, 4, tzinfo=utc)
    assert times.day_start(datetime(2024, 3, 5, 1, tzinfo=utc), new_york) == datetime(2024, 3, 4, tzinfo=utc)
    assert times.day_start(datetime(2024, 3, 4, 9, tzinfo=utc), timezone.utc) == datetime(2024, 3, 4, tzinfo=utc)


def test_a_games_day_is_the_markets_day_and_reads_as_that_day():
    """A game's day, sent as its midnight UTC, is kept as its midnight in the market's zone (``market_midnight``);
    either midnight reads as that day, and an end given as a day names the day before it as its last
    (``last_day``), across a change of daylight saving time too (a day before 00:00 EDT on 11 March 2024, counted
    as 24 hours back, fell on 9 March, 23:00 EST)."""
    from datetime import datetime, timezone

    from papertrader import times

    utc = timezone.utc
    sydney, new_york = times.zone("Australia/Sydney"), times.zone("America/New_York")
    assert times.market_midnight(datetime(2024, 1, 29, tzinfo=utc), sydney) == datetime(2024, 1, 28, 13, tzinfo=utc)
    assert times.market_midnight(datetime(2024, 7, 15, tzinfo=utc), sydney) == datetime(2024, 7, 14, 14, tzinfo=utc)
    assert times.market_midnight(datetime(2024, 3, 11, tzinfo=utc), new_york) == datetime(2024, 3, 11, 4, tzinfo=utc)
    for zone, moment in ((sydney, datetime(2024, 1, 28, 13, tzinfo=utc)), (sydney, datetime(2024, 1, 29, tzinfo=utc)),
                         (new_york, datetime(2024, 1, 29, 5, tzinfo=utc))):
        assert times.at_midnight(moment, zone) and times.local_or_day(moment, zone) == "2024-01-29", (zone, moment)
    assert not times.at_midnight(datetime(2024, 1, 29, 14, 30, tzinfo=utc), new_york)
    assert times.local_or_day(datetime(2024, 1, 29, 14, 30, tzinfo=utc), new_york) == "2024-01-29 09:30 EST"
    # The last day of an end given as a day, either kind of midnight; none of an end given as a time.
    assert times.last_day(datetime(2024, 3, 11, 4, tzinfo=utc), new_york) == "2024-03-10"  # (00:00 EDT)
    assert times.last_day(datetime(2024, 3, 11, tzinfo=utc), new_york) == "2024-03-10"  # (a game made before)
    assert times.last_day(datetime(2024, 2, 1, 13, tzinfo=utc), sydney) == "2024-02-01"
    assert times.last_day(datetime(2024, 3, 11, 20, tzinfo=utc), new_york) is None
    # A day whose midnight daylight saving time skips (Santiago, 7 September 2025: 00:00 is 01:00) starts at 01:00,
    # and reads as that day.
    santiago = times.zone("America/Santiago")
    end = times.market_midnight(datetime(2025, 9, 7, tzinfo=utc), santiago)
    assert end == datetime(2025, 9, 7, 4, tzinfo=utc) and end.astimezone(santiago).hour == 1
    assert times.last_day(end, santiago) == "2025-09-06" and times.local_or_day(end, santiago) == "2025-09-07"
    assert not times.at_midnight(datetime(2025, 9, 7, 5, tzinfo=utc), santiago)


def test_a_dividend_on_one_share_says_share():
    """'$0.44 per share on 1 shares' in the history: one share is a share, as the ledger now writes it; lines it
    wrote before read the same."""
    from decimal import Decimal

    from papertrader.master.order_store import _details
    from papertrader.trading.corporate import Record

    def dividend(quantity):
        return Record("dividend", 1, "AAPL", None, Decimal(quantity), per_share=Decimal("0.44"))

    assert _details(dividend("1")) == "0.44 per share on 1 share"
    assert _details(dividend("6")) == "0.44 per share on 6 shares"
    for stored in ("0.44 per share on 1 share", "0.44 per share on 1 shares"):
        assert fmt.activity_details("dividend", stored) == "$0.44 per share on 1 share"
    assert fmt.activity_details("dividend", "0.5 per share on 6 shares") == "$0.50 per share on 6 shares"
