"""The trading core on scripted bars: every order type and time in force, fills, partial fills,
commissions, buying power, cancel and replace.  No reactor, no database."""

from decimal import Decimal

import pytest

from papertrader.errors import InsufficientFunds, InsufficientPosition, InvalidInput, OrderNotOpen, QuoteUnavailable
from papertrader.trading import amend
from papertrader.trading.commissions import Percent, PerOrder, PerShare
from papertrader.trading.events import EventKind
from papertrader.trading.fill_models import BarFillModel, IdealFillModel, bid_ask
from papertrader.trading.orders import OrderRequest, OrderType, Side, Status, TimeInForce
from papertrader.trading.pretrade import Rules, buying_power
from tests.trading_helpers import (
    MINUTE, NEXT_SESSION, NO_SLIP, SESSION, T0, D, at, bar, book, place, run, sessions_at)

IDEAL = Rules(fill_model=IdealFillModel())


def kinds(events):
    return [e.kind.value for e in events]


# --- market orders -------------------------------------------------------------


def test_market_order_fills_at_the_next_bars_open_plus_slippage():
    b = book()
    order = place(b, quantity="10")
    rules = Rules(fill_model=BarFillModel(half_spread_bps=D(2), impact_bps=D(10), volume_share=D("0.1")))
    after, orders, events = run(b, [order], (at(1), bar(100, 101, 99, 100.5, volume=1000)), rules=rules)
    fill = events[0].fill
    # 10 of the 100 shares the bar allows: 2 + 10 x 0.1 = 3 bps against the buyer.
    assert fill.price == D("100.0300")
    assert fill.model == "bar(half_spread_bps=2, impact_bps=10, volume_share=0.1)"
    assert orders[order.id].status is Status.FILLED
    assert after.cash == D("100000.00") - D("1000.30")
    assert after.positions["AAPL"].quantity == D(10)


def test_slippage_never_prices_a_fill_outside_the_bar():
    b = book()
    order = place(b, quantity="10")
    rules = Rules(fill_model=BarFillModel(half_spread_bps=D(500), impact_bps=D(0)))
    _, _, events = run(b, [order], (at(1), bar(100, 100.5, 99, 100)), rules=rules)
    assert events[0].fill.price == D("100.5")  # 5% slippage is cut at the bar's high


@pytest.mark.parametrize("price, bps, bid, ask", [
    ("10.00", "2", "9.99", "10.01"),  # 2 basis points of $10 is a fifth of a cent: a cent each side, not $10.00 both
    ("187.25", "2", "187.21", "187.29"),  # 187.2126 down, 187.2874 up, to the cent
    ("313.2527", "10", "312.93", "313.57"),
    ("0.5123", "2", "0.5121", "0.5125"),  # below $1: to the 1/100 of a cent
    ("1.00", "2", "0.9998", "1.01"),  # a bid below $1 is priced to 1/100 of a cent
    ("0.0001", "2", None, "0.0002"),  # no bid below the smallest tick
    ("50.00", "0", "50.00", "50.00"),  # no spread: the last price both sides
])
def test_the_bid_and_ask_shown_are_on_valid_ticks_either_side_of_the_last_price(price, bps, bid, ask):
    assert bid_ask(D(price), D(bps)) == (None if bid is None else D(bid), D(ask))


def test_ideal_model_fills_the_whole_order_at_the_close():
    b = book()
    order = place(b, quantity="50000", prices={"AAPL": D(1)})
    _, orders, events = run(b, [order], (at(1), bar(1, 1.2, 0.9, 1.1, volume=10)), rules=IDEAL)
    assert events[0].fill.price == D("1.1") and events[0].fill.quantity == D(50000)
    assert events[0].fill.model == "ideal"


def test_a_bar_that_began_before_the_order_arrived_gives_only_its_close():
    b = book()
    order = place(b, quantity="1", now=T0 + MINUTE / 2)  # arrived in the middle of the bar
    _, _, events = run(b, [order], (at(1), bar(90, 101, 89, 100)))
    assert events[0].fill.price == D("100")  # not the open of 90, which traded before it existed


def test_a_bar_that_ended_before_the_order_arrived_is_ignored():
    b = book()
    order = place(b, quantity="1", now=at(2))
    _, orders, events = run(b, [order], (at(2), bar(90, 101, 89, 100)))
    assert events == [] and orders[order.id].status is Status.NEW


def test_no_bar_no_fill():
    b = book()
    order = place(b, quantity="1")
    _, orders, events = run(b, [order], (at(1),))
    assert events == [] and orders[order.id].status is Status.NEW


def test_a_fill_is_dated_when_its_price_traded_at_the_open_or_by_the_end_of_the_step():
    """Daily bars: a market order placed overnight fills at the session's open, and says so (its fill, its
    event and the order's update time); a limit reached later in the day, a cls order and the ideal model
    (closes only) fill by the step's end, as does an order that arrived after the bar began."""
    day = SESSION.close - SESSION.open
    b = book()
    market_order = place(b, quantity="1", now=SESSION.open - MINUTE)
    limit = place(b, kind="limit", limit="95.00", quantity="1", now=SESSION.open - MINUTE)
    cls = place(b, tif="cls", quantity="1", now=SESSION.open - MINUTE)
    _, orders, events = run(b, [market_order, limit, cls], (SESSION.close, bar(100, 101, 94, 100, start=SESSION.open,
                                                                               length=day)))
    times = {e.order.id: (e.fill.time, e.time) for e in events}
    assert times[market_order.id] == (SESSION.open, SESSION.open)
    assert orders[market_order.id].updated == SESSION.open
    assert times[limit.id] == (SESSION.close, SESSION.close) and times[cls.id] == (SESSION.close, SESSION.close)
    late = place(b, quantity="1", now=SESSION.open + MINUTE)  # the day's bar began before it: its close
    _, _, events = run(b, [late], (SESSION.close, bar(100, 100, 100, 100, start=SESSION.open, length=day)))
    assert events[0].fill.price == D(100) and events[0].fill.time == SESSION.close
    early = place(b, quantity="1", now=SESSION.open - MINUTE)
    _, _, events = run(b, [early], (SESSION.close, bar(100, 100, 100, 100, start=SESSION.open, length=day)),
                       rules=IDEAL)
    assert events[0].fill.time == SESSION.close


def test_fills_at_the_open_come_before_fills_later_in_the_bar_whatever_order_the_orders_came_in():
    """A limit buy placed first and reached later in the day, a market sale of the whole position placed after it:
    the sale happened at the open, so it is booked first (its realized P&L against the shares held then), and the
    buy after it; their events and positions say so in that order (they said the buy came first)."""
    day = SESSION.close - SESSION.open
    b = book(AAPL=("10", "800.00"))
    buy = place(b, kind="limit", limit="95.00", quantity="5", now=SESSION.open - MINUTE)
    sell = place(b, side="sell", quantity="10", now=SESSION.open - MINUTE)
    assert buy.id < sell.id
    after, orders, events = run(b, [buy, sell], (SESSION.close, bar(100, 101, 94, 100, start=SESSION.open,
                                                                      length=day)))
    assert [(e.order.id, e.fill.time, e.fill.position_after) for e in events] == [
        (sell.id, SESSION.open, D(0)), (buy.id, SESSION.close, D(5))]
    assert events[0].fill.realized == D("1000.00") - D("800.00")
    assert after.positions["AAPL"].quantity == D(5) and after.positions["AAPL"].cost == D("475.00")


# --- limit orders --------------------------------------------------------------


def test_limit_buy_fills_only_if_the_bar_traded_through_the_limit():
    b = book()
    order = place(b, kind="limit", limit="99.00")
    # Touching the limit is not trading through it.
    _, orders, events = run(b, [order], (at(1), bar(100, 101, 99, 100)))
    assert events == []
    _, orders, events = run(b, [order], (at(1), bar(100, 101, 98.5, 100)))
    assert kinds(events) == ["fill"]
    assert events[0].fill.price == D("99.00")  # at the limit, not at the low


def test_limit_buy_marketable_at_the_open_fills_at_the_open_never_above_the_limit():
    b = book()
    order = place(b, kind="limit", limit="101.00")
    rules = Rules(fill_model=BarFillModel(half_spread_bps=D(200), impact_bps=D(0)))
    _, _, events = run(b, [order], (at(1), bar(100, 103, 99, 102)), rules=rules)
    assert events[0].fill.price == D("101.00")  # 2% over the open would be 102: capped at the limit
    _, _, events = run(b, [order], (at(1), bar(100, 103, 99, 102)))
    assert events[0].fill.price == D("100")


def test_limit_sell_fills_at_or_above_the_limit_within_the_bar():
    b = book(AAPL=("10", "900.00"))
    order = place(b, side="sell", kind="limit", limit="105.00")
    _, _, events = run(b, [order], (at(1), bar(100, 106, 99, 104)))
    fill = events[0].fill
    assert fill.price == D("105.00") and fill.realized == D("1050.00") - D("900.00")


def test_limit_order_waits_over_bars_until_the_price_comes():
    b = book()
    order = place(b, kind="limit", limit="95.00", tif="gtc")
    _, orders, events = run(b, [order], (at(1), bar(100, 101, 99, 100)), (at(2), bar(100, 100, 96, 97),
                                         ), (at(3), bar(97, 97, 94, 95)))
    assert kinds(events) == ["fill"] and events[0].time == at(3)


# --- stops ---------------------------------------------------------------------


def test_stop_buy_triggers_on_the_high_and_fills_at_the_stop():
    b = book()
    order = place(b, kind="stop", stop="102.00")
    _, orders, events = run(b, [order], (at(1), bar(100, 101, 99, 100)), (at(2), bar(100, 103, 100, 102.5)))
    assert kinds(events) == ["fill"] and events[0].fill.price == D("102.00")
    assert orders[order.id].triggered


def test_stop_sell_gapping_through_fills_at_the_open():
    b = book(AAPL=("10", "1000.00"))
    order = place(b, side="sell", kind="stop", stop="95.00")
    _, _, events = run(b, [order], (at(1), bar(90, 91, 88, 89)))
    assert events[0].fill.price == D("90")  # the open was already below the stop


def test_a_stop_at_or_past_the_last_price_is_refused_as_a_side_mixed_up():
    """As Alpaca: a sell stop at or above the market, or a buy stop at or below it, would trigger at once."""
    b = book(AAPL=("10", "1000.00"))  # the last price: 100.00
    for side, kind, more in (("sell", "stop", dict(stop="100.00")), ("sell", "stop_limit", dict(stop="101", limit="99")),
                             ("buy", "stop", dict(stop="100.00")), ("buy", "stop_limit", dict(stop="99", limit="101"))):
        with pytest.raises(InvalidInput, match=f"a {side} stop's stop price .* must be"):
            place(b, side=side, kind=kind, quantity="1", **more)
    assert place(b, side="sell", kind="stop", quantity="1", stop="99.99").stop_price == D("99.99")
    assert place(b, kind="stop", quantity="1", stop="100.01").stop_price == D("100.01")


def test_a_stop_the_price_has_passed_may_still_be_resized_but_not_moved_to_the_wrong_side():
    """The side check is for new stops: one that has triggered (a stop-limit waiting for its limit) or that the
    price has passed since keeps its stop when only its quantity changes."""
    b = book("100000.00")
    order = place(b, kind="stop_limit", stop="102.00", limit="102.50")
    _, orders, _ = run(b, [order], (at(1), bar(103, 104, 103, 104)))  # triggered at 103, waiting at 104
    waiting = orders[order.id]
    prices = {"AAPL": D(104)}
    _, resized, _ = amend.replace(waiting, amend.Changes(quantity=D(5), client_order_id="fewer"), b, [waiting],
                                  prices, at(2), sessions_at(at(2)), Rules())
    assert (resized.quantity, resized.stop_price, resized.triggered) == (D(5), D("102.00"), True)
    with pytest.raises(InvalidInput, match="a buy stop's stop price"):
        amend.replace(waiting, amend.Changes(stop_price=D("103.00"), client_order_id="moved"), b, [waiting],
                      prices, at(2), sessions_at(at(2)), Rules())


def test_stop_limit_waits_as_a_limit_when_the_trigger_price_is_past_its_limit():
    b = book()
    order = place(b, kind="stop_limit", stop="102.00", limit="102.50")
    _, orders, events = run(b, [order], (at(1), bar(103, 104, 103, 104)))
    assert events == [] and orders[order.id].triggered  # triggered at 103: above the limit
    _, orders, events = run(b, [orders[order.id]], (at(2), bar(103, 103, 102, 102.2)))
    assert kinds(events) == ["fill"] and events[0].fill.price == D("102.50")


def test_trailing_stop_sell_follows_a_rising_price_then_triggers():
    b = book(AAPL=("10", "1000.00"))
    order = place(b, side="sell", kind="trailing_stop", trail_price="2.00", prices={"AAPL": D(100)})
    assert order.watermark == D(100)
    bars = [(at(1), bar(100, 104, 100, 104)), (at(2), bar(104, 106, 104, 106, start=at(1))),
            (at(3), bar(105.5, 105.5, 103, 103.5, start=at(2)))]
    _, orders, events = run(b, [order], *bars)
    assert orders[order.id].watermark == D(106)
    assert kinds(events) == ["fill"] and events[0].time == at(3)
    assert events[0].fill.price == D("104.00")  # 106 - 2


def test_trailing_stop_buy_by_percent_follows_a_falling_price():
    b = book()
    order = place(b, kind="trailing_stop", trail_percent="5", prices={"AAPL": D(100)})
    bars = [(at(1), bar(100, 100, 90, 90)), (at(2), bar(90, 95, 90, 94, start=at(1)))]
    _, orders, events = run(b, [order], *bars)
    assert kinds(events) == ["fill"] and events[0].fill.price == D("94.50")  # 90 x 1.05


def test_a_trailing_stops_level_is_on_a_tick_and_never_tighter_than_asked():
    from papertrader.trading.fill_models import trail_level

    b = book(AAPL=("10", "1000.00"))
    sell = place(b, side="sell", kind="trailing_stop", trail_percent="1.5", prices={"AAPL": D("73.6706")})
    buy = place(b, kind="trailing_stop", trail_percent="1.5", prices={"AAPL": D("73.6706")})
    # 73.6706 x 0.985 = 72.565541 and x 1.015 = 74.775659: a sell's stop goes down to the cent, a buy's up.
    assert trail_level(sell, sell.watermark) == D("72.56")
    assert trail_level(buy, buy.watermark) == D("74.78")
    # Below $1 the tick is 0.0001; a level rounding up across $1 is in cents.
    assert trail_level(sell.but(trail_percent=D(10)), D("0.87654")) == D("0.7888")
    assert trail_level(buy.but(trail_percent=None, trail_price=D("0.0001")), D("0.99985")) == D("1.00")
    # The stop triggers at its tick: a low of 72.561 does not reach 72.56; a low of 72.56 does.
    _, orders, events = run(b, [sell], (at(1), bar("73.6706", "73.6706", "72.561", "72.60")))
    assert events == [] and orders[sell.id].open
    _, _, events = run(b, [sell], (at(1), bar("73.6706", "73.6706", "72.56", "72.60")))
    assert kinds(events) == ["fill"] and events[0].fill.price == D("72.56")


# --- liquidity, partial fills, time in force --------------------------------------


def test_volume_cap_fills_over_several_bars():
    b = book()
    order = place(b, quantity="250", tif="gtc")
    bars = [(at(i + 1), bar(100, 100, 100, 100, volume=1000, start=at(i))) for i in range(3)]
    _, orders, events = run(b, [order], *bars)
    assert kinds(events) == ["partial_fill", "partial_fill", "fill"]
    assert [e.fill.quantity for e in events] == [D(100), D(100), D(50)]
    assert orders[order.id].filled_quantity == D(250) and orders[order.id].status is Status.FILLED


def test_earlier_orders_take_the_bars_liquidity_first():
    b = book()
    first = place(b, quantity="80")
    second = place(b, quantity="80", open_orders=[first])
    _, orders, events = run(b, [second, first], (at(1), bar(100, 100, 100, 100, volume=1000)))
    assert [(e.order.id, e.fill.quantity) for e in events] == [(first.id, D(80)), (second.id, D(20))]


def test_fok_fills_whole_or_not_at_all():
    b = book()
    order = place(b, quantity="150", tif="fok")
    _, orders, events = run(b, [order], (at(1), bar(100, 100, 100, 100, volume=1000)))
    assert kinds(events) == ["canceled"] and orders[order.id].filled_quantity == 0
    order = place(b, quantity="100", tif="fok")
    _, orders, events = run(b, [order], (at(1), bar(100, 100, 100, 100, volume=1000)))
    assert kinds(events) == ["fill"]


def test_ioc_keeps_what_filled_and_cancels_the_rest():
    b = book()
    order = place(b, quantity="150", tif="ioc")
    _, orders, events = run(b, [order], (at(1), bar(100, 100, 100, 100, volume=1000)))
    assert kinds(events) == ["partial_fill", "canceled"]
    assert orders[order.id].status is Status.CANCELED and orders[order.id].filled_quantity == D(100)


def test_ioc_limit_that_cannot_fill_is_canceled_after_its_first_bar():
    b = book()
    order = place(b, kind="limit", limit="90.00", tif="ioc")
    _, orders, events = run(b, [order], (at(1), bar(100, 101, 99, 100)))
    assert kinds(events) == ["canceled"]


def test_day_order_expires_at_the_close_of_its_session():
    b = book()
    order = place(b, kind="limit", limit="50.00")
    assert order.expires == SESSION.close
    _, orders, events = run(b, [order], (SESSION.close - MINUTE, bar(100, 101, 99, 100)),
                            (SESSION.close, bar(100, 101, 99, 100, start=SESSION.close - MINUTE)))
    assert kinds(events) == ["expired"] and orders[order.id].status is Status.EXPIRED


def test_day_order_placed_after_the_close_is_for_the_next_session():
    b = book()
    order = place(b, kind="limit", limit="50.00", now=SESSION.close)
    assert order.expires > SESSION.close


def test_opg_fills_at_the_opening_price_and_expires_if_it_missed_the_open():
    b = book()
    order = place(b, tif="opg", now=SESSION.open - MINUTE * 30)
    assert order.session_open == SESSION.open
    _, orders, events = run(b, [order], (at(1), bar(101, 103, 100, 102)))
    assert kinds(events) == ["fill"] and events[0].fill.price == D("101")  # the open, no slippage
    limit_on_open = place(b, kind="limit", limit="100.00", tif="opg", now=SESSION.open - MINUTE)
    _, orders, events = run(b, [limit_on_open], (at(1), bar(101, 103, 99, 102)), (at(2), bar(99, 99, 98, 98,
                                                                                              start=at(1))))
    assert kinds(events) == ["expired"]  # the open (101) was above its limit; later prices do not count


def test_opg_waits_for_its_sessions_first_bar_which_comes_after_the_open():
    """A live source's first minute of the session is published a little after the open: the steps before it have
    no bar, and must not expire the opg order (it expired at every first update after the open); the bar then
    fills it at the open; with no bar all day it expires at the close."""
    b = book()
    order = place(b, tif="opg", now=SESSION.open - MINUTE * 5)
    _, orders, events = run(b, [order], (SESSION.open + MINUTE / 6,))  # 9:30:10: no bar yet
    assert events == [] and orders[order.id].status is Status.NEW
    _, orders, events = run(b, [order], (SESSION.open + MINUTE / 6,),
                            (at(1) + MINUTE / 6, bar(101, 103, 100, 102, start=SESSION.open)))
    assert kinds(events) == ["fill"] and events[0].fill.price == D("101")
    _, orders, events = run(b, [order], (SESSION.close,))
    assert kinds(events) == ["expired"]


def test_opg_placed_at_the_very_open_trades_at_that_open_as_a_market_order_placed_then_does():
    """A replay's market time waits at each session's open between updates: an order placed then is before
    any of the session's trading."""
    b = book()
    order = place(b, tif="opg", now=SESSION.open)
    assert order.session_open == SESSION.open
    day = bar(101, 103, 99, 102, start=SESSION.open, length=SESSION.close - SESSION.open)
    _, orders, events = run(b, [order], (SESSION.close, day))
    assert kinds(events) == ["fill"] and events[0].fill.price == D("101")
    assert place(b, tif="opg", now=SESSION.open + MINUTE).session_open > SESSION.close  # once it has begun: the next


def test_cls_fills_at_the_closing_price():
    b = book()
    order = place(b, tif="cls")
    last = SESSION.close - MINUTE
    _, orders, events = run(b, [order], (last, bar(100, 100, 100, 100, start=last - MINUTE)),
                            (SESSION.close, bar(100, 103, 99, 102.25, start=last)))
    assert kinds(events) == ["fill"] and events[0].fill.price == D("102.25")


def test_a_cls_limit_order_the_close_did_not_reach_says_so_when_it_expires():
    """An unfilled at-the-close limit order expired "a cls order trades only at its session's close", which did
    not say what happened: the close did not reach its limit.  It says so, with the close and the limit; an order
    whose close came with no price of its symbol says that instead."""
    b = book(AAPL=("100", "90.00"))
    last = SESSION.close - MINUTE
    close = (SESSION.close, bar(100, 103, 99, 102.25, start=last))
    buy = place(b, kind="limit", limit="100.00", tif="cls", quantity="1", now=SESSION.open)
    sell = place(b, side="sell", kind="limit", limit="105.00", tif="cls", quantity="1", now=SESSION.open)
    _, orders, events = run(b, [buy, sell], close)
    assert kinds(events) == ["expired", "expired"]
    assert orders[buy.id].reason == ("its limit was not reached at its session's close: AAPL closed at 102.25,"
                                     " above its limit of 100.00 (a cls order trades only at the close)")
    assert orders[sell.id].reason == ("its limit was not reached at its session's close: AAPL closed at 102.25,"
                                      " below its limit of 105.00 (a cls order trades only at the close)")
    assert events[0].reason == orders[buy.id].reason
    # No price of AAPL at its close (time skipped past it: the next bar is the next session's).
    order = place(b, kind="limit", limit="100.00", tif="cls", quantity="1", now=SESSION.open)
    later = bar(100, 101, 40, 100, start=NEXT_SESSION.open, length=NEXT_SESSION.close - NEXT_SESSION.open)
    _, orders, events = run(b, [order], (NEXT_SESSION.close, later))
    assert kinds(events) == ["expired"]
    assert orders[order.id].reason == ("no price of AAPL came at its session's close, and a cls order trades only"
                                       " at the close")


def test_daily_bars_a_day_order_can_fill_in_its_session_then_expires():
    b = book()
    order = place(b, kind="limit", limit="95.00", now=SESSION.open)
    day = bar(100, 101, 96, 100, start=SESSION.open, length=SESSION.close - SESSION.open)
    _, orders, events = run(b, [order], (SESSION.close, day))
    assert kinds(events) == ["expired"]
    day = bar(100, 101, 94, 100, start=SESSION.open, length=SESSION.close - SESSION.open)
    _, orders, events = run(b, [order], (SESSION.close, day))
    assert kinds(events) == ["fill"]


def test_a_bar_of_a_later_session_never_fills_an_order_whose_time_in_force_ended():
    """Time that skipped ahead (a replay moved forward, a master down over a close): the next bar comes from a
    later session; a day order, an opg or a cls order of the session gone by expires unfilled."""
    b = book()
    later = bar(100, 101, 40, 100, start=NEXT_SESSION.open, length=NEXT_SESSION.close - NEXT_SESSION.open)
    for tif in ("day", "opg", "cls"):
        order = place(b, kind="limit", limit="50.00", tif=tif, now=SESSION.open - MINUTE * 5)
        _, orders, events = run(b, [order], (NEXT_SESSION.close, later))  # its low (40) would reach the limit
        assert kinds(events) == ["expired"] and orders[order.id].filled_quantity == 0, tif
    gtc = place(b, kind="limit", limit="50.00", tif="gtc")
    _, orders, events = run(b, [gtc], (NEXT_SESSION.close, later))
    assert kinds(events) == ["fill"]  # a gtc order has no session: it fills


# --- notional, cash at the fill -----------------------------------------------------


def test_notional_order_fixes_its_quantity_at_the_fill():
    b = book()
    order = place(b, quantity=None, notional="500.00")
    assert order.quantity is None
    after, orders, events = run(b, [order], (at(1), bar(300, 300, 300, 300)))
    assert orders[order.id].quantity == D("1.666666")  # 500 / 300, six decimals, down
    assert events[0].fill.amount == D("-500.00")
    assert after.cash == D("99500.00")


def test_a_buy_the_cash_no_longer_pays_fills_what_it_can():
    b = book("1000.00")
    order = place(b, quantity="9", prices={"AAPL": D(100)}, rules=Rules(market_buy_buffer=D(0)))
    after, orders, events = run(b, [order], (at(1), bar(200, 200, 200, 200)))
    # The most the cash pays: 5.000025 x 200 = 1000.005, which rounds (half-even) to 1000.00.
    assert kinds(events) == ["partial_fill"] and events[0].fill.quantity == D("5.000025")
    assert after.cash == D("0.00")
    after, orders, events = run(after, [orders[order.id]], (at(2), bar(200, 200, 200, 200, start=at(1))))
    assert kinds(events) == ["canceled"] and events[0].reason_code == "insufficient_funds"


# --- commissions ------------------------------------------------------------------


def test_per_share_commission_minimum_is_paid_once_over_partial_fills():
    rules = Rules(fill_model=NO_SLIP.fill_model,
                  commission_model=PerShare(D("0.005"), minimum=D("1.00"), maximum=D("5.00")))
    b = book()
    order = place(b, quantity="300", tif="gtc", rules=rules)
    bars = [(at(i + 1), bar(10, 10, 10, 10, volume=1000, start=at(i))) for i in range(3)]
    _, orders, events = run(b, [order], *bars, rules=rules)
    # 100 shares per bar: 0.50 -> raised to the 1.00 minimum; then 1.00 (200 x 0.005); then 1.50.
    assert [e.fill.commission for e in events] == [D("1.00"), D("0.00"), D("0.50")]
    assert orders[order.id].commission == D("1.50")


def test_per_share_commission_maximum():
    model = PerShare(D("0.005"), minimum=D("1.00"), maximum=D("5.00"))
    assert model.total(D(100000), D(1000000)) == D("5.00")


def test_percent_and_per_order_commissions():
    assert Percent(D("0.1")).total(D(10), D("1234.56")) == D("1.23")
    model = PerOrder(D("4.95"))
    assert model.charge(D("0.00"), D(1), D(100)) == D("4.95")
    assert model.charge(D("4.95"), D(2), D(200)) == D("0.00")


def test_commission_is_part_of_the_amount_and_of_the_positions_cost():
    rules = Rules(fill_model=NO_SLIP.fill_model, commission_model=PerOrder(D("1.00")))
    b = book()
    order = place(b, quantity="2", rules=rules)
    after, _, events = run(b, [order], (at(1), bar(50, 50, 50, 50)), rules=rules)
    assert events[0].fill.amount == D("-101.00")
    assert after.positions["AAPL"].cost == D("101.00")


# --- pre-trade checks: buying power counts open orders ---------------------------------


def test_buying_power_counts_open_buys_at_their_limit():
    b = book("10000.00")
    first = place(b, kind="limit", limit="60.00", quantity="100")
    assert buying_power(b, [first], {"AAPL": D(100)}, Rules()) == D("4000.00")
    with pytest.raises(InsufficientFunds, match="after your open orders"):
        place(b, kind="limit", limit="60.00", quantity="100", open_orders=[first])


def test_an_open_buy_reserves_what_is_left_of_it_under_the_rules_in_force():
    """Reservations that do not depend on the price are remembered per order (orders are immutable): the same
    order's part-filled successor, or other rules, are counted afresh."""
    from dataclasses import replace

    b = book("10000.00")
    first = place(b, kind="limit", limit="60.00", quantity="100")
    prices = {"AAPL": D(100)}
    assert buying_power(b, [first], prices, Rules()) == D("4000.00")
    part_filled = replace(first, filled_quantity=D(40), filled_value=D("2400.00"), status=Status.PARTIALLY_FILLED)
    assert buying_power(b, [part_filled], prices, Rules()) == D("6400.00")
    assert buying_power(b, [first], prices, Rules(commission_model=PerOrder(D("5.00")))) == D("3995.00")
    assert buying_power(b, [first], prices, Rules(commission_model=PerOrder(D("5.00")))) == D("3995.00")
    assert buying_power(b, [first], prices, Rules()) == D("4000.00")


def test_a_market_buy_reserves_the_last_price_plus_the_buffer():
    b = book("10000.00")
    with pytest.raises(InsufficientFunds):
        place(b, quantity="96", prices={"AAPL": D(100)})  # 96 x 105 > 10000
    place(b, quantity="95", prices={"AAPL": D(100)})


def test_a_sell_reserves_its_shares():
    b = book(AAPL=("10", "1000.00"))
    first = place(b, side="sell", kind="limit", limit="120.00", quantity="6")
    with pytest.raises(InsufficientPosition, match="held for your open sell orders"):
        place(b, side="sell", quantity="5", open_orders=[first])
    place(b, side="sell", quantity="4", open_orders=[first])


def test_no_short_selling():
    with pytest.raises(InsufficientPosition, match="short selling is not allowed"):
        place(book(), side="sell", quantity="1")


def test_a_refused_notional_sale_says_the_shares_it_comes_to():
    """'selling 5000.00 of AAPL but 10 are available' left a person to guess which number was dollars and which
    shares: the sale names the shares its amount comes to at the last price."""
    held = book(AAPL=("10", "1000.00"))
    with pytest.raises(InsufficientPosition) as refused:
        place(held, side="sell", notional="5000", quantity=None, prices={"AAPL": D("187.25")})
    assert str(refused.value) == ("insufficient position: selling 5000.00 of AAPL (about 26.70227 shares at 187.25)"
                                  " but 10 shares are available; short selling is not allowed")
    with pytest.raises(InsufficientPosition, match="but 1 share is available"):
        place(book(AAPL=("1", "100.00")), side="sell", quantity="2")


def test_a_sale_just_after_a_buy_is_told_the_buy_has_not_filled_yet():
    """A cash account sells only shares it holds: a sale placed before its buy filled is refused, saying why (the
    person has just bought, and read only '0 are available')."""
    b = book()
    bought = place(b, quantity="10")
    with pytest.raises(InsufficientPosition) as refused:
        place(b, side="sell", quantity="3", open_orders=[bought])
    assert str(refused.value) == ("insufficient position: selling 3 AAPL but 0 shares are available (your open buy of 10 AAPL"
                                  " has not filled yet); short selling is not allowed")
    held = book(AAPL=("10", "1000.00"))
    selling = place(held, side="sell", kind="limit", limit="120.00", quantity="6")
    buys = [place(held, quantity="5"), place(held, notional="100", quantity=None)]
    with pytest.raises(InsufficientPosition) as refused:
        place(held, side="sell", quantity="5", open_orders=[selling, *buys])
    assert "(6 are held for your open sell orders; your open buys of AAPL have not filled yet)" in str(refused.value)
    one = place(held, side="sell", kind="limit", limit="120.00", quantity="1")
    with pytest.raises(InsufficientPosition) as refused:
        place(held, side="sell", quantity="10", open_orders=[one])
    assert "but 9 shares are available (1 is held for your open sell orders)" in str(refused.value)  # ('1 are')


@pytest.mark.parametrize("fields, message", [
    (dict(kind="limit"), "needs limit price"),
    (dict(kind="market", limit="10.00"), "takes no limit price"),
    (dict(kind="stop_limit", stop="10.00"), "needs limit price"),
    (dict(kind="trailing_stop"), "trail price or a trail percent"),
    (dict(kind="trailing_stop", trail_price="1.00", trail_percent="2"), "trail price or a trail percent"),
    (dict(kind="trailing_stop", trail_percent="100"), "between 0 and 100"),
    (dict(kind="stop", stop="10.00", tif="ioc"), "takes time in force"),
    (dict(kind="limit", limit="10.001"), "not a valid tick"),
    (dict(kind="limit", limit="0.00001"), "not a valid tick"),
    (dict(kind="limit", limit="-1"), "positive price"),
    (dict(quantity=None, notional="0.50"), "notional must be"),
    (dict(quantity=None, notional="100.00", kind="limit", limit="10.00"), "market order"),
    (dict(quantity="0.0000001"), "6 decimals"),
    (dict(quantity="0.000001"), "below one cent"),
])
def test_malformed_orders_are_refused_with_a_reason(fields, message):
    with pytest.raises(InvalidInput, match=message):
        place(book(), **fields)


def test_sub_dollar_limit_prices_may_have_four_decimals():
    place(book(), kind="limit", limit="0.1234", quantity="100")


def test_a_market_order_needs_a_price_to_reserve_against():
    with pytest.raises(QuoteUnavailable):
        place(book(), prices={})
    place(book(), kind="limit", limit="10.00", prices={})  # a limit reserves its own price


def test_open_order_ceiling():
    b = book()
    rules = Rules(max_open_orders=2)
    first = place(b, kind="limit", limit="1.00", rules=rules)
    second = place(b, kind="limit", limit="1.00", open_orders=[first], rules=rules)
    with pytest.raises(InvalidInput, match="2 open orders"):
        place(b, kind="limit", limit="1.00", open_orders=[first, second], rules=rules)


# --- cancel and replace -----------------------------------------------------------


def test_cancel_ends_what_is_left_and_keeps_what_filled():
    b = book()
    order = place(b, quantity="250", tif="gtc")
    _, orders, _ = run(b, [order], (at(1), bar(100, 100, 100, 100, volume=1000)))
    canceled, event = amend.cancel(orders[order.id], at(2))
    assert canceled.status is Status.CANCELED and canceled.filled_quantity == D(100)
    assert event.kind is EventKind.CANCELED
    with pytest.raises(OrderNotOpen, match="already canceled; 100 filled at an average 100.00"):
        amend.cancel(canceled, at(3))


def test_replace_frees_the_old_reservation_and_links_the_orders():
    b = book("10000.00")
    old = place(b, kind="limit", limit="90.00", quantity="100")
    changes = amend.Changes(limit_price=D("95.00"), client_order_id="new-one")
    ended, new, events = amend.replace(old, changes, b, [old], {"AAPL": D(100)}, at(1), sessions_at(at(1)),
                                       Rules())
    assert ended.status is Status.REPLACED and kinds(events) == ["replaced"]
    assert new.replaces == old.id and new.limit_price == D("95.00") and new.quantity == D(100)
    with pytest.raises(InsufficientFunds):
        amend.replace(old, amend.Changes(quantity=D(200), client_order_id="x"), b, [old], {"AAPL": D(100)},
                      at(1), sessions_at(at(1)), Rules())


def test_a_notional_buy_never_spends_more_than_its_notional_with_slippage():
    b = book()
    order = place(b, quantity=None, notional="500.00")
    rules = Rules(fill_model=BarFillModel(half_spread_bps=D(20), impact_bps=D(100), volume_share=D("0.1")))
    _, orders, events = run(b, [order], (at(1), bar(300, 310, 290, 300, volume=100)), rules=rules)
    fill = events[0].fill
    assert fill.price > D(300) and -fill.amount <= D("500.00")
    assert orders[order.id].quantity == fill.quantity  # the whole of it fitted in the bar's liquidity


@pytest.mark.parametrize("changes, refused", [
    (dict(quantity=Decimal("0.5")), False),  # a market day order
    (dict(quantity=Decimal("2.5"), type=OrderType.LIMIT, limit_price=Decimal("10")), False),
    (dict(quantity=Decimal("2.5"), type=OrderType.STOP, stop_price=Decimal("10")), False),
    (dict(quantity=Decimal("2.5"), time_in_force=TimeInForce.GTC), True),
    (dict(quantity=Decimal("2.5"), type=OrderType.LIMIT, limit_price=Decimal("10"), time_in_force=TimeInForce.GTC),
     True),
    (dict(quantity=Decimal("0.5"), time_in_force=TimeInForce.OPG), True),
    (dict(quantity=Decimal("0.5"), type=OrderType.TRAILING_STOP, trail_percent=Decimal("5")), True),
    (dict(quantity=Decimal("3"), type=OrderType.TRAILING_STOP, trail_percent=Decimal("5"),
          time_in_force=TimeInForce.GTC), False),  # whole shares: any
])
def test_a_fractional_quantity_is_a_day_order_as_at_alpaca(changes, refused):
    """Alpaca takes fractional quantities in day orders only (market, limit, stop, stop limit): a strategy tested
    here with a fractional GTC order was refused there."""
    from papertrader.trading.pretrade import check_shape

    request = OrderRequest(account_id=1, client_order_id="c", symbol="AAPL", side=Side.SELL, **changes)
    if refused:
        with pytest.raises(InvalidInput, match="a fractional quantity takes time in force 'day'"):
            check_shape(request)
    else:
        check_shape(request)


def test_an_order_a_split_made_fractional_can_still_be_replaced_but_not_made_another_fractional_order():
    """A split makes a GTC order's quantity fractional (101 shares at a 3-for-2: 151.5); replacing only its price
    was refused by the rule that a fractional quantity is a day order (found by review)."""
    b = book("100000.00")
    old = place(b, kind="limit", limit="60.00", quantity="101", tif="gtc").but(quantity=D("151.5"))
    changes = amend.Changes(limit_price=D("61.00"), client_order_id="new-price")
    _, new, _ = amend.replace(old, changes, b, [old], {"AAPL": D(100)}, at(1), sessions_at(at(1)), Rules())
    assert (new.quantity, new.limit_price, new.time_in_force) == (D("151.5"), D("61.00"), TimeInForce.GTC)
    with pytest.raises(InvalidInput, match="a fractional quantity takes time in force 'day'"):
        amend.replace(old, amend.Changes(quantity=D("10.5"), client_order_id="x"), b, [old], {"AAPL": D(100)},
                      at(1), sessions_at(at(1)), Rules())
    day = place(b, kind="limit", limit="60.00", quantity="2.500000")  # (as a client's quantity comes: 6 decimals)
    # The refusal says how to protect it for longer: the whole shares, and the fraction with 'day'.
    with pytest.raises(InvalidInput, match="for a lasting order, place it for the 2 whole shares and the 0.5 left"
                                           " with time in force 'day'"):
        amend.replace(day, amend.Changes(time_in_force=TimeInForce.GTC, client_order_id="y"), b, [day],
                      {"AAPL": D(100)}, at(1), sessions_at(at(1)), Rules())


def test_an_order_is_made_and_copied_as_its_dataclass_would_make_it():
    """Order's own __init__ and ``but`` (faster than the frozen dataclass's: orders.py) give what the dataclass's
    generated __init__ and ``dataclasses.replace`` give: the same fields, defaults, refusals and frozenness."""
    import dataclasses

    from papertrader.trading.orders import Order

    Plain = dataclasses.make_dataclass(
        "Plain", [(f.name, f.type, f) if f.default is not dataclasses.MISSING else (f.name, f.type)
                  for f in dataclasses.fields(Order)], frozen=True)
    given = dict(id=7, account_id=3, client_order_id="c", symbol="AAPL", side=Side.BUY, type=OrderType.LIMIT,
                 time_in_force=TimeInForce.GTC, status=Status.NEW, created=T0)
    order, plain = Order(**given), Plain(**given)
    assert dataclasses.astuple(order) == dataclasses.astuple(plain)
    positional = Order(*given.values(), D("2"))
    assert positional == order.but(quantity=D("2")) and positional.quantity == D("2")
    changes = dict(quantity=D("1.5"), uuid="u", filled_quantity=D("0.5"), submitted=T0)
    assert dataclasses.astuple(order.but(**changes)) == dataclasses.astuple(dataclasses.replace(plain, **changes))
    assert order.but(**changes) == dataclasses.replace(order, **changes)
    assert order.but() == order and order.but() is not order and order.id == 7 and order.quantity is None
    with pytest.raises(TypeError):
        Order(**dict(given, colour="red"))
    with pytest.raises(TypeError):
        Order(id=1)
    with pytest.raises(TypeError):
        order.but(colour="red")
    with pytest.raises(dataclasses.FrozenInstanceError):
        order.but(id=8).id = 9
