"""The WebSocket streams of the HTTP API: alpaca-py 0.44's TradingStream and StockDataStream against a
running cluster (url_override), both databases; and raw WebSocket clients for what alpaca-py never sends."""

import contextlib
import json
from decimal import Decimal as D

import msgpack
import pytest_twisted

from tests.conftest import wait_for_log
from tests.http_helpers import api, in_thread  # noqa: F401 (a fixture)
from tests.stream_helpers import SdkLog, SdkStream, raw_connect


def streams_of(api):
    return api.d.cluster.workers[0].streams


def trading_stream(api, secret=None):
    from alpaca.trading.stream import TradingStream

    stream = TradingStream(api.key_id, secret or api.secret, paper=True, url_override=f"ws://127.0.0.1:{api.port}"
                                                                                      "/stream")
    runner = SdkStream(stream, "trade update")
    stream.subscribe_trade_updates(runner.handler())
    return runner


def data_stream(api, secret=None, path="/v2/iex"):
    from alpaca.data.live import StockDataStream

    stream = StockDataStream(api.key_id, secret or api.secret, url_override=f"ws://127.0.0.1:{api.port}{path}")
    return SdkStream(stream, "market data")


@contextlib.asynccontextmanager
async def trade_updates(api):
    """alpaca-py's TradingStream, connected and listened to by the worker (it logs it), stopped afterwards: its
    ``inbox`` holds the trade updates it received."""
    runner = trading_stream(api)
    seen = wait_for_log(api.d.cluster.workers[0].logs, "listens to trade_updates")
    runner.start()
    try:
        await seen
        yield runner
    finally:
        await runner.stop(streams_of(api))


async def listening(api):
    """Wait until the worker has the trade stream listening (it logs it)."""
    await wait_for_log(api.d.cluster.workers[0].logs, "listens to trade_updates")


@pytest_twisted.ensureDeferred
async def test_a_fill_and_a_cancel_reach_alpaca_py_trading_stream(api):
    from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
    from alpaca.trading.models import TradeUpdate
    from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

    async with trade_updates(api) as runner:
        client = api.trading()
        order = await in_thread(client.submit_order, MarketOrderRequest(
            symbol="AAPL", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, client_order_id="stream-1"))
        new = await runner.inbox.get()
        assert isinstance(new, TradeUpdate)
        assert new.event == "new" and str(new.order.id) == str(order.id) and new.order.client_order_id == "stream-1"
        assert new.order.status == OrderStatus.NEW and new.timestamp is not None
        await api.d.tick()
        fill = await runner.inbox.get()
        assert fill.event == "fill" and str(fill.order.id) == str(order.id)
        assert fill.order.status == OrderStatus.FILLED and D(str(fill.order.filled_qty)) == 3
        assert D(str(fill.qty)) == 3 and D(str(fill.position_qty)) == 3
        assert D(str(fill.price)) == D(str(fill.order.filled_avg_price)) > 0
        assert fill.execution_id is not None

        limit = await in_thread(client.submit_order, LimitOrderRequest(
            symbol="MSFT", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1,
            client_order_id="stream-2"))
        assert (await runner.inbox.get()).event == "new"
        status, out, err = await api.d.cli("orders", "--status", "open", user="alice")
        assert status == 0, err
        number = next(o["id"] for o in json.loads(out) if o["client_order_id"] == "stream-2")
        status, out, err = await api.d.cli("cancel", str(number), user="alice")
        assert status == 0, err
        canceled = await runner.inbox.get()
        assert canceled.event == "canceled" and str(canceled.order.id) == str(limit.id)
        assert canceled.order.status == OrderStatus.CANCELED and canceled.order.canceled_at is not None
        assert canceled.price is None and canceled.qty is None


@pytest_twisted.ensureDeferred
async def test_an_orders_events_never_show_a_time_before_it_was_placed(api):
    """Orders placed at one market time (a replay waits between updates; here the test's clock stands still)
    show a microsecond apart; the events of the later one showed the market time itself: its cancel a
    microsecond before its own `new` event and its `created_at`, and not the `canceled_at` REST gives it, so
    a strategy keeping the newest event of each order dropped the cancel as stale."""
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import LimitOrderRequest

    async with trade_updates(api) as runner:
        client = api.trading()
        orders = []
        for n in range(2):
            orders.append(await in_thread(client.submit_order, LimitOrderRequest(
                symbol="MSFT", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=1)))
            assert (await runner.inbox.get()).event == "new"
        later = orders[1]
        assert later.created_at > orders[0].created_at  # a microsecond after
        await in_thread(client.cancel_order_by_id, later.id)
        canceled = await runner.inbox.get()
        assert canceled.event == "canceled" and str(canceled.order.id) == str(later.id)
        shown = await in_thread(client.get_order_by_id, later.id)
        assert canceled.timestamp == shown.canceled_at == canceled.order.canceled_at >= later.created_at


@pytest_twisted.ensureDeferred
async def test_a_fill_shows_one_time_in_its_activity_its_order_and_its_trade_update(tmp_path, settings,
                                                                                   database_url, clock):
    """In a replay, orders placed while it waits at a session's open show a microsecond apart (after the
    account's making); their fills at that open showed the open itself as the FILL activity's transaction_time,
    but a microsecond or two later as the order's filled_at and the trade update's timestamp (the bar model
    dates a fill at a bar's open at the bar's start).  One fill, one instant: the activity shows it too, and is
    selected by it (``after`` the last finds none, ``until`` it one)."""
    import os
    from datetime import datetime

    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    from tests.http_helpers import start_api

    fixture = os.path.join(os.path.dirname(__file__), "fixtures", "replay")
    a = await start_api(tmp_path, settings, database_url, clock, provider="replay", assets=(), replay_files=fixture,
                        replay_start="2024-03-04", fill_model="bar", api_rate_limit=100_000)
    try:
        async with trade_updates(a) as runner:
            client = a.trading()
            orders = []
            for qty in (2, 3):
                orders.append(await in_thread(client.submit_order, MarketOrderRequest(
                    symbol="XYZ", qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)))
                assert (await runner.inbox.get()).event == "new"
            await a.d.tick()
            fills = {}
            while len(fills) < 2:
                update = await runner.inbox.get()
                if update.event == "fill":
                    fills[str(update.order.id)] = update
            activities = await in_thread(client.get, "/account/activities/FILL", {"direction": "asc"})
            assert [x["order_id"] for x in activities] == [str(o.id) for o in orders]
            for order, activity in zip(orders, activities):
                filled = await in_thread(client.get_order_by_id, order.id)
                shown = datetime.fromisoformat(activity["transaction_time"].replace("Z", "+00:00"))
                assert shown == filled.filled_at == fills[str(order.id)].timestamp >= order.created_at
            last = activities[-1]["transaction_time"]
            assert await in_thread(client.get, "/account/activities/FILL", {"after": last}) == []
            assert len(await in_thread(client.get, "/account/activities/FILL", {"until": last})) == 1
    finally:
        await a.d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_a_replay_of_whole_days_streams_each_days_bar_at_the_time_its_rest_daily_bar_shows(
        tmp_path, settings, database_url, clock):
    """A strategy that reads its history over REST and goes on with the streamed bars finds each day once: a
    whole session's bar was streamed at the session's open (14:30 UTC), the same day's REST daily bar at midnight
    New York (05:00 UTC), so the same day came twice."""
    import os
    from datetime import datetime, timezone

    from alpaca.data.models import Bar
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame

    from tests.http_helpers import start_api

    fixture = os.path.join(os.path.dirname(__file__), "fixtures", "replay")
    a = await start_api(tmp_path, settings, database_url, clock, provider="replay", assets=(), replay_files=fixture,
                        replay_start="2024-03-04", fill_model="ideal", api_rate_limit=100_000)
    runner = data_stream(a)
    runner.stream.subscribe_bars(runner.handler(), "XYZ")
    with SdkLog() as log:
        runner.start()
        try:
            await log.wait_for("subscribed to")
            await a.d.tick()
            streamed = await runner.inbox.get()
            assert isinstance(streamed, Bar) and streamed.symbol == "XYZ"
            rest = (await in_thread(a.data().get_stock_bars, StockBarsRequest(
                symbol_or_symbols="XYZ", timeframe=TimeFrame.Day, start=datetime(2024, 3, 1, tzinfo=timezone.utc))))
            last = rest["XYZ"][-1]
            assert streamed.timestamp == last.timestamp == datetime(2024, 3, 5, 5, tzinfo=timezone.utc)  # (Tuesday)
            assert (streamed.open, streamed.close, streamed.volume) == (last.open, last.close, last.volume)
        finally:
            await runner.stop(streams_of(a))
            await a.d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_bars_quotes_and_trades_reach_alpaca_py_stock_data_stream_after_a_tick(api):
    from alpaca.data.models import Bar, Quote, Trade

    runner = data_stream(api)
    handle = runner.handler()
    runner.stream.subscribe_bars(handle, "AAPL", "MSFT")
    runner.stream.subscribe_quotes(handle, "AAPL")
    runner.stream.subscribe_trades(handle, "*")
    with SdkLog() as log:
        runner.start()
        try:
            await log.wait_for("subscribed to")
            await api.d.tick()
            worker = api.d.cluster.workers[0]
            got = [await runner.inbox.get() for _ in range(2 + 1 + 3)]  # bars of 2, a quote, trades of all 3
            bars = {b.symbol: b for b in got if isinstance(b, Bar)}
            quotes = [q for q in got if isinstance(q, Quote)]
            trades = {t.symbol: t for t in got if isinstance(t, Trade)}
            assert sorted(bars) == ["AAPL", "MSFT"] and [q.symbol for q in quotes] == ["AAPL"]
            assert sorted(trades) == ["AAPL", "MSFT", "TSLA"]
            for symbol, bar in bars.items():
                quote = worker.quotes.get(symbol)
                assert D(str(bar.close)) == quote["price"] and D(str(bar.open)) == quote["open"]
                assert D(str(bar.high)) == quote["high"] and D(str(bar.low)) == quote["low"]
                assert bar.volume == quote["volume"] and bar.timestamp == quote["bar_start"]
            aapl = worker.quotes.get("AAPL")
            assert D(str(quotes[0].bid_price)) == aapl["bid"] and D(str(quotes[0].ask_price)) == aapl["ask"]
            assert quotes[0].bid_price <= quotes[0].ask_price and quotes[0].timestamp == aapl["time"]
            assert D(str(trades["AAPL"].price)) == aapl["price"] and trades["AAPL"].timestamp == aapl["time"]
            # The REST API's latest quote and trade are the stream's, field for field (sizes were 1 on the
            # stream and 0 over REST, the exchange 'V' and '').
            from alpaca.data.requests import StockLatestQuoteRequest, StockLatestTradeRequest

            data = api.data()
            latest = (await in_thread(data.get_stock_latest_quote, StockLatestQuoteRequest(
                symbol_or_symbols="AAPL")))["AAPL"]
            assert latest.model_dump(exclude={"symbol"}) == quotes[0].model_dump(exclude={"symbol"})
            traded = (await in_thread(data.get_stock_latest_trade, StockLatestTradeRequest(
                symbol_or_symbols="AAPL")))["AAPL"]
            assert traded.model_dump(exclude={"symbol"}) == trades["AAPL"].model_dump(exclude={"symbol"})
            assert (latest.bid_size, traded.exchange) == (1, "V")
            # The next update brings the next bar of each.
            await api.d.tick()
            later = [await runner.inbox.get() for _ in range(6)]
            assert {b.symbol for b in later if isinstance(b, Bar)} == {"AAPL", "MSFT"}
            assert min(b.timestamp for b in later if isinstance(b, Bar)) > max(b.timestamp for b in bars.values())
        finally:
            await runner.stop(streams_of(api))


@pytest_twisted.ensureDeferred
async def test_a_wrong_key_is_refused_with_alpacas_answers(api):
    wrong = "x" * 40
    trade, data = trading_stream(api, secret=wrong), data_stream(api, secret=wrong)
    data.stream.subscribe_bars(data.handler(), "AAPL")
    with SdkLog() as log:
        trade.start()
        data.start()
        try:
            # TradingStream reads {"stream": "authorization", "data": {"status": "unauthorized"}}; StockDataStream
            # raises the error frame's message.
            await log.wait_for("error during websocket communication: failed to authenticate")
            await log.wait_for("error during websocket communication: auth failed")
        finally:
            await trade.stop(streams_of(api))
            await data.stop(streams_of(api))
    assert trade.inbox.seen == [] and data.inbox.seen == []
    # The very frames, and the close: 4000 + the error code.
    raw = await raw_connect(api.port, "/v2/iex")
    assert await raw.next() == [{"T": "success", "msg": "connected"}]
    raw.send_json({"action": "auth", "key": api.key_id, "secret": wrong})
    assert await raw.next() == [{"T": "error", "code": 402, "msg": "auth failed"}]
    assert (await raw.wait_closed())[0] == 4402
    raw = await raw_connect(api.port, "/stream")
    raw.send_json({"action": "authenticate", "data": {"key_id": "PK" + "0" * 18, "secret_key": wrong}})
    assert await raw.next() == {"stream": "authorization", "data": {"status": "unauthorized",
                                                                    "action": "authenticate"}}
    assert (await raw.wait_closed())[0] == 4402
    assert streams_of(api).count() == 0


@pytest_twisted.ensureDeferred
async def test_a_revoked_key_is_cut_off(api):
    trade, data = trading_stream(api), data_stream(api)
    data.stream.subscribe_bars(data.handler(), "AAPL")
    streams = streams_of(api)
    with SdkLog() as log:
        listens = wait_for_log(api.d.cluster.workers[0].logs, "listens to trade_updates")
        trade.start()
        data.start()
        try:
            await listens
            await log.wait_for("subscribed to")
            assert streams.count(api.key_id) == 2
            mark = len(log.messages)
            status, out, err = await api.d.cli("api-key", "revoke", api.key_id, user="alice")
            assert status == 0, err
            # Both connections closed by the worker with 4402; alpaca-py reconnects and is refused.
            await log.wait_for("data websocket error, restarting connection: received 4402", after=mark)
            await log.wait_for("trading stream websocket error, restarting  connection: received 4402", after=mark)
            await log.wait_for("error: auth failed: the API key was revoked (402)", after=mark)
            await log.wait_for("failed to authenticate", after=mark)
            await log.wait_for("error during websocket communication: auth failed", after=mark)
            assert streams.count(api.key_id) == 0
        finally:
            await trade.stop(streams)
            await data.stop(streams)


@pytest_twisted.ensureDeferred
async def test_a_disabled_accounts_streams_close_saying_so(api):
    """The operator disables the account: its key's streams close telling it that, not that the key was
    revoked (it was not: enabled again, the key works)."""
    data = await authenticated(api, "/v2/iex")
    await api.d.master.accounts.disable("alice")
    assert (await data.wait_closed())[0] == 4402
    last = json.loads(data.inbox.seen[-1][0])[0]
    assert last == {"T": "error", "code": 402,
                    "msg": "auth failed: the account of this API key has been disabled by the operator"}
    await api.d.master.accounts.enable("alice")
    again = await authenticated(api, "/v2/iex")
    again.send_json({"action": "subscribe", "bars": ["AAPL"]})
    assert (await again.next())[0]["T"] == "subscription"


async def authenticated(api, path="/v2/iex", packed=False, receive_buffer=None):
    """A raw client authenticated on ``path`` (msgpack if ``packed``)."""
    raw = await raw_connect(api.port, path, {"Content-Type": "application/msgpack"} if packed else None,
                            receive_buffer)
    if path == "/stream":
        raw.send_json({"action": "auth", "key": api.key_id, "secret": api.secret})
        assert (await raw.next())["data"]["status"] == "authorized"
        return raw
    assert await raw.next() == [{"T": "success", "msg": "connected"}]
    if packed:
        raw.send_msgpack({"action": "auth", "key": api.key_id, "secret": api.secret})
    else:
        raw.send_json({"action": "auth", "key": api.key_id, "secret": api.secret})
    assert await raw.next() == [{"T": "success", "msg": "authenticated"}]
    return raw


@pytest_twisted.ensureDeferred
async def test_bad_messages_get_alpacas_errors_and_the_connection_stays(api):
    raw = await raw_connect(api.port, "/v2/iex")
    assert await raw.next() == [{"T": "success", "msg": "connected"}]
    raw.send_json({"action": "subscribe", "bars": ["AAPL"]})
    assert await raw.next() == [{"T": "error", "code": 401, "msg": "not authenticated"}]
    raw.sendMessage(b"this is not json", isBinary=False)
    assert (await raw.next())[0]["code"] == 400
    raw.sendMessage(b"\xc1\xff\x00 neither", isBinary=True)
    assert (await raw.next())[0]["code"] == 400
    raw.send_json(["auth", api.key_id])
    assert (await raw.next())[0]["code"] == 400
    raw.send_json({"action": "dance"})
    assert await raw.next() == [{"T": "error", "code": 400, "msg": "invalid syntax: unknown action 'dance'"}]
    raw.send_json({"action": "auth", "key": api.key_id, "secret": api.secret})
    assert await raw.next() == [{"T": "success", "msg": "authenticated"}]
    raw.send_json({"action": "auth", "key": api.key_id, "secret": api.secret})
    assert await raw.next() == [{"T": "error", "code": 403, "msg": "already authenticated"}]
    raw.send_json({"action": "subscribe", "bars": "AAPL"})
    assert (await raw.next())[0]["code"] == 400
    raw.send_json({"action": "subscribe", "trades": ["no such symbol!"]})
    assert (await raw.next())[0]["code"] == 400
    raw.send_json({"action": "subscribe", "bars": [f"S{i}" for i in range(1001)]})
    assert (await raw.next())[0] == {"T": "error", "code": 405, "msg": "symbol limit exceeded: at most 1000"
                                     " subscriptions on one connection"}
    raw.send_json({"action": "subscribe", "bars": ["aapl"], "dailyBars": ["AAPL"]})
    assert (await raw.next())[0]["code"] == 410
    reply = (await raw.next())[0]
    assert reply["T"] == "subscription" and reply["bars"] == ["AAPL"] and reply["trades"] == []
    # Still served: JSON (text frames, t as RFC 3339) since the upgrade did not ask for msgpack.
    await api.d.tick()
    payload, binary = await raw.inbox.get()
    bar = json.loads(payload)[0]
    assert binary is False and bar["T"] == "b" and bar["S"] == "AAPL" and bar["t"].endswith("Z")
    raw.send_json({"action": "unsubscribe", "bars": ["AAPL"]})
    assert (await raw.next())[0]["bars"] == []
    assert streams_of(api).worker.fanout.watchers() == []


@pytest_twisted.ensureDeferred
async def test_a_symbol_not_traded_here_is_subscribed_as_at_alpaca(api):
    """Alpaca's data stream takes any well-formed symbol: no error, the subscription it answers lists it, and
    nothing comes for it while it does not trade.  So does this one (the client sees it listed, alpaca-py logs
    'subscribed to ...'), and a symbol that trades here still gets its prices on the same connection."""
    raw = await authenticated(api)
    raw.send_json({"action": "subscribe", "trades": ["ZZZZ", "AAPL"], "bars": ["ZZZZ"]})
    reply = await raw.next()
    assert len(reply) == 1 and reply[0]["T"] == "subscription"
    assert reply[0]["trades"] == ["AAPL", "ZZZZ"] and reply[0]["bars"] == ["ZZZZ"] and reply[0]["quotes"] == []
    await api.d.tick()
    points = await raw.next()
    assert {(p["T"], p["S"]) for p in points} == {("t", "AAPL")}
    raw.send_json({"action": "unsubscribe", "trades": ["ZZZZ"], "bars": ["ZZZZ"]})
    reply = (await raw.next())[0]
    assert reply["trades"] == ["AAPL"] and reply["bars"] == []


@pytest_twisted.ensureDeferred
async def test_fragmented_messages_msgpack_and_the_size_limit(api):
    raw = await authenticated(api, packed=True)
    # alpaca-py sends its subscription in fragments: they are put together.
    raw.sendMessage(msgpack.packb({"action": "subscribe", "quotes": ["MSFT"], "trades": ["MSFT"]}), isBinary=True,
                    fragmentSize=5)
    payload, binary = await raw.inbox.get()
    assert binary and msgpack.unpackb(payload)[0]["quotes"] == ["MSFT"]
    await api.d.tick()
    payload, binary = await raw.inbox.get()
    points = msgpack.unpackb(payload)
    assert binary and [p["T"] for p in points] == ["t", "q"]
    assert all(isinstance(p["t"], msgpack.Timestamp) for p in points)
    # A message over 64 KiB (here in fragments of 16 KiB) closes the connection: 1009, message too big.
    raw.sendMessage(msgpack.packb({"action": "subscribe", "bars": ["A" * 8] * 10_000}), isBinary=True,
                    fragmentSize=16 * 1024)
    assert (await raw.wait_closed())[0] == 1009
    # The trade stream: msgpack in, msgpack out.
    raw = await raw_connect(api.port, "/stream")
    raw.send_json({"action": "listen", "data": {"streams": ["trade_updates"]}})
    assert await raw.next() == {"stream": "error", "data": {"code": 401, "message": "not authenticated"}}
    raw.send_msgpack({"action": "authenticate", "data": {"key_id": api.key_id, "secret_key": api.secret}})
    payload, binary = await raw.inbox.get()
    assert binary and msgpack.unpackb(payload) == {"stream": "authorization",
                                                    "data": {"status": "authorized", "action": "authenticate"}}
    raw.send_msgpack({"action": "listen", "data": {"streams": ["trade_updates", "nonsense"]}})
    payload, binary = await raw.inbox.get()
    assert msgpack.unpackb(payload) == {"stream": "listening", "data": {"streams": ["trade_updates"]}}


@pytest_twisted.ensureDeferred
async def test_limits_auth_timeout_connections_per_key_and_per_address(api):
    from papertrader.worker.http.streams import limits

    # Authenticate within 10 s of the worker's clock, or 404 and the connection closes.
    raw = await raw_connect(api.port, "/v2/sip")
    assert await raw.next() == [{"T": "success", "msg": "connected"}]
    for _ in range(int(limits.AUTH_TIMEOUT / api.d.master.settings.update_interval)):
        await api.d.tick()
    assert await raw.next() == [{"T": "error", "code": 404, "msg": "auth timeout"}]
    assert (await raw.wait_closed())[0] == 4404
    # At most CONNECTIONS_PER_KEY per key on each path.
    held = [await authenticated(api, "/v2/iex") for _ in range(limits.CONNECTIONS_PER_KEY)]
    held.append(await authenticated(api, "/stream"))
    raw = await raw_connect(api.port, "/v2/iex")
    await raw.next()
    raw.send_json({"action": "auth", "key": api.key_id, "secret": api.secret})
    assert await raw.next() == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
    assert (await raw.wait_closed())[0] == 4406
    held[0].sendClose(1000)
    await held[0].wait_closed()
    await authenticated(api, "/v2/iex")  # a place was freed
    # Connections waiting to authenticate, per address: the upgrade is refused with HTTP 429 beyond.
    waiting = [await raw_connect(api.port, "/stream") for _ in range(limits.UNAUTHENTICATED_PER_ADDRESS)]
    try:
        await raw_connect(api.port, "/stream")
    except ConnectionError as e:
        refused = str(e)
    else:
        refused = None
    assert refused is not None and "429" in refused, refused


@pytest_twisted.ensureDeferred
async def test_clients_that_vanish_leave_nothing_behind(api):
    worker = api.d.cluster.workers[0]
    trade = await authenticated(api, "/stream")
    trade.send_json({"action": "listen", "data": {"streams": ["trade_updates"]}})
    assert (await trade.next())["stream"] == "listening"
    data = await authenticated(api, "/v2/iex", packed=True)
    data.send_msgpack({"action": "subscribe", "trades": ["*"], "bars": ["AAPL"]})
    await data.next()
    assert len(worker.fanout.watchers()) == 1 and worker.order_fanout.keys() == ["alice"]
    assert api.d.master.workers.linked[worker.name].watching == {"alice"}
    # Both vanish without a word (their TCP connections reset).
    left = wait_for_log(worker.logs, "left")
    trade.transport.abortConnection()
    data.transport.abortConnection()
    await left
    if streams_of(api).count():
        await wait_for_log(worker.logs, "left")
    assert streams_of(api).count() == 0
    assert worker.fanout.watchers() == [] and worker.fanout.keys() == []
    assert worker.order_fanout.watchers() == [] and worker.order_fanout.keys() == []
    # The master was told (the worker's next command on the link comes after that word).
    await in_thread(api.trading().get_account)
    assert api.d.master.workers.linked[worker.name].watching == set()


@pytest_twisted.ensureDeferred
async def test_a_slow_reader_is_disconnected_and_the_others_keep_their_prices(tmp_path, settings, database_url,
                                                                              clock):
    from tests.http_helpers import start_api

    symbols = tuple(f"T{i:03d}" for i in range(100))
    api = await start_api(tmp_path, settings, database_url, clock, fill_model="ideal", assets=symbols)
    try:
        slow = await authenticated(api, "/v2/iex", packed=True, receive_buffer=4096)
        slow.send_msgpack({"action": "subscribe", "trades": ["*"], "quotes": ["*"], "bars": ["*"]})
        await slow.next()
        good = await authenticated(api, "/v2/iex", packed=True)
        good.send_msgpack({"action": "subscribe", "bars": ["T000"]})
        await good.next()
        # The slow one stops reading (its socket takes little).
        slow.transport.pauseProducing()
        cut = wait_for_log(api.d.cluster.workers[0].logs, "disconnecting a slow client")
        for tick in range(200):
            await api.d.tick()
            bar = msgpack.unpackb((await good.inbox.get())[0])
            assert [b["S"] for b in bar] == ["T000"]
            if cut.called:
                break
        entry = await cut
        assert "messages not read" in entry.message and streams_of(api).cut_off == 1
        print(f"cut off after {tick + 1} updates")
        slow.transport.resumeProducing()
        await slow.wait_closed()
        await api.d.tick()
        assert [b["S"] for b in msgpack.unpackb((await good.inbox.get())[0])] == ["T000"]
        assert streams_of(api).count() == 1
    finally:
        await api.d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_trade_streams_close_when_the_worker_loses_the_master(api):
    worker = api.d.cluster.workers[0]
    trade = await authenticated(api, "/stream")
    trade.send_json({"action": "listen", "data": {"streams": ["trade_updates"]}})
    await trade.next()
    data = await authenticated(api, "/v2/iex")
    data.send_json({"action": "subscribe", "bars": ["AAPL"]})
    await data.next()
    await api.d.master.workers.kick(worker.name)
    # Order events may be missed while the worker has no master: the trade stream says so and closes (alpaca-py
    # reconnects; a strategy can reconcile through REST). Prices simply resume.
    assert await trade.next() == {"stream": "error", "data": {
        "code": 503, "message": "service unavailable: the worker lost the master; reconnect"}}
    assert (await trade.wait_closed())[0] == 4503
    assert not data.closed.called and streams_of(api).count(api.key_id) == 1


@pytest_twisted.ensureDeferred
async def test_the_streams_over_tls_with_the_deployments_ca(tmp_path, settings, database_url, clock):
    import os
    import ssl

    from alpaca.trading.stream import TradingStream
    from twisted.internet import reactor

    from papertrader import tls
    from papertrader.master.files import WORKER_CERT
    from papertrader.worker.http.service import http_service
    from tests.conftest import start_cluster
    from tests.http_helpers import make_key
    from tests.test_e2e import register_and_login

    d = await start_cluster(tmp_path, settings, database_url, clock)
    try:
        worker = d.cluster.workers[0]
        cert = os.path.join(worker.data_dir, WORKER_CERT)
        worker.http = http_service(worker, reactor, tls.listen_description(0, "127.0.0.1", cert), cert, settings)
        worker.http.setServiceParent(worker)
        port = await worker.http.whenListening()
        await register_and_login(d)
        key_id, secret = await make_key(d)
        context = ssl.create_default_context(cafile=os.path.join(d.data_dir, "ca.pem"))
        stream = TradingStream(key_id, secret, paper=True, url_override=f"wss://localhost:{port}/stream",
                               websocket_params={"ssl": context, "ping_interval": 10, "ping_timeout": 180})
        runner = SdkStream(stream, "trade update")
        stream.subscribe_trade_updates(runner.handler())
        listens = wait_for_log(worker.logs, "listens to trade_updates")
        runner.start()
        try:
            await listens
            status, out, err = await d.cli("buy", "AAPL", "2", user="alice")
            assert status == 0, err
            assert (await runner.inbox.get()).event == "new"
            await d.tick()
            fill = await runner.inbox.get()
            assert fill.event == "fill" and D(str(fill.qty)) == 2 and fill.order.symbol == "AAPL"
        finally:
            await runner.stop(worker.streams)
    finally:
        await d.cluster.stopService()


def test_the_readme_states_the_stream_limits():
    import os

    from papertrader.worker.http.streams import limits
    from papertrader.worker.http.streams.connection import CODES

    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")) as f:
        readme = f.read()
    section = " ".join(readme[readme.index("### Streams"):readme.index("### Example strategy")].split())
    for text in (f"{limits.MAX_MESSAGE // 1024} KiB", f"{limits.MAX_SUBSCRIPTIONS:,} subscriptions",
                 f"{limits.CONNECTIONS_PER_KEY} authenticated connections per API key",
                 f"{limits.UNAUTHENTICATED_PER_ADDRESS} connections per client address",
                 f"{limits.MESSAGES_PER_MINUTE} messages a minute", f"{limits.MAX_ERRORS} invalid messages",
                 f"pings every {limits.PING_INTERVAL} s", f"within {limits.PING_TIMEOUT} s",
                 f"{limits.MAX_BACKLOG:,} messages or {limits.MAX_BACKLOG_BYTES // 1024 // 1024} MiB",
                 f"within {limits.AUTH_TIMEOUT:g} seconds", f"every {limits.REVALIDATE_INTERVAL / 60:g} minutes"):
        assert text in section, text
    for code, message in CODES.items():
        assert f"| {code} | {message} |" in section, code


@pytest_twisted.ensureDeferred
async def test_messages_are_handled_in_order_and_counted(api):
    from papertrader.worker.http.streams import limits

    # A subscribe sent right behind the auth waits for it (the master answers the auth).
    raw = await raw_connect(api.port, "/v2/iex")
    await raw.next()
    raw.send_json({"action": "auth", "key": api.key_id, "secret": api.secret})
    raw.send_json({"action": "subscribe", "quotes": ["TSLA"]})
    assert await raw.next() == [{"T": "success", "msg": "authenticated"}]
    assert (await raw.next())[0]["quotes"] == ["TSLA"]
    # At most MESSAGES_PER_MINUTE a minute (the worker's clock stands still here).
    for _ in range(limits.MESSAGES_PER_MINUTE - 3):
        raw.send_json({"action": "subscribe", "quotes": ["TSLA"]})
    for _ in range(limits.MESSAGES_PER_MINUTE - 3):
        assert (await raw.next())[0]["T"] == "subscription"
    raw.send_json({"action": "subscribe", "quotes": ["TSLA"]})
    assert (await raw.next())[0]["T"] == "subscription"
    raw.send_json({"action": "subscribe", "quotes": ["TSLA"]})
    reply = (await raw.next())[0]
    assert reply["T"] == "error" and reply["code"] == 429
    assert (await raw.wait_closed())[0] == 4429
    # At most MAX_ERRORS invalid messages.
    raw = await raw_connect(api.port, "/stream")
    for _ in range(limits.MAX_ERRORS + 1):
        raw.sendMessage(b"?", isBinary=False)
    replies = [await raw.next() for _ in range(limits.MAX_ERRORS + 1)]
    assert all(r["data"]["code"] == 400 for r in replies)
    assert replies[-1]["data"]["message"] == f"invalid syntax: more than {limits.MAX_ERRORS} invalid messages"
    assert (await raw.wait_closed())[0] == 4400


@pytest_twisted.ensureDeferred
async def test_a_revocation_missed_while_cut_off_from_the_master_still_ends_the_stream(api):
    from papertrader.worker.http.streams import limits

    d, worker = api.d, api.d.cluster.workers[0]
    data = await authenticated(api, "/v2/iex")
    data.send_json({"action": "subscribe", "bars": ["AAPL"]})
    await data.next()
    refused = wait_for_log(d.master.logs, f"refused kicked worker '{worker.name}'")
    await d.master.workers.kick(worker.name)
    await refused
    status, out, err = await d.cli("api-key", "revoke", api.key_id, user="alice")  # through the other worker
    assert status == 0, err
    linked = wait_for_log(d.master.logs, f"worker {worker.name} linked")
    await d.master.workers.allow(worker.name)
    worker.link.refusals = 0
    worker.link._hold.reset(0)  # don't wait out the backoff in a test
    await linked
    assert not data.closed.called  # the worker never heard of the revocation
    for _ in range(int(limits.REVALIDATE_INTERVAL / d.master.settings.update_interval) + 1):
        await d.tick()
        if data.inbox.seen and json.loads(data.inbox.seen[-1][0])[0]["T"] == "error":
            break
    assert (await data.wait_closed())[0] == 4402
    messages = [json.loads(payload)[0] for payload, _ in data.inbox.seen]
    assert messages[-1] == {"T": "error", "code": 402, "msg": "auth failed: the API key was revoked"}


@pytest_twisted.ensureDeferred
async def test_a_plain_request_to_a_stream_gets_the_apis_json_error_not_a_library_page(api):
    """A browser or curl asking a stream's path without a WebSocket upgrade: 426 in the API's JSON, with its
    headers, and nothing of the WebSocket library (its name, its version, its page)."""
    import treq

    from tests.conftest import bounded

    for path in ("/stream", "/v2/iex", "/v2/sip"):
        response = await bounded(treq.get(f"http://127.0.0.1:{api.port}{path}?x=<script>"), f"GET {path}")
        body = await bounded(response.content(), "the body")
        assert response.code == 426, (path, body)
        assert json.loads(body) == {"code": 42610000, "message": f"{path} is a WebSocket stream: connect with a"
                                                                 " WebSocket client (alpaca-py's streams)"}
        headers = response.headers
        assert headers.getRawHeaders("X-Content-Type-Options") == ["nosniff"]
        assert b"utobahn" not in body and "utobahn" not in str(list(headers.getAllRawHeaders()))


@pytest_twisted.ensureDeferred
async def test_a_websocket_to_a_path_that_is_no_stream_is_refused_naming_the_streams(api):
    """A strategy given the worker's address without its stream's path (TradingStream's url_override
    "ws://127.0.0.1:2060", as for the REST client) was answered the website's home page: alpaca-py retried
    forever, logging 'server rejected WebSocket connection: HTTP 200'.  Now a 404 in the API's JSON says where the
    streams are; the website's own WebSocket (/live) is left as it is."""
    import treq

    from tests.conftest import bounded

    upgrade = {"Connection": ["Upgrade"], "Upgrade": ["websocket"], "Sec-WebSocket-Version": ["13"],
               "Sec-WebSocket-Key": ["dGhlIHNhbXBsZSBub25jZQ=="]}
    for path in ("/", "/v2", "/v2/stream", "/v2/trade_updates", "/v1beta3/iex"):
        response = await bounded(treq.get(f"http://127.0.0.1:{api.port}{path}", headers=upgrade), f"upgrade {path}")
        body = await bounded(response.content(), "the body")
        assert response.code == 404, (path, body)
        assert json.loads(body) == {"code": 40410000, "message": f"no WebSocket stream at {path}: the streams are"
                                    " /stream (trade updates), /v2/iex and /v2/sip (market data)"}
    response = await bounded(treq.get(f"http://127.0.0.1:{api.port}/", headers={}), "the home page")
    assert response.code == 200 and b"<html" in (await bounded(response.content(), "its body")).lower()
