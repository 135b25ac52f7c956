"""A book (cash and positions) and what one fill does to it: pure logic, no reactor."""

from decimal import Decimal

import pytest

from papertrader.money import round_money
from papertrader.trading.books import Book, Position, apply_fill
from papertrader.trading.orders import Side
from tests.trading_helpers import book

D = Decimal
ZERO = D("0.00")
BUY, SELL = Side.BUY, Side.SELL


def test_buy_pays_rounded_gross_plus_commission():
    b = book("1000.00")
    after, fill = apply_fill(b, BUY, "AAPL", D("3"), D("10.005"), D("1.00"))
    # 3 * 10.005 = 30.015 -> 30.02 (half-even, once), plus 1.00 commission.
    assert fill.amount == D("-31.02") and fill.gross == D("30.02")
    assert fill.cash_after == D("968.98") == D("1000.00") + fill.amount == after.cash
    assert after.positions["AAPL"] == Position("AAPL", D("3"), D("31.02"), D("10.0050"))
    assert b == book("1000.00")  # books are values: the old one is unchanged


def test_the_average_entry_price_is_what_the_fills_paid_per_share_without_commissions():
    """Alpaca's avg_entry_price: 5 shares filled at 208.3717 show 208.3717 (not their cent-rounded cost over 5,
    208.372), and a commission is in the cost, not in the entry price."""
    b, _ = apply_fill(book("10000.00"), BUY, "AAPL", D("5"), D("208.3717"), D("1.00"))
    assert b.positions["AAPL"].average_price == D("208.3717")
    assert b.positions["AAPL"].cost == D("1042.86") and b.positions["AAPL"].average_cost == D("208.5720")
    # Adding averages the prices by shares: (5 x 208.3717 + 3 x 200) / 8 = 205.2323125 -> 205.2323.
    b, _ = apply_fill(b, BUY, "AAPL", D("3"), D("200.00"), ZERO)
    assert b.positions["AAPL"].average_price == D("205.2323")
    # Selling part leaves it; selling all and buying again starts afresh.
    b, _ = apply_fill(b, SELL, "AAPL", D("6"), D("250.00"), ZERO)
    assert b.positions["AAPL"].average_price == D("205.2323")
    b, _ = apply_fill(b, SELL, "AAPL", D("2"), D("250.00"), ZERO)
    b, _ = apply_fill(b, BUY, "AAPL", D("1"), D("99.99"), ZERO)
    assert b.positions["AAPL"].average_price == D("99.9900")
    # A position stored before entry prices were kept shows its cost per share until a fill averages in.
    legacy = book("1000.00", AAPL=("3", "31.02"))
    assert legacy.positions["AAPL"].average_price == D("10.3400")
    b, _ = apply_fill(legacy, BUY, "AAPL", D("1"), D("11.00"), ZERO)
    assert b.positions["AAPL"].average_price == D("10.5050")  # (3 x 10.34 + 11) / 4


def test_a_short_positions_entry_price_is_what_its_short_sales_brought_per_share():
    from papertrader.trading.margin import MarginRules

    b = book("1000.00")
    b = Book(b.account_id, b.cash, {}, MarginRules())
    b, _ = apply_fill(b, SELL, "XYZ", D("10"), D("20.00"), D("1.00"))
    b, _ = apply_fill(b, SELL, "XYZ", D("10"), D("22.00"), ZERO)
    assert b.positions["XYZ"].quantity == D(-20) and b.positions["XYZ"].average_price == D("21.0000")
    b, _ = apply_fill(b, BUY, "XYZ", D("5"), D("18.00"), ZERO)  # covering part leaves it
    assert b.positions["XYZ"].average_price == D("21.0000")


def test_buy_rounds_the_gross_half_even():
    b = book("1000.00")
    b, fill = apply_fill(b, BUY, "AAPL", D("0.5"), D("333.33"), ZERO)
    assert fill.amount == D("-166.66")  # 166.665 -> 166.66 (6 is even)
    b, fill = apply_fill(b, BUY, "AAPL", D("0.5"), D("333.35"), ZERO)
    assert fill.amount == D("-166.68")  # 166.675 -> 166.68 (8 is even)


def test_cash_after_chains_over_many_fills():
    b = book("5000.00")
    cash = b.cash
    for side, symbol, qty, price, commission in [
        (BUY, "AAPL", "10", "101.2345", "0.99"), (BUY, "MSFT", "0.333333", "410.07", "0.99"),
        (SELL, "AAPL", "4", "99.99", "0.99"), (BUY, "AAPL", "1.5", "100.0001", "0.99"),
        (SELL, "MSFT", "0.333333", "420.5", "0.99"), (SELL, "AAPL", "7.5", "98.7654", "0.99"),
    ]:
        b, fill = apply_fill(b, side, symbol, D(qty), D(price), D(commission))
        assert fill.cash_after == cash + fill.amount
        assert fill.amount == round_money(fill.amount)  # amounts are whole cents
        cash = fill.cash_after
    assert b.cash == cash
    assert b.positions == {}  # everything sold


def test_buying_exactly_all_cash_fills():
    after, _ = apply_fill(book("100.00"), BUY, "AAPL", D("1"), D("99.00"), D("1.00"))
    assert after.cash == ZERO


def test_a_buy_or_sell_the_book_cannot_pay_raises_instead_of_going_negative():
    with pytest.raises(ValueError):
        apply_fill(book("100.00"), BUY, "AAPL", D("1"), D("99.00"), D("1.01"))
    with pytest.raises(ValueError):
        apply_fill(book("100.00"), SELL, "AAPL", D("1"), D("10.00"), ZERO)  # no short selling
    with pytest.raises(ValueError):
        apply_fill(book("100.00", AAPL=("10", "1000.00")), SELL, "AAPL", D("10.000001"), D("10.00"), ZERO)
    with pytest.raises(ValueError):
        apply_fill(book("0.00", AAPL=("1", "0.50")), SELL, "AAPL", D("1"), D("0.50"), D("1.00"))


def test_sell_adds_proceeds_minus_commission_and_realizes_against_the_cost():
    after, fill = apply_fill(book("0.00", AAPL=("10", "1000.00")), SELL, "AAPL", D("4"), D("110.00"), D("1.50"))
    assert fill.amount == D("438.50") == after.cash
    assert fill.realized == D("438.50") - D("400.00")
    assert fill.position_after == D("6")


def test_selling_part_of_a_position_removes_a_proportional_cost():
    after, _ = apply_fill(book("0.00", AAPL=("10", "1001.50")), SELL, "AAPL", D("4"), D("200.00"), ZERO)
    # 4/10 of 1001.50 = 400.60 leaves 600.90 for the remaining 6 shares.
    assert after.positions["AAPL"] == Position("AAPL", D("6"), D("600.90"))
    assert after.positions["AAPL"].average_price == D("100.1500")  # the average price is unchanged


def test_selling_in_pieces_removes_exactly_the_whole_cost():
    b = book("0.00", AAPL=("3", "100.00"))
    b, _ = apply_fill(b, SELL, "AAPL", D("1"), D("1.00"), ZERO)
    assert b.positions["AAPL"].cost == D("66.67")  # 33.333.. -> 33.33 removed
    b, _ = apply_fill(b, SELL, "AAPL", D("1"), D("1.00"), ZERO)
    assert b.positions["AAPL"].cost == D("33.33")  # 33.335 -> 33.34 removed (half-even)
    b, _ = apply_fill(b, SELL, "AAPL", D("1"), D("1.00"), ZERO)
    assert "AAPL" not in b.positions  # nothing left over, not even a rounding cent


def test_selling_all_removes_the_position():
    b, fill = apply_fill(book("0.00", AAPL=("2.5", "250.00"), MSFT=("1", "300.00")), SELL, "AAPL", D("2.5"),
                         D("120.00"), ZERO)
    assert fill.amount == D("300.00") and fill.position_after == 0
    assert list(b.positions) == ["MSFT"]


def test_fractional_quantities_accumulate_exactly():
    b = book("1000.00")
    for _ in range(3):
        b, _ = apply_fill(b, BUY, "TSLA", D("0.333333"), D("150.00"), ZERO)  # 49.99995 -> 50.00 each
    assert b.positions["TSLA"] == Position("TSLA", D("0.999999"), D("150.00"), D("150.0000"))
    assert b.cash == D("850.00")
    b, fill = apply_fill(b, SELL, "TSLA", D("0.999999"), D("150.00"), ZERO)
    assert fill.amount == D("150.00")  # 149.99985 -> 150.00
    assert b.positions == {}


def test_average_price_of_a_position():
    assert Position("X", D("3"), D("100.00")).average_price == D("33.3333")
    assert Position("X", D("0"), ZERO).average_price == D("0")
