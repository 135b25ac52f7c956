"""The equity curve of an account from its history and closes (pure)."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

from papertrader.trading.equity import Change, curve

T = datetime(2024, 3, 4, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def test_cash_and_positions_valued_at_each_buckets_close():
    changes = [Change(T + timedelta(hours=15), D("9000.00"), "AAPL", D(10)),  # bought 10 for 1000 on day 0
               Change(T + DAY * 2 + timedelta(hours=15), D("9550.00"), "AAPL", D(5)),  # sold 5 on day 2
               Change(T + DAY * 3 + timedelta(hours=15), D("9551.25"), "AAPL", None)]  # a dividend on day 3
    closes = {"AAPL": [(T, D(100)), (T + DAY, D(105)), (T + DAY * 2, D(110)), (T + DAY * 3, D(111))]}
    buckets = [T - DAY, T, T + DAY, T + DAY * 2, T + DAY * 3]
    assert curve(D("10000.00"), changes, closes, buckets) == [
        D("10000.00"), D("10000.00"), D("10050.00"), D("10100.00"), D("10106.25")]


def test_a_symbol_without_a_close_in_a_bucket_keeps_its_last_close():
    changes = [Change(T, D("0.00"), "X", D(2))]
    assert curve(D("0"), changes, {"X": [(T, D(10))]}, [T, T + DAY]) == [D("20.00"), D("20.00")]
