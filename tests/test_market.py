"""Market data: the seeded simulated source, the quote board, calendars, and the MarketService (task.Clock)."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.python.failure import Failure

from papertrader.market import calendar
from papertrader.market.board import Quote, QuoteBoard
from papertrader.market.clock import MarketClock
from papertrader.market.service import MarketService, restored_time
from papertrader.market.simulated import SimulatedSource as SimulatedProvider
from papertrader.master.candles import CandleStore
from papertrader.times import utc
from papertrader.trading.market import Bar

D = Decimal
ASSETS = ("AAPL", "MSFT", "TSLA")
T0 = datetime(2026, 9, 21, 12, 0, tzinfo=timezone.utc)
T1 = T0 + timedelta(seconds=5)


def result_of(d):
    """The result of a Deferred that has already fired (the simulated provider never waits)."""
    out = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def walk(provider, symbols, n):
    return [result_of(provider.fetch(symbols, T0, T1)) for _ in range(n)]


# --- the simulated provider (no reactor) -----------------------------------


def test_same_seed_gives_the_same_bars():
    assert walk(SimulatedProvider(7), ASSETS, 30) == walk(SimulatedProvider(7), ASSETS, 30)


def test_another_seed_gives_other_bars():
    a = walk(SimulatedProvider(7), ASSETS, 5)
    b = walk(SimulatedProvider(8), ASSETS, 5)
    for symbol in ASSETS:
        assert [bars[symbol] for bars in a] != [bars[symbol] for bars in b]


def test_an_assets_walk_does_not_depend_on_the_other_assets():
    alone = walk(SimulatedProvider(3), ("MSFT",), 10)
    together = walk(SimulatedProvider(3), ("AAPL", "MSFT", "TSLA"), 10)
    assert [b["MSFT"] for b in alone] == [b["MSFT"] for b in together]


def test_bars_are_well_formed_and_continuous():
    provider = SimulatedProvider(11)
    previous = {}
    for bars in walk(provider, ASSETS, 200):
        assert set(bars) == set(ASSETS)
        for symbol, bar in bars.items():
            assert (bar.symbol, bar.start, bar.end) == (symbol, T0, T1)
            assert bar.check() is bar
            assert bar.low <= bar.open <= bar.high
            assert bar.low <= bar.close <= bar.high
            assert bar.low >= D("1.00")
            for price in (bar.open, bar.high, bar.low, bar.close):
                assert price == price.quantize(D("0.01"))  # whole cents
            assert 1_000 <= bar.volume <= 100_000
            # Each interval is 12 moves of at most 0.2%.
            assert bar.high <= bar.open * D("1.025") and bar.low >= bar.open * D("0.975")
            if symbol in previous:
                assert bar.open == previous[symbol].close  # the walk continues where it stopped
            previous[symbol] = bar


def test_resume_continues_from_a_given_price():
    provider = SimulatedProvider(5)
    provider.resume("AAPL", D("123.45"))
    provider.resume("MSFT", D("0.37"))  # never below 1.00
    bars = result_of(provider.fetch(("AAPL", "MSFT"), T0, T1))
    assert bars["AAPL"].open == D("123.45")
    assert bars["MSFT"].open == D("1.00")


def test_quote_board_keeps_the_newest_quote_of_each_asset():
    board = QuoteBoard(ASSETS)
    assert board.get("AAPL") is None and board.all() == [] and board.prices() == {}
    board.update([Quote("TSLA", D("250.5"), T0), Quote("AAPL", D("190"), T0)])
    board.update([Quote("AAPL", D("191.25"), T0)])
    assert board.get("AAPL") == Quote("AAPL", D("191.25"), T0)
    assert [q.symbol for q in board.all()] == ["AAPL", "TSLA"]  # in the order of the assets
    assert board.prices() == {"AAPL": D("191.25"), "TSLA": D("250.5")}


# --- the market service (database, task.Clock) ------------------------------


class ScriptedProvider:
    """A provider that answers from a script: a price for every asset, or a failure."""

    name = "scripted"

    def assets(self, symbols):
        return defer.succeed([])

    def corporate_actions(self, symbols, start, end):
        return defer.succeed([])

    def __init__(self, *script):
        self.script = list(script)
        self.resumed = {}
        self.asked = []

    def resume(self, symbol, price):
        self.resumed[symbol] = price

    def fetch(self, symbols, start, end):
        self.asked.append(end)
        step = self.script.pop(0)
        if step == "raise":
            raise RuntimeError("feed down (raised)")
        if step == "fail":
            return defer.fail(RuntimeError("feed down (failed)"))
        if callable(step):
            return defer.succeed(step(symbols, start, end))
        return defer.succeed({s: Bar(s, start, end, D(step), D(step), D(step), D(step), 500) for s in symbols})


@pytest.fixture
def make_service(db, settings, clock, log):
    services = []

    def make(provider, board=None, calendar_name="always_open"):
        service = MarketService(provider, board or QuoteBoard(settings.assets),
                                MarketClock(calendar.load(calendar_name), clock), CandleStore(db),
                                settings.update_interval, clock, log)
        services.append(service)
        return service

    yield make
    for service in services:
        if service.running:
            service.stopService()


async def start(service):
    service.startService()
    await service.started
    await service.busy  # the first update runs at start


async def tick(service, clock):
    clock.advance(service.interval)
    await service.busy




@pytest_twisted.ensureDeferred
async def test_each_update_folds_its_bars_into_minute_and_daily_candles(db, make_service, clock, settings):
    service = make_service(SimulatedProvider(1))
    steps = []
    service.listeners.append(lambda step, quotes: steps.append(step))
    t0 = clock.seconds()
    await start(service)
    await tick(service, clock)
    await tick(service, clock)
    assert [s.time for s in steps] == [utc(t0), utc(t0 + 5), utc(t0 + 10)]
    bars = [s.bars["AAPL"] for s in steps]
    assert [(b.start, b.end) for b in bars] == [(utc(t0 - 5), utc(t0)), (utc(t0), utc(t0 + 5)),
                                                (utc(t0 + 5), utc(t0 + 10))]
    # START is 14:13:20: the three 5-second bars fall in the minute 14:13 (and in today's session).
    for interval in ("1m", "1d"):
        [candle] = await service.candles.read("AAPL", interval, 10)
        assert (candle["open"], candle["close"]) == (bars[0].open, bars[-1].close)
        assert candle["high"] == max(b.high for b in bars) and candle["low"] == min(b.low for b in bars)
        assert candle["volume"] == sum(b.volume for b in bars)
    assert (await service.candles.read("AAPL", "1m", 10))[0]["time"] == utc(t0 - 20)
    # The board shows the newest close of every asset, at the end of its bar.
    for symbol in settings.assets:
        assert service.board.get(symbol).price == steps[-1].bars[symbol].close
        assert service.board.get(symbol).time == utc(clock.seconds())
    assert service.ticks == 3
    await service.stopService()
    clock.advance(10 * settings.update_interval)
    assert service.ticks == 3  # no updates after stopping


@pytest_twisted.ensureDeferred
async def test_candles_are_aggregated_by_interval_and_read_by_range(db):
    from papertrader.master.candles import CandleStore

    store = CandleStore(db)
    base = datetime(2026, 3, 2, 14, 30, tzinfo=timezone.utc)
    bars = [Bar("AAPL", base + i * timedelta(minutes=1), base + (i + 1) * timedelta(minutes=1), D(100 + i),
                D(101 + i), D(99 + i), D(100 + i), 10) for i in range(12)]
    await store.store(bars, lambda bar: base)
    minutes = await store.read("AAPL", "1m", 100)
    assert len(minutes) == 12 and minutes[0]["time"] == base
    five = await store.read("AAPL", "5m", 100)
    assert [c["time"].minute for c in five] == [30, 35, 40]
    assert (five[0]["open"], five[0]["high"], five[0]["low"], five[0]["close"], five[0]["volume"]) == (
        D(100), D(105), D(99), D(104), 50)
    [hour] = await store.read("AAPL", "1h", 100)
    assert (hour["time"].minute, hour["volume"]) == (0, 120)
    [daily] = await store.read("AAPL", "1d", 100)
    assert (daily["open"], daily["close"], daily["volume"]) == (D(100), D(111), 120)
    ranged = await store.read("AAPL", "1m", 3, start=base + timedelta(minutes=4))
    assert [c["time"].minute for c in ranged] == [34, 35, 36]
    newest = await store.read("AAPL", "1m", 2, end=base + timedelta(minutes=4))
    assert [c["time"].minute for c in newest] == [32, 33]
    await store.prune(base + timedelta(days=91))
    assert await store.read("AAPL", "1m", 100) == [] and len(await store.read("AAPL", "1d", 100)) == 1


@pytest_twisted.ensureDeferred
async def test_prices_are_the_same_for_the_same_seed_through_the_service(db, make_service, clock, settings):
    service = make_service(SimulatedProvider(4))
    steps = []
    service.listeners.append(lambda step, quotes: steps.append(step))
    await start(service)
    await tick(service, clock)
    expected = walk(SimulatedProvider(4), settings.assets, 2)
    assert [{s: (b.open, b.close) for s, b in step.bars.items()} for step in steps] == [
        {s: (b.open, b.close) for s, b in bars.items()} for bars in expected]


@pytest_twisted.ensureDeferred
async def test_listeners_run_after_each_update_in_order(db, make_service, clock):
    service = make_service(ScriptedProvider("100", "101"))
    calls = []

    async def first(step, quotes):
        calls.append(("first", [(q.symbol, q.price) for q in quotes]))
        # The update is complete when listeners run: candles stored, board updated.
        rows = await db.query("SELECT COUNT(*) FROM bars WHERE interval = '1m'")
        calls.append(("first saw", rows[0][0], service.board.get("AAPL").price))

    def second(step, quotes):
        calls.append(("second", len(quotes)))
        assert set(step.bars) == {"AAPL", "MSFT", "TSLA"} and step.time == utc(clock.seconds())

    service.listeners += [lambda step, quotes: defer.ensureDeferred(first(step, quotes)), second]
    await start(service)
    await tick(service, clock)
    assert calls == [
        ("first", [("AAPL", D("100")), ("MSFT", D("100")), ("TSLA", D("100"))]),
        ("first saw", 3, D("100")),
        ("second", 3),
        ("first", [("AAPL", D("101")), ("MSFT", D("101")), ("TSLA", D("101"))]),
        ("first saw", 3, D("101")),  # the same minute: folded into the same candles
        ("second", 3),
    ]


@pytest_twisted.ensureDeferred
async def test_an_update_a_listener_cannot_take_holds_market_time_until_it_does(make_service, clock, logs):
    """The trading step fails (its database is away): market time waits, and each interval gives that same
    update again to it and the listeners after it (those before it took it already), until it is taken; then
    time goes on.  It used to go on at once: the open orders never met that update's bars."""
    import sqlite3

    from papertrader.master.db import is_unavailable

    service = make_service(ScriptedProvider("100", "101", "102"))
    service.transient = is_unavailable  # (as the master's)
    failures_left = [3]
    before, taken, after = [], [], []

    def trading(step, quotes, candles=()):
        if failures_left[0]:
            failures_left[0] -= 1
            raise sqlite3.OperationalError("database or disk is full")
        taken.append(step.time)

    bug = [True]

    def games(step, quotes):
        if after and bug[0]:
            bug[0] = False
            raise ValueError("a bug of the games")  # another listener's failure: logged, time goes on
        after.append((step.time, step.bars["AAPL"].close))

    service.listeners += [lambda step, quotes: before.append(step.time), trading, games]
    service.candle_writer = trading
    t0 = utc(clock.seconds())
    await start(service)  # the first update: the trading step fails
    for _ in range(2):  # and again
        await tick(service, clock)
        assert (before, taken, after) == ([t0], [], [])  # nothing new played (a replay's time stands still)
    await tick(service, clock)  # taken at last: the same update, the listeners after it too
    assert (before, taken, after) == ([t0], [t0], [(t0, D("100"))])
    await tick(service, clock)  # then time goes on: the next update (the games listener fails: logged only)
    await tick(service, clock)
    now = utc(clock.seconds())
    assert (before[-1], taken[-1], after[-1]) == (now, now, (now, D("102")))
    failures = logs.newest(10, "critical")
    assert len(failures) == 2  # the step's said once, not at every interval; the games' bug
    assert "market time waits" in failures[0].message and "database or disk is full" in failures[0].message
    assert "a bug of the games" in failures[1].message and "market time waits" not in failures[1].message


@pytest_twisted.ensureDeferred
async def test_a_trading_step_that_fails_for_a_bug_does_not_hold_the_market(make_service, clock, logs):
    """Played again, a bug (or bad data) would only fail again: the market would stand still for everyone, for
    good.  Only a database away holds an update; anything else is logged, and time goes on."""
    from papertrader.master.db import is_unavailable

    service = make_service(ScriptedProvider("100", "101", "102"))
    service.transient = is_unavailable
    after = []

    def trading(step, quotes, candles=()):
        raise KeyError("a bug")

    service.listeners += [trading, lambda step, quotes: after.append(step.bars["AAPL"].close)]
    service.candle_writer = trading
    await start(service)
    await tick(service, clock)
    await tick(service, clock)
    assert after == [D("100"), D("101"), D("102")]  # every update went on to the next listener
    failures = logs.newest(10, "critical")
    assert len(failures) == 3 and not any("market time waits" in f.message for f in failures)


@pytest_twisted.ensureDeferred
async def test_a_source_outage_keeps_the_last_prices_logs_once_and_recovers(db, make_service, clock, logs,
                                                                             settings):
    provider = ScriptedProvider("100", "fail", "raise", *["fail"] * 30, "103")
    service = make_service(provider)
    steps = []
    service.listeners.append(lambda step, quotes: steps.append((step, list(quotes))))
    t0 = clock.seconds()
    await start(service)
    for _ in range(32):
        await tick(service, clock)
    # The steps go on (orders still expire on time), without bars; the board keeps the last good quote.
    assert len(steps) == 33 and all(not step.bars for step, _ in steps[1:])
    quote = service.board.get("AAPL")
    assert (quote.price, quote.time, quote.stale) == (D("100"), utc(t0), True)
    # Stale after max_quote_age (here the default: 2 minutes), and said once, with the stale quotes pushed.
    flipped = [i for i, (_, quotes) in enumerate(steps) if quotes]
    assert flipped[0] == 0 and len(flipped) == 2
    errors = [e.message for e in logs.newest(100, "error")]
    assert len(errors) == 1 and "scripted is unavailable (feed down (failed))" in errors[0]
    await tick(service, clock)
    step, quotes = steps[-1]
    # The first bar after the outage covers the whole gap since the last good one.
    assert step.bars["AAPL"].start == utc(t0) and step.bars["AAPL"].close == D("103")
    assert service.board.get("AAPL").stale is False
    assert [e.message for e in logs.newest(10, "info") if "is back" in e.message] == [
        "market data: scripted is back after 160 s"]
    assert len(provider.asked) == 34  # every interval asked again


@pytest_twisted.ensureDeferred
async def test_a_hung_source_does_not_stall_the_update_loop(make_service, clock, logs, settings):
    hung = defer.Deferred()
    provider = ScriptedProvider("100", lambda symbols, start, end: hung, "101")
    provider.fetch_raw = provider.fetch

    def fetch(symbols, start, end):
        step = provider.script[0]
        if callable(step) and step(symbols, start, end) is hung:
            provider.script.pop(0)
            provider.asked.append(end)
            return hung
        return provider.fetch_raw(symbols, start, end)

    provider.fetch = fetch
    service = make_service(provider)
    await start(service)
    clock.advance(settings.update_interval)  # the second update asks, and gets no answer
    assert not service.busy.called
    clock.advance(settings.update_interval * 0.8)  # its deadline: it gives up
    await service.busy
    clock.advance(settings.update_interval * 0.2)  # the next update is on time
    await service.busy
    assert service.ticks == 3 and service.board.get("AAPL").price == D("101")
    assert any("unavailable" in e.message for e in logs.newest(10, "error"))


@pytest_twisted.ensureDeferred
async def test_restart_resumes_prices_from_the_last_stored_close(db, make_service, clock):
    first = make_service(SimulatedProvider(9))
    closes = []
    first.listeners.append(lambda step, quotes: closes.append({s: b.close for s, b in step.bars.items()}))
    await start(first)
    await tick(first, clock)
    await first.stopService()
    clock.advance(60)
    second = make_service(SimulatedProvider(9))  # a new process: same seed, fresh state
    opens = []
    second.listeners.append(lambda step, quotes: opens.append({s: b.open for s, b in step.bars.items()}))
    await start(second)
    assert opens[0] == closes[-1]  # continues the walk where it stopped, instead of starting it over


@pytest_twisted.ensureDeferred
async def test_restart_restores_the_board_before_the_provider_answers(make_service, clock):
    first = make_service(ScriptedProvider("100.25", "101.5"))
    await start(first)
    await tick(first, clock)
    await first.stopService()

    clock.advance(60)
    provider = ScriptedProvider("fail")
    board = QuoteBoard(("AAPL", "MSFT", "TSLA"))
    second = make_service(provider, board)
    await start(second)
    assert provider.resumed == {"AAPL": D("101.5"), "MSFT": D("101.5"), "TSLA": D("101.5")}
    assert board.get("MSFT").price == D("101.5")


@pytest_twisted.ensureDeferred
async def test_restart_restores_each_quotes_session_and_previous_close_for_todays_change(make_service, clock):
    """Restored quotes had no previous close: "change today" was 0.00 after a restart until the next update."""
    first = make_service(ScriptedProvider("100.00", "105.00", "110.00"))
    await start(first)
    clock.advance(86_400)  # (the update across midnight: still the first session's, closing at 105.00)
    await first.busy
    await tick(first, clock)  # the next session (always_open: a UTC day) trades at 110.00
    before = first.board.get("AAPL")
    assert (before.price, before.previous_close) == (D("110.00"), D("105.00"))
    await first.stopService()

    board = QuoteBoard(("AAPL",))
    second = make_service(ScriptedProvider("fail"), board)
    await start(second)
    after = board.get("AAPL")
    assert (after.price, after.previous_close, after.session_open) == (D("110.00"), D("100.00"), before.session_open)


def test_a_restored_quote_is_as_of_the_last_update_within_its_bar():
    """After a restart a quote said the start of its stored bar: 14:13 for an update at 14:13:25; a daily bar's,
    the session's open (09:30) for a price of its close."""
    nyse = calendar.load("XNYS", 2024, 2025)
    minute = datetime(2024, 3, 5, 15, 13, tzinfo=timezone.utc)
    session = nyse.info(minute).current
    assert restored_time(nyse, minute, "1m", minute + timedelta(seconds=25)) == (
        minute + timedelta(seconds=25), session)
    # The update recorded came later (another symbol traded then): this one's bar ended within its minute.
    assert restored_time(nyse, minute, "1m", minute + timedelta(minutes=5)) == (minute, session)
    assert restored_time(nyse, minute, "1m", None) == (minute, session)  # (unknown: the bucket's start)
    # A daily bar: its session's close once that session is over, else the last update within it.
    assert restored_time(nyse, session.open, "1d", session.close + timedelta(hours=17)) == (session.close, session)
    assert restored_time(nyse, session.open, "1d", minute) == (minute, session)
    assert restored_time(nyse, session.open, "1d", None) == (session.open, session)


# --- calendars ---------------------------------------------------------------------


def test_always_open_has_one_session_per_utc_day():
    cal = calendar.load("always_open")
    info = cal.info(T0)
    assert info.is_open and info.current.open == datetime(2026, 9, 21, tzinfo=timezone.utc)
    assert info.current.close == info.next.open == datetime(2026, 9, 22, tzinfo=timezone.utc)


def test_the_new_york_calendar_knows_holidays_and_early_closes():
    nyse = calendar.load("XNYS", 2024, 2025)
    thanksgiving = datetime(2024, 11, 28, 16, 0, tzinfo=timezone.utc)
    info = nyse.info(thanksgiving)
    assert not info.is_open
    # The next session is Black Friday, which closes at 13:00 New York time (18:00 UTC).
    assert info.next.open == datetime(2024, 11, 29, 14, 30, tzinfo=timezone.utc)
    assert info.next.close == datetime(2024, 11, 29, 18, 0, tzinfo=timezone.utc)
    during = nyse.info(datetime(2024, 12, 2, 15, 0, tzinfo=timezone.utc))
    assert during.is_open and during.current.close == datetime(2024, 12, 2, 21, 0, tzinfo=timezone.utc)
    assert during.next.open == datetime(2024, 12, 3, 14, 30, tzinfo=timezone.utc)
    with pytest.raises(calendar.CalendarError, match="unknown calendar"):
        calendar.load("NOPE")


@pytest_twisted.ensureDeferred
async def test_no_bars_are_fetched_while_the_market_is_closed_but_the_steps_go_on(make_service, clock, settings):
    # START is a Monday 14:13 UTC: NYSE opens at 13:30 UTC in September; jump to Saturday.
    clock.advance(5 * 86400)
    provider = ScriptedProvider(*["100"] * 3)
    service = make_service(provider, calendar_name="XNYS")
    steps = []
    service.listeners.append(lambda step, quotes: steps.append(step))
    await start(service)
    await tick(service, clock)
    assert provider.asked == [] and [s.bars for s in steps] == [{}, {}]  # steps still run (orders expire)


@pytest_twisted.ensureDeferred
async def test_bad_bars_are_refused_and_logged(make_service, clock, logs):
    def bad(symbols, start, end):
        good = Bar("AAPL", start, end, D(10), D(11), D(9), D(10), 100)
        return {
            "AAPL": good,
            "MSFT": Bar("MSFT", start, end, D(10), D(9), D(11), D(10), 100),  # high below low
            "TSLA": Bar("TSLA", start, end, D(-1), D(1), D(-1), D(1), 100),  # a negative price
            "NOPE": Bar("NOPE", start, end, D(1), D(1), D(1), D(1), 1),  # not traded here
        }

    def backwards(symbols, start, end):
        return {"AAPL": Bar("AAPL", start - timedelta(hours=1), start - timedelta(minutes=59), D(10), D(10), D(10),
                            D(10), 1)}

    service = make_service(ScriptedProvider(bad, backwards))
    await start(service)
    assert set(service.board.prices()) == {"AAPL"}
    await tick(service, clock)
    assert service.board.get("AAPL").time == utc(clock.seconds() - 5)  # the bar from the past was refused
    warnings = [e.message for e in logs.newest(20, "warn")]
    assert any("high 9 is below low 11" in w for w in warnings)
    assert any("TSLA: a price is not positive" in w for w in warnings)
    assert any("NOPE, which is not traded here" in w for w in warnings)
    assert any("goes back in time" in w for w in warnings)


def test_a_new_sessions_previous_close_is_divided_by_a_split_that_took_effect():
    """On a 2-for-1 split's day the previous close was the price before it (111.00 against a 56.00 price): a
    position seemed to lose half its value that day."""
    from papertrader.trading.corporate import Split
    from papertrader.trading.market import Bar

    monday = datetime(2024, 4, 1, 13, 30, tzinfo=timezone.utc)
    tuesday = monday + timedelta(days=1)

    def bar(start, close):
        return {"AAA": Bar("AAA", start, start + timedelta(hours=6, minutes=30), Decimal(close), Decimal(close),
                           Decimal(close), Decimal(close), 100)}

    board = QuoteBoard(["AAA"])
    board.update_bars(bar(monday, "111.00"), monday)
    [quote] = board.update_bars(bar(tuesday, "56.00"), tuesday, splits=[Split("AAA", tuesday.date(), Decimal(2))])
    assert (quote.price, quote.previous_close) == (Decimal("56.00"), Decimal("55.5000"))
    [quote] = board.update_bars(bar(tuesday + timedelta(days=1), "57.00"), tuesday + timedelta(days=1))
    assert quote.previous_close == Decimal("56.00")  # the next day as usual
