"""Margin accounts in the trading core: Reg T buying power, short sales and covers, margin calls,
forced liquidation and borrow fees, on scripted prices (hand-computed figures).  No reactor, no database."""

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from papertrader.errors import InsufficientFunds, InsufficientPosition, InvalidInput
from papertrader.trading import margin
from papertrader.trading.books import Book, Position, apply_fill
from papertrader.trading.corporate import Dividend, Split, apply
from papertrader.trading.fill_models import IdealFillModel
from papertrader.trading.margin import MarginRules
from papertrader.trading.market import MarketStep
from papertrader.trading.orders import Side, Status
from papertrader.trading.pretrade import Rules, buying_power
from papertrader.trading.step import step
from tests.trading_helpers import T0, D, at, bar, place

REG_T = MarginRules()
IDEAL = Rules(fill_model=IdealFillModel())


def margin_book(cash="10000.00", **positions):
    return Book(1, D(cash), {s: Position(s, D(q), D(c)) for s, (q, c) in positions.items()}, margin=REG_T)


def fill_at(b, order, price, rules=IDEAL, prices=None):
    """One step whose bar closes at ``price``: (book, order, events)."""
    result = step({b.account_id: b}, [order], MarketStep(at(1), {order.symbol: bar(price, price, price, price,
                                                                                    symbol=order.symbol)},
                                                          prices=prices or {}), rules)
    changed = {o.id: o for o in result.orders}
    return result.books[b.account_id], changed.get(order.id, order), result.events


# --- the formulas, by hand -------------------------------------------------------------------------


def test_a_leveraged_long_position_its_equity_requirements_and_buying_power():
    # 10,000 cash buys 100 AAPL at 150 on margin: 5,000 borrowed.
    b = margin_book("-5000.00", AAPL=("100", "15000.00"))
    s = margin.status(b, {"AAPL": D(150)}, REG_T)
    assert s.equity == D("10000.00")
    assert s.initial == D("7500.00")  # 50% of 15,000
    assert s.maintenance == D("3750.00")  # 25% of 15,000
    assert s.buying_power == D("5000.00")  # (10,000 - 7,500) / 0.5
    assert not s.called
    # At 60 the shares are worth 6,000: equity 1,000 < maintenance 1,500 -> a call for 500.
    s = margin.status(b, {"AAPL": D(60)}, REG_T)
    assert (s.equity, s.maintenance, s.deficit, s.buying_power) == (D("1000.00"), D("1500.00"), D("500.00"),
                                                                      D("0.00"))


def test_a_short_position_its_equity_requirements_and_buying_power():
    # Short 100 at 50: 5,000 of proceeds on top of 10,000 cash.
    b = margin_book("15000.00", TSLA=("-100", "-5000.00"))
    s = margin.status(b, {"TSLA": D(50)}, REG_T)
    assert (s.equity, s.initial, s.maintenance, s.buying_power) == (D("10000.00"), D("2500.00"), D("1500.00"),
                                                                     D("15000.00"))
    # At 130 the short is worth 13,000: equity 2,000 < 30% x 13,000 = 3,900.
    s = margin.status(b, {"TSLA": D(130)}, REG_T)
    assert (s.equity, s.maintenance, s.deficit) == (D("2000.00"), D("3900.00"), D("1900.00"))


def test_a_cash_account_has_its_cash_as_buying_power_and_a_margin_account_twice_its_equity():
    cash = Book(1, D("10000.00"))
    assert buying_power(cash, [], {}, Rules()) == D("10000.00")
    assert buying_power(margin_book(), [], {}, Rules()) == D("20000.00")


# --- orders: what a margin account may do and a cash account may not ----------------------------------


def test_a_margin_account_buys_beyond_its_cash_and_borrows_the_rest():
    b = margin_book()
    order = place(b, quantity="150", prices={"AAPL": D(100)}, rules=IDEAL)  # 15,000 of 20,000 buying power
    after, order, _ = fill_at(b, order, 100)
    assert order.status is Status.FILLED
    assert after.cash == D("-5000.00") and after.positions["AAPL"].quantity == D(150)
    with pytest.raises(InsufficientFunds, match="margin buying power is 5000.00"):
        place(after, quantity="60", prices={"AAPL": D(100)}, rules=IDEAL)


def test_a_short_sale_and_its_cover_realize_the_difference():
    b = margin_book()
    short = place(b, side="sell", quantity="100", prices={"AAPL": D(50)}, rules=IDEAL)
    after, short, _ = fill_at(b, short, 50)
    assert short.status is Status.FILLED
    assert after.cash == D("15000.00")
    assert after.positions["AAPL"] == Position("AAPL", D(-100), D("-5000.00"), D("50.0000"))
    assert after.positions["AAPL"].average_price == D("50.0000")
    cover = place(after, side="buy", quantity="100", prices={"AAPL": D(40)}, rules=IDEAL)
    covered, cover, events = fill_at(after, cover, 40)
    assert cover.status is Status.FILLED and "AAPL" not in covered.positions
    assert covered.cash == D("11000.00")
    assert events[0].fill.realized == D("1000.00")  # sold at 50, bought back at 40


def test_a_cash_account_may_not_sell_short():
    b = Book(1, D("10000.00"))
    with pytest.raises(InsufficientPosition, match="short selling is not allowed"):
        place(b, side="sell", quantity="1")


def test_no_order_turns_a_long_position_short_or_a_short_one_long():
    long = margin_book("0.00", AAPL=("10", "1000.00"))
    with pytest.raises(InsufficientPosition, match="may not turn a long position short"):
        place(long, side="sell", quantity="11")
    place(long, side="sell", quantity="10")  # closing it is fine
    short = margin_book("11000.00", AAPL=("-10", "-1000.00"))
    with pytest.raises(InsufficientPosition, match="cover at most the 10"):
        place(short, side="buy", quantity="11")
    cover = place(short, side="buy", quantity="6")
    # The open cover holds 6: the refusal says so, and that cancelling it frees them (not "go long").
    with pytest.raises(InsufficientPosition, match="cover at most the 4 AAPL you are short \\(6 are covered by your"
                                                   " open buys\\); cancel an open buy to cover more"):
        place(short, side="buy", quantity="5", open_orders=[cover])
    sale = place(long, side="sell", quantity="7")
    with pytest.raises(InsufficientPosition, match="but 3 shares are available \\(7 are held for your open sell orders\\);"
                                                   " cancel an open sale to sell more"):
        place(long, side="sell", quantity="5", open_orders=[sale])


def test_short_sales_are_whole_shares_by_quantity():
    b = margin_book()
    with pytest.raises(InvalidInput, match="whole number of shares"):
        place(b, side="sell", quantity="1.5")
    with pytest.raises(InvalidInput, match="whole number of shares"):
        place(b, side="sell", quantity=None, notional="100.00")


def test_open_short_sales_hold_buying_power():
    b = margin_book()  # 20,000 of buying power
    first = place(b, side="sell", quantity="100", kind="limit", limit="120", prices={"AAPL": D(100)})
    assert buying_power(b, [first], {"AAPL": D(100)}, Rules()) == D("8000.00")  # 100 x 120 held
    with pytest.raises(InsufficientFunds):
        place(b, side="sell", quantity="100", kind="limit", limit="90", open_orders=[first])


def test_a_short_sale_fills_only_what_the_buying_power_pays_when_prices_moved():
    b = margin_book("1000.00")  # 2,000 of buying power
    order = place(b, side="sell", quantity="10", kind="limit", limit="150", prices={"AAPL": D(150)})
    after, order, events = fill_at(b, order, 300)  # the limit sells at 300 or better: 10 x 300 > 2,000
    assert events[0].fill.quantity == D(6)  # whole shares only: 6 x 300 = 1,800
    assert after.positions["AAPL"].quantity == D(-6)


# --- corporate actions on a short position ------------------------------------------------------------


def test_a_short_position_pays_the_dividend_and_splits_like_a_long_one():
    b = margin_book("15000.00", AAPL=("-100", "-5000.00"))
    books, _, records, _ = apply({1: b}, [], [Dividend("AAPL", T0.date(), D("0.25"))], T0.date(), T0)
    assert books[1].cash == D("14975.00") and records[0].amount == D("-25.00")
    books, _, _, _ = apply({1: b}, [], [Split("AAPL", T0.date(), D(4))], T0.date(), T0)
    assert books[1].positions["AAPL"] == Position("AAPL", D(-400), D("-5000.00"))


# --- margin calls and liquidation ------------------------------------------------------------------


def test_a_call_is_made_kept_and_met():
    b = margin_book("-5000.00", AAPL=("100", "15000.00"))
    made = margin.review(b, {"AAPL": D(60)}, REG_T, None, T0)
    assert made.new_call and made.called_since == T0 and made.status.deficit == D("500.00") and not made.liquidate
    kept = margin.review(b, {"AAPL": D(60)}, REG_T, T0, T0 + timedelta(days=1))
    assert not kept.new_call and kept.called_since == T0 and not kept.liquidate
    met = margin.review(b, {"AAPL": D(70)}, REG_T, T0, T0 + timedelta(days=1))
    assert met.met and met.called_since is None


def test_an_unmet_call_liquidates_after_the_deadline_just_enough_in_the_documented_order():
    # Short 100 TSLA at 130 (deficit 1,900 from the short alone); long 10 AAPL at 100 (250 maintenance).
    b = margin_book("14000.00", TSLA=("-100", "-5000.00"), AAPL=("10", "1000.00"))
    prices = {"TSLA": D(130), "AAPL": D(100)}
    s = margin.status(b, prices, REG_T)
    # equity = 14,000 + 1,000 - 13,000 = 2,000; maintenance = 0.25 x 1,000 + 0.30 x 13,000 = 4,150.
    assert (s.equity, s.maintenance, s.deficit) == (D("2000.00"), D("4150.00"), D("2150.00"))
    early = margin.review(b, prices, REG_T, T0, T0 + timedelta(days=1, hours=23))
    assert early.liquidate == ()
    due = margin.review(b, prices, REG_T, T0, T0 + timedelta(days=2))
    # The short has the larger requirement: cover ceil(2,150 / (0.3 x 130)) = 56 shares.
    assert due.liquidate == (margin.Liquidation("TSLA", "buy", D(56)),)
    while_open = margin.review(b, prices, REG_T, T0, T0 + timedelta(days=2), liquidating=True)
    assert while_open.liquidate == ()
    after, _ = apply_fill(b, Side.BUY, "TSLA", D(56), D(130), D("0.00"))
    assert not margin.status(after, prices, REG_T).called


def test_liquidation_closes_the_share_the_rounded_requirement_still_needs():
    """6 AAPL at $0.51 on $2.81 of debt: equity $0.25, maintenance $0.76.  Four shares meet the call on
    paper, but the requirement on the two left rounds up to $0.26 > $0.25: a fifth must go."""
    b = Book(1, D("-2.81"), {"AAPL": Position("AAPL", D(6), D("3.00"))}, margin=REG_T)
    prices = {"AAPL": D("0.51")}
    assert margin.status(b, prices, REG_T).deficit == D("0.51")
    (order,) = margin.liquidation(b, prices, REG_T)
    assert (order.side, order.quantity) == ("sell", D(5))
    b, _ = apply_fill(b, Side.SELL, "AAPL", order.quantity, prices["AAPL"], D("0.00"))
    assert not margin.status(b, prices, REG_T).called


def test_borrow_fee_per_day():
    rules = replace(REG_T, borrow_rate=D("0.036"))
    b = margin_book("15000.00", TSLA=("-100", "-5000.00"))
    assert margin.borrow_fee(b, {"TSLA": D(50)}, rules) == D("0.50")  # 5,000 x 3.6% / 360
    assert margin.borrow_fee(b, {"TSLA": D(50)}, rules, days=3) == D("1.50")
    assert margin.borrow_fee(b, {"TSLA": D(50)}, REG_T) == D("0.00")


def test_the_borrow_fee_counts_the_shorts_held_overnight_in_the_shares_of_after_the_days_split():
    b = margin_book("15000.00", TSLA=("-100", "-5000.00"), AAPL=("10", "1000.00"))
    assert [(p.symbol, p.quantity) for p in margin.overnight_shorts(b)] == [("TSLA", D(-100))]
    split = Split("TSLA", date(2024, 3, 4), D(3))
    [held] = margin.overnight_shorts(b, (split, Split("AAPL", date(2024, 3, 4), D(2))))
    assert (held.symbol, held.quantity) == ("TSLA", D(-300))
    rules = replace(REG_T, borrow_rate=D("0.036"))
    # 300 shares at the split price of 50/3: the same 5,000 borrowed as the night before.
    assert margin.borrow_fee(replace(b, positions={"TSLA": held}), {"TSLA": D("16.6667")}, rules) == D("0.50")


def test_margin_terms_are_checked():
    with pytest.raises(ValueError):
        MarginRules(initial=D("1.5"))
    with pytest.raises(ValueError):
        MarginRules(maintenance_short=D("0.6"))


# --- properties --------------------------------------------------------------------------------------

prices_st = st.decimals(min_value=D("0.50"), max_value=D("500"), places=2)
quantities_st = st.integers(min_value=1, max_value=5000).map(D)


@st.composite
def called_books(draw):
    """A margin account with up to four positions (long or short) and its prices, in a margin call."""
    symbols = draw(st.lists(st.sampled_from(["AAPL", "MSFT", "TSLA", "IBM"]), min_size=1, max_size=4, unique=True))
    positions, prices = {}, {}
    for symbol in symbols:
        quantity = draw(quantities_st) * draw(st.sampled_from([1, -1]))
        cost = draw(prices_st) * quantity
        positions[symbol] = Position(symbol, quantity, cost.quantize(D("0.01")))
        prices[symbol] = draw(prices_st)
    b = Book(1, D("0.00"), positions, margin=REG_T)
    s = margin.status(b, prices, REG_T)
    # Choose the cash so that equity sits below the maintenance requirement by a drawn amount.
    shortfall = draw(st.decimals(min_value=D("0.01"), max_value=s.maintenance + 1, places=2))
    cash = s.maintenance - shortfall - (s.equity - b.cash)
    return replace(b, cash=cash), prices


@settings(max_examples=200, deadline=None)
@given(called_books())
def test_liquidating_the_plan_at_the_last_prices_always_meets_the_call(case):
    b, prices = case
    assert margin.status(b, prices, REG_T).called
    for order in margin.liquidation(b, prices, REG_T):
        side = Side.SELL if order.side == "sell" else Side.BUY
        assert order.quantity <= abs(b.quantity(order.symbol))
        b, _ = apply_fill(b, side, order.symbol, order.quantity, prices[order.symbol], D("0.00"))
    after = margin.status(b, prices, REG_T)
    assert not after.called or not b.positions


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["buy", "sell"]), quantities_st, prices_st), max_size=30))
def test_a_margin_book_always_balances(trades):
    """Whatever fills a margin account makes: cash is the start plus the signed amounts, each position the sum
    of its signed fills, and equity the start plus realized and unrealized profit."""
    b = Book(1, D("10000.00"), margin=REG_T)
    cash, realized, last = D("10000.00"), D("0.00"), D(1)
    signed = D(0)
    for side, quantity, price in trades:
        held = b.quantity("AAPL")
        if side == "buy" and held < 0:
            quantity = min(quantity, -held)
        if side == "sell" and held > 0:
            quantity = min(quantity, held)
        b, execution = apply_fill(b, Side(side), "AAPL", quantity, price, D("1.00"))
        cash += execution.amount
        realized += execution.realized
        signed += quantity if side == "buy" else -quantity
        last = price
        assert b.cash == cash and b.quantity("AAPL") == signed
    position = b.positions.get("AAPL")
    unrealized = (position.quantity * last - position.cost) if position else D(0)
    assert margin.value(b, {"AAPL": last}).equity == D("10000.00") + realized + unrealized.quantize(D("0.01"))
