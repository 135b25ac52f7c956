"""Application commands the HTTP API needs, on both databases: order pages from an id (oldest first), a replace
that is retried, a trailing stop's new trail, activities with the account's id, bars paged either way, the
newest bars of each symbol, assets paged by symbol, and calendars in their exchange's time zone."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
import pytest_twisted

from papertrader.app.market_data import MarketDataCommands
from papertrader.errors import DuplicateOrder, InsufficientPosition, InvalidInput
from papertrader.market import calendar
from papertrader.market.clock import MarketClock
from papertrader.master.candles import CandleStore
from papertrader.times import utc
from papertrader.trading.market import Bar
from tests.test_orders import (  # noqa: F401 (fixtures)
    accounts,
    board,
    ideal,
    make_trading,
    published,
    quote,
    stamp,
    step,
    submit,
    trading,
    user,
)


@pytest_twisted.ensureDeferred
async def test_orders_page_oldest_first_from_an_id_and_a_filter_on_any_symbol(trading, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="10.00")
    ids = [(await submit(alice, f"o{n}", "buy", "AAPL", "1", type="limit", limit_price="5"))["id"] for n in range(5)]
    pages, after = [], None
    while True:
        page = (await trading.orders(alice, None, 2, "open", direction="asc", after_id=after))["orders"]
        if not page:
            break
        pages.append([o["id"] for o in page])
        after = page[-1]["id"]
    assert pages == [ids[:2], ids[2:4], ids[4:]]
    assert (await trading.orders(alice, None, 10, symbols=["ZZZZ", "aapl"]))["orders"][0]["id"] == ids[0]
    assert (await trading.orders(alice, None, 10, symbols=["ZZZZ"]))["orders"] == []
    with pytest.raises(InvalidInput):
        await trading.orders(alice, None, 10, after_id=-1)


@pytest_twisted.ensureDeferred
async def test_a_replace_retried_with_its_client_order_id_answers_the_same_order(db, trading, user, submit, quote,
                                                                                 published):
    alice = await user("alice")
    quote(AAPL="100")
    order = await submit(alice, "lim", "buy", "AAPL", "10", type="limit", limit_price="90", time_in_force="gtc")
    first = await trading.replace_order(alice, stamp(trading.clock), order["id"], client_order_id="new-1",
                                        limit_price="95")
    again = await trading.replace_order(alice, stamp(trading.clock), order["id"], client_order_id="new-1",
                                        limit_price="95")
    assert again["id"] == first["id"] and again["limit_price"] == D(95)
    assert await db.query("SELECT COUNT(*) FROM orders") == [(2,)]
    assert [e["event"] for _, e in published] == ["accepted", "replaced", "accepted"]  # nothing more
    with pytest.raises(DuplicateOrder):  # the same id with other changes
        await trading.replace_order(alice, stamp(trading.clock), order["id"], client_order_id="new-1",
                                    limit_price="96")
    other = await submit(alice, "lim2", "buy", "AAPL", "1", type="limit", limit_price="80")
    with pytest.raises(DuplicateOrder):  # the same id for another order
        await trading.replace_order(alice, stamp(trading.clock), other["id"], client_order_id="new-1",
                                    limit_price="95")


@pytest_twisted.ensureDeferred
async def test_a_new_trail_is_in_dollars_or_percent_as_the_order_has_it(trading, user, submit, quote, step):
    alice = await user("alice")
    quote(AAPL="100")
    await submit(alice, "b", "buy", "AAPL", "10")
    await step(AAPL="100")
    percent = await submit(alice, "tp", "sell", "AAPL", "1", type="trailing_stop", trail_percent="2")
    dollars = await submit(alice, "td", "sell", "AAPL", "1", type="trailing_stop", trail_price="3")
    limit = await submit(alice, "l", "sell", "AAPL", "1", type="limit", limit_price="150")
    new = await trading.replace_order(alice, stamp(trading.clock), percent["id"], trail="1.5")
    assert (new["trail_percent"], new.get("trail_price")) == (D("1.5"), None)
    new = await trading.replace_order(alice, stamp(trading.clock), dollars["id"], trail="2.25")
    assert (new["trail_price"], new.get("trail_percent")) == (D("2.25"), None)
    with pytest.raises(InvalidInput, match="trailing stop"):
        await trading.replace_order(alice, stamp(trading.clock), limit["id"], trail="1")
    with pytest.raises(InvalidInput):
        await trading.replace_order(alice, stamp(trading.clock), new["id"], trail="-1")


@pytest_twisted.ensureDeferred
async def test_activities_carry_the_account_id(db, trading, user, submit, quote, step):
    alice = await user("alice")
    quote(AAPL="100")
    order = await submit(alice, "b", "buy", "AAPL", "2")
    await step(AAPL="100")
    answer = await trading.activities(alice, None)
    [(account_uuid,)] = await db.query("SELECT uuid FROM accounts WHERE username = 'alice'")
    assert answer["account_uuid"] == account_uuid
    [fill] = answer["activities"]
    assert (fill["kind"], fill["order_uuid"], fill["quantity"], fill["leaves_qty"]) == ("fill", order["uuid"], 2, 0)


@pytest_twisted.ensureDeferred
async def test_closing_a_position_cancels_its_exits_first_and_only_those(trading, user, submit, quote, step):
    """'Close position' of the website: an OCO of two exits holding the shares goes (both parts: 2 canceled), a
    buy of the same symbol and a sale of another stay, and the whole position is sold at the market."""
    alice = await user("alice")
    quote(AAPL="100", MSFT="50")
    await submit(alice, "b", "buy", "AAPL", "10")
    await submit(alice, "m", "buy", "MSFT", "4")
    await step(AAPL="100", MSFT="50")
    await submit(alice, "oco", "sell", "AAPL", "10", type="limit", limit_price="150", time_in_force="gtc",
                 order_class="oco", take_profit="150", stop_loss="80")
    await submit(alice, "more", "buy", "AAPL", "1", type="limit", limit_price="50", time_in_force="gtc")
    await submit(alice, "msft", "sell", "MSFT", "4", type="limit", limit_price="90", time_in_force="gtc")
    with pytest.raises(InsufficientPosition):  # without cancel_orders: the exits hold the shares
        await trading.close_position(alice, stamp(trading.clock), "AAPL")
    closed = await trading.close_position(alice, stamp(trading.clock), "AAPL", cancel_orders=True)
    assert (closed["side"], closed["quantity"], closed["type"], closed["canceled_orders"]) == ("sell", 10, "market",
                                                                                               2)
    still = (await trading.orders(alice, stamp(trading.clock), 10, status="open"))["orders"]
    assert sorted(o["client_order_id"] for o in still) == sorted(["more", "msft", closed["client_order_id"]])


# --- market data ------------------------------------------------------------------------------------


@pytest.fixture
def market_data(db, board, clock):
    return MarketDataCommands(board, CandleStore(db), MarketClock(calendar.load("always_open"), clock))


async def minute_bars(store, symbol, start, count):
    bars = [Bar(symbol, start + timedelta(minutes=i), start + timedelta(minutes=i + 1), D(100 + i), D(101 + i),
                D(99 + i), D(100 + i), 10) for i in range(count)]
    await store.store(bars, lambda b: b.start.replace(hour=0, minute=0))


@pytest_twisted.ensureDeferred
async def test_bars_leave_out_unknown_symbols_and_page_either_way(market_data, clock):
    today = utc(clock.seconds()).replace(hour=10, minute=0, second=0, microsecond=0)
    store = market_data.candles_store
    for symbol in ("AAPL", "MSFT"):
        await minute_bars(store, symbol, today, 12)
    await minute_bars(store, "AAPL", today - timedelta(days=1), 3)  # yesterday: not in a request without a start
    answer = await market_data.bars(None, ["ZZZZ", "msft", "AAPL"], "1Min")
    assert [(b["symbol"], b["time"]) for b in answer["bars"]][:2] == [("AAPL", today),
                                                                     ("AAPL", today + timedelta(minutes=1))]
    assert len(answer["bars"]) == 24 and "next_page_token" not in answer
    assert (await market_data.bars(None, ["ZZZZ"], "1Min"))["bars"] == []
    with pytest.raises(InvalidInput, match="invalid symbol"):
        await market_data.bars(None, ["AA PL"], "1Min")

    def page(sort, token, timeframe="1Min", limit=5):
        return market_data.bars(None, ["AAPL", "MSFT"], timeframe, limit=limit, page_token=token, sort=sort)

    for sort, frame, per_symbol in (("asc", "1Min", 12), ("desc", "1Min", 12), ("asc", "5Min", 3),
                                    ("desc", "5Min", 3)):
        seen, token = [], None
        while True:
            answer = await page(sort, token, frame, limit=2)
            seen += [(b["symbol"], b["time"], b["volume"]) for b in answer["bars"]]
            token = answer.get("next_page_token")
            if token is None:
                break
        expected = [(s, b["time"], b["volume"]) for s in ("AAPL", "MSFT")
                    for b in await store.read(s, {"1Min": "1m", "5Min": "5m"}[frame], 100, start=today)]
        if sort == "desc":
            expected = [x for s in ("AAPL", "MSFT") for x in reversed([e for e in expected if e[0] == s])]
        assert seen == expected and len(seen) == 2 * per_symbol, (sort, frame)
    # Whole 5-minute buckets only, newest first (the last pass): 10:10 holds the last two minutes, 10:05 and
    # 10:00 five each, though pages end inside them.
    assert [v for _, _, v in seen[:3]] == [20, 50, 50]


@pytest_twisted.ensureDeferred
async def test_weeks_and_months_page_either_way_whole_on_a_calendar_that_trades_every_day(market_data):
    """always_open trades seven days a week and up to 31 a month: every period is read whole, page after page,
    whichever the order (each period's volume is the sum of its days')."""
    first = datetime(2024, 1, 1, tzinfo=timezone.utc)  # a Monday
    days = [first + timedelta(days=n) for n in range(366)]
    for symbol in ("AAPL", "MSFT"):
        await market_data.candles_store.store(
            [Bar(symbol, d, d + timedelta(days=1), D(100), D(101 + n % 7), D(99), D(100 + n % 5), 1 + n)
             for n, d in enumerate(days)], lambda b: b.start)
    weeks = {}
    months = {}
    for n, d in enumerate(days):
        weeks.setdefault(d - timedelta(days=d.weekday()), []).append(1 + n)
        months.setdefault(d.replace(day=1), []).append(1 + n)
    for frame, periods in (("1Week", weeks), ("1Month", months)):
        for sort in ("asc", "desc"):
            seen, token = [], None
            while True:
                answer = await market_data.bars(None, ["AAPL", "MSFT"], frame, start=first, limit=5,
                                                page_token=token, sort=sort)
                seen += [(b["symbol"], b["time"], b["volume"]) for b in answer["bars"]]
                token = answer.get("next_page_token")
                if token is None:
                    break
            expected = [(s, t, sum(v)) for s in ("AAPL", "MSFT")
                        for t, v in sorted(periods.items(), reverse=sort == "desc")]
            assert seen == expected, (frame, sort)
    assert len(weeks) == 53 and len(months) == 12
    # A period that began before `start` is left out (as Alpaca leaves out a bar stamped before it).
    later = await market_data.bars(None, ["AAPL"], "1Week", start=datetime(2024, 1, 3, tzinfo=timezone.utc),
                                   limit=1)
    assert [b["time"] for b in later["bars"]] == [datetime(2024, 1, 8, tzinfo=timezone.utc)]


def test_a_periods_days_are_the_markets_days_in_its_time_zone():
    """Sydney's Monday session opens on Sunday in UTC: it still starts Monday's week, and the 1st's session its
    month."""
    from zoneinfo import ZoneInfo

    from papertrader.market.periods import fold, next_period, period_start

    sydney = ZoneInfo("Australia/Sydney")
    monday_open = datetime(2024, 1, 7, 23, 0, tzinfo=timezone.utc)  # Monday 8 January, 10:00 in Sydney
    assert period_start(monday_open, "week", 1, sydney) == datetime(2024, 1, 7, 13, 0, tzinfo=timezone.utc)
    assert period_start(monday_open, "week") == datetime(2024, 1, 1, tzinfo=timezone.utc)  # in UTC: last week's
    assert next_period(monday_open, "month", 3, sydney) == datetime(2024, 3, 31, 13, 0, tzinfo=timezone.utc)
    bars = [dict(time=t, open=D(1), high=D(2), low=D(1), close=D(c), volume=1)
            for t, c in ((datetime(2024, 1, 4, 23, tzinfo=timezone.utc), 1),  # Friday 5 January in Sydney
                         (monday_open, 2), (datetime(2024, 1, 8, 23, tzinfo=timezone.utc), 3))]
    assert [(b["time"], b["close"], b["volume"]) for b in fold(bars, "week", 1, sydney)] == [
        (bars[0]["time"], 1, 1), (monday_open, 3, 2)]


@pytest_twisted.ensureDeferred
async def test_latest_bars_of_each_symbol(market_data, clock):
    start = utc(clock.seconds()).replace(hour=10, minute=0, second=0, microsecond=0)
    await minute_bars(market_data.candles_store, "AAPL", start, 5)
    await minute_bars(market_data.candles_store, "MSFT", start, 2)
    answer = await market_data.latest_bars(None, ["MSFT", "AAPL", "TSLA", "ZZZZ"], "1Min", 2)
    assert [(b["symbol"], b["time"].minute) for b in answer["bars"]] == [("AAPL", 3), ("AAPL", 4), ("MSFT", 0),
                                                                          ("MSFT", 1)]
    daily = await market_data.latest_bars(None, ["AAPL"], "1Day")
    assert [(b["volume"], b["close"]) for b in daily["bars"]] == [(50, D(104))]
    with pytest.raises(InvalidInput):
        await market_data.latest_bars(None, ["AAPL"], "1Min", 11)


def test_assets_page_by_symbol(market_data):
    assert [a["symbol"] for a in market_data.asset_list(None, limit=2)["assets"]] == ["AAPL", "MSFT"]
    assert [a["symbol"] for a in market_data.asset_list(None, after="MSFT")["assets"]] == ["TSLA"]
    assert market_data.asset_list(None, after="TSLA")["assets"] == []
    with pytest.raises(InvalidInput):
        market_data.asset_list(None, limit=201)


def test_calendars_say_their_time_zone_and_local_dates(board, clock):
    nyse = MarketDataCommands(board, None, MarketClock(calendar.load("XNYS", 2024, 2024), clock))
    answer = nyse.calendar(None, datetime(2024, 3, 1, tzinfo=timezone.utc), datetime(2024, 3, 4, tzinfo=timezone.utc))
    assert answer["timezone"] == "America/New_York"
    assert [(s["date"], s["open"].hour) for s in answer["sessions"]] == [("2024-03-01", 14), ("2024-03-04", 14)]
    always = MarketDataCommands(board, None, MarketClock(calendar.load("always_open"), clock))
    answer = always.calendar(None, datetime(2024, 3, 1, tzinfo=timezone.utc), datetime(2024, 3, 2, tzinfo=timezone.utc))
    assert answer["timezone"] == "UTC" and [s["date"] for s in answer["sessions"]] == ["2024-03-01", "2024-03-02"]
    assert date.fromisoformat(answer["sessions"][0]["date"]) == answer["sessions"][0]["open"].date()


def test_the_calendar_starts_by_default_on_the_markets_day_in_its_time_zone(board):
    """At 20:30 New York time it is already the next day in UTC: the calendar without a start still lists that
    New York day's session first, as Alpaca's (its day is New York's)."""
    from twisted.internet import task

    evening = task.Clock()
    evening.advance(datetime(2024, 3, 5, 1, 30, tzinfo=timezone.utc).timestamp())  # Monday 4 March, 20:30 EST
    nyse = MarketDataCommands(board, None, MarketClock(calendar.load("XNYS", 2024, 2024), evening))
    assert [s["date"] for s in nyse.calendar(None)["sessions"][:2]] == ["2024-03-04", "2024-03-05"]


@pytest_twisted.ensureDeferred
async def test_daily_bars_of_a_market_east_of_utc_by_day_and_by_time(db, board, clock):
    """Tokyo opens at 00:00 UTC (09:00 there): its daily bar of 5 January is stamped at midnight Tokyo time
    (15:00 UTC on the 4th), as Alpaca stamps New York's.  A day asks for that day in Tokyo (start=end=5
    January gives its bar, not the 6th's nor none); a time compares with the stamp."""
    from zoneinfo import ZoneInfo

    tokyo = ZoneInfo("Asia/Tokyo")
    store = CandleStore(db)
    market_data = MarketDataCommands(board, store, MarketClock(calendar.load("XTKS", 2024, 2024), clock))
    opens = [datetime(2024, 1, d, tzinfo=timezone.utc) for d in (4, 5, 9)]  # 09:00 in Tokyo; the 8th a holiday
    await store.store([Bar("AAPL", t, t + timedelta(hours=6), D(100), D(101), D(99), D(100 + n), 10)
                       for n, t in enumerate(opens)], lambda b: b.start)
    midnights = [datetime(2024, 1, d, tzinfo=tokyo) for d in (4, 5, 9)]

    async def stamps(**window):
        return [b["time"] for b in (await market_data.bars(None, ["AAPL"], "1Day", **window))["bars"]]

    assert await stamps(start_day="2024-01-01") == midnights
    assert await stamps(start_day="2024-01-05", end_day="2024-01-05") == [midnights[1]]
    assert await stamps(start_day="2024-01-05", end_day="2024-01-08") == [midnights[1]]
    assert await stamps(start=midnights[1], end=midnights[2]) == midnights[1:]
    assert await stamps(start=midnights[1] + timedelta(seconds=1), end=midnights[2]) == [midnights[2]]
    assert await stamps(start=datetime(2024, 1, 5, tzinfo=timezone.utc)) == [midnights[2]]  # 09:00 in Tokyo
    with pytest.raises(InvalidInput, match="start must be a day"):
        await stamps(start_day="5 Jan")
