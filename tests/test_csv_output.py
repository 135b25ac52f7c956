"""Standings downloaded as CSV open in a spreadsheet as figures, never as formulas; times in CSV and JSON stay
exact for programs."""

import csv
import io
import json
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from papertrader.client.output import csv_text, fields, table, to_json


def test_a_value_a_spreadsheet_would_run_is_kept_as_text_and_numbers_stay_numbers():
    rows = [dict(rank=1, username="-2+3", equity=Decimal("10250.50"), return_percent=Decimal("-1.2500"),
                 sharpe=None),
            dict(rank=2, username="=cmd", equity=Decimal("9000"), return_percent=Decimal("2.5"),
                 sharpe=Decimal("-0.75")),
            dict(rank=3, username="a,b\"c", equity=Decimal("1"), return_percent=Decimal("0"), sharpe=Decimal("1"))]
    text = csv_text(rows, ["rank", "username", "equity", "return_percent", "sharpe"])
    assert text.endswith("\r\n")
    assert list(csv.reader(io.StringIO(text))) == [
        ["rank", "username", "equity", "return_percent", "sharpe"],
        ["1", "'-2+3", "10250.50", "-1.2500", ""],
        ["2", "'=cmd", "9000.00", "2.5", "-0.75"],
        ["3", 'a,b"c', "1.00", "0", "1"]]


def test_programs_get_times_in_utc_and_people_in_the_markets_zone():
    """CSV and JSON, which programs parse, keep ISO 8601 in UTC; a table and fields, for a person, show the
    market's time with its zone's abbreviation, as the website does."""
    row = {"time": datetime(2014, 5, 6, 13, 30, tzinfo=timezone.utc), "price": Decimal("187.25")}
    assert csv_text([row], ["time", "price"]) == "time,price\r\n2014-05-06T13:30:00+00:00,187.25\r\n"
    assert json.loads(to_json(row)) == {"time": "2014-05-06T13:30:00+00:00", "price": "187.25"}
    new_york = ZoneInfo("America/New_York")
    assert table([row], ["time", "price"], new_york) == ("TIME                      PRICE\n"
                                                         "2014-05-06 09:30:00 EDT  187.25")
    assert fields(row, ["time"], new_york) == "time: 2014-05-06 09:30:00 EDT"
    winter = dict(row, time=datetime(2014, 1, 6, 14, 30, tzinfo=timezone.utc))
    assert fields(winter, ["time"], new_york) == "time: 2014-01-06 09:30:00 EST"
    assert fields(winter, ["time"]) == "time: 2014-01-06 14:30:00 UTC"  # no zone said: UTC, and it says so
