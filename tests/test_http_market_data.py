"""Market data, the calendar, assets, and a replay's splits and dividends through the HTTP API, driven by the
real alpaca-py 0.44 (StockHistoricalDataClient and TradingClient with url_override), on both databases."""

import os
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D

import pytest
import pytest_twisted

from papertrader.times import parse_iso
from tests.http_helpers import in_thread, start_api

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "replay")


@pytest_twisted.async_yield_fixture
async def minutes(tmp_path, settings, database_url, clock):
    """A cluster whose market updates once a minute (a minute bar each), with the bar fill model's spread."""
    # (Heartbeats once an hour: a tick moves the cluster's clock a minute at once, which would otherwise look
    # like a silent master to the worker's watchdog.)
    a = await start_api(tmp_path, settings, database_url, clock, update_interval=60.0, heartbeat_interval=3600.0,
                        fill_model="bar", half_spread_bps=D(10), api_rate_limit=100_000)
    for _ in range(5):
        await a.d.tick()
    yield a
    await a.d.cluster.stopService()


def api_error(excinfo):
    return excinfo.value.status_code, excinfo.value.code, excinfo.value.message


@pytest_twisted.ensureDeferred
async def test_bars_pages_and_timeframes(minutes):
    from alpaca.common.enums import Sort
    from alpaca.common.exceptions import APIError
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    a = minutes
    data = a.data()
    stored = {s: await a.d.master.market.candles.read(s, "1m", 100) for s in ("AAPL", "MSFT")}
    assert len(stored["AAPL"]) == 6
    start = stored["AAPL"][0]["time"]
    bars = await in_thread(data.get_stock_bars, StockBarsRequest(symbol_or_symbols=["AAPL", "MSFT", "ZZZZ"],
                                                                 timeframe=TimeFrame.Minute, start=start))
    assert sorted(bars.data) == ["AAPL", "MSFT"]  # a symbol not traded here is left out, as Alpaca does
    for symbol in ("AAPL", "MSFT"):
        got = [(b.timestamp, D(str(b.open)), D(str(b.high)), D(str(b.low)), D(str(b.close)), b.volume)
               for b in bars[symbol]]
        assert got == [(c["time"], c["open"], c["high"], c["low"], c["close"], c["volume"]) for c in stored[symbol]]
    assert bars["AAPL"][0].trade_count is None and bars["AAPL"][0].vwap is None

    # Without a start: from the start of the market's day (all of them here).
    assert len((await in_thread(data.get_stock_bars, StockBarsRequest(symbol_or_symbols="AAPL",
                                                                      timeframe=TimeFrame.Minute)))["AAPL"]) == 6
    newest_first = await in_thread(data.get_stock_bars, StockBarsRequest(
        symbol_or_symbols=["AAPL", "MSFT"], timeframe=TimeFrame.Minute, start=start, sort=Sort.DESC))
    assert [b.timestamp for b in newest_first["MSFT"]] == [c["time"] for c in reversed(stored["MSFT"])]
    limited = await in_thread(data.get_stock_bars, StockBarsRequest(symbol_or_symbols=["AAPL", "MSFT"],
                                                                    timeframe=TimeFrame.Minute, start=start, limit=8))
    assert len(limited["AAPL"]) == 6 and len(limited["MSFT"]) == 2  # by symbol, then time
    five = await in_thread(data.get_stock_bars, StockBarsRequest(symbol_or_symbols="AAPL", start=start,
                                                                 timeframe=TimeFrame(5, TimeFrameUnit.Minute)))
    assert [b.timestamp for b in five["AAPL"]] == [c["time"] for c in
                                                   await a.d.master.market.candles.read("AAPL", "5m", 100)]
    daily = await in_thread(data.get_stock_bars, StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Day,
                                                                  start=start - timedelta(days=1)))
    assert len(daily["AAPL"]) == 1 and daily["AAPL"][0].volume == sum(c["volume"] for c in stored["AAPL"])
    # Any number of minutes that divides an hour (Alpaca serves 1-59; 7 would not align with the hour).
    two = await in_thread(data.get_stock_bars, StockBarsRequest(symbol_or_symbols="AAPL", start=start,
                                                                timeframe=TimeFrame(2, TimeFrameUnit.Minute)))
    minutes_of = [c["time"] for c in stored["AAPL"]]
    assert [b.timestamp for b in two["AAPL"]] == sorted({t.replace(minute=t.minute - t.minute % 2)
                                                          for t in minutes_of})
    assert sum(b.volume for b in two["AAPL"]) == sum(c["volume"] for c in stored["AAPL"])
    with pytest.raises(APIError) as excinfo:
        await in_thread(data.get_stock_bars, StockBarsRequest(symbol_or_symbols="AAPL",
                                                              timeframe=TimeFrame(7, TimeFrameUnit.Minute)))
    assert api_error(excinfo)[:2] == (422, 42210000) and "7Min" in api_error(excinfo)[2]
    assert "minutes that divide an hour" in api_error(excinfo)[2]

    # Pages: each as Alpaca sends it, the next one asked with its token, until the token is null.
    pages, token = [], None
    while True:
        query = {"symbols": "MSFT,AAPL", "timeframe": "1Min", "start": start.isoformat(), "limit": 4}
        if token:
            query["page_token"] = token
        page = await in_thread(data.get, "/stocks/bars", query)
        pages.append(page["bars"])
        token = page["next_page_token"]
        if token is None:
            break
        assert len(pages) < 10
    assert [{s: len(v) for s, v in p.items()} for p in pages] == [{"AAPL": 4}, {"AAPL": 2, "MSFT": 2},
                                                                  {"MSFT": 4}, {}]
    one = await in_thread(data.get, "/stocks/AAPL/bars", {"timeframe": "1Min", "start": start.isoformat()})
    assert one["symbol"] == "AAPL" and len(one["bars"]) == 6 and one["next_page_token"] is None


@pytest_twisted.ensureDeferred
async def test_latest_quotes_trades_bars_and_snapshots(minutes):
    from alpaca.data.requests import (
        StockLatestBarRequest,
        StockLatestQuoteRequest,
        StockLatestTradeRequest,
        StockSnapshotRequest,
    )

    a = minutes
    data = a.data()
    board = a.d.master.board.get("AAPL")
    quotes = await in_thread(data.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols=["AAPL", "ZZZZ"]))
    assert list(quotes) == ["AAPL"]
    quote = quotes["AAPL"]
    # The fill model's spread: 10 basis points each side of the last price, on a cent (the price is above $1).
    assert D(str(quote.bid_price)) == (board.price * D("0.999")).quantize(D("0.01"), rounding=ROUND_FLOOR)
    assert D(str(quote.ask_price)) == (board.price * D("1.001")).quantize(D("0.01"), rounding=ROUND_CEILING)
    assert quote.timestamp == board.time
    trades = await in_thread(data.get_stock_latest_trade, StockLatestTradeRequest(symbol_or_symbols="AAPL"))
    assert D(str(trades["AAPL"].price)) == board.price and trades["AAPL"].timestamp == board.time
    latest = await in_thread(data.get_stock_latest_bar, StockLatestBarRequest(symbol_or_symbols=["AAPL", "MSFT"]))
    newest = (await a.d.master.market.candles.read("AAPL", "1m", 1))[0]
    assert latest["AAPL"].timestamp == newest["time"] and D(str(latest["AAPL"].close)) == newest["close"]
    snapshots = await in_thread(data.get_stock_snapshot, StockSnapshotRequest(symbol_or_symbols=["AAPL", "ZZZZ"]))
    assert list(snapshots) == ["AAPL"]
    snapshot = snapshots["AAPL"]
    assert snapshot.latest_quote.ask_price == quote.ask_price and snapshot.latest_trade.price == trades["AAPL"].price
    assert snapshot.minute_bar.timestamp == newest["time"]
    assert snapshot.daily_bar.close == snapshot.minute_bar.close and snapshot.previous_daily_bar is None


@pytest_twisted.ensureDeferred
async def test_one_symbols_latest_quote_trade_bar_and_snapshot(minutes):
    """Alpaca's one-symbol paths, which programs calling the REST API themselves (and Alpaca's older SDKs) use:
    they were answered 404, the latest quote's and trade's saying `historical quotes` (`trades`) were not
    served, the bar's and snapshot's `endpoint not found`."""
    from alpaca.common.exceptions import APIError
    from alpaca.data.requests import StockSnapshotRequest

    data = minutes.data()
    [many] = (await in_thread(data.get, "/stocks/snapshots", {"symbols": "AAPL"})).values()
    quote = await in_thread(data.get, "/stocks/aapl/quotes/latest", {"feed": "iex"})
    assert quote == {"symbol": "AAPL", "quote": many["latestQuote"]}
    assert await in_thread(data.get, "/stocks/AAPL/trades/latest") == {"symbol": "AAPL", "trade": many["latestTrade"]}
    assert await in_thread(data.get, "/stocks/AAPL/bars/latest") == {"symbol": "AAPL", "bar": many["minuteBar"]}
    assert await in_thread(data.get, "/stocks/AAPL/snapshot") == dict(many, symbol="AAPL")
    snapshot = (await in_thread(data.get_stock_snapshot, StockSnapshotRequest(symbol_or_symbols="AAPL")))["AAPL"]
    assert snapshot.latest_quote.ask_price == quote["quote"]["ap"]
    for path in ("/stocks/ZZZZ/quotes/latest", "/stocks/ZZZZ/trades/latest", "/stocks/ZZZZ/bars/latest",
                 "/stocks/ZZZZ/snapshot"):
        with pytest.raises(APIError) as excinfo:
            await in_thread(data.get, path)
        assert api_error(excinfo) == (404, 40410000, "no data of ZZZZ")


@pytest_twisted.ensureDeferred
async def test_assets(minutes):
    from alpaca.common.exceptions import APIError
    from alpaca.trading.enums import AssetClass, AssetStatus
    from alpaca.trading.requests import GetAssetsRequest

    client = minutes.trading()
    assets = await in_thread(client.get_all_assets)
    assert [x.symbol for x in assets] == ["AAPL", "MSFT", "TSLA"]
    assert assets[0].name == "AAPL (simulated)" and assets[0].tradable and assets[0].fractionable
    assert assets[0].asset_class == AssetClass.US_EQUITY and assets[0].status == AssetStatus.ACTIVE
    assert len(await in_thread(client.get_all_assets, GetAssetsRequest(status="active", asset_class="us_equity"))) == 3
    assert await in_thread(client.get_all_assets, GetAssetsRequest(status="inactive")) == []
    assert await in_thread(client.get_all_assets, GetAssetsRequest(asset_class="crypto")) == []
    msft = await in_thread(client.get_asset, "msft")
    assert msft.symbol == "MSFT" and (await in_thread(client.get_asset, msft.id)).symbol == "MSFT"
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.get_asset, "ZZZZ")
    assert api_error(excinfo)[:2] == (404, 40410000)


@pytest_twisted.ensureDeferred
async def test_an_asset_a_replay_lists_later_is_inactive_and_not_tradable_until_its_first_day(
        tmp_path, settings, database_url, clock):
    """Found by a user of a replay of 2010: /v2/assets said ABBV, FB and TWTR were active and tradable while their
    orders were refused ("ABBV does not trade yet: its prices start on 2013-01-02"), so a strategy filtering on
    tradable picked symbols it could not trade.  The listing says what the order check says."""
    from alpaca.common.exceptions import APIError
    from alpaca.trading.enums import AssetStatus
    from alpaca.trading.requests import GetAssetsRequest, MarketOrderRequest

    later = tmp_path / "NEW.csv"  # lists on Thursday 7 March, and trades to the end of the fixture
    later.write_text("date,open,high,low,close,volume\n" + "".join(
        f"2024-03-{day:02d},10.00,10.50,9.75,10.25,1000\n" for day in (7, 8, 11, 12, 13, 14, 15)))
    a = await start_api(tmp_path, settings, database_url, clock, provider="replay", assets=(),
                        replay_files=f"{FIXTURE},{later}", replay_start="2024-03-04", fill_model="ideal",
                        api_rate_limit=100_000)
    try:
        client = a.trading()

        async def listed():
            return {x.symbol: (x.status, x.tradable) for x in await in_thread(client.get_all_assets)}

        def order():
            return in_thread(client.submit_order, MarketOrderRequest(symbol="NEW", qty=1, side="buy",
                                                                     time_in_force="day"))

        for _ in range(3):  # the market waits at the open of Tuesday 5 March, of Wednesday 6, of Thursday 7
            assert await listed() == {"ABC": (AssetStatus.ACTIVE, True), "NEW": (AssetStatus.INACTIVE, False),
                                      "XYZ": (AssetStatus.ACTIVE, True)}
            one = await in_thread(client.get_asset, "NEW")
            assert (one.status, one.tradable) == (AssetStatus.INACTIVE, False)
            assert [x.symbol for x in await in_thread(client.get_all_assets, GetAssetsRequest(status="inactive"))] \
                == ["NEW"]
            assert [x.symbol for x in await in_thread(client.get_all_assets, GetAssetsRequest(status="active"))] \
                == ["ABC", "XYZ"]
            with pytest.raises(APIError) as excinfo:
                await order()
            # (Before its first day "NEW does not trade yet: its prices start on 2024-03-07 ...", on it until its
            # first bar has been played "no price is known yet for NEW".)
            assert api_error(excinfo)[:2] == (422, 42210000) and "NEW" in api_error(excinfo)[2]
            await a.d.tick()
        # At Friday's open, its first day played: tradable, and its order is taken (and fills at Friday's close).
        assert await listed() == {s: (AssetStatus.ACTIVE, True) for s in ("ABC", "NEW", "XYZ")}
        assert [x.symbol for x in await in_thread(client.get_all_assets, GetAssetsRequest(status="inactive"))] == []
        placed = await order()
        await a.d.tick()
        assert (await in_thread(client.get_order_by_id, placed.id)).status == "filled"
    finally:
        await a.d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_a_replay_calendar_daily_bars_splits_and_dividends(tmp_path, settings, database_url, clock):
    """A replay of a small fixture on the New York calendar: XYZ splits 2-for-1 on 8 March 2024 and pays 0.50 a
    share on the 12th (tests/fixtures/replay)."""
    from alpaca.data.enums import Adjustment
    from alpaca.data.requests import StockBarsRequest, StockSnapshotRequest
    from alpaca.data.timeframe import TimeFrame
    from alpaca.trading.enums import ActivityType
    from alpaca.trading.models import NonTradeActivity, TradeActivity
    from alpaca.trading.requests import GetCalendarRequest, GetPortfolioHistoryRequest, MarketOrderRequest

    a = await start_api(tmp_path, settings, database_url, clock, provider="replay", assets=(), replay_files=FIXTURE,
                        replay_start="2024-03-04", fill_model="ideal", api_rate_limit=100_000)
    try:
        client, data = a.trading(), a.data()
        march = await in_thread(client.get_calendar, GetCalendarRequest(start=date(2024, 3, 1), end=date(2024, 3, 31)))
        assert len(march) == 20 and date(2024, 3, 29) not in [c.date for c in march]  # Good Friday
        assert (march[0].date, march[0].open, march[0].close) == (date(2024, 3, 1), datetime(2024, 3, 1, 9, 30),
                                                                  datetime(2024, 3, 1, 16, 0))
        early = await in_thread(client.get_calendar, GetCalendarRequest(start=date(2024, 11, 29),
                                                                        end=date(2024, 11, 29)))
        assert [(c.open.hour, c.close.hour) for c in early] == [(9, 13)]  # the day after Thanksgiving
        years = await in_thread(client.get_calendar, GetCalendarRequest(start=date(2019, 1, 1), end=date(2023, 12, 31)))
        assert len(years) == 1258 and len({c.date for c in years}) == 1258  # several answers of the master, joined
        assert (await in_thread(client.get_clock)).timestamp.year == 2024

        await in_thread(client.submit_order, MarketOrderRequest(symbol="XYZ", qty=10, side="buy", time_in_force="day"))
        for _ in range(3):  # Tuesday 5 March (the fill) to Thursday 7, one session a tick
            await a.d.tick()
        # Waiting at the open of Friday 8 March, the split's day, which has not played: the split is not applied
        # (the position is still 10 shares), and adjusted bars do not know it either (that would be the future).
        split_not_yet = await in_thread(data.get_stock_bars, StockBarsRequest(
            symbol_or_symbols="XYZ", timeframe=TimeFrame.Day, start=datetime(2024, 3, 1, tzinfo=timezone.utc),
            adjustment=Adjustment.SPLIT))
        assert [(b.timestamp.day, b.close) for b in split_not_yet["XYZ"]] == [(4, 101), (5, 103), (6, 98), (7, 99.5)]
        assert (await in_thread(client.get_open_position, "XYZ")).qty == "10"
        for _ in range(3):  # Friday 8 (the split) to Tuesday 12 (the dividend)
            await a.d.tick()
        activities = await in_thread(client.get, "/account/activities", {"direction": "asc"})
        kinds = [x["activity_type"] for x in activities]
        assert kinds == ["FILL", "SPLIT", "DIV"]
        fill = TradeActivity(**activities[0])
        assert (fill.symbol, fill.qty, fill.price, fill.transaction_time.day) == ("XYZ", 10, 103, 5)
        split, dividend = NonTradeActivity(**activities[1]), NonTradeActivity(**activities[2])
        assert (split.activity_type, split.date, split.qty, split.net_amount) == (ActivityType.SPLIT,
                                                                                  date(2024, 3, 8), 20, 0)
        assert "2-for-1" in split.description
        assert (dividend.activity_type, dividend.date, dividend.net_amount, dividend.per_share_amount,
                dividend.qty) == (ActivityType.DIV, date(2024, 3, 12), 10, 0.5, 20)
        only_div = await in_thread(client.get, "/account/activities/DIV", {"date": "2024-03-12"})
        assert [x["id"] for x in only_div] == [activities[2]["id"]]
        assert await in_thread(client.get, "/account/activities/DIV", {"date": "2024-03-11"}) == []
        assert [x["activity_type"] for x in await in_thread(client.get, "/account/activities",
                                                            {"category": "non_trade_activity"})] == ["DIV", "SPLIT"]

        daily = await in_thread(data.get_stock_bars, StockBarsRequest(symbol_or_symbols="XYZ", timeframe=TimeFrame.Day,
                                                                      start=datetime(2024, 3, 1, tzinfo=timezone.utc)))
        assert [(b.timestamp.day, b.close) for b in daily["XYZ"]] == [(4, 101), (5, 103), (6, 98), (7, 99.5),
                                                                      (8, 50.5), (11, 51.5), (12, 51)]
        # Weekly and monthly bars, folded from the daily ones (a split in mid-week adjusts the days before it).
        weekly = await in_thread(data.get_stock_bars, StockBarsRequest(
            symbol_or_symbols="XYZ", timeframe=TimeFrame.Week, start=datetime(2024, 3, 1, tzinfo=timezone.utc)))
        assert [(b.timestamp.day, b.open, b.close) for b in weekly["XYZ"]] == [
            (4, daily["XYZ"][0].open, 50.5), (11, daily["XYZ"][5].open, 51)]  # Monday 4 to Friday 8, the split
        assert weekly["XYZ"][0].volume == sum(b.volume for b in daily["XYZ"][:5])
        assert weekly["XYZ"][0].high == max(b.high for b in daily["XYZ"][:5])
        split_weekly = await in_thread(data.get_stock_bars, StockBarsRequest(
            symbol_or_symbols="XYZ", timeframe=TimeFrame.Week, start=datetime(2024, 3, 1, tzinfo=timezone.utc),
            adjustment=Adjustment.SPLIT))
        halved = (await in_thread(data.get_stock_bars, StockBarsRequest(
            symbol_or_symbols="XYZ", timeframe=TimeFrame.Day, start=datetime(2024, 3, 1, tzinfo=timezone.utc),
            adjustment=Adjustment.SPLIT)))["XYZ"][:5]
        assert [b.close for b in split_weekly["XYZ"]] == [50.5, 51]
        assert (split_weekly["XYZ"][0].open, split_weekly["XYZ"][0].high) == (
            daily["XYZ"][0].open / 2, max(b.high for b in halved))  # the days before the split halved first
        paged = await in_thread(a.data().get_stock_bars, StockBarsRequest(
            symbol_or_symbols="XYZ", timeframe=TimeFrame.Week, start=datetime(2024, 3, 1, tzinfo=timezone.utc),
            limit=1))
        assert [b.timestamp.day for b in paged["XYZ"]] == [4]
        monthly = await in_thread(data.get_stock_bars, StockBarsRequest(
            symbol_or_symbols="XYZ", timeframe=TimeFrame.Month, start=datetime(2024, 3, 1, tzinfo=timezone.utc)))
        assert [(b.timestamp.day, b.close, b.volume) for b in monthly["XYZ"]] == [
            (4, 51, sum(b.volume for b in daily["XYZ"]))]
        # Only whole periods from `start`: a week that began before it is left out, as Alpaca leaves out a bar
        # whose time is before `start`.
        later = await in_thread(data.get_stock_bars, StockBarsRequest(
            symbol_or_symbols="XYZ", timeframe=TimeFrame.Week, start=datetime(2024, 3, 6, tzinfo=timezone.utc)))
        assert [b.timestamp.day for b in later["XYZ"]] == [11]

        # The latest bar of a replay of daily history (no minutes): the newest daily bar, not an empty answer
        # (code written for Alpaca reads latest["XYZ"]).
        from alpaca.data.requests import StockLatestBarRequest

        latest = await in_thread(data.get_stock_latest_bar, StockLatestBarRequest(symbol_or_symbols=["XYZ", "NOPE"]))
        assert list(latest) == ["XYZ"] and (latest["XYZ"].timestamp.day, latest["XYZ"].close) == (12, 51)
        # Adjusted, as Alpaca adjusts (a moving average would otherwise see the split as a crash): halved before
        # the split, volume doubled; with dividends too, times 1 - 0.50 / 51.50 (the close before the ex-date).
        def adjusted(kind):
            return in_thread(data.get_stock_bars, StockBarsRequest(
                symbol_or_symbols="XYZ", timeframe=TimeFrame.Day, start=datetime(2024, 3, 1, tzinfo=timezone.utc),
                adjustment=kind))

        split = (await adjusted(Adjustment.SPLIT))["XYZ"]
        assert [(b.timestamp.day, b.close, b.volume) for b in split] == [
            (4, 50.5, 2000000), (5, 51.5, 2000000), (6, 49, 2000000), (7, 49.75, 2000000), (8, 50.5, 2000000),
            (11, 51.5, 2000000), (12, 51, 2000000)]
        assert (split[0].open, split[0].high, split[0].low) == (50, 51, 49.5)
        every = (await adjusted(Adjustment.ALL))["XYZ"]
        assert [(b.timestamp.day, b.close) for b in every] == [
            (4, 50.0097), (5, 51.0), (6, 48.5243), (7, 49.267), (8, 50.0097), (11, 51.0), (12, 51)]
        assert [b.close for b in (await adjusted(Adjustment.RAW))["XYZ"]] == [b.close for b in daily["XYZ"]]
        dividends_only = (await adjusted(Adjustment.DIVIDEND))["XYZ"]
        assert [b.close for b in dividends_only][:2] == [100.0194, 102.0]
        snapshot = (await in_thread(data.get_stock_snapshot, StockSnapshotRequest(symbol_or_symbols="XYZ")))["XYZ"]
        assert (snapshot.daily_bar.close, snapshot.previous_daily_bar.close) == (51, 51.5)
        assert snapshot.latest_trade.price == 51

        history = await in_thread(client.get_portfolio_history, GetPortfolioHistoryRequest(period="1M",
                                                                                            timeframe="1D"))
        equity = dict(zip([datetime.fromtimestamp(t, timezone.utc).day for t in history.timestamp], history.equity))
        # The 12th: 20 shares at 51.00 and the cash after 10 x 103.00 and the 10.00 dividend.
        assert equity[12] == pytest.approx(100000 - 1030 + 10 + 20 * 51)
        assert equity[5] == pytest.approx(100000)
    finally:
        await a.d.cluster.stopService()


@pytest_twisted.async_yield_fixture
async def replay(tmp_path, settings, database_url, clock):
    """A daily replay of tests/fixtures/replay from 4 March 2024 on the New York calendar (which the server loads
    from 2018 to 2025: six years before the replay to the year after its last day), margin accounts offered."""
    a = await start_api(tmp_path, settings, database_url, clock, provider="replay", assets=(), replay_files=FIXTURE,
                        replay_start="2024-03-04", fill_model="ideal", api_rate_limit=100_000, margin_accounts=True)
    yield a
    await a.d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_the_calendar_lists_every_session_it_covers_with_its_settlement_day(replay):
    client = replay.trading()

    async def calendar(start, end):
        return await in_thread(client.get, "/calendar", {"start": start, "end": end})

    # Every session of the years the calendar covers, however far before or after them the range reaches.
    for start, end in (("2000-01-01", "2030-01-01"), ("2000-01-01", "2029-12-31"), ("1970-01-01", "2030-06-30"),
                       ("2011-01-01", "9999-12-31"), ("0001-01-01", "9999-12-31")):  # (9999-12-31 was a 500)
        days = await calendar(start, end)
        dates = [d["date"] for d in days]
        assert (dates[0], dates[-1]) == ("2018-01-02", "2025-12-31"), (start, end)
        assert len(dates) == len(set(dates)) == 2011 and dates == sorted(dates)
    assert len(await calendar("2020-01-01", "2025-01-01")) == 1258
    assert [d["date"] for d in await calendar("2005-01-01", "2018-01-03")] == ["2018-01-02", "2018-01-03"]
    assert await calendar("2000-01-01", "2010-12-31") == [] == await calendar("2026-01-01", "2029-12-31")
    assert await calendar("2026-01-01", "9999-12-31") == [] == await calendar("9999-12-31", "9999-12-31")
    assert await in_thread(client.get, "/calendar", {"start": "9999-12-31"}) == []  # and the 62 days after it

    # The settlement day: two sessions later before 28 May 2024 (over weekends and holidays), one from then on.
    settles = {d["date"]: d["settlement_date"] for d in await calendar("2019-12-30", "2024-06-03")}
    assert settles["2019-12-30"] == "2020-01-02" and settles["2019-12-31"] == "2020-01-03"  # New Year's Day
    assert settles["2024-03-27"] == "2024-04-01" and settles["2024-03-28"] == "2024-04-02"  # Good Friday
    assert settles["2024-05-24"] == "2024-05-29"  # T+2 over Memorial Day
    # The exchange trades on Columbus Day and Veterans Day, the banks do not: no settlement on them.
    assert settles["2020-10-09"] == "2020-10-14" and settles["2020-10-12"] == "2020-10-14"
    assert settles["2020-11-09"] == "2020-11-12" and settles["2020-11-11"] == "2020-11-13"
    assert settles["2024-05-28"] == "2024-05-29" and settles["2024-05-31"] == "2024-06-03"  # T+1
    assert settles["2024-06-03"] == "2024-06-04"  # after the last day asked for too
    # alpaca-py reads the same days.
    from alpaca.trading.requests import GetCalendarRequest

    parsed = await in_thread(client.get_calendar, GetCalendarRequest(start=date(2000, 1, 1), end=date(2030, 1, 1)))
    assert len(parsed) == 2011 and parsed[0].date == date(2018, 1, 2)


async def held(api, symbol, qty):
    """Buy ``qty`` of ``symbol`` at the market through alpaca-py and let it fill: (the client, the position)."""
    from alpaca.trading.requests import MarketOrderRequest

    client = api.trading()
    await in_thread(client.submit_order, MarketOrderRequest(symbol=symbol, qty=qty, side="buy", time_in_force="day"))
    await api.d.tick()
    [position] = await in_thread(client.get_all_positions)
    return client, position


@pytest_twisted.ensureDeferred
async def test_a_position_is_as_marginable_as_its_asset(replay):
    client, position = await held(replay, "XYZ", 10)
    asset = await in_thread(client.get_asset, "XYZ")
    assert asset.marginable is True and position.asset_marginable is True  # in a cash portfolio too, as at Alpaca
    assert (await in_thread(client.get_open_position, "XYZ")).asset_marginable is True


@pytest_twisted.ensureDeferred
async def test_a_position_on_a_server_without_margin_is_not_marginable(minutes):
    client, position = await held(minutes, "AAPL", 1)
    assert (await in_thread(client.get_asset, "AAPL")).marginable is False and position.asset_marginable is False


@pytest_twisted.ensureDeferred
async def test_a_history_window_from_the_machines_clock_is_told_the_replays_time(replay):
    """A strategy's window built from datetime.now() (years after a replay's time) asked for the portfolio
    history with only a start, and was told 'the start must come before the end': an end it never gave."""
    from alpaca.common.exceptions import APIError
    from alpaca.trading.requests import GetPortfolioHistoryRequest

    client = replay.trading()
    market_now = (await in_thread(client.get_clock)).timestamp
    start = datetime.now(timezone.utc) - timedelta(days=30)
    with pytest.raises(APIError) as excinfo:
        await in_thread(client.get_portfolio_history, GetPortfolioHistoryRequest(start=start, timeframe="1D"))
    status, code, message = api_error(excinfo)
    assert (status, code) == (422, 42210000)
    assert message == (f"the start, {start:%Y-%m-%dT%H:%M:%SZ}, is not before the market's time now,"
                       f" {market_now:%Y-%m-%dT%H:%M:%SZ} (the end when none is given): take the time from the"
                       " server's clock (GET /v2/clock), not from your machine's")
    with pytest.raises(APIError) as excinfo:  # an end given: as before
        await in_thread(client.get_portfolio_history, GetPortfolioHistoryRequest(
            start=market_now - timedelta(days=1), end=market_now - timedelta(days=2), timeframe="1D"))
    assert api_error(excinfo)[2] == "the start must come before the end"


@pytest_twisted.ensureDeferred
async def test_a_replays_account_was_created_at_the_market_time(replay):
    """In a replay the account showed the wall clock's time as its created_at (years after the replay's): orders
    listed after it found none, and a portfolio history from it was refused.  It shows the market's time when it
    was made; the orders placed then show a microsecond after it, so ``after=created_at`` finds them all."""
    from zoneinfo import ZoneInfo

    from alpaca.trading.requests import GetOrdersRequest, GetPortfolioHistoryRequest, MarketOrderRequest

    client = replay.trading()
    account = await in_thread(client.get_account)
    market_now = (await in_thread(client.get_clock)).timestamp
    assert account.created_at == market_now  # the market has not moved since the account was made
    first = await in_thread(client.submit_order, MarketOrderRequest(symbol="XYZ", qty=10, side="buy",
                                                                    time_in_force="day"))
    assert first.created_at > account.created_at
    for _ in range(2):
        await replay.d.tick()
    second = await in_thread(client.submit_order, MarketOrderRequest(symbol="XYZ", qty=1, side="sell",
                                                                     time_in_force="day"))
    listed = await in_thread(client.get_orders, GetOrdersRequest(status="all", after=account.created_at))
    assert sorted(o.id for o in listed) == sorted([first.id, second.id])
    history = await in_thread(client.get_portfolio_history,
                              GetPortfolioHistoryRequest(start=account.created_at, timeframe="1D"))
    new_york = ZoneInfo("America/New_York")  # the days played since: the 5th (bought at its open) and the 6th
    assert history.timestamp == [int(datetime(2024, 3, day, tzinfo=new_york).timestamp()) for day in (5, 6)]
    assert history.equity == [pytest.approx(100000), pytest.approx(100000 - 1030 + 980)]
    assert (await in_thread(client.get_account)).created_at == account.created_at  # as it was: it stays


@pytest_twisted.ensureDeferred
async def test_portfolio_history_of_a_daily_replay(replay):
    """Daily points are labelled with their day at 00:00 in New York, as Alpaca's; hourly and minute points need
    intraday prices, which a replay of whole sessions does not have: a 422 that says so, not an empty history."""
    from zoneinfo import ZoneInfo

    from alpaca.common.exceptions import APIError
    from alpaca.trading.requests import GetPortfolioHistoryRequest, MarketOrderRequest

    client = replay.trading()
    await in_thread(client.submit_order, MarketOrderRequest(symbol="XYZ", qty=10, side="buy", time_in_force="day"))
    for _ in range(3):
        await replay.d.tick()
    history = await in_thread(client.get_portfolio_history, GetPortfolioHistoryRequest(period="1M", timeframe="1D"))
    new_york = ZoneInfo("America/New_York")
    assert history.timestamp == [int(datetime(2024, 3, day, tzinfo=new_york).timestamp()) for day in (4, 5, 6, 7)]
    assert history.timestamp[0] == 1709528400  # 2024-03-04 05:00 UTC
    assert history.equity[1:] == [pytest.approx(100000), pytest.approx(100000 - 1030 + 980),
                                  pytest.approx(100000 - 1030 + 995)]
    # Profit and loss count from the equity before the period (Alpaca's base_value): the cash it started with,
    # here; the first point's own result is not hidden as 0.
    assert history.base_value == 100000
    assert history.profit_loss == [pytest.approx(e - 100000) for e in history.equity]
    later = await in_thread(client.get, "/account/portfolio/history", {"timeframe": "1D", "start": "2024-03-06"})
    assert later["equity"][0] == pytest.approx(100000 - 1030 + 980)  # the 6th: the buy and its day's loss
    assert later["base_value"] == pytest.approx(100000)  # the equity at the 5th's close, before the 6th
    assert later["profit_loss"][0] == pytest.approx(-50)
    # A window that ends before the first trade: the cash it started with (it showed today's cash).
    early = await in_thread(client.get, "/account/portfolio/history", {"timeframe": "1D", "start": "2024-03-04",
                                                                       "end": "2024-03-05T12:00:00Z"})
    assert early["equity"] and early["equity"] == [pytest.approx(100000)] * len(early["equity"]), early
    held = await in_thread(client.get, "/account/portfolio/history", {"timeframe": "1D", "start": "2024-03-07"})
    assert held["base_value"] == pytest.approx(100000 - 1030 + 980)  # the 10 shares at the 6th's close
    assert held["profit_loss"][0] == pytest.approx(15)  # the 7th: 10 x (99.50 - 98.00)
    for frame in ("1H", "15Min", "1Min"):
        with pytest.raises(APIError) as excinfo:
            await in_thread(client.get_portfolio_history, GetPortfolioHistoryRequest(period="1W", timeframe=frame))
        status, code, message = api_error(excinfo)
        assert (status, code) == (422, 42210000) and "whole sessions" in message and "timeframe=1D" in message


@pytest_twisted.ensureDeferred
async def test_hourly_portfolio_history_of_a_minute_market(minutes):
    from alpaca.trading.requests import GetPortfolioHistoryRequest

    client = minutes.trading()
    history = await in_thread(client.get_portfolio_history, GetPortfolioHistoryRequest(period="1D", timeframe="1H"))
    assert history.timeframe == "1H" and len(history.timestamp) >= 1
    assert all(t % 3600 == 0 for t in history.timestamp) and history.equity[-1] == pytest.approx(100000)


@pytest_twisted.ensureDeferred
async def test_bars_without_a_start_in_a_daily_replay(replay):
    """Without start, bars are from the start of the market's day, as Alpaca's: in a daily replay the session
    ahead has not traded yet between steps, so none, in Alpaca's shape; with a start, the sessions played."""
    data = replay.data()
    await replay.d.tick()
    assert await in_thread(data.get, "/stocks/bars", {"symbols": "XYZ", "timeframe": "1Day"}) == {
        "bars": {}, "next_page_token": None}
    assert await in_thread(data.get, "/stocks/XYZ/bars", {"timeframe": "1Day"}) == {
        "bars": [], "symbol": "XYZ", "next_page_token": None}
    played = await in_thread(data.get, "/stocks/bars", {"symbols": "XYZ", "timeframe": "1Day", "start": "2024-03-01"})
    assert [b["c"] for b in played["bars"]["XYZ"]] == [101, 103] and played["next_page_token"] is None


@pytest_twisted.ensureDeferred
async def test_intraday_bars_of_a_daily_replay_are_refused_saying_so(replay):
    """A replay of whole sessions has daily bars only: an intraday timeframe is a 422 that says so (as portfolio
    history's), not an empty answer that looks like bars still to come; 1Day answers as before."""
    from alpaca.common.exceptions import APIError

    data = replay.data()
    for _ in range(2):
        await replay.d.tick()
    for path, query in (("/stocks/bars", {"symbols": "XYZ"}), ("/stocks/XYZ/bars", {})):
        for frame in ("1Min", "15Min", "1Hour"):
            with pytest.raises(APIError) as excinfo:
                await in_thread(data.get, path, dict(query, timeframe=frame, start="2024-03-01"))
            assert api_error(excinfo) == (422, 42210000, f"timeframe {frame} needs intraday prices, and this market"
                                          " is a replay of whole sessions (replay_step 1d: daily bars only); use"
                                          " timeframe=1Day")
    played = await in_thread(data.get, "/stocks/bars", {"symbols": "XYZ", "timeframe": "1Day", "start": "2024-03-01"})
    assert [b["c"] for b in played["bars"]["XYZ"]] == [101, 103, 98]


@pytest_twisted.ensureDeferred
async def test_bars_without_a_start_are_the_new_york_days_in_its_evening(tmp_path, settings, database_url):
    """On a New York market, from 20:00 New York time on it is the next day in UTC: bars without start are still
    that New York day's (from its 00:00 New York, as Alpaca's), not none (from midnight UTC).  As Alpaca's, a
    daily bar is stamped at midnight New York time, and start and end both include a bar stamped at them."""
    from zoneinfo import ZoneInfo

    from twisted.internet import task

    from tests.conftest import bounded

    new_york = ZoneInfo("America/New_York")
    clock = task.Clock()
    clock.advance(datetime(2026, 9, 21, 15, 56, tzinfo=new_york).timestamp())  # a Monday, before the close
    a = await start_api(tmp_path, settings, database_url, clock, calendar="XNYS", update_interval=60.0,
                        heartbeat_interval=3600.0, fill_model="ideal", api_rate_limit=100_000)
    try:
        for _ in range(2):
            await a.d.tick()
        market = a.d.master.market
        stored = await market.candles.read("AAPL", "1m", 100)
        assert len(stored) >= 2 and {c["time"].astimezone(new_york).date() for c in stored} == {date(2026, 9, 21)}
        while market.market_clock.now() < datetime(2026, 9, 21, 21, 30, tzinfo=new_york):
            clock.advance(1800)  # half an hour at a time: the workers hear a heartbeat every hour
            await bounded(market.busy, "a market update")
        assert market.market_clock.now().astimezone(timezone.utc).date() == date(2026, 9, 22)
        data = a.data()
        minutes = await in_thread(data.get, "/stocks/bars", {"symbols": "AAPL", "timeframe": "1Min"})
        assert [parse_iso(b["t"]) for b in minutes["bars"]["AAPL"]] == [c["time"] for c in stored]
        daily = await in_thread(data.get, "/stocks/AAPL/bars", {"timeframe": "1Day"})
        midnight = datetime(2026, 9, 21, tzinfo=new_york)
        assert [parse_iso(b["t"]) for b in daily["bars"]] == [midnight]

        def stamps(timeframe, start, end=None):
            query = {"timeframe": timeframe, "start": start.isoformat(), **({"end": end.isoformat()} if end else {})}
            return [parse_iso(b["t"]) for b in data.get("/stocks/AAPL/bars", query)["bars"]]

        first, second = stored[0]["time"], stored[1]["time"]
        assert await in_thread(stamps, "1Min", first, second) == [first, second]
        assert await in_thread(stamps, "1Min", second, second) == [second]
        assert await in_thread(stamps, "1Day", midnight, midnight) == [midnight]
        assert await in_thread(stamps, "1Day", midnight + timedelta(seconds=1)) == []  # the bar is before it
        assert await in_thread(stamps, "1Day", midnight - timedelta(days=3), midnight - timedelta(seconds=1)) == []
        assert await in_thread(stamps, "1Day", midnight - timedelta(days=3), midnight) == [midnight]
        # A day (not a time) is that day in New York: start from its start, end through its end (the bar of
        # 21 September, stamped at its midnight, is in start=end=2026-09-21; and in 1Min bars, its minutes).
        for frame, expected in (("1Day", [midnight]), ("1Week", [midnight]), ("1Min", [c["time"] for c in stored])):
            answer = await in_thread(data.get, "/stocks/AAPL/bars", {"timeframe": frame, "start": "2026-09-21",
                                                                    "end": "2026-09-21"})
            assert [parse_iso(b["t"]) for b in answer["bars"]] == expected, frame
        answer = await in_thread(data.get, "/stocks/AAPL/bars", {"timeframe": "1Day", "start": "2026-09-18",
                                                                "end": "2026-09-20"})
        assert answer["bars"] == []
        latest = await in_thread(data.get, "/stocks/snapshots", {"symbols": "AAPL"})
        assert parse_iso(latest["AAPL"]["dailyBar"]["t"]) == midnight
    finally:
        await a.d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_corporate_actions_through_alpaca_py_never_show_a_replays_future(replay):
    """Alpaca's corporate actions (alpaca-py's CorporateActionsClient): the replay's splits and dividends, each
    once its day has played (a strategy reading them never learns of a split before it happens), by process
    date (a dividend's pay date), with their rates; filters, paging and bad input as Alpaca's."""
    from alpaca.common.exceptions import APIError
    from alpaca.data.enums import CorporateActionsType
    from alpaca.data.historical.corporate_actions import CorporateActionsClient
    from alpaca.data.requests import CorporateActionsRequest

    client = CorporateActionsClient(replay.key_id, replay.secret, url_override=replay.url)
    march = dict(start=date(2024, 3, 1), end=date(2024, 3, 31))

    async def played_through(day):
        for _ in range(20):
            quote = replay.d.master.board.get("XYZ")
            if quote is not None and quote.session_open is not None and quote.session_open.date() >= day:
                return
            await replay.d.tick()
        raise AssertionError(f"the replay did not reach {day}")

    async def actions(**filters):
        found = await in_thread(client.get_corporate_actions, CorporateActionsRequest(**dict(march, **filters)))
        return {kind: [(a.symbol, a.ex_date.day) for a in items] for kind, items in found.data.items()}

    await played_through(date(2024, 3, 7))
    assert await actions() == {}  # the split of the 8th has not happened yet
    await played_through(date(2024, 3, 8))
    found = await in_thread(client.get_corporate_actions, CorporateActionsRequest(**march))
    [split] = found.data["forward_splits"]
    assert (split.symbol, split.ex_date, split.new_rate, split.old_rate) == ("XYZ", date(2024, 3, 8), 2, 1)
    await played_through(date(2024, 3, 13))
    assert await actions() == {"forward_splits": [("XYZ", 8)], "cash_dividends": [("XYZ", 12), ("ABC", 13)]}
    found = await in_thread(client.get_corporate_actions, CorporateActionsRequest(
        symbols=["ABC"], types=[CorporateActionsType.CASH_DIVIDEND], **march))
    [dividend] = found.data["cash_dividends"]
    assert (dividend.rate, dividend.process_date, dividend.payable_date) == (0.1, date(2024, 3, 15),
                                                                             date(2024, 3, 15))
    assert await actions(types=[CorporateActionsType.REVERSE_SPLIT]) == {}
    assert await actions(start=date(2024, 3, 9), end=date(2024, 3, 12)) == {"cash_dividends": [("XYZ", 12)]}

    # Pages of one, newest first, through the raw API (a dividend is processed on its pay date: ABC's, the 15th).
    seen, token = [], None
    for _ in range(5):
        page = await in_thread(client.get, "/corporate-actions", dict(
            {"start": "2024-03-01", "end": "2024-03-31", "limit": 1, "sort": "desc"},
            **({"page_token": token} if token else {})))
        seen += [(kind, a["symbol"]) for kind, items in page["corporate_actions"].items() for a in items]
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == [("cash_dividends", "ABC"), ("cash_dividends", "XYZ"), ("forward_splits", "XYZ")]
    for params, words in (({"types": "bonus"}, "types: 'bonus' is not one of"),
                          ({"start": "2024-03-31", "end": "2024-03-01"}, "end is before start"),
                          ({"ids": "x"}, "ids is not supported")):
        with pytest.raises(APIError) as e:
            await in_thread(client.get, "/corporate-actions", params)
        assert e.value.status_code == 422 and words in e.value.message


@pytest_twisted.ensureDeferred
async def test_a_replay_that_has_not_played_yet_knows_the_history_before_its_start(tmp_path, settings, database_url,
                                                                                  clock):
    """A strategy warming up on adjusted history before the first update (a replay waiting at its first open)
    gets it adjusted by the splits and dividends before that day, which have happened; never by a later one."""
    a = await start_api(tmp_path, settings, database_url, clock, provider="replay", assets=(), replay_files=FIXTURE,
                        replay_start="2024-03-13", fill_model="ideal", api_rate_limit=100_000)
    try:
        from alpaca.data.historical.corporate_actions import CorporateActionsClient

        data = a.data()
        # Moved to the 13th's open (as an operator's seek, or a master started with replay_start): its prices are
        # the last ones before it, and no session has played since.
        await a.d.master.market.control("seek", "2024-03-13")
        assert all(q.session_open is None for q in a.d.master.board.all())
        actions = await in_thread(CorporateActionsClient(a.key_id, a.secret, url_override=a.url).get,
                                  "/corporate-actions", {"start": "2024-03-01", "end": "2024-03-31"})
        assert {kind: [x["ex_date"] for x in items] for kind, items in actions["corporate_actions"].items()} == {
            "forward_splits": ["2024-03-08"], "cash_dividends": ["2024-03-12"]}  # ABC's of the 13th: not yet
        split = await in_thread(data.get, "/stocks/bars", {"symbols": "XYZ", "timeframe": "1Day",
                                                            "start": "2024-03-04", "end": "2024-03-06",
                                                            "adjustment": "split"})  # (through the 6th)
        assert [b["c"] for b in split["bars"]["XYZ"]] == [50.5, 51.5, 49]  # halved: the split of the 8th happened
    finally:
        await a.d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_a_backtest_steps_the_replay_in_lockstep_with_its_strategy(replay):
    """``market step N`` (papertrader-admin, the console): the replay is paused, then plays exactly N updates,
    each with its trading step, and answers once they are done; the wall clock's interval moves nothing
    meanwhile, so a strategy sees every day."""
    from alpaca.trading.requests import GetCalendarRequest, MarketOrderRequest

    from papertrader.errors import InvalidInput

    d = replay.d
    market = d.master.market
    client = replay.trading()
    start = (await in_thread(client.get_clock)).timestamp
    state = await market.control("step", "1")
    assert state["state"] == "paused"
    after_one = (await in_thread(client.get_clock)).timestamp
    assert after_one > start
    order = await in_thread(client.submit_order, MarketOrderRequest(symbol="XYZ", qty=1, side="buy",
                                                                    time_in_force="day"))
    await d.tick()  # the interval's own update: paused, nothing plays
    assert (await in_thread(client.get_clock)).timestamp == after_one
    assert (await in_thread(client.get_order_by_id, order.id)).status.value == "new"
    await market.control("step", "2")
    sessions = [s.date for s in await in_thread(client.get_calendar, GetCalendarRequest(start=start.date(),
                                                                                        end=date(2024, 3, 31)))]
    assert (await in_thread(client.get_clock)).timestamp.date() == sessions[3]  # three sessions on, exactly
    assert (await in_thread(client.get_order_by_id, order.id)).status.value == "filled"  # its step traded it
    for bad in ("0", "261", "x"):
        with pytest.raises(InvalidInput, match="market step takes a number of updates from 1 to 260"):
            await market.control("step", bad)


@pytest_twisted.ensureDeferred
async def test_an_account_the_operator_names_steps_the_replay_from_its_strategy(tmp_path, settings, database_url,
                                                                                clock):
    """``market_control``: a named account pauses, steps, resumes and seeks the replay itself, through the HTTP API
    (alpaca-py's ``post``) and the command line, each answered with the clock once done; any other account is
    refused (403 not_permitted), and nothing moves."""
    import json

    from alpaca.common.exceptions import APIError
    from alpaca.trading.requests import GetCalendarRequest, MarketOrderRequest

    from tests.http_helpers import make_key
    from tests.test_e2e import register_and_login

    a = await start_api(tmp_path, settings, database_url, clock, provider="replay", assets=(), replay_files=FIXTURE,
                        replay_start="2024-03-04", fill_model="ideal", api_rate_limit=100_000,
                        market_control=("Alice",), replay_paused=True)
    try:
        d, client = a.d, a.trading()
        # replay_paused: the new replay waits at its first open, whatever the timer does, until it is stepped.
        await d.tick()
        start = (await in_thread(client.get_clock)).timestamp
        assert start == datetime(2024, 3, 4, 14, 30, tzinfo=timezone.utc)
        assert (await in_thread(client.get, "/papertrader/market"))["state"] == "paused"
        def moment(text):
            return datetime.fromisoformat(text.replace("Z", "+00:00"))

        answer = await in_thread(client.post, "/papertrader/market/step", {"count": 1})
        after_one = (await in_thread(client.get_clock)).timestamp
        assert answer["state"] == "paused" and moment(answer["timestamp"]) == after_one > start
        order = await in_thread(client.submit_order, MarketOrderRequest(symbol="XYZ", qty=1, side="buy",
                                                                        time_in_force="day"))
        await d.tick()  # paused: the interval's update plays nothing
        assert (await in_thread(client.get_clock)).timestamp == after_one
        answer = await in_thread(client.post, "/papertrader/market/step")  # one, by default
        assert (await in_thread(client.get_order_by_id, order.id)).status.value == "filled"  # its step traded it
        after_two = (await in_thread(client.get_clock)).timestamp
        assert moment(answer["timestamp"]) == after_two > after_one

        # The command line too: two updates, then a seek back, then resume.
        sessions = [s.date for s in await in_thread(client.get_calendar, GetCalendarRequest(
            start=after_two.date(), end=date(2024, 3, 31)))]
        status, out, err = await d.cli("market", "step", "2", user="alice")
        assert status == 0, err
        stepped = json.loads(out)
        assert stepped["state"] == "paused" and moment(stepped["time"]).date() == sessions[2]
        assert (await in_thread(client.get_clock)).timestamp == moment(stepped["time"])
        status, out, err = await d.cli("market", "seek", "2024-03-05", user="alice")
        assert status == 0, err
        status, out, err = await d.cli("market", "pause", "now", user="alice")
        assert status == 1 and "market pause takes no argument" in err, err
        assert (await in_thread(client.get_clock)).timestamp.date() == date(2024, 3, 5)
        answer = await in_thread(client.post, "/papertrader/market/resume")
        assert answer["state"] == "running"

        # Bad requests: typed refusals, and the clock unchanged.
        for path, data, status_code, words in (
                ("/papertrader/market/step", {"count": 0}, 422, "count must be a whole number of updates from 1 to 260"),
                ("/papertrader/market/step", {"count": 261}, 422, "from 1 to 260"),
                ("/papertrader/market/step", {"steps": 2}, 422, "unknown field 'steps'"),
                ("/papertrader/market/seek", {}, 422, "date is required"),
                ("/papertrader/market/seek", {"date": "2024-13-40"}, 422, "there is no day 2024-13-40"),
                ("/papertrader/market/seek", {"date": "24-03-05"}, 422, "date must be a day, YYYY-MM-DD"),
                ("/papertrader/market/rewind", {}, 404, "no such market action")):
            with pytest.raises(APIError) as e:
                await in_thread(client.post, path, data)
            assert e.value.status_code == status_code and words in e.value.message, (path, data, e.value.message)

        # Another account may not move the market.
        await register_and_login(d, user="bob")
        key_id, secret = await make_key(d, user="bob")
        from alpaca.trading.client import TradingClient

        bob = TradingClient(key_id, secret, paper=True, url_override=a.url)
        before = (await in_thread(client.get_clock)).timestamp
        with pytest.raises(APIError) as e:
            await in_thread(bob.post, "/papertrader/market/step", {"count": 5})
        assert e.value.status_code == 403 and "market_control" in e.value.message
        status, out, err = await d.cli("market", "pause", user="bob")
        assert status == 1 and "market_control" in err, err
        assert (await in_thread(client.get_clock)).timestamp == before
        assert d.master.market.market_clock.state == "running"
        # The status is anyone's: it moves nothing.
        status_view = await in_thread(bob.get, "/papertrader/market")
        assert (status_view["state"], status_view["mode"]) == ("running", "replay")
        status, out, err = await d.cli("market", "status", user="bob")
        assert status == 0 and json.loads(out)["state"] == "running", err

        # Past the end: a step plays what is left and says how many; then the ended replay refuses another.
        await in_thread(client.post, "/papertrader/market/seek", {"date": "2024-03-13"})
        answer = await in_thread(client.post, "/papertrader/market/step", {"count": 5})
        assert (answer["played"], answer["state"]) == (3, "ended")  # the 13th, 14th and 15th: its last days
        with pytest.raises(APIError) as e:
            await in_thread(client.post, "/papertrader/market/step", {"count": 1})
        assert e.value.status_code == 422 and "the replay has ended (its last day: 2024-03-15)" in e.value.message
        assert any("the replay plays its last day, 2024-03-15" in e.message for e in d.master.logs.memory.newest(None))
    finally:
        await a.d.cluster.stopService()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_quote_before_a_paused_replay_plays_names_the_symbol_and_what_makes_it_play(tmp_path, settings,
                                                                                            database_url, clock):
    """A new replay started paused (a backtest in lockstep) has no price until it is stepped: 'papertrader quote
    XYZ' said "No price is known yet for that symbol; try again after the next update", and no update ever came by
    itself. It now names the symbol and says what plays the replay."""
    a = await start_api(tmp_path, settings, database_url, clock, provider="replay", assets=(), replay_files=FIXTURE,
                        replay_start="2024-03-04", replay_paused=True)
    try:
        d = a.d
        await d.tick()  # paused: plays nothing
        status, out, err = await d.cli("quote", "XYZ", user="alice", json=False)
        assert (status, out) == (1, ""), out
        assert err == ("papertrader: no price is known yet for XYZ: the replay is paused before its first update, and"
                       " plays when it is stepped or resumed ('papertrader market step' by an account market_control"
                       " names, or the operator's 'papertrader-admin market step' or 'market resume')\n"), err
        await d.master.market.control("step", "1")
        status, out, err = await d.cli("quote", "XYZ", user="alice")
        assert status == 0, err
    finally:
        await a.d.cluster.stopService()
