"""The ledger: what one fill does to an account's cash and holdings (pure logic, no reactor)."""

from decimal import Decimal

import pytest

from papertrader.master.ledger import Book, Fill, Holding, Rejection, execute
from papertrader.money import round_money

D = Decimal
ZERO = D("0.00")


def book(cash, **holdings):
    return Book(D(cash), {s: Holding(D(q), D(c)) for s, (q, c) in holdings.items()})


def test_buy_pays_rounded_gross_plus_commission():
    b = book("1000.00")
    fill = execute(b, "buy", "AAPL", D("3"), D("10.005"), D("1.00"))
    assert isinstance(fill, Fill)
    # 3 * 10.005 = 30.015 -> 30.02 (half-even, once), plus 1.00 commission.
    assert fill.amount == D("-31.02")
    assert fill.cash_after == D("968.98") == D("1000.00") + fill.amount
    assert b.cash == D("968.98")
    assert b.holdings["AAPL"] == Holding(D("3"), D("31.02"))
    assert (fill.side, fill.symbol, fill.quantity, fill.price, fill.commission) == (
        "buy", "AAPL", D("3"), D("10.005"), D("1.00"))


def test_buy_rounds_the_gross_half_even():
    b = book("1000.00")
    fill = execute(b, "buy", "AAPL", D("0.5"), D("333.33"), ZERO)
    assert fill.amount == D("-166.66")  # 166.665 -> 166.66 (6 is even)
    fill = execute(b, "buy", "AAPL", D("0.5"), D("333.35"), ZERO)
    assert fill.amount == D("-166.68")  # 166.675 -> 166.68 (8 is even)


def test_cash_after_chains_over_many_fills():
    b = book("5000.00")
    cash = b.cash
    orders = [
        ("buy", "AAPL", "10", "101.2345", "0.99"),
        ("buy", "MSFT", "0.333333", "410.07", "0.99"),
        ("sell", "AAPL", "4", "99.99", "0.99"),
        ("buy", "AAPL", "1.5", "100.0001", "0.99"),
        ("sell", "MSFT", "0.333333", "420.5", "0.99"),
        ("sell", "AAPL", "7.5", "98.7654", "0.99"),
    ]
    for side, symbol, qty, price, commission in orders:
        fill = execute(b, side, symbol, D(qty), D(price), D(commission))
        assert isinstance(fill, Fill)
        assert fill.cash_after == cash + fill.amount
        assert fill.amount == round_money(fill.amount)  # amounts are whole cents
        cash = fill.cash_after
    assert b.cash == cash
    assert b.holdings == {}  # everything sold


def test_buying_exactly_all_cash_fills():
    b = book("100.00")
    fill = execute(b, "buy", "AAPL", D("1"), D("99.00"), D("1.00"))
    assert isinstance(fill, Fill)
    assert b.cash == ZERO


def test_insufficient_funds_is_a_rejection_that_leaves_the_book_unchanged():
    b = book("100.00", MSFT=("2", "600.00"))
    before = b.copy()
    result = execute(b, "buy", "AAPL", D("1"), D("99.00"), D("1.01"))  # 100.01 > 100.00
    assert isinstance(result, Rejection)
    assert result.code == "insufficient_funds"
    assert result.reason == ("insufficient funds: buying 1 AAPL at 99.00 costs 100.01 with commission;"
                             " cash is 100.00")
    assert b == before


def test_selling_without_a_holding_is_rejected_no_short_selling():
    b = book("100.00")
    before = b.copy()
    result = execute(b, "sell", "AAPL", D("1"), D("10.00"), ZERO)
    assert isinstance(result, Rejection)
    assert result.code == "insufficient_position"
    assert "holding 0" in result.reason and "short selling is not allowed" in result.reason
    assert b == before
    assert "AAPL" not in b.holdings


def test_selling_more_than_held_is_rejected_and_leaves_the_book_unchanged():
    b = book("100.00", AAPL=("10", "1000.00"))
    before = b.copy()
    result = execute(b, "sell", "AAPL", D("10.000001"), D("10.00"), ZERO)
    assert isinstance(result, Rejection)
    assert result.code == "insufficient_position"
    assert "selling 10.000001 AAPL but holding 10" in result.reason
    assert b == before


def test_a_sell_whose_commission_cannot_be_paid_is_rejected():
    b = book("0.00", AAPL=("1", "0.50"))
    before = b.copy()
    result = execute(b, "sell", "AAPL", D("1"), D("0.50"), D("1.00"))  # proceeds -0.50, no cash
    assert isinstance(result, Rejection)
    assert result.code == "insufficient_funds"
    assert b == before


def test_sell_adds_proceeds_minus_commission():
    b = book("0.00", AAPL=("10", "1000.00"))
    fill = execute(b, "sell", "AAPL", D("4"), D("110.00"), D("1.50"))
    assert fill.amount == D("438.50")
    assert fill.cash_after == b.cash == D("438.50")


def test_selling_part_of_a_position_removes_a_proportional_cost():
    b = book("0.00", AAPL=("10", "1001.50"))
    execute(b, "sell", "AAPL", D("4"), D("200.00"), ZERO)
    # 4/10 of 1001.50 = 400.60 leaves 600.90 for the remaining 6 shares.
    assert b.holdings["AAPL"] == Holding(D("6"), D("600.90"))
    assert b.holdings["AAPL"].average_price == D("100.1500")  # the average price is unchanged


def test_selling_in_pieces_removes_exactly_the_whole_cost():
    b = book("0.00", AAPL=("3", "100.00"))
    execute(b, "sell", "AAPL", D("1"), D("1.00"), ZERO)
    assert b.holdings["AAPL"].cost == D("66.67")  # 33.333.. -> 33.33 removed
    execute(b, "sell", "AAPL", D("1"), D("1.00"), ZERO)
    assert b.holdings["AAPL"].cost == D("33.33")  # 33.335 -> 33.34 removed (half-even)
    execute(b, "sell", "AAPL", D("1"), D("1.00"), ZERO)
    assert "AAPL" not in b.holdings  # nothing left over, not even a rounding cent


def test_selling_all_removes_the_holding():
    b = book("0.00", AAPL=("2.5", "250.00"), MSFT=("1", "300.00"))
    fill = execute(b, "sell", "AAPL", D("2.5"), D("120.00"), ZERO)
    assert fill.amount == D("300.00")
    assert "AAPL" not in b.holdings
    assert b.holdings["MSFT"] == Holding(D("1"), D("300.00"))


def test_fractional_quantities_accumulate_exactly():
    b = book("1000.00")
    for _ in range(3):
        execute(b, "buy", "TSLA", D("0.333333"), D("150.00"), ZERO)  # 49.99995 -> 50.00 each
    held = b.holdings["TSLA"]
    assert held.quantity == D("0.999999")
    assert held.cost == D("150.00")
    assert b.cash == D("850.00")
    fill = execute(b, "sell", "TSLA", D("0.999999"), D("150.00"), ZERO)
    assert fill.amount == D("150.00")  # 149.99985 -> 150.00
    assert b.holdings == {}


def test_average_price_of_a_holding():
    assert Holding(D("3"), D("100.00")).average_price == D("33.3333")
    assert Holding(D("0"), ZERO).average_price == D("0")


def test_unknown_side_is_refused():
    b = book("100.00")
    with pytest.raises(ValueError, match="unknown side 'short'"):
        execute(b, "short", "AAPL", D("1"), D("1.00"), ZERO)
    assert b == book("100.00")


def test_book_copy_is_independent():
    b = book("100.00", AAPL=("1", "10.00"))
    c = b.copy()
    execute(c, "buy", "AAPL", D("1"), D("10.00"), ZERO)
    assert b == book("100.00", AAPL=("1", "10.00"))
