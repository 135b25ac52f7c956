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


def test_a_figure_not_available_is_aligned_with_the_numbers_of_its_column():
    """A leaderboard's SHARPE column of figures and "n/a" (too few returns) stays right-aligned as numbers."""
    rows = [dict(rank=1, sharpe=Decimal("3.1416")), dict(rank=2, sharpe="n/a"), dict(rank=3, sharpe=Decimal("-10.5"))]
    assert table(rows, ["rank", "sharpe"]) == ("RANK  SHARPE\n"
                                               "   1  3.1416\n"
                                               "   2     n/a\n"
                                               "   3   -10.5")


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


def test_people_read_quoted_prices_to_the_cent_as_on_the_website_and_programs_get_them_exact():
    """A replay's split-adjusted prices have four decimals: the command line's tables show a quote, a candle and a
    position's prices as the website does (to the cent from $1 up), and --json keeps them exact."""
    from papertrader.client.cli import portfolio_text
    from papertrader.client.output import quoted

    quote = {"symbol": "AAPL", "price": Decimal("187.2551"), "bid": Decimal("0.12345"), "volume": 100}
    assert table([quoted(quote)], ["symbol", "price", "bid", "volume"]) == (
        "SYMBOL   PRICE     BID  VOLUME\n"
        "AAPL    187.26  0.1234     100")
    assert json.loads(to_json(quote))["price"] == "187.2551"
    position = dict(symbol="AAPL", quantity=Decimal("3"), average_price=Decimal("150.1234"),
                    price=Decimal("187.2551"), market_value=Decimal("561.77"), unrealized_pl=Decimal("111.39"),
                    unrealized_percent=Decimal("24.73"), change_today=Decimal("1.20"))
    data, text = portfolio_text(dict(portfolio="main", kind="cash", cash=Decimal("100"), equity=Decimal("661.77"),
                                     positions=[position]))
    assert "150.12  187.26" in text and "150.1234" not in text
    assert json.loads(to_json(data))["positions"][0]["average_price"] == "150.1234"
