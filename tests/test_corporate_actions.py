"""Splits and cash dividends in the trading core: books, open orders, history records, owed dividends."""

from dataclasses import replace
from datetime import date
from decimal import Decimal as D

from papertrader.trading.books import Position
from papertrader.trading.corporate import Dividend, Entitlement, Split
from papertrader.trading.market import MarketStep
from papertrader.trading.orders import Status
from papertrader.trading.pretrade import Rules, check_price
from papertrader.trading.step import moving, step
from tests.trading_helpers import MINUTE, T0, at, bar, book, place

TODAY = date(2024, 3, 4)


def run(books, orders, *, actions=(), due=(), bars=()):
    return step({b.account_id: b for b in books}, orders,
                MarketStep(at(1), {b.symbol: b for b in bars}, tuple(actions), tuple(due), TODAY), Rules())


def test_a_split_multiplies_positions_and_open_orders_and_divides_their_prices():
    b = book(AAPL=("10", "1000.00"))
    sell = place(b, side="sell", kind="limit", limit="150.00", quantity="6", tif="gtc")
    other = place(b, symbol="MSFT", kind="limit", limit="10.00", quantity="1", prices={"MSFT": D(10)})
    result = run([b], [sell, other], actions=[Split("AAPL", TODAY, D(4))])
    after = result.books[1]
    assert after.positions["AAPL"].quantity == D(40) and after.positions["AAPL"].cost == D("1000.00")
    assert after.positions["AAPL"].average_price == D("25.0000") and after.cash == b.cash
    bought = replace(b, positions={"AAPL": Position("AAPL", D(10), D("1000.00"), D("99.9900"))})
    split = run([bought], [], actions=[Split("AAPL", TODAY, D(4))]).books[1].positions["AAPL"]
    assert (split.entry_price, split.average_cost) == (D("24.9975"), D("25.0000"))  # entry price divided as well
    [adjusted] = [o for o in result.orders if o.id == sell.id]
    assert (adjusted.quantity, adjusted.limit_price, adjusted.status) == (D(24), D("37.50"), Status.NEW)
    assert adjusted.updated == result.records[0].time > sell.updated  # changed when the split took effect
    assert other.id not in [o.id for o in result.orders]  # another symbol is not touched
    [record] = result.records
    assert (record.kind, record.symbol, record.before, record.quantity, record.ratio) == ("split", "AAPL", D(10),
                                                                                       D(40), (D(4), D(1)))


def test_a_split_adjusts_a_resting_limit_order_a_step_would_otherwise_leave_aside():
    """The master steps only the orders a step may change (``moving``): a resting limit order, its bar far from
    its limit, is left aside, unless its symbol splits in the step, which adjusts it."""
    b = book(AAPL=("10", "1000.00"))
    sell = place(b, side="sell", kind="limit", limit="150.00", quantity="6", tif="gtc")
    calm = MarketStep(at(1), {"AAPL": bar(25, 30, 24, 26)}, (), (), TODAY)
    assert moving([sell], calm, Rules()) == []
    splitting = replace(calm, actions=(Split("AAPL", TODAY, D(4)),))
    result = step({1: b}, moving([sell], splitting, Rules()), splitting, Rules())
    [adjusted] = result.orders
    assert (adjusted.quantity, adjusted.limit_price, adjusted.status) == (D(24), D("37.50"), Status.NEW)


def test_a_split_given_twice_in_one_step_applies_once():
    """Two records of one split reaching one step (a provider listing it under two ids) multiplied the shares
    twice: 10 became 40 at a 2-for-1 split.  A symbol splits at most once a day: the second is the same split."""
    b = book(cash="0.00", AAPL=("10", "1000.00"))
    result = run([b], [], actions=[Split("AAPL", TODAY, D(2)), Split("AAPL", TODAY, D(2))])
    assert result.books[1].positions["AAPL"].quantity == D(20)
    assert [r.kind for r in result.records] == ["split"]


def test_a_split_puts_order_prices_on_a_valid_tick_on_each_orders_side_of_caution():
    """300 / 7 = 42.857142...: not a price an order can have (whole cents from $1), so the order could not be
    replaced as it stood.  Each rounds to a tick without becoming more eager: a buy pays no more, a sale takes no
    less, a stop triggers no sooner."""
    b = book("1000000.00", AAPL=("70", "7000.00"))
    prices = {"AAPL": D(300)}
    buy = place(b, kind="limit", limit="299.99", tif="gtc", prices=prices)
    sell = place(b, side="sell", kind="limit", limit="300.01", tif="gtc", prices=prices)
    buy_stop = place(b, kind="stop", stop="300.01", tif="gtc", prices=prices)
    sell_stop = place(b, side="sell", kind="stop_limit", stop="299.99", limit="299.99", tif="gtc", prices=prices)
    trail = place(b, side="sell", kind="trailing_stop", trail_price="1.00", tif="gtc", prices=prices)
    result = run([b], [buy, sell, buy_stop, sell_stop, trail], actions=[Split("AAPL", TODAY, D(7))])
    after = {o.id: o for o in result.orders}
    assert after[buy.id].limit_price == D("42.85")  # 42.855714...
    assert after[sell.id].limit_price == D("42.86")  # 42.858571...
    assert after[buy_stop.id].stop_price == D("42.86")
    assert (after[sell_stop.id].stop_price, after[sell_stop.id].limit_price) == (D("42.85"), D("42.86"))
    assert after[trail.id].trail_price == D("0.1429")  # a distance: the nearer tick (below $1: 0.0001)
    # In one rounding: 1234.95 / 1000 = 1.23495 is nearer 1.23 (rounded to 0.0001 first it would tie up to 1.24).
    wide = place(b, side="sell", kind="trailing_stop", trail_price="1234.95", tif="gtc", prices=prices)
    [split_wide] = run([b], [wide], actions=[Split("AAPL", TODAY, D(1000))]).orders
    assert split_wide.trail_price == D("1.23")
    for order in after.values():
        for name in ("limit_price", "stop_price", "trail_price"):
            if getattr(order, name) is not None:
                check_price(name, getattr(order, name))  # what a replace checks again


def test_a_split_is_dated_before_the_days_first_trade():
    """The split takes effect before the session opens: its history row is dated at the start of the step's
    bars, not after the fills of that day (a market order filled at the open)."""
    b = book(AAPL=("10", "1000.00"))
    buy = place(b, quantity="1", now=T0 - MINUTE)
    day = bar(50, 51, 49, 50, start=T0)
    result = step({1: b}, [buy], MarketStep(at(1), {"AAPL": day}, (Split("AAPL", TODAY, D(2)),), (), TODAY), Rules())
    [record], [fill] = result.records, result.fills
    assert record.time == T0 == fill.time and record.time < at(1)
    alone = run([b], [], actions=[Split("AAPL", TODAY, D(2))])  # no bar in the step: dated at the step
    assert alone.records[0].time == at(1)


def test_a_split_scales_what_a_partly_filled_order_has_filled():
    b = book()
    order = place(b, quantity="100", tif="gtc").but(filled_quantity=D(40), filled_value=D(4000))
    [adjusted] = run([b], [order], actions=[Split("AAPL", TODAY, D(2))]).orders
    assert (adjusted.quantity, adjusted.filled_quantity, adjusted.remaining) == (D(200), D(80), D(120))
    assert adjusted.filled_adjustment == D(40) and adjusted.average_price == D(50)


def test_a_reverse_split_is_exact_and_keeps_fractions():
    b = book(AAPL=("300", "500.00"))
    assert run([b], [], actions=[Split("AAPL", TODAY, D(1), D(3))]).books[1].positions["AAPL"].quantity == D(100)
    b = book(AAPL=("5", "500.00"))
    after = run([b], [], actions=[Split("AAPL", TODAY, D(1), D(3))]).books[1]
    assert after.positions["AAPL"].quantity == D("1.666666")


def test_a_dividend_is_paid_to_holders_then_and_applies_before_the_bars_trade():
    holder, other = book(AAPL=("10", "1000.00")), book("50.00", account=2)
    sell = place(holder, side="sell", quantity="10")  # sells in this very step: it still held at the ex-date
    result = run([holder, other], [sell], actions=[Dividend("AAPL", TODAY, D("0.125"))],
                 bars=[bar(100, 100, 100, 100, start=T0)])
    [record] = result.records
    assert (record.kind, record.account_id, record.quantity, record.amount) == ("dividend", 1, D(10), D("1.25"))
    assert result.books[2].cash == D("50.00")
    fill = result.fills[0]
    assert fill.cash_after == D("100000.00") + D("1.25") + fill.amount


def test_a_dividend_paid_later_is_owed_then_paid():
    b = book(AAPL=("3", "300.00"))
    later = date(2024, 3, 20)
    result = run([b], [], actions=[Dividend("AAPL", TODAY, D("0.50"), later)])
    assert result.records == [] and result.books[1].cash == b.cash
    [owed] = result.owed
    assert (owed.quantity, owed.amount, owed.pay_date) == (D(3), D("1.50"), later)
    # Sold meanwhile: still paid (it held at the ex-date).
    paid = run([book()], [], due=[Entitlement(1, "AAPL", TODAY, later, D(3), D("0.50"), D("1.50"), id=7)])
    assert paid.books[1].cash == D("100001.50") and [e.id for e in paid.paid] == [7]


def test_a_dividend_given_twice_in_one_step_is_paid_once():
    """Two records of one dividend reaching one step (a provider listing one corporate action under two ids)
    paid it twice: $1.25 became $2.50.  The same symbol, ex-date, pay date and amount is the same dividend."""
    b = book(AAPL=("10", "1000.00"))
    result = run([b], [], actions=[Dividend("AAPL", TODAY, D("0.125")), Dividend("AAPL", TODAY, D("0.1250"))])
    assert [(r.kind, r.amount) for r in result.records] == [("dividend", D("1.25"))]
    assert result.books[1].cash == b.cash + D("1.25")
    later = date(2024, 3, 20)  # owed, not paid yet: owed once
    owed = run([b], [], actions=[Dividend("AAPL", TODAY, D("0.50"), later)] * 2).owed
    assert [(o.amount, o.pay_date) for o in owed] == [(D("5.00"), later)]
    # Two dividends of one day that differ (another amount or pay date) are both paid.
    both = run([b], [], actions=[Dividend("AAPL", TODAY, D("0.125")), Dividend("AAPL", TODAY, D("0.25"))])
    assert sorted(r.amount for r in both.records) == [D("1.25"), D("2.50")]


def test_adjusted_history_counts_an_action_given_twice_once():
    """A provider listing one split (or dividend) under two ids: bars adjusted for splits were divided by 4 at a
    2-for-1, as the shares had been multiplied before the trading core took the second for the first."""
    from papertrader.trading.corporate import adjustment_factors

    split, dividend = Split("XYZ", date(2024, 3, 8), D(2)), Dividend("XYZ", date(2024, 3, 12), D("0.50"))
    closes = {("XYZ", date(2024, 3, 12)): D("50.00")}
    once = adjustment_factors(date(2024, 3, 4), [split, dividend], closes, "all", today=date(2024, 3, 13))
    assert once == (D("0.5") * D("0.99"), D(2))
    assert adjustment_factors(date(2024, 3, 4), [split, dividend, split, dividend], closes, "all",
                              today=date(2024, 3, 13)) == once


def test_adjusted_history_never_uses_an_action_the_market_has_not_reached():
    """A replay's bars are adjusted up to the market's day only: a split or dividend after it is not known yet
    (adjusting by it would tell a strategy the future)."""
    from papertrader.trading.corporate import adjust_bar, adjustment_factors

    actions = [Split("XYZ", date(2024, 3, 8), D(2)), Dividend("XYZ", date(2024, 3, 12), D("0.50"))]
    closes = {("XYZ", date(2024, 3, 12)): D("51.50")}
    bar = dict(open=D("100.00"), high=D("102.00"), low=D("99.00"), close=D("101.00"), volume=1_000_000)
    before_both = adjustment_factors(date(2024, 3, 4), actions, closes, "all", today=date(2024, 3, 7))
    assert adjust_bar(bar, before_both) is bar
    after_split = adjustment_factors(date(2024, 3, 4), actions, closes, "all", today=date(2024, 3, 11))
    assert adjust_bar(bar, after_split) == dict(open=D("50.0000"), high=D("51.0000"), low=D("49.5000"),
                                                close=D("50.5000"), volume=2_000_000)
    assert adjustment_factors(date(2024, 3, 4), actions, closes, "split", today=date(2024, 3, 13)) == (D("0.5"), D(2))
    assert adjustment_factors(date(2024, 3, 8), actions, closes, "split", today=date(2024, 3, 13)) == (1, 1)
