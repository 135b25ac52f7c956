"""The WebSocket streams of the HTTP API: alpaca-py 0.44's TradingStream and StockDataStream against a
running cluster (url_override), both databases; and raw WebSocket clients for what alpaca-py never sends."""

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


async def listening(api):
    """Wait until the worker has the trade stream listening (it logs it)."""
    await wait_for_log(api.d.cluster.workers[0].logs, "listens to trade_updates")


@pytest_twisted.ensureDeferred
async def test_a_fill_and_a_cancel_reach_alpaca_py_trading_stream(api):
    from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
    from alpaca.trading.models import TradeUpdate
    from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

    runner = trading_stream(api)
    seen = wait_for_log(api.d.cluster.workers[0].logs, "listens to trade_updates")
    runner.start()
    try:
        await seen
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
    finally:
        await runner.stop(streams_of(api))


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
            # The next update brings the next bar of each.
            await api.d.tick()
            later = [await runner.inbox.get() for _ in range(6)]
            assert {b.symbol for b in later if isinstance(b, Bar)} == {"AAPL", "MSFT"}
            assert min(b.timestamp for b in later if isinstance(b, Bar)) > max(b.timestamp for b in bars.values())
        finally:
            await runner.stop(streams_of(api))
