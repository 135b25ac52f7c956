"""A whole cluster on a live provider (Alpaca's market data, served by a local twisted.web server):
orders fill on fresh bars only, a rate limit keeps the last prices and turns them stale, and the
market comes back by itself.  Both databases."""

import json
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
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
    d = await start_live(tmp_path, settings, database_url, clock, monkeypatch)
    yield d
    await d.cluster.stopService()
    await d.provider.stop()


async def start_live(tmp_path, settings, database_url, clock, monkeypatch, assets=None, bars=None,
                     symbols=("AAPL", "MSFT")):
    provider = Provider()
    url = await provider.start()
    provider.on("/v2/stocks/bars", bars or minute_bars(clock, 100))
    # (Alpaca's asset list: by default the symbols traded, as it lists them; a symbol it does not list is refused.)
    provider.on("/v2/assets", assets or answer([{"symbol": s, "exchange": "NASDAQ", "class": "us_equity",
                                                 "tradable": True, "fractionable": True} for s in symbols]))
    provider.on("/v1/corporate-actions", answer({"corporate_actions": {}, "next_page_token": None}))
    monkeypatch.setenv("APCA_API_KEY_ID", "PKLOCALTESTKEY")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "local-test-secret")
    # START is a Monday, 14:13 UTC: New York is open.  Minute bars: 60-second updates.
    live_settings = replace(settings, provider="alpaca", assets=symbols, alpaca_data_url=url,
                            alpaca_trading_url=url, update_interval=60.0, heartbeat_interval=60.0,
                            fill_model="ideal")
    d = await start_cluster(tmp_path, live_settings, database_url, clock)
    d.provider = provider
    return d


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


@pytest_twisted.ensureDeferred
async def test_the_close_waits_for_the_sessions_last_minute(tmp_path, settings, database_url, clock, monkeypatch):
    """Alpaca publishes a minute some seconds after it ends: the first update after the close used to find the
    closing minute not there yet, and step past the close without it (a cls order expired unfilled, the day's
    close was the minute before's).  The close now waits a minute for it."""
    from tests.conftest import bounded

    clock.advance((utc(clock.seconds()).replace(hour=19, minute=58, second=30) - utc(clock.seconds())).total_seconds())
    d = await start_live(tmp_path, settings, database_url, clock, monkeypatch)
    try:
        await close_waits(d, bounded)
    finally:
        await d.cluster.stopService()
        await d.provider.stop()


async def close_waits(d, bounded):
    await register_and_login(d)
    status, out, err = await d.cli("buy", "AAPL", "1", "--tif", "cls", user="alice")
    assert status == 0, err
    order = json.loads(out)

    async def at(hour, minute, second):
        target = utc(d.clock.seconds()).replace(hour=hour, minute=minute, second=second)
        d.clock.advance((target - utc(d.clock.seconds())).total_seconds())
        await bounded(d.master.market.busy, "the update")

    d.provider.on("/v2/stocks/bars", answer({"bars": {}, "next_page_token": None}))
    await at(19, 59, 30)
    await at(20, 0, 10)  # closed; the 19:59 minute is not published yet
    status, out, _ = await d.cli("order", str(order["id"]), user="alice")
    assert json.loads(out)["status"] == "new"
    closing = {"t": "2026-09-21T19:59:00Z", "o": 104, "h": 106, "l": 103, "c": 105, "v": 100000, "n": 10, "vw": 105}
    d.provider.on("/v2/stocks/bars", answer({"bars": {"AAPL": [closing]}, "next_page_token": None}))
    await at(20, 1, 10)
    status, out, _ = await d.cli("order", str(order["id"]), user="alice")
    filled = json.loads(out)
    assert (filled["status"], filled["average_price"]) == ("filled", "105.00")
    assert d.provider.requests()[-1].arg("end") == "2026-09-21T20:00:00Z"  # the session's minutes only


@pytest_twisted.ensureDeferred
async def test_a_symbol_the_provider_does_not_list_is_a_warning_at_start(tmp_path, settings, database_url, clock,
                                                                         monkeypatch):
    """`assets = AAPL,APPL` (a typo) on Alpaca: APPL was taken without a word, 'quote APPL' said "unknown symbol"
    while limit orders for it were accepted, to wait for ever. The master now says at start which symbols the
    provider does not list, and refuses their orders as an unknown symbol's until a price of them comes."""
    from tests.provider_server import fixture

    d = await start_live(tmp_path, settings, database_url, clock, monkeypatch,
                         assets=answer(fixture("alpaca_assets.json")), symbols=("AAPL", "APPL", "MSFT"))
    try:
        warnings = [e.message for e in d.master.logs.newest(200, "warn") if "does not list" in e.message]
        assert warnings == ["market data: alpaca does not list APPL among its assets (a mistake in the setting"
                            " assets?): it has no name, and no price until a bar of it comes"], warnings
        # An order for it was accepted (a limit order, or a market one once a price... that never comes), to wait
        # for ever: refused now, as the unknown symbol it is to the provider, while it has no price.
        await register_and_login(d)
        for argv in (["APPL", "1", "--limit", "100"], ["APPL", "1"]):
            status, out, err = await d.cli("buy", *argv, user="alice")
            refusal = json.loads(out)
            assert (status, refusal.get("error")) == (1, "unknown_symbol"), (out, err)
            assert refusal["message"] == ("unknown symbol 'APPL' (alpaca does not list it among its assets, and no"
                                          " price of it came): did you mean AAPL? traded symbols are AAPL, MSFT")
        status, out, err = await d.cli("buy", "AAPL", "1", "--limit", "100", user="alice")
        assert status == 0 and json.loads(out)["status"] == "new", (out, err)
        assets = await d.master.app.handle("AssetList", None, {})
        assert [(a["symbol"], a["tradable"], a["status"]) for a in assets["assets"]] == [
            ("AAPL", True, "active"), ("APPL", False, "inactive"), ("MSFT", True, "active")]
        # A bar of it comes after all: it has a price, and its orders are taken.
        d.provider.on("/v2/stocks/bars", minute_bars(d.clock, 100, symbols=("AAPL", "APPL", "MSFT")))
        await d.tick()
        status, out, err = await d.cli("buy", "APPL", "1", "--limit", "100", user="alice")
        assert status == 0 and json.loads(out)["status"] in ("new", "filled"), (out, err)
    finally:
        await d.cluster.stopService()
        await d.provider.stop()


@pytest_twisted.ensureDeferred
async def test_a_cls_limit_order_the_close_did_not_reach_says_why_it_expired(tmp_path, settings, database_url, clock,
                                                                             monkeypatch):
    """An unfilled at-the-close limit order expired with "a cls order trades only at its session's close", which
    did not say that the close did not reach its limit.  The order (`papertrader order`, its JSON, the HTTP API's
    and the website's, which show the same reason) says what happened at the close."""
    from tests.conftest import bounded

    clock.advance((utc(clock.seconds()).replace(hour=19, minute=58, second=30) - utc(clock.seconds())).total_seconds())
    d = await start_live(tmp_path, settings, database_url, clock, monkeypatch)
    try:
        await register_and_login(d)
        status, out, err = await d.cli("buy", "AAPL", "1", "--limit", "100", "--tif", "cls", user="alice")
        assert status == 0, err
        order = json.loads(out)
        closing = {"t": "2026-09-21T19:59:00Z", "o": 104, "h": 106, "l": 103, "c": 105, "v": 100000, "n": 10,
                   "vw": 105}
        d.provider.on("/v2/stocks/bars", answer({"bars": {"AAPL": [closing]}, "next_page_token": None}))
        target = utc(d.clock.seconds()).replace(hour=20, minute=1, second=10)
        d.clock.advance((target - utc(d.clock.seconds())).total_seconds())
        await bounded(d.master.market.busy, "the update")
        why = ("its limit was not reached at its session's close: AAPL closed at 105.00, above its limit of 100.00"
               " (a cls order trades only at the close)")
        status, out, _ = await d.cli("order", str(order["id"]), user="alice")
        assert (json.loads(out)["status"], json.loads(out)["reason"]) == ("expired", why)
        status, out, err = await d.cli("order", str(order["id"]), user="alice", json=False)
        assert f"order {order['id']} expired: {why}" in err, err
    finally:
        await d.cluster.stopService()
        await d.provider.stop()


@pytest_twisted.ensureDeferred
async def test_an_asset_list_that_could_not_be_read_at_start_is_read_later(tmp_path, settings, database_url, clock,
                                                                           monkeypatch):
    """Alpaca's trading host down when the master started: the assets had no names for the master's life."""
    from tests.provider_server import fixture

    d = await start_live(tmp_path, settings, database_url, clock, monkeypatch,
                         assets=answer({"message": "internal server error"}, status=500))
    try:
        assert d.master.board.info["AAPL"] is None or not d.master.board.info["AAPL"].name
        d.provider.on("/v2/assets", answer(fixture("alpaca_assets.json")))
        for _ in range(11):  # ten minutes of updates
            await d.tick()
        assert d.master.board.info["AAPL"].name.startswith("Apple")
        assert any("the asset list is read" in e.message for e in d.master.logs.newest(200, "info"))
    finally:
        await d.cluster.stopService()
        await d.provider.stop()



@pytest_twisted.ensureDeferred
async def test_a_price_that_jumps_half_in_one_update_is_said(live):
    """A 50% move inside one bar trades (a real market can), but is logged: it was taken without a word."""
    d = live
    d.provider.on("/v2/stocks/bars", minute_bars(d.clock, 150, minutes_ago=0))  # (the minute the tick ends)
    await d.tick()
    assert d.master.board.get("AAPL").price == 150
    said = [e.message for e in d.master.logs.newest(50, "warn") if "in one update" in e.message]
    assert len(said) == 2 and "AAPL moved 51% in one update (100" in said[0], said  # (its high: 151)


@pytest_twisted.ensureDeferred
async def test_every_minute_an_update_folds_keeps_its_own_candle(live):
    """An update that folds several minutes (after an outage, the first of the day, a long interval) trades them
    as one bar, but the minute candles (charts, /v2/stocks/bars 1Min) had only bars one minute long: the
    folded minutes were missing."""
    from tests.conftest import bounded

    d = live
    now = utc(d.clock.seconds()).replace(second=0, microsecond=0)
    minutes = [{"t": (now + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ"), "o": 100 + n, "h": 101 + n,
                "l": 99 + n, "c": 100.5 + n, "v": 1000 * (n + 1), "n": 10, "vw": 100 + n} for n in range(3)]
    d.provider.on("/v2/stocks/bars", answer({"bars": {"AAPL": minutes}, "next_page_token": None}))
    d.clock.advance(180)
    await bounded(d.master.market.busy, "the update")
    candles = await d.master.candles.read("AAPL", "1m", 10)
    assert [(c["time"], c["open"], c["volume"]) for c in candles[-3:]] == [
        (now + timedelta(minutes=n), 100 + n, 1000 * (n + 1)) for n in range(3)]


def days_or_minutes(days, minutes):
    """Alpaca's /v2/stocks/bars: to a 1Day request ``days`` ({symbol: [(t, close)]}, as recorded: 't' is the day's
    midnight in New York), to any other ``minutes`` (an answer, or a callable making one)."""
    def make(seen):
        if seen.arg("timeframe") == "1Day":
            assert seen.arg("adjustment") == "split"
            return answer({"bars": {symbol: [{"t": t, "o": c - 1, "h": c + 1, "l": c - 2, "c": c, "v": 5000000,
                                              "n": 90000, "vw": c} for t, c in items]
                                    for symbol, items in days.items()}, "next_page_token": None})
        return minutes(seen) if callable(minutes) else minutes
    return make


RECORDED_DAYS = {"AAPL": [("2026-09-18T04:00:00Z", 150.25), ("2026-09-21T04:00:00Z", 152.5)],
                 "MSFT": [("2026-09-18T04:00:00Z", 400), ("2026-09-21T04:00:00Z", 410)]}
NO_MINUTES = answer({"bars": {}, "next_page_token": None})


def before_the_open(clock):
    """From START (Monday 2026-09-21 14:13 UTC) to Tuesday 12:00 UTC (08:00 in New York): before the open."""
    clock.advance((utc(clock.seconds()).replace(day=22, hour=12, minute=0, second=0) - utc(clock.seconds()))
                  .total_seconds())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_the_days_before_read_at_start_are_counted_in_words_that_fit_one(tmp_path, settings, database_url, clock,
                                                                              monkeypatch):
    """A fresh install of one symbol logged "1 daily bars of 1 symbols stored; each one's last close ...": a
    count of one is said in the singular."""
    before_the_open(clock)
    d = await start_live(tmp_path, settings, database_url, clock, monkeypatch, symbols=("AAPL",),
                         bars=days_or_minutes({"AAPL": RECORDED_DAYS["AAPL"][-1:]}, NO_MINUTES))
    try:
        said = [e.message for e in d.master.logs.newest(200, "info") if "daily bar" in e.message]
        assert said == ["market data: 1 daily bar of 1 symbol stored; its last close (2026-09-21) is its price until"
                        " its first bar"], said
    finally:
        await d.cluster.stopService()
        await d.provider.stop()


@pytest_twisted.ensureDeferred
async def test_a_fresh_install_before_the_open_has_the_last_close_and_takes_orders_for_the_open(
        tmp_path, settings, database_url, clock, monkeypatch):
    """A live install started before the open (or on a weekend) had no price until the session's first minute:
    every order but a limit was refused "no price is known yet", and the charts were empty.  It now reads the
    days before (a year of daily bars): the last close is the price, orders wait for the open and fill on its
    first bar."""
    before_the_open(clock)
    d = await start_live(tmp_path, settings, database_url, clock, monkeypatch,
                         bars=days_or_minutes(RECORDED_DAYS, NO_MINUTES))
    try:
        await register_and_login(d)
        status, out, err = await d.cli("quote", "AAPL", user="alice")
        assert status == 0, err
        quote = json.loads(out)
        assert (quote["price"], quote["previous_close"], quote["stale"]) == ("152.50", "150.25", False)
        assert quote["time"].startswith("2026-09-21T20:00:00")  # Monday's close
        candles = await d.master.candles.read("AAPL", "1d", 10)
        assert [(c["time"].isoformat(), c["close"]) for c in candles] == [
            ("2026-09-18T13:30:00+00:00", Decimal("150.25")), ("2026-09-21T13:30:00+00:00", Decimal("152.5"))]
        status, out, err = await d.cli("buy", "AAPL", "2", user="alice")
        assert status == 0, err
        order = json.loads(out)
        assert order["status"] == "new"
        asked = [s for s in d.provider.requests("/v2/stocks/bars") if s.arg("timeframe") == "1Day"]
        assert len(asked) == 1 and asked[0].arg("end") == "2026-09-22T12:00:00Z"

        # The open: its first minute trades the order, at its open.
        d.provider.on("/v2/stocks/bars", days_or_minutes(
            RECORDED_DAYS, lambda seen: minute_bars(d.clock, 153, symbols=("AAPL",))))
        while utc(d.clock.seconds()) < utc(d.clock.seconds()).replace(hour=13, minute=31, second=1):
            await d.tick()
        status, out, err = await d.cli("order", str(order["id"]), user="alice")
        filled = json.loads(out)
        assert (filled.get("status"), filled.get("average_price")) == ("filled", "153.00"), (out, err)
        status, out, _ = await d.cli("quote", "AAPL", user="alice")
        assert (json.loads(out)["price"], json.loads(out)["previous_close"]) == ("153.00", "152.50")
    finally:
        await d.cluster.stopService()
        await d.provider.stop()

    # A restart reads its stored candles: the days are not asked for again.
    d = await start_live(tmp_path, settings, database_url, clock, monkeypatch,
                         bars=days_or_minutes(RECORDED_DAYS, NO_MINUTES))
    try:
        assert d.master.board.get("AAPL").price == Decimal("153")
        assert d.master.board.get("MSFT").price == Decimal("410")
        assert not [s for s in d.provider.requests("/v2/stocks/bars") if s.arg("timeframe") == "1Day"]
    finally:
        await d.cluster.stopService()
        await d.provider.stop()


@pytest_twisted.ensureDeferred
async def test_days_that_could_not_be_read_at_start_are_read_later_and_reach_the_workers(
        tmp_path, settings, database_url, clock, monkeypatch):
    before_the_open(clock)
    down = answer({"message": "internal server error"}, status=500)
    d = await start_live(tmp_path, settings, database_url, clock, monkeypatch, bars=down)
    try:
        assert d.master.board.get("AAPL") is None
        assert any("could not read the days before now" in e.message for e in d.master.logs.newest(100, "warn"))
        await register_and_login(d)
        status, out, err = await d.cli("buy", "AAPL", "1", user="alice")
        assert status != 0 and "no price is known yet" in err
        d.provider.on("/v2/stocks/bars", days_or_minutes(RECORDED_DAYS, NO_MINUTES))
        for _ in range(11):  # ten minutes of updates (the first ones back off after the 500)
            await d.tick()
        assert d.master.board.get("AAPL").price == Decimal("152.5")
        status, out, err = await d.cli("quote", "MSFT", user="alice")  # the worker has it too
        assert status == 0 and json.loads(out)["price"] == "410.00", (out, err)
        status, out, err = await d.cli("buy", "AAPL", "1", user="alice")
        assert status == 0 and json.loads(out)["status"] == "new", err
    finally:
        await d.cluster.stopService()
        await d.provider.stop()
