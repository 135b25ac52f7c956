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


def test_after_a_seek_back_each_bucket_is_the_account_the_latest_made_change_left():
    """A replay sought back without a reset: a sale made on day 5 (in the first pass) has a smaller id than a buy
    made on day 1 of the second pass.  Walked in id order to the first change dated later, day 2's value mixed
    the sale's cash with the shares it sold (the curve counted them twice)."""
    changes = [Change(T, D("9000.00"), "AAA", D(10)),  # day 0: bought 10 AAA at 100
               Change(T + DAY * 5, D("10100.00"), "AAA", D(0)),  # day 5 (first pass): sold them at 110
               Change(T + DAY, D("9600.00"), "BBB", D(5))]  # sought back to day 1: bought 5 BBB at 100
    closes = {"AAA": [(T + DAY * n, D(100 + n)) for n in range(6)], "BBB": [(T + DAY * n, D(100)) for n in range(6)]}
    buckets = [T, T + DAY, T + DAY * 2]
    assert curve(D("10000.00"), changes, closes, buckets, until=T + DAY * 2 + timedelta(hours=1)) == [
        D("10000.00"),  # day 0: 9000 + 10 x 100
        D("10100.00"),  # day 1: after the buy (made last): 9600 + 5 x 100, AAA sold already
        D("10100.00")]
    # Without a seek (times in the order made), nothing changes: the first test's figures.
    test_cash_and_positions_valued_at_each_buckets_close()


def test_changes_dated_after_the_end_asked_for_are_left_out():
    changes = [Change(T, D("9000.00"), "X", D(10)), Change(T + DAY * 3, D("9500.00"), "X", D(5))]
    closes = {"X": [(T, D(100)), (T + DAY, D(100))]}
    assert curve(D("10000"), changes, closes, [T, T + DAY], until=T + DAY * 2) == [D("10000.00"), D("10000.00")]
