"""Bracket, OCO and OTO orders in the trading core (papertrader/trading/contingent.py): exits held until the
entry fills, one exit cancelling the other, the pessimistic choice when a bar reaches both, reservations
counted once.  No reactor, no database."""

import dataclasses
from datetime import timedelta

import pytest

from papertrader.errors import InsufficientPosition, InvalidInput, OrderNotOpen
from papertrader.trading import amend, contingent, corporate
from papertrader.trading.fill_models import BarFillModel
from papertrader.trading.orders import Leg, OrderClass, OrderRequest, OrderType, Side, Status, TimeInForce
from papertrader.trading.pretrade import Rules, accept, available_shares
from tests.trading_helpers import NO_SLIP, SESSION, T0, D, at, bar, book, run, sessions_at

#: At most a tenth of a bar's volume: orders fill in parts.
CAPPED = Rules(fill_model=BarFillModel(half_spread_bps=D(0), impact_bps=D(0), volume_share=D("0.1")))
_ids = iter(range(1, 10**9))


def bracket(b, order_class="bracket", side="buy", quantity="10", kind="market", tif="gtc", open_orders=(),
            last="100.00", **prices):
    """Accept a bracket, OCO or OTO order and give its parts ids as the store would: [first part, *exits]."""
    request = OrderRequest(
        account_id=b.account_id, client_order_id=f"c{next(_ids)}", symbol="AAPL", side=Side(side),
        type=OrderType(kind), time_in_force=TimeInForce(tif), quantity=D(quantity),
        limit_price=D(prices["limit"]) if "limit" in prices else None,
        stop_price=D(prices["stop"]) if "stop" in prices else None, order_class=OrderClass(order_class),
        take_profit=D(prices["take_profit"]) if "take_profit" in prices else None,
        stop_loss=D(prices["stop_loss"]) if "stop_loss" in prices else None,
        stop_loss_limit=D(prices["stop_loss_limit"]) if "stop_loss_limit" in prices else None)
    first = accept(request, b, list(open_orders), {"AAPL": D(last)}, T0, sessions_at(T0), NO_SLIP)
    first = first.but(id=next(_ids))
    exits = [leg.but(id=next(_ids), parent_id=first.id)
             for leg in contingent.exits(first, request, [f"x{next(_ids)}", f"x{next(_ids)}"])]
    return [first, *exits]


def test_a_brackets_exits_are_held_until_the_entry_fills_then_open_from_the_next_bar():
    b = book()
    entry, take, stop = bracket(b, take_profit="110.00", stop_loss="95.00")
    assert (take.leg, take.side, take.type, take.limit_price) == (Leg.TAKE_PROFIT, Side.SELL, OrderType.LIMIT,
                                                                   D("110.00"))
    assert (stop.leg, stop.type, stop.stop_price) == (Leg.STOP_LOSS, OrderType.STOP, D("95.00"))
    assert take.status is stop.status is Status.HELD and not take.open
    # The entry fills at the bar's open; the bar's high reaches the take-profit, but after or before the
    # fill a bar does not tell: the exits open now, and trade from the next bar on.
    after, orders, events = run(b, [entry, take, stop], (at(1), bar(100, 112, 99, 101)))
    assert orders[entry.id].status is Status.FILLED
    assert orders[take.id].status is orders[stop.id].status is Status.NEW
    assert orders[take.id].quantity == orders[stop.id].quantity == D(10)
    assert [(e.kind.value, e.order.id) for e in events] == [("fill", entry.id), ("accepted", take.id),
                                                            ("accepted", stop.id)]
    after, orders, events = run(after, orders.values(), (at(2), bar(104, 111, 103, 110)))
    assert orders[take.id].status is Status.FILLED and events[0].fill.price == D("110.00")
    assert orders[stop.id].status is Status.CANCELED
    assert orders[stop.id].reason == "the other exit filled"
    assert "AAPL" not in after.positions
    assert after.cash == D("100000.00") - D("1000.00") + D("1100.00")


def test_a_bar_that_reaches_both_exits_fills_the_stop_loss():
    b = book(AAPL=("10", "1000.00"))
    take, stop = bracket(b, "oco", side="sell", kind="limit", take_profit="110.00", stop_loss="95.00")
    after, orders, events = run(b, [take, stop], (at(1), bar(100, 111, 94, 100)))
    assert orders[stop.id].status is Status.FILLED and orders[take.id].status is Status.CANCELED
    assert [e.fill.price for e in events if e.fill] == [D("95.00")]
    assert "AAPL" not in after.positions


def test_a_gap_through_the_take_profit_at_the_open_fills_it_before_a_later_fall_to_the_stop():
    b = book(AAPL=("10", "1000.00"))
    take, stop = bracket(b, "oco", side="sell", kind="limit", take_profit="110.00", stop_loss="95.00")
    _, orders, events = run(b, [take, stop], (at(1), bar(112, 113, 90, 91)))
    assert orders[take.id].status is Status.FILLED and orders[stop.id].status is Status.CANCELED
    assert [e.fill.price for e in events if e.fill] == [D("112")]


def test_an_entry_that_ends_unfilled_cancels_its_exits_and_one_that_ends_part_filled_opens_them_for_that_part():
    b = book()
    entry, take, stop = bracket(b, kind="limit", tif="day", limit="90.00", take_profit="110.00", stop_loss="85.00")
    _, orders, events = run(b, [entry, take, stop], (SESSION.close, bar(100, 101, 99, 100, start=SESSION.close
                                                                          - timedelta(minutes=1))))
    assert orders[entry.id].status is Status.EXPIRED
    assert orders[take.id].status is orders[stop.id].status is Status.CANCELED
    assert orders[take.id].reason == "its entry ended unfilled (expired)"

    entry, take, stop = bracket(b, quantity="100", kind="limit", tif="gtc", limit="100.00", take_profit="110.00",
                                stop_loss="90.00")
    after, orders, _ = run(b, [entry, take, stop], (at(1), bar(100, 101, 99, 100, volume=300)), rules=CAPPED)
    assert orders[entry.id].filled_quantity == D(30) and orders[entry.id].status is Status.PARTIALLY_FILLED
    assert orders[take.id].status is Status.HELD
    entry_canceled, _ = amend.cancel(orders[entry.id], at(2))
    opened = contingent.react(orders[entry.id], entry_canceled, [orders[take.id], orders[stop.id]], at(2))
    assert [(o.status, o.quantity) for o, _ in opened] == [(Status.NEW, D(30)), (Status.NEW, D(30))]


def test_a_day_brackets_exits_opened_after_its_session_closed_expire_at_once():
    """A day entry filled by a whole session's bar (a replay of whole days) opens its exits at that session's
    close: they showed `new` past their `expires_at`, holding the position's shares (a sale of them was refused)
    until the next step expired them, unfilled, a day after their `expires_at`."""
    b = book()
    entry, take, stop = bracket(b, tif="day", take_profit="110.00", stop_loss="95.00")
    whole_day = bar(100, 101, 99, 100, start=SESSION.open, length=SESSION.close - SESSION.open)
    after, orders, events = run(b, [entry, take, stop], (SESSION.close, whole_day))
    assert orders[entry.id].status is Status.FILLED
    for leg in (take, stop):
        assert orders[leg.id].status is Status.EXPIRED and orders[leg.id].quantity == D(10)
        assert orders[leg.id].updated == orders[leg.id].expires == SESSION.close
    assert [(e.kind.value, e.order.id) for e in events] == [
        ("fill", entry.id), ("accepted", take.id), ("expired", take.id), ("accepted", stop.id),
        ("expired", stop.id)]
    assert available_shares(after, [o for o in orders.values() if o.open], "AAPL", {"AAPL": D(100)}) == D(10)

    # filled before the close (an intraday step), they open and trade until it
    entry, take, stop = bracket(b, tif="day", take_profit="110.00", stop_loss="95.00")
    _, orders, _ = run(b, [entry, take, stop], (at(1), bar(100, 101, 99, 100)))
    assert orders[take.id].status is orders[stop.id].status is Status.NEW


def test_an_entry_part_filled_keeps_its_shares_for_its_exits():
    """Its exits are held (they reserve nothing) while the entry lives, but they will open for what it
    filled: no other sale may take those shares meanwhile, or the exits would sell what is not there."""
    b = book()
    entry, take, stop = bracket(b, quantity="100", kind="limit", tif="gtc", limit="100.00", take_profit="110.00",
                                stop_loss="90.00")
    after, orders, _ = run(b, [entry, take, stop], (at(1), bar(100, 101, 99, 100, volume=300)), rules=CAPPED)
    live = [orders[entry.id], orders[take.id], orders[stop.id]]
    assert after.quantity("AAPL") == D(30) and available_shares(after, live, "AAPL", {"AAPL": D(100)}) == 0
    with pytest.raises(InsufficientPosition, match="but 0 shares are available"):
        bracket(after, "oco", side="sell", quantity="30", kind="limit", take_profit="110.00", stop_loss="95.00",
                open_orders=live)


def test_what_one_exit_fills_is_taken_from_the_other_and_together_they_never_sell_more_than_held():
    b = book(AAPL=("100", "10000.00"))
    take, stop = bracket(b, "oco", side="sell", quantity="100", kind="limit", take_profit="110.00",
                         stop_loss="95.00")
    # Both are open and cover the same 100 shares: they hold 100 from new sells, not 200.
    assert available_shares(b, [take, stop], "AAPL", {"AAPL": D(100)}) == D(0)
    after, orders, _ = run(b, [take, stop], (at(1), bar(108, 111, 107, 110, volume=400)), rules=CAPPED)
    assert orders[take.id].filled_quantity == D(40) and orders[take.id].open
    assert orders[stop.id].quantity == D(60) and orders[stop.id].remaining == D(60)
    after, orders, _ = run(after, orders.values(), (at(2), bar(96, 97, 90, 91, volume=10_000)), rules=CAPPED)
    assert orders[stop.id].status is Status.FILLED and orders[stop.id].filled_quantity == D(60)
    assert orders[take.id].status is Status.CANCELED and orders[take.id].filled_quantity == D(40)
    assert "AAPL" not in after.positions


def test_cancelling_one_exit_cancels_the_other_and_a_held_exit_is_cancelled_through_its_entry():
    b = book(AAPL=("10", "1000.00"))
    take, stop = bracket(b, "oco", side="sell", kind="limit", take_profit="110.00", stop_loss="95.00")
    canceled, _ = amend.cancel(stop, at(1))
    [(other, events)] = contingent.react(stop, canceled, [take], at(1))
    assert other.status is Status.CANCELED and other.reason == "the other exit was canceled"
    expired = dataclasses.replace(stop, status=Status.EXPIRED)
    [(other, events)] = contingent.react(stop, expired, [take], at(1))
    assert other.status is Status.CANCELED and other.reason == "the other exit expired"
    entry, held, _ = bracket(book(), take_profit="110.00", stop_loss="95.00")
    with pytest.raises(OrderNotOpen, match=f"held until its entry, order {entry.id}, fills"):
        amend.cancel(held, at(1))
    with pytest.raises(InvalidInput, match="is the entry of a bracket order: cancel it"):
        amend.replace(entry, amend.Changes(quantity=D(5), client_order_id="r"), book(), [entry], {"AAPL": D(100)},
                      T0, sessions_at(T0), NO_SLIP)


def replace(old, group, **changes):
    return amend.replace(old, amend.Changes(client_order_id=f"r{next(_ids)}", **changes), book(), group,
                         {"AAPL": D(100)}, at(1), sessions_at(at(1)), NO_SLIP)


def test_an_exits_prices_are_replaced_keeping_its_part_quantity_and_place_in_the_group():
    b = book()
    entry, take, stop = bracket(b, take_profit="110.00", stop_loss="95.00")
    # Held: the new stop-loss is held too, for the same quantity, and hangs from the same entry.
    ended, new_stop, events = replace(stop, [entry, take, stop], stop_price=D("97.00"))
    assert ended.status is Status.REPLACED and [e.kind.value for e in events] == ["replaced"]
    assert (new_stop.status, new_stop.quantity, new_stop.stop_price, new_stop.parent_id, new_stop.leg, new_stop.replaces) \
        == (Status.HELD, D(10), D("97.00"), entry.id, Leg.STOP_LOSS, stop.id)
    with pytest.raises(InvalidInput, match="keeps its quantity and time in force"):
        replace(take, [entry, take, stop], quantity=D(5))
    with pytest.raises(InvalidInput, match="take-profit \\(94.00\\) must be above the stop-loss \\(95.00\\)"):
        replace(take, [entry, take, stop], limit_price=D("94.00"))
    with pytest.raises(InvalidInput, match="takes no stop price"):
        replace(take, [entry, take, stop], stop_price=D("96.00"))
    # A held exit's new price is checked against its entry's (here the last price, 100: a market entry).
    with pytest.raises(InvalidInput, match="stop-loss \\(100.00\\) must be at least a cent below the last price"):
        replace(stop, [entry, take, stop], stop_price=D("100.00"))
    # Open and part filled: the new exit has what is left; the other exit covers as much.
    held = book(AAPL=("100", "10000.00"))
    take, stop = bracket(held, "oco", side="sell", quantity="100", kind="limit", take_profit="110.00",
                         stop_loss="95.00")
    take = take.but(filled_quantity=D(40), status=Status.PARTIALLY_FILLED)
    stop = stop.but(quantity=D(60))
    _, new_take, _ = replace(take, [take, stop], limit_price=D("108.00"))
    assert (new_take.status, new_take.quantity, new_take.limit_price, new_take.parent_id) == (
        Status.NEW, D(60), D("108.00"), None)
    assert new_take.remaining == stop.remaining
    # An open stop-loss moved above the market would sell at once: refused (the last price is 100).
    with pytest.raises(InvalidInput, match="stop-loss \\(101.00\\) must be at least a cent below the last price"):
        replace(stop, [take, stop], stop_price=D("101.00"))
    with pytest.raises(InvalidInput, match="take-profit \\(99.99\\) must be at least a cent above the last price"):
        replace(take, [take, stop], limit_price=D("99.99"))


def test_an_oto_has_one_exit_and_a_stop_limit_exit_takes_its_limit():
    b = book()
    entry, stop = bracket(b, "oto", stop_loss="95.00", stop_loss_limit="94.50")
    assert (stop.type, stop.stop_price, stop.limit_price) == (OrderType.STOP_LIMIT, D("95.00"), D("94.50"))
    entry, take = bracket(b, "oto", take_profit="105.00")
    assert take.leg is Leg.TAKE_PROFIT


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(take_profit="99.00", stop_loss="95.00"), InvalidInput,
     "take-profit \\(99.00\\) must be at least a cent above the last"),
    (dict(kind="limit", limit="90.00", take_profit="110.00", stop_loss="90.00"), InvalidInput, "stop-loss \\(90.00\\) must be at"),
    (dict(take_profit="110.00"), InvalidInput, "a bracket order needs a take-profit limit price and a stop-loss"),
    (dict(order_class="oto", take_profit="110.00", stop_loss="95.00"), InvalidInput, "an oto order needs one exit"),
    (dict(tif="ioc", take_profit="110.00", stop_loss="95.00"), InvalidInput, "day or gtc"),
    (dict(quantity="2.5", take_profit="110.00", stop_loss="95.00"), InvalidInput,
     "a bracket order is for a whole number of shares"),
    # A cash portfolio sells nothing it does not hold: the same refusal as a plain sale's.
    (dict(kind="market", side="sell", take_profit="90.00", stop_loss="110.00"), InsufficientPosition,
     "short selling is allowed in margin portfolios only"),
    (dict(order_class="oco", side="sell", kind="limit", take_profit="110.00", stop_loss="95.00"),
     InsufficientPosition, "closes a position you hold, and you hold no AAPL"),
    (dict(order_class="oco", side="buy", kind="limit", take_profit="95.00", stop_loss="110.00", held=True),
     InvalidInput, "a buy oco order buys back a short position, and you are long 10 AAPL: a sell oco order closes it"),
    (dict(order_class="oco", side="sell", kind="market", take_profit="110.00", stop_loss="95.00", held=True),
     InvalidInput, "is a limit order"),
    (dict(order_class="oco", side="sell", kind="limit", take_profit="95.00", stop_loss="110.00", held=True),
     InvalidInput, "take-profit \\(95.00\\) must be above the stop-loss"),
    # An OCO's stop-loss already crossed would sell at once: it is checked against the last price (100).
    (dict(order_class="oco", side="sell", kind="limit", take_profit="110.00", stop_loss="100.50", held=True),
     InvalidInput, "stop-loss \\(100.50\\) must be at least a cent below the last price \\(100.00\\)"),
    (dict(order_class="oco", side="sell", kind="limit", take_profit="99.00", stop_loss="95.00", held=True),
     InvalidInput, "take-profit \\(99.00\\) must be at least a cent above the last price"),
])
def test_a_bracket_oco_or_oto_that_cannot_work_is_refused_with_the_reason(kwargs, error, message):
    b = book(AAPL=("10", "1000.00")) if kwargs.pop("held", False) else book()
    with pytest.raises(error, match=message):
        bracket(b, **kwargs)


def test_a_split_adjusts_held_exits_too():
    b = book()
    entry, take, stop = bracket(b, kind="limit", limit="90.00", take_profit="110.00", stop_loss="85.00")
    split = corporate.Split("AAPL", T0.date(), D(2), D(1))
    _, changed, _, _ = corporate.apply({b.account_id: b}, [entry, take, stop], [split], T0.date(), T0)
    by_id = {o.id: o for o in changed}
    assert by_id[take.id].limit_price == D("55.00") and by_id[stop.id].stop_price == D("42.50")
    assert by_id[take.id].status is Status.HELD


def test_a_short_bracket_in_a_margin_portfolio_buys_back_at_most_what_it_sold():
    from papertrader.trading.books import Book
    from papertrader.trading.margin import MarginRules
    from papertrader.trading.pretrade import covering

    b = Book(1, D("10000.00"), {}, margin=MarginRules())
    entry, take, stop = bracket(b, side="sell", quantity="10", take_profit="90.00", stop_loss="105.00")
    assert (take.side, stop.side) == (Side.BUY, Side.BUY)
    after, orders, _ = run(b, [entry, take, stop], (at(1), bar(100, 101, 99, 100)))
    assert after.positions["AAPL"].quantity == D(-10)
    # The two exits cover the same 10 shares: another buy may not cover them again.
    assert covering(after, [orders[take.id], orders[stop.id]], "AAPL") == D(0)
    after, orders, _ = run(after, orders.values(), (at(2), bar(100, 106, 89, 95)))
    assert orders[stop.id].status is Status.FILLED and orders[take.id].status is Status.CANCELED
    assert "AAPL" not in after.positions


def test_an_oco_sent_again_after_its_stop_loss_filled_part_of_it_is_the_same_order():
    """Its take-profit's quantity shrank by what the stop-loss filled: a retry with the quantity it was placed
    with is still a retry (not a duplicate client order id), another quantity is not."""
    from dataclasses import replace as but

    from papertrader.app.trading import _same_request

    b = book(AAPL=("100", "10000.00"))
    request = OrderRequest(account_id=1, client_order_id="oco-1", symbol="AAPL", side=Side.SELL, type=OrderType.LIMIT,
                           time_in_force=TimeInForce.GTC, quantity=D(100), order_class=OrderClass.OCO,
                           take_profit=D("110.00"), stop_loss=D("95.00"))
    take = accept(request, b, [], {"AAPL": D(100)}, T0, sessions_at(T0), NO_SLIP).but(id=1)
    [stop] = [leg.but(id=2, parent_id=1) for leg in contingent.exits(take, request, ["x"])]
    assert _same_request(take, request, [stop])
    after_fill = stop.but(filled_quantity=D(40), status=Status.PARTIALLY_FILLED)
    [(shrunk, _)] = contingent.react(stop, after_fill, [take], at(1))
    assert shrunk.quantity == D(60)
    assert _same_request(shrunk, request, [after_fill])
    assert not _same_request(shrunk, but(request, quantity=D(101)), [after_fill])
    assert not _same_request(shrunk, but(request, stop_loss=D("94.00")), [after_fill])
