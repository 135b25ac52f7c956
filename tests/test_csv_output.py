"""Standings downloaded as CSV open in a spreadsheet as figures, never as formulas."""

import csv
import io
from decimal import Decimal

from papertrader.client.output import csv_text


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
