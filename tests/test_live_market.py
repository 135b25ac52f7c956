"""A whole cluster on a live provider (Alpaca's market data, served by a local twisted.web server):
orders fill on fresh bars only, a rate limit keeps the last prices and turns them stale, and the
market comes back by itself.  Both databases."""

import json
from dataclasses import replace
from datetime import timedelta

import pytest_twisted

from papertrader.times import utc
from tests.conftest import start_cluster
from tests.provider_server import Provider, answer
from tests.test_e2e import register_and_login


def minute_bars(clock, price, minutes_ago=1, symbols=("AAPL", "MSFT")):
    """Alpaca's answer to /v2/stocks/bars: one completed minute bar per symbol, ``minutes_ago`` minutes back."""
    start = utc(clock.seconds()).replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    bar = {"t": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "o": price, "h": price + 1, "l": price - 1, "c": price,
           "v": 100000, "n": 100, "vw": price}
    return answer({"bars": {s: [bar] for s in symbols}, "next_page_token": None})


@pytest_twisted.async_yield_fixture
async def live(tmp_path, settings, database_url, clock, monkeypatch):
    provider = Provider()
    url = await provider.start()
    provider.on("/v2/stocks/bars", minute_bars(clock, 100))
    provider.on("/v2/assets", answer([]))
    provider.on("/v1/corporate-actions", answer({"corporate_actions": {}, "next_page_token": None}))
    monkeypatch.setenv("APCA_API_KEY_ID", "PKLOCALTESTKEY")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "local-test-secret")
    # START is a Monday, 14:13 UTC: New York is open.  Minute bars: 60-second updates.
    live_settings = replace(settings, provider="alpaca", assets=("AAPL", "MSFT"), alpaca_data_url=url,
                            alpaca_trading_url=url, update_interval=60.0, heartbeat_interval=60.0,
                            fill_model="ideal")
    d = await start_cluster(tmp_path, live_settings, database_url, clock)
    d.provider = provider
    yield d
    await d.cluster.stopService()
    await provider.stop()


@pytest_twisted.ensureDeferred
async def test_orders_fill_on_fresh_bars_and_wait_while_the_provider_is_down(live):
    d = live
    assert d.master.board.get("AAPL").price == 100  # the first update's bar
    await register_and_login(d)
    status, out, err = await d.cli("buy", "AAPL", "2", user="alice")
    assert status == 0, err
    order = json.loads(out)

    # The provider rate-limits us: no bar, the order waits, the quote turns stale after 2 minutes.
    d.provider.on("/v2/stocks/bars", answer({"code": 42910000, "message": "rate limit exceeded"}, status=429,
                                            headers={"Retry-After": "300"}))
    for _ in range(3):
        await d.tick()
    status, out, _ = await d.cli("order", str(order["id"]), user="alice")
    assert json.loads(out)["status"] == "new"
    status, out, _ = await d.cli("quote", "AAPL", user="alice")
    assert json.loads(out)["stale"] is True
    errors = [e.message for e in d.master.logs.newest(200, "error")]
    assert sum("unavailable" in e for e in errors) == 1  # said once, not at every update
    status, out, _ = await d.cli("clock", user="alice")
    assert "alpaca" in json.loads(out)["source"]

    # It answers again (after Retry-After): the order fills on the fresh bar, the quote is fresh.
    d.provider.on("/v2/stocks/bars", minute_bars(d.clock, 101))
    for _ in range(3):
        await d.tick()
    status, out, _ = await d.cli("order", str(order["id"]), user="alice")
    filled = json.loads(out)
    assert (filled["status"], filled["average_price"]) == ("filled", "101.00")
    status, out, _ = await d.cli("quote", "AAPL", user="alice")
    assert json.loads(out)["stale"] is False and json.loads(out)["price"] == "101.00"
    assert any("is back after" in e.message for e in d.master.logs.newest(200, "info"))
