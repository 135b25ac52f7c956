"""The trading half of the HTTP API, driven by the real alpaca-py 0.44 (TradingClient with url_override) against
a running cluster, on both databases: the account and clock, every order type and time in force, idempotent
client order ids, order lists and their filters, cancel and replace, positions and closing them, portfolio
history and activities, the error body, 429 and a revoked key."""

import json
import uuid
from datetime import timedelta
from decimal import Decimal as D

import pytest
import pytest_twisted

from tests.http_helpers import api, in_thread, make_key, start_api  # noqa: F401 (a fixture)


def alpaca_error(excinfo):
    """(HTTP status, Alpaca code, message) of an APIError: its body is our JSON."""
    e = excinfo.value
    return e.status_code, e.code, e.message


@pytest_twisted.ensureDeferred
async def test_account_clock_and_a_market_order_through_alpaca_py(api):
    from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    client = api.trading()
    account = await in_thread(client.get_account)
    assert account.status.value == "ACTIVE" and D(account.cash) == D("100000.00")
    assert D(account.buying_power) == D("100000.00") and account.currency == "USD"
    clock = await in_thread(client.get_clock)
    assert clock.is_open is True
    order = await in_thread(client.submit_order, MarketOrderRequest(symbol="AAPL", qty=3, side=OrderSide.BUY,
                                                                    time_in_force=TimeInForce.DAY,
                                                                    client_order_id="first"))
    assert order.status == OrderStatus.NEW and order.client_order_id == "first" and D(order.qty) == 3
    await api.d.tick()
    filled = await in_thread(client.get_order_by_id, order.id)
    assert filled.status == OrderStatus.FILLED and D(filled.filled_qty) == 3
    assert filled.filled_avg_price is not None
    # Today's change: equity against the day's start (all cash then), the shares counting from what they cost.
    account = await in_thread(client.get_account)
    position = await in_thread(client.get_open_position, "AAPL")
    assert D(account.last_equity) == D("100000.00")
    assert D(account.equity) - D(account.last_equity) == D(position.market_value) - D(position.cost_basis)
    assert D(position.unrealized_intraday_pl) == D(position.market_value) - D(position.cost_basis)
    # The order arrived stamped by the worker, like any AMP command.
    stamped = await api.d.master.db.query("SELECT worker, client_ip FROM orders WHERE uuid = ?", (str(order.id),))
    assert stamped == [(api.d.cluster.workers[0].name, "127.0.0.1")]


@pytest_twisted.ensureDeferred
async def test_every_order_type_and_time_in_force(api):
    from alpaca.common.exceptions import APIError
    from alpaca.trading import requests as r
    from alpaca.trading.enums import OrderSide, OrderStatus, OrderType, TimeInForce

    client = api.trading()
    price = api.d.master.board.get("MSFT").price
    far_below, far_above = (price * D("0.5")).quantize(D("0.01")), (price * D("1.5")).quantize(D("0.01"))
    buy, sell = OrderSide.BUY, OrderSide.SELL
    # First some shares to sell (only what is held may be sold).
    await in_thread(client.submit_order, r.MarketOrderRequest(symbol="MSFT", qty=20, side=buy, time_in_force="day"))
    await api.d.tick()
    placed = {}
    requests = {
        "market-gtc": r.MarketOrderRequest(symbol="MSFT", qty=1, side=buy, time_in_force=TimeInForce.GTC),
        "notional": r.MarketOrderRequest(symbol="MSFT", notional=250.5, side=buy, time_in_force=TimeInForce.DAY),
        "fractional": r.MarketOrderRequest(symbol="MSFT", qty=0.5, side=sell, time_in_force=TimeInForce.DAY),
        "opg": r.MarketOrderRequest(symbol="MSFT", qty=1, side=buy, time_in_force=TimeInForce.OPG),
        "cls": r.LimitOrderRequest(symbol="MSFT", qty=1, side=buy, time_in_force=TimeInForce.CLS,
                                   limit_price=float(far_above), order_class="simple",
                                   position_intent="buy_to_open"),
        "limit": r.LimitOrderRequest(symbol="MSFT", qty=2, side=buy, time_in_force=TimeInForce.DAY,
                                     limit_price=float(far_below), extended_hours=False),
        "ioc": r.LimitOrderRequest(symbol="MSFT", qty=1, side=buy, time_in_force=TimeInForce.IOC,
                                   limit_price=float(far_below)),
        "fok": r.LimitOrderRequest(symbol="MSFT", qty=1, side=buy, time_in_force=TimeInForce.FOK,
                                   limit_price=float(far_above)),
        "stop": r.StopOrderRequest(symbol="MSFT", qty=2, side=sell, time_in_force=TimeInForce.GTC,
                                   stop_price=float(far_below)),
        "stop-limit": r.StopLimitOrderRequest(symbol="MSFT", qty=2, side=sell, time_in_force=TimeInForce.DAY,
                                              stop_price=float(far_below), limit_price=float(far_below - 1)),
        "trail-percent": r.TrailingStopOrderRequest(symbol="MSFT", qty=1, side=sell, time_in_force="day",
                                                    trail_percent=1.5),
        "trail-price": r.TrailingStopOrderRequest(symbol="MSFT", qty=1, side=sell, time_in_force="gtc",
                                                  trail_price=2),
    }
    for name, request in requests.items():
        request.client_order_id = name
        placed[name] = await in_thread(client.submit_order, request)
        assert placed[name].status == OrderStatus.NEW and placed[name].client_order_id == name, name
        assert placed[name].time_in_force == request.time_in_force and placed[name].order_type == request.type
    assert D(placed["notional"].notional) == D("250.50") and placed["notional"].qty is None
    assert D(placed["fractional"].qty) == D("0.5")
    assert D(placed["limit"].limit_price) == far_below and placed["stop"].order_type == OrderType.STOP
    assert D(placed["stop-limit"].stop_price) == far_below and D(placed["stop-limit"].limit_price) == far_below - 1
    assert D(placed["trail-percent"].trail_percent) == D("1.5") and D(placed["trail-price"].trail_price) == 2
    assert placed["market-gtc"].asset_id is not None and placed["market-gtc"].extended_hours is False

    # The same request again (a retry after a 429 or 504) answers the same order; another is refused.
    again = await in_thread(client.submit_order, requests["limit"])
    assert again.id == placed["limit"].id
    other = r.LimitOrderRequest(symbol="MSFT", qty=3, side=buy, time_in_force="day", limit_price=float(far_below),
                                client_order_id="limit")
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.submit_order, other)
    status, code, message = alpaca_error(excinfo)
    assert (status, code) == (422, 42210000) and "limit" in message

    await api.d.tick()
    after = {name: await in_thread(client.get_order_by_id, o.id) for name, o in placed.items()}
    assert after["market-gtc"].status == OrderStatus.FILLED and after["notional"].status == OrderStatus.FILLED
    assert D(after["notional"].filled_qty) > 0 and after["fractional"].status == OrderStatus.FILLED
    assert after["ioc"].status == OrderStatus.CANCELED  # nothing at its price in the first bar: the rest canceled
    assert after["fok"].status == OrderStatus.FILLED
    for name in ("opg", "cls", "limit", "stop", "stop-limit", "trail-percent", "trail-price"):
        assert after[name].status == OrderStatus.NEW, name
    assert after["trail-percent"].hwm is not None  # the trailing stop's watermark
    # A trailing stop's new trail is in percent or dollars, as the order has it.
    percent = await in_thread(client.replace_order_by_id, placed["trail-percent"].id, r.ReplaceOrderRequest(trail=2.5))
    dollars = await in_thread(client.replace_order_by_id, placed["trail-price"].id, r.ReplaceOrderRequest(trail=3))
    assert (D(percent.trail_percent), percent.trail_price) == (D("2.5"), None)
    assert (D(dollars.trail_price), dollars.trail_percent) == (3, None)

    # What the SDK's own checks do not catch is refused by the server.
    for bad, why in ((r.MarketOrderRequest(symbol="ZZZZ", qty=1, side=buy, time_in_force="day"), "ZZZZ"),
                     (r.MarketOrderRequest(symbol="MSFT", qty=-1, side=buy, time_in_force="day"), "positive"),
                     (r.StopOrderRequest(symbol="MSFT", qty=1, side=buy, time_in_force="ioc", stop_price=1), "time"),
                     (r.MarketOrderRequest(symbol="MSFT", qty=1, side=buy, time_in_force="day",
                                           extended_hours=True), "extended")):
        with pytest.raises(APIError) as excinfo:
            await in_thread(client.submit_order, bad)
        assert alpaca_error(excinfo)[:2] == (422, 42210000) and why in alpaca_error(excinfo)[2], why
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.submit_order, r.MarketOrderRequest(symbol="MSFT", qty=10_000_000, side=buy,
                                                                  time_in_force="day"))
    assert alpaca_error(excinfo)[:2] == (403, 40310000)


@pytest_twisted.ensureDeferred
async def test_order_lists_cancel_and_replace(api):
    from alpaca.common.exceptions import APIError
    from alpaca.trading import requests as r
    from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus

    client = api.trading()
    price = api.d.master.board.get("AAPL").price
    low = float((price * D("0.5")).quantize(D("0.01")))
    ids = []
    for i in range(7):
        symbol = "AAPL" if i % 2 == 0 else "TSLA"
        order = await in_thread(client.submit_order, r.LimitOrderRequest(
            symbol=symbol, qty=1, side=OrderSide.BUY, time_in_force="gtc", limit_price=low if symbol == "AAPL" else 1,
            client_order_id=f"o{i}"))
        ids.append(order.id)
    filled = await in_thread(client.submit_order, r.MarketOrderRequest(symbol="AAPL", qty=1, side="buy",
                                                                        time_in_force="day"))
    await api.d.tick()

    newest_first = await in_thread(client.get_orders)
    assert [o.id for o in newest_first] == ids[::-1]  # open (the default), newest first
    assert [o.id for o in await in_thread(client.get_orders, r.GetOrdersRequest(direction="asc", limit=3))] == ids[:3]
    assert [o.id for o in await in_thread(client.get_orders, r.GetOrdersRequest(limit=2))] == ids[:-3:-1]
    closed = await in_thread(client.get_orders, r.GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert [o.id for o in closed] == [filled.id]
    every = await in_thread(client.get_orders, r.GetOrdersRequest(status="all", limit=500, nested=True))
    assert len(every) == 8
    tsla = await in_thread(client.get_orders, r.GetOrdersRequest(symbols=["TSLA", "ZZZZ"], side="buy"))
    assert [o.id for o in tsla] == [ids[5], ids[3], ids[1]]
    assert await in_thread(client.get_orders, r.GetOrdersRequest(side="sell")) == []
    created = newest_first[0].submitted_at
    assert len(await in_thread(client.get_orders, r.GetOrdersRequest(after=created - timedelta(seconds=1)))) == 7
    assert await in_thread(client.get_orders, r.GetOrdersRequest(until=created - timedelta(seconds=1))) == []
    # Both ends exclusive, as Alpaca documents them: an order made at exactly `until` or `after` is left out.
    oldest = newest_first[-1].submitted_at
    assert newest_first[0].id not in {o.id for o in await in_thread(
        client.get_orders, r.GetOrdersRequest(status="all", limit=500, until=created))}
    assert newest_first[-1].id not in {o.id for o in await in_thread(
        client.get_orders, r.GetOrdersRequest(status="all", limit=500, after=oldest))}
    assert newest_first[0].id in {o.id for o in await in_thread(
        client.get_orders, r.GetOrdersRequest(status="all", limit=500, until=created + timedelta(microseconds=1)))}

    by_client = await in_thread(client.get_order_by_client_id, "o3")
    assert by_client.id == ids[3]
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.get_order_by_client_id, "nobody")
    assert alpaca_error(excinfo)[:2] == (404, 40410000)

    # Cancel one: 204, then it is canceled; a second cancel is refused (422); an unknown id is 404.
    assert await in_thread(client.cancel_order_by_id, ids[0]) is None
    assert (await in_thread(client.get_order_by_id, ids[0])).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.cancel_order_by_id, ids[0])
    assert alpaca_error(excinfo)[:2] == (422, 42210000)
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.cancel_order_by_id, "61e69015-8549-4bfd-b9c3-01e75843f47d")
    assert alpaca_error(excinfo)[:2] == (404, 40410000)

    # Replace one: a new order that replaces the old; the same replace again answers the same new order.
    change = r.ReplaceOrderRequest(qty=2, limit_price=low + 1, time_in_force="day", client_order_id="o2-new")
    new = await in_thread(client.replace_order_by_id, ids[2], change)
    assert new.replaces == ids[2] and D(new.qty) == 2 and D(new.limit_price) == D(str(low + 1))
    assert new.time_in_force.value == "day" and new.client_order_id == "o2-new"
    old = await in_thread(client.get_order_by_id, ids[2])
    assert old.status == OrderStatus.REPLACED and old.replaced_by == new.id
    assert (await in_thread(client.replace_order_by_id, ids[2], change)).id == new.id
    with pytest.raises(APIError) as excinfo:  # the same client order id for another replace
        await in_thread(client.replace_order_by_id, ids[4], change)
    assert alpaca_error(excinfo)[:2] == (422, 42210000)

    # Cancel the rest: 207, one element per order.
    results = await in_thread(client.cancel_orders)
    assert sorted(str(x.id) for x in results) == sorted(str(i) for i in [ids[1], ids[3], ids[4], ids[5], ids[6],
                                                                          new.id])
    assert {x.status for x in results} == {200}
    assert await in_thread(client.get_orders) == []


@pytest_twisted.ensureDeferred
async def test_long_order_lists(api):
    """More orders than one answer of the master holds (50): the worker joins the pieces, either way."""
    from alpaca.trading import requests as r

    client = api.trading()
    low = float((api.d.master.board.get("AAPL").price * D("0.5")).quantize(D("0.01")))

    def place(count):
        return [client.submit_order(r.LimitOrderRequest(symbol="AAPL", qty=1, side="buy", time_in_force="gtc",
                                                        limit_price=low, client_order_id=f"n{i}")).id
                for i in range(count)]

    ids = await in_thread(place, 130)
    newest_first = await in_thread(client.get_orders, r.GetOrdersRequest(limit=500))
    assert [o.id for o in newest_first] == ids[::-1]
    oldest_first = await in_thread(client.get_orders, r.GetOrdersRequest(limit=120, direction="asc"))
    assert [o.id for o in oldest_first] == ids[:120]
    assert [o.id for o in await in_thread(client.get_orders, r.GetOrdersRequest(limit=101))] == ids[:-102:-1]
    assert len(await in_thread(client.get_orders)) == 50  # Alpaca's default limit


@pytest_twisted.ensureDeferred
async def test_positions_closing_them_history_and_activities(api):
    from alpaca.common.exceptions import APIError
    from alpaca.trading import requests as r
    from alpaca.trading.enums import OrderStatus
    from alpaca.trading.models import PortfolioHistory, Position, TradeActivity

    client = api.trading()
    for symbol, qty in (("AAPL", 10), ("MSFT", 4), ("TSLA", 2)):
        await in_thread(client.submit_order, r.MarketOrderRequest(symbol=symbol, qty=qty, side="buy",
                                                                  time_in_force="day"))
    await api.d.tick()
    positions = await in_thread(client.get_all_positions)
    assert [(p.symbol, D(p.qty), p.side.value) for p in positions] == [("AAPL", 10, "long"), ("MSFT", 4, "long"),
                                                                      ("TSLA", 2, "long")]
    aapl = await in_thread(client.get_open_position, "AAPL")
    assert isinstance(aapl, Position) and D(aapl.market_value) == D(aapl.current_price) * 10
    [bought] = [o for o in await in_thread(client.get_orders, r.GetOrdersRequest(status="closed"))
                if o.symbol == "AAPL"]
    # The entry price is what the fill paid (Alpaca: the average fill price).
    assert D(aapl.avg_entry_price) == D(bought.filled_avg_price)
    assert D(aapl.cost_basis) == (D(aapl.avg_entry_price) * 10).quantize(D("0.01"))
    assert (await in_thread(client.get_open_position, aapl.asset_id)).symbol == "AAPL"
    for missing in ("GOOG", "ZZZZ"):
        with pytest.raises(APIError) as excinfo:
            await in_thread(client.get_open_position, missing)
        assert alpaca_error(excinfo) == (404, 40410000, "position does not exist")

    # Close 4 shares, then 50% of what is left, then look at the positions after the step.
    part = await in_thread(client.close_position, "AAPL", r.ClosePositionRequest(qty="4"))
    assert part.side.value == "sell" and D(part.qty) == 4 and part.status == OrderStatus.NEW
    await api.d.tick()
    half = await in_thread(client.close_position, "AAPL", r.ClosePositionRequest(percentage="50"))
    assert D(half.qty) == 3
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.close_position, "AAPL", r.ClosePositionRequest(percentage="150"))
    assert alpaca_error(excinfo)[:2] == (422, 42210000)
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.close_position, "GOOG")
    assert alpaca_error(excinfo)[:2] == (404, 40410000)
    await api.d.tick()
    assert D((await in_thread(client.get_open_position, "AAPL")).qty) == 3

    # Close everything: 207, one element per position; TSLA cannot be sold whole while a sell order holds a
    # share of it, until the open orders are canceled first.
    assert D((await in_thread(client.get_open_position, "TSLA")).qty_available) == 2
    waiting = await in_thread(client.submit_order, r.LimitOrderRequest(symbol="TSLA", qty=1, side="sell",
                                                                       time_in_force="gtc", limit_price=100000))
    # qty_available: what no open order keeps (alpaca-py reads it as a string; None made float() fail).
    assert D((await in_thread(client.get_open_position, "TSLA")).qty_available) == 1
    results = {x.symbol: x for x in await in_thread(client.close_all_positions)}
    assert sorted(results) == ["AAPL", "MSFT", "TSLA"]
    assert results["AAPL"].status == results["MSFT"].status == 200
    assert results["AAPL"].body.side.value == "sell" and results["AAPL"].order_id == results["AAPL"].body.id
    assert (results["TSLA"].status, results["TSLA"].body.code) == (403, 40310000)
    assert results["TSLA"].order_id is None and results["TSLA"].body.message
    await api.d.tick()
    results = await in_thread(client.close_all_positions, cancel_orders=True)
    assert [(x.symbol, x.status) for x in results] == [("TSLA", 200)]
    assert (await in_thread(client.get_order_by_id, waiting.id)).status == OrderStatus.CANCELED
    await api.d.tick()
    assert await in_thread(client.get_all_positions) == []
    with pytest.raises(APIError) as excinfo:  # (a traded symbol, no position: as Alpaca says it)
        await in_thread(client.close_position, "AAPL")
    assert alpaca_error(excinfo) == (404, 40410000, "position does not exist")
    account = await in_thread(client.get_account)
    assert D(account.long_market_value) == 0 and D(account.cash) == D(account.equity)

    history = await in_thread(client.get_portfolio_history, r.GetPortfolioHistoryRequest(period="1D",
                                                                                          timeframe="1Min"))
    assert isinstance(history, PortfolioHistory) and history.timeframe == "1Min"
    assert len(history.timestamp) == len(history.equity) == len(history.profit_loss) > 0
    assert history.equity[-1] == pytest.approx(float(D(account.equity)))

    # Activities have no TradingClient method in alpaca-py 0.44: strategies use its REST get.
    fills = await in_thread(client.get, "/account/activities/FILL", {"direction": "asc", "page_size": 3})
    assert len(fills) == 3
    parsed = [TradeActivity(**a) for a in fills]
    assert [(a.symbol, a.side.value, a.qty) for a in parsed] == [("AAPL", "buy", 10), ("MSFT", "buy", 4),
                                                                 ("TSLA", "buy", 2)]
    assert str(parsed[0].account_id) == account.id.__str__() and parsed[0].order_status == OrderStatus.FILLED
    rest = await in_thread(client.get, "/account/activities", {"activity_types": "FILL,DIV", "direction": "asc",
                                                               "page_token": fills[-1]["id"]})
    assert [(a["symbol"], a["side"]) for a in rest] == [("AAPL", "sell"), ("AAPL", "sell"), ("AAPL", "sell"),
                                                         ("MSFT", "sell"), ("TSLA", "sell")]
    newest = await in_thread(client.get, "/account/activities", {"page_size": 1})
    assert newest[0]["id"] == rest[-1]["id"]
    # `after` and `until` leave out an activity at exactly their time, as Alpaca's.
    at = fills[0]["transaction_time"]
    assert fills[0]["id"] not in {a["id"] for a in await in_thread(client.get, "/account/activities/FILL",
                                                                  {"until": at})}
    assert fills[0]["id"] not in {a["id"] for a in await in_thread(client.get, "/account/activities/FILL",
                                                                  {"after": at})}
    assert await in_thread(client.get, "/account/activities/CSD") == []
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.get, "/account/activities/NOPE")
    assert alpaca_error(excinfo)[:2] == (422, 42210000)


@pytest_twisted.ensureDeferred
async def test_errors_the_rate_limit_and_a_revoked_key(tmp_path, settings, database_url, clock):
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient

    a = await start_api(tmp_path, settings, database_url, clock, api_rate_limit=5)
    try:
        wrong = TradingClient(a.key_id, "x" * 40, paper=True, url_override=a.url)
        with pytest.raises(APIError) as excinfo:
            await in_thread(wrong.get_account)
        assert alpaca_error(excinfo)[:2] == (401, 40110000)
        with pytest.raises(APIError) as excinfo:
            await in_thread(a.trading().get_order_by_id, "61e69015-8549-4bfd-b9c3-01e75843f47d")
        assert alpaca_error(excinfo) == (404, 40410000, "no order 61e69015-8549-4bfd-b9c3-01e75843f47d in"
                                                        " portfolio 'default'")

        # Five requests a minute (refused ones count too, but not those with a wrong secret: they have their own
        # count): the sixth is refused with 429 and Alpaca's JSON body.
        client = a.trading()
        client._retry = 0  # alpaca-py would retry a 429 three times, 3 s apart; here the first answer is enough
        for _ in range(3):
            await in_thread(client.get_clock)
        # Alpaca's headers say so as it goes, and on the refusal (a program can pace itself by them).
        import requests

        keys = {"APCA-API-KEY-ID": a.key_id, "APCA-API-SECRET-KEY": a.secret}
        last = await in_thread(requests.get, a.url + "/v2/clock", headers=keys, timeout=30)
        refused = await in_thread(requests.get, a.url + "/v2/clock", headers=keys, timeout=30)
        assert (last.status_code, refused.status_code) == (200, 429)
        for answer in (last, refused):
            assert (answer.headers["X-RateLimit-Limit"], answer.headers["X-RateLimit-Remaining"]) == ("5", "0")
            assert 0 < int(answer.headers["X-RateLimit-Reset"]) - clock.seconds() <= 60
        with pytest.raises(APIError) as excinfo:
            await in_thread(client.get_clock)
        status, code, message = alpaca_error(excinfo)
        assert (status, code) == (429, 42910000) and "5 requests" in message

        # A revoked key is refused at once, on the worker that had it cached too.
        key_id, secret = await make_key(a.d)
        other = TradingClient(key_id, secret, paper=True, url_override=a.url)
        assert (await in_thread(other.get_account)).status.value == "ACTIVE"
        status, out, err = await a.d.cli("api-key", "revoke", key_id, user="alice")
        assert status == 0, err
        with pytest.raises(APIError) as excinfo:
            await in_thread(other.get_account)
        assert alpaca_error(excinfo)[:2] == (401, 40110000)
        # Revoked again: it says so (not that there is no such key); one that never was: no such key.
        status, out, err = await a.d.cli("api-key", "revoke", key_id, user="alice")
        assert status == 1 and "is already revoked (since 20" in json.loads(out)["message"]
        status, out, err = await a.d.cli("api-key", "revoke", "PK" + "0" * 18, user="alice")
        assert status == 1 and json.loads(out)["message"].startswith("no API key")
    finally:
        await a.d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_wrong_secrets_from_the_same_address_do_not_use_up_a_keys_minute(tmp_path, settings, database_url,
                                                                               clock):
    """Key ids are not secret (the account page, master.log): a neighbour behind the same address sending a key's
    id with wrong secrets used up its owner's 200 requests a minute; and unknown keys were each asked of the
    master without limit.  A wrong secret has its own count; past 60 refused credentials a minute from one
    address, credentials the worker has not seen accepted are refused there (429)."""
    import requests

    a = await start_api(tmp_path, settings, database_url, clock, api_rate_limit=100)
    try:
        keys = {"APCA-API-KEY-ID": a.key_id, "APCA-API-SECRET-KEY": a.secret}

        def get(headers):
            return requests.get(a.url + "/v2/clock", headers=headers, timeout=30)

        assert (await in_thread(get, keys)).status_code == 200  # the owner, seen accepted
        start = clock.seconds()
        wrong = dict(keys, **{"APCA-API-SECRET-KEY": "x" * 40})
        statuses = [(await in_thread(get, wrong)).status_code for _ in range(70)]
        assert statuses[:60] == [401] * 60 and set(statuses[60:]) == {429}, statuses
        unknown = {"APCA-API-KEY-ID": "PK" + "7" * 18, "APCA-API-SECRET-KEY": "y" * 40}
        answer = await in_thread(get, unknown)
        assert answer.status_code == 429 and "unknown API keys or wrong secrets" in answer.json()["message"]
        owner = await in_thread(get, keys)
        assert (owner.status_code, owner.headers["X-RateLimit-Remaining"]) == (200, "98")
        while clock.seconds() < start + 61:  # a minute later the address may try again
            await a.d.tick()
        assert (await in_thread(get, unknown)).status_code == 401
        # The owner's key, no longer in the worker's session cache (a minute old), is still checked while the
        # address is over its refusals again: the neighbour cannot lock it out.
        statuses = [(await in_thread(get, unknown)).status_code for _ in range(61)]
        assert statuses[-1] == 429, statuses
        assert (await in_thread(get, keys)).status_code == 200
    finally:
        await a.d.cluster.stopService()


def test_the_rate_limit_is_per_key_over_the_last_minute():
    from twisted.internet import task

    from papertrader.errors import Throttled
    from papertrader.worker.http.rest import RateLimiter

    clock = task.Clock()
    limiter = RateLimiter(clock, 2)
    limiter.count("PK1")
    clock.advance(30)
    limiter.count("PK1")
    limiter.count("PK2")  # another key has its own count
    with pytest.raises(Throttled, match="wait 31 s"):
        limiter.count("PK1")
    clock.advance(30)  # the first request is a minute old: one more may go
    limiter.count("PK1")
    with pytest.raises(Throttled):
        limiter.count("PK1")


@pytest_twisted.ensureDeferred
async def test_a_trailing_stop_shows_its_stop_level(api):
    """Alpaca shows a trailing stop's current stop level as its stop_price, next to hwm (its watermark): on a tick,
    a sell's rounded down."""
    from decimal import ROUND_FLOOR

    from alpaca.trading import requests as r

    from papertrader.money import round_to_tick

    def level(hwm, offset):
        return round_to_tick(hwm - offset, ROUND_FLOOR)

    client = api.trading()
    await in_thread(client.submit_order, r.MarketOrderRequest(symbol="MSFT", qty=5, side="buy", time_in_force="day"))
    await api.d.tick()
    price = api.d.master.board.get("MSFT").price
    dollars = await in_thread(client.submit_order, r.TrailingStopOrderRequest(
        symbol="MSFT", qty=1, side="sell", time_in_force="gtc", trail_price=2))
    percent = await in_thread(client.submit_order, r.TrailingStopOrderRequest(
        symbol="MSFT", qty=1, side="sell", time_in_force="gtc", trail_percent=1.5))
    assert (D(dollars.hwm), D(dollars.stop_price)) == (price, level(price, 2))
    assert D(percent.hwm) == price
    assert D(percent.stop_price) == level(price, price * D("0.015"))
    assert D(percent.stop_price) == D(percent.stop_price).quantize(D("0.01"))
    for _ in range(3):
        await api.d.tick()
    for placed, offset in ((dollars, lambda hwm: 2), (percent, lambda hwm: hwm * D("0.015"))):
        order = await in_thread(client.get_order_by_id, placed.id)
        if order.status.value == "new":  # the watermark may have moved since: the level moved with it
            hwm = D(order.hwm)
            assert hwm >= price and D(order.stop_price) == level(hwm, offset(hwm))
        assert order.stop_price is not None
    listed = {o.id: o for o in await in_thread(client.get_orders, r.GetOrdersRequest(status="all"))}
    assert listed[dollars.id].stop_price is not None and listed[percent.id].stop_price is not None
    # Once it is over (canceled here, or filled), its stop price is still the level of its last watermark.
    if listed[percent.id].status.value == "new":
        await in_thread(client.cancel_order_by_id, percent.id)
    ended = await in_thread(client.get_order_by_id, percent.id)
    assert ended.status.value != "new" and D(ended.stop_price) == level(D(ended.hwm), D(ended.hwm) * D("0.015"))


@pytest_twisted.ensureDeferred
async def test_a_replace_that_changes_nothing_is_refused(api):
    """PATCH /v2/orders/{id} with nothing to change is refused (422), as at Alpaca, and nothing is written: no
    replacement, the order still open."""
    from alpaca.common.exceptions import APIError
    from alpaca.trading import requests as r
    from alpaca.trading.enums import OrderStatus

    client = api.trading()
    low = float((api.d.master.board.get("AAPL").price * D("0.5")).quantize(D("0.01")))
    order = await in_thread(client.submit_order, r.LimitOrderRequest(symbol="AAPL", qty=2, side="buy",
                                                                     time_in_force="gtc", limit_price=low))
    count = "SELECT COUNT(*) FROM orders"
    before = await api.d.master.db.query(count)
    for change in (r.ReplaceOrderRequest(), r.ReplaceOrderRequest(client_order_id="renamed")):
        with pytest.raises(APIError) as excinfo:
            await in_thread(client.replace_order_by_id, order.id, change)
        status, code, message = alpaca_error(excinfo)
        assert (status, code) == (422, 42210000) and "nothing to replace" in message
    assert await api.d.master.db.query(count) == before
    again = await in_thread(client.get_order_by_id, order.id)
    assert again.status == OrderStatus.NEW and again.replaced_by is None
    assert [o.id for o in await in_thread(client.get_orders)] == [order.id]
    with pytest.raises(APIError) as excinfo:  # no order took the client order id of the refused replace
        await in_thread(client.get_order_by_client_id, "renamed")
    assert alpaca_error(excinfo)[:2] == (404, 40410000)


@pytest_twisted.ensureDeferred
async def test_errors_name_orders_by_their_id(api):
    """An API user knows orders by their ids (UUIDs), never by the numbers the command line shows: a refusal names
    the order by its id; the command line still names it by its number."""
    from alpaca.common.exceptions import APIError
    from alpaca.trading import requests as r

    client = api.trading()
    low = float((api.d.master.board.get("AAPL").price * D("0.5")).quantize(D("0.01")))

    def limit(client_order_id=None, qty=1):
        return r.LimitOrderRequest(symbol="AAPL", qty=qty, side="buy", time_in_force="gtc", limit_price=low,
                                   client_order_id=client_order_id)

    first = await in_thread(client.submit_order, limit("dup-1"))
    [(number,)] = await api.d.master.db.query("SELECT id FROM orders WHERE uuid = ?", (str(first.id),))
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.submit_order, limit("dup-1", qty=2))
    status, code, message = alpaca_error(excinfo)
    assert (status, code) == (422, 42210000)
    assert f"was already used for order {first.id} (buy AAPL, limit)" in message and f"order {number} " not in message

    await in_thread(client.cancel_order_by_id, first.id)
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.cancel_order_by_id, first.id)
    assert alpaca_error(excinfo) == (422, 42210000, f"order {first.id} is already canceled")
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.replace_order_by_id, first.id, r.ReplaceOrderRequest(qty=3))
    assert alpaca_error(excinfo) == (422, 42210000, f"order {first.id} is already canceled")

    second = await in_thread(client.submit_order, limit())
    third = await in_thread(client.replace_order_by_id, second.id, r.ReplaceOrderRequest(qty=2))
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.replace_order_by_id, second.id, r.ReplaceOrderRequest(qty=3))
    # (and by which: the order to change instead)
    assert alpaca_error(excinfo) == (422, 42210000, f"order {second.id} is already replaced by order {third.id}")

    # An unknown id whose first group is all digits is not read as an order's number (order 1 exists).
    unknown = "00000001-0000-4000-8000-000000000000"
    for call in (client.cancel_order_by_id, client.get_order_by_id):
        with pytest.raises(APIError) as excinfo:
            await in_thread(call, unknown)
        assert alpaca_error(excinfo) == (404, 40410000, f"no order {unknown} in portfolio 'default'")
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.replace_order_by_id, unknown, r.ReplaceOrderRequest(qty=3))
    assert alpaca_error(excinfo) == (404, 40410000, f"no order {unknown} in portfolio 'default'")

    # The command line names orders by their numbers, as it lists them.
    status, out, err = await api.d.cli("cancel", str(number), user="alice", json=False)
    assert status == 1 and f"order {number} is already canceled" in err, (out, err)


@pytest_twisted.ensureDeferred
async def test_bracket_oco_and_oto_orders_through_alpaca_py(api):
    from alpaca.common.exceptions import APIError
    from alpaca.trading import requests as r
    from alpaca.trading.enums import OrderClass, OrderStatus, QueryOrderStatus

    client = api.trading()
    price = api.d.master.board.get("MSFT").price
    above, below = (price * D("1.5")).quantize(D("0.01")), (price * D("0.5")).quantize(D("0.01"))
    entry = await in_thread(client.submit_order, r.MarketOrderRequest(
        symbol="MSFT", qty=4, side="buy", time_in_force="gtc", order_class=OrderClass.BRACKET,
        take_profit=r.TakeProfitRequest(limit_price=float(above)), stop_loss=r.StopLossRequest(stop_price=float(below))))
    assert entry.order_class == OrderClass.BRACKET and entry.status == OrderStatus.NEW
    take, stop = entry.legs
    assert (take.type.value, D(take.limit_price), take.side.value) == ("limit", above, "sell")
    assert (stop.type.value, D(stop.stop_price), D(stop.qty)) == ("stop", below, 4)
    assert take.status == stop.status == OrderStatus.HELD
    assert [o.position_intent.value for o in (entry, take, stop)] == ["buy_to_open", "sell_to_close", "sell_to_close"]
    with pytest.raises(APIError) as excinfo:  # a held exit goes with its entry
        await in_thread(client.cancel_order_by_id, stop.id)
    # Both orders named by the ids this API knows them by (never the command line's numbers).
    assert excinfo.value.status_code == 422 and excinfo.value.message.startswith(
        f"order {stop.id} is held until its entry, order {entry.id}, fills")
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.replace_order_by_id, entry.id, r.ReplaceOrderRequest(qty=2))
    assert excinfo.value.message.startswith(f"order {entry.id} is the entry of a bracket order")
    # Each exit has a client order id of the same form as the entry's (a UUID, as Alpaca gives them).
    assert all(uuid.UUID(leg.client_order_id) for leg in (take, stop))
    await api.d.tick()
    # The entry filled: its exits are open, for its quantity; listed nested under it, or on their own.
    nested = await in_thread(client.get_orders, r.GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True))
    [parent] = [o for o in nested if o.id == entry.id]
    assert parent.status == OrderStatus.FILLED and all(o.id not in (take.id, stop.id) for o in nested)
    assert [(leg.id, leg.status) for leg in parent.legs] == [(take.id, OrderStatus.NEW), (stop.id, OrderStatus.NEW)]
    flat = await in_thread(client.get_orders, r.GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert {o.id for o in flat} == {take.id, stop.id}
    # The two exits cover the same 4 shares: nothing is left for another sale; cancelling one cancels both.
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.submit_order, r.MarketOrderRequest(symbol="MSFT", qty=1, side="sell",
                                                                  time_in_force="day"))
    assert excinfo.value.code == 40310000 or "insufficient position" in excinfo.value.message
    # An exit's price is replaced (a stop moved up by hand): the new stop-loss takes its place in the bracket.
    moved = await in_thread(client.replace_order_by_id, stop.id,
                            r.ReplaceOrderRequest(stop_price=float(below + D("1.00"))))
    assert (moved.replaces, D(moved.stop_price), moved.status, D(moved.qty)) == (stop.id, below + D("1.00"),
                                                                               OrderStatus.NEW, 4)
    [parent] = [o for o in await in_thread(client.get_orders, r.GetOrdersRequest(status=QueryOrderStatus.OPEN,
                                                                                  nested=True))]
    # Listed open and nested, the filled entry comes with its exits (the replaced one too), as at Alpaca.
    assert parent.id == entry.id and [(leg.id, leg.status) for leg in parent.legs] == [
        (take.id, OrderStatus.NEW), (moved.id, OrderStatus.NEW)]  # its exits now: not the one replaced
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.replace_order_by_id, take.id, r.ReplaceOrderRequest(qty=2))
    assert excinfo.value.status_code == 422 and "keeps its quantity" in excinfo.value.message
    # The take-profit replaced too, now newer than the stop-loss: still legs[0], as programs read it.
    raised = await in_thread(client.replace_order_by_id, take.id,
                             r.ReplaceOrderRequest(limit_price=float(above + D("1.00"))))
    [parent] = await in_thread(client.get_orders, r.GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True))
    assert [leg.id for leg in parent.legs] == [raised.id, moved.id] and raised.created_at > moved.created_at
    assert (await in_thread(client.get_order_by_id, entry.id, r.GetOrderByIdRequest(nested=True))).legs[0].id == \
        raised.id
    await in_thread(client.cancel_order_by_id, raised.id)
    after = await in_thread(client.get_order_by_id, moved.id)
    assert after.status == OrderStatus.CANCELED
    # An OCO on the shares held: a limit sell with a stop-loss; an OTO: a buy with a stop-loss only.
    oco_request = r.LimitOrderRequest(
        symbol="MSFT", qty=4, side="sell", time_in_force="gtc", order_class=OrderClass.OCO, client_order_id="oco-1",
        take_profit=r.TakeProfitRequest(limit_price=float(above)),
        stop_loss=r.StopLossRequest(stop_price=float(below), limit_price=float(below - D("0.50"))))
    oco = await in_thread(client.submit_order, oco_request)
    assert oco.order_class == OrderClass.OCO and D(oco.limit_price) == above and oco.status == OrderStatus.NEW
    [oco_stop] = oco.legs
    assert (oco_stop.type.value, oco_stop.status, D(oco_stop.limit_price)) == ("stop_limit", OrderStatus.NEW,
                                                                              below - D("0.50"))
    # Its take-profit replaced: the stop-loss hangs from the new one.
    new_take = await in_thread(client.replace_order_by_id, oco.id, r.ReplaceOrderRequest(limit_price=float(above - 1)))
    assert new_take.order_class == OrderClass.OCO and [leg.id for leg in new_take.legs] == [oco_stop.id]
    # The OCO sent again (a client retrying a POST whose answer it lost) is the same order, though its stop-loss
    # hangs from the new take-profit now: not a reuse of its client order id.
    again = await in_thread(client.submit_order, oco_request)
    assert (again.id, again.status) == (oco.id, OrderStatus.REPLACED)
    oto = await in_thread(client.submit_order, r.MarketOrderRequest(
        symbol="MSFT", qty=1, side="buy", time_in_force="day", order_class=OrderClass.OTO,
        stop_loss=r.StopLossRequest(stop_price=float(below))))
    assert [leg.status for leg in oto.legs] == [OrderStatus.HELD]
    # Exits on the wrong side of the price: refused, saying why.
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.submit_order, r.MarketOrderRequest(
            symbol="MSFT", qty=1, side="buy", time_in_force="gtc", order_class=OrderClass.BRACKET,
            take_profit=r.TakeProfitRequest(limit_price=float(below)),
            stop_loss=r.StopLossRequest(stop_price=float(below - 1))))
    assert excinfo.value.status_code == 422 and "must be at least a cent above the last price" in excinfo.value.message


@pytest_twisted.ensureDeferred
async def test_client_order_ids_are_any_printable_text_as_at_alpaca(api):
    """Strategies build their ids from symbols and times ("sma:MSFT:2024-01-02T09:30:00.000123", "entry MSFT 1"):
    taken, found again by id, and sending one again answers the same order."""
    from alpaca.trading.requests import LimitOrderRequest

    client = api.trading()
    low = float((api.d.master.board.get("MSFT").price * D("0.5")).quantize(D("0.01")))
    for client_order_id in ("sma:MSFT:2024-01-02T09:30:00.000123", "entry MSFT 1/é"):
        request = LimitOrderRequest(symbol="MSFT", qty=1, side="buy", time_in_force="gtc", limit_price=low,
                                    client_order_id=client_order_id)
        placed = await in_thread(client.submit_order, request)
        assert placed.client_order_id == client_order_id
        assert (await in_thread(client.get_order_by_client_id, client_order_id)).id == placed.id
        assert (await in_thread(client.submit_order, request)).id == placed.id


@pytest_twisted.ensureDeferred
async def test_the_activities_add_up_to_the_cash_commissions_included(tmp_path, settings, database_url, clock):
    """A fill activity carries its commission and the cash it moved (``net_amount``), so a strategy reconciles
    its cash from the activities alone, as a quant's walkthrough tried to."""
    from alpaca.trading import requests as r
    from alpaca.trading.models import TradeActivity

    a = await start_api(tmp_path, settings, database_url, clock, fill_model="ideal", api_rate_limit=100_000,
                        commission_model="per_order", commission=D("1.00"))
    try:
        client = a.trading()
        await in_thread(client.submit_order, r.MarketOrderRequest(symbol="AAPL", qty=10, side="buy",
                                                                  time_in_force="day"))
        await a.d.tick()
        await in_thread(client.submit_order, r.MarketOrderRequest(symbol="AAPL", qty=4, side="sell",
                                                                  time_in_force="day"))
        await a.d.tick()
        fills = await in_thread(client.get, "/account/activities/FILL", {"direction": "asc"})
        assert [(f["side"], f["qty"], f["commission"]) for f in fills] == [("buy", "10", "1.00"),
                                                                           ("sell", "4", "1.00")]
        for f in fills:
            value = (D(f["price"]) * D(f["qty"])).quantize(D("0.01"))
            assert D(f["net_amount"]) == (-value if f["side"] == "buy" else value) - D("1.00")
            TradeActivity(**f)  # alpaca-py still reads it
        cash = D((await in_thread(client.get_account)).cash)
        assert sum(D(f["net_amount"]) for f in fills) == cash - D("100000.00")
    finally:
        await a.d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_a_day_brackets_exits_in_a_replay_of_whole_days_expire_with_their_session(tmp_path, settings,
                                                                                       database_url, clock):
    """A day bracket filled by a whole session's bar opened its exits at that session's close: they showed `new`
    with an `expires_at` already past, kept the position's shares from the strategy's own sale (403), and expired
    unfilled at the next step, a day after their `expires_at`."""
    import os

    from alpaca.trading import requests as r
    from alpaca.trading.enums import OrderClass, OrderStatus

    fixture = os.path.join(os.path.dirname(__file__), "fixtures", "replay")
    a = await start_api(tmp_path, settings, database_url, clock, provider="replay", assets=(), replay_files=fixture,
                        replay_start="2024-03-04", fill_model="ideal", api_rate_limit=100_000)
    try:
        client = a.trading()
        entry = await in_thread(client.submit_order, r.MarketOrderRequest(
            symbol="XYZ", qty=10, side="buy", time_in_force="day", order_class=OrderClass.BRACKET,
            take_profit=r.TakeProfitRequest(limit_price=150), stop_loss=r.StopLossRequest(stop_price=50)))
        await a.d.tick()
        entry = await in_thread(client.get_order_by_id, entry.id, r.GetOrderByIdRequest(nested=True))
        assert entry.status == OrderStatus.FILLED and len(entry.legs) == 2
        for leg in entry.legs:
            assert leg.status == OrderStatus.EXPIRED and leg.expired_at == leg.expires_at == entry.expires_at
        assert (await in_thread(client.get_orders)) == []
        assert D((await in_thread(client.get_open_position, "XYZ")).qty_available) == 10
        sale = await in_thread(client.submit_order, r.MarketOrderRequest(symbol="XYZ", qty=10, side="sell",
                                                                         time_in_force="day"))
        assert sale.status == OrderStatus.NEW
    finally:
        await a.d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_a_base_url_ending_in_v2_is_told_to_leave_it_out(api):
    """url_override="http://127.0.0.1:2060/v2" (as some of Alpaca's older examples write the base URL) made
    alpaca-py ask /v2/v2/account, answered only `endpoint not found`."""
    from alpaca.common.exceptions import APIError
    from alpaca.data.historical import StockHistoricalDataClient
    from alpaca.data.requests import StockLatestQuoteRequest
    from alpaca.trading.client import TradingClient

    client = TradingClient(api.key_id, api.secret, paper=True, url_override=api.url + "/v2")
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.get_account)
    assert alpaca_error(excinfo) == (404, 40410000, "endpoint not found: /v2/v2/account has /v2 twice; give the"
                                                    " base URL without /v2 (alpaca-py's url_override: it adds /v2)")
    data = StockHistoricalDataClient(api.key_id, api.secret, url_override=api.url + "/v2/")
    with pytest.raises(APIError) as excinfo:
        await in_thread(data.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols="AAPL"))
    assert alpaca_error(excinfo)[2].startswith("endpoint not found: /v2//v2/stocks/quotes/latest has /v2 twice")
