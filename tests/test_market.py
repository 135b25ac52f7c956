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
from papertrader.market.service import MarketService
from papertrader.market.simulated import SimulatedSource as SimulatedProvider
from papertrader.master.candles import CandleStore
from papertrader.money import from_price_units, to_price_units
from papertrader.times import iso, utc
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


async def candle_rows(db):
    return await db.query(
        "SELECT symbol, time, open_units, high_units, low_units, close_units, volume FROM candles ORDER BY time, symbol"
    )


@pytest_twisted.ensureDeferred
async def test_one_candle_per_asset_per_tick(db, make_service, clock, settings):
    service = make_service(SimulatedProvider(1))
    t0 = clock.seconds()
    await start(service)
    await tick(service, clock)
    await tick(service, clock)
    rows = await candle_rows(db)
    # Each candle is the bar of the interval that ended at an update: its time is the interval's start.
    times = [iso(utc(t0 + (i - 1) * settings.update_interval)) for i in range(3)]
    assert [(r[0], r[1]) for r in rows] == [(s, t) for t in times for s in settings.assets]
    for _, _, o, h, lo, c, volume in rows:
        assert lo <= o <= h and lo <= c <= h and volume > 0
    # The board shows the newest close of every asset, at the time of the update.
    for symbol, _, _, _, _, close, _ in rows[-3:]:
        quote = service.board.get(symbol)
        assert to_price_units(quote.price) == close
        assert quote.time == utc(clock.seconds())
    # Candles read back in time order, newest last.
    candles = await service.candles.newest("AAPL", 2)
    assert [c["time"] for c in candles] == [utc(t0), utc(t0 + 5)]
    assert candles[-1]["close"] == service.board.get("AAPL").price
    assert service.ticks == 3

    await service.stopService()
    clock.advance(10 * settings.update_interval)
    assert len(await candle_rows(db)) == 9  # no updates after stopping


@pytest_twisted.ensureDeferred
async def test_prices_are_the_same_for_the_same_seed_through_the_service(db, make_service, clock, settings):
    service = make_service(SimulatedProvider(4))
    await start(service)
    await tick(service, clock)
    stored = [(r[0], from_price_units(r[5])) for r in await candle_rows(db)]
    expected = walk(SimulatedProvider(4), settings.assets, 2)
    assert stored == [(s, bars[s].close) for bars in expected for s in settings.assets]


@pytest_twisted.ensureDeferred
async def test_listeners_run_after_each_update_in_order(db, make_service, clock):
    service = make_service(ScriptedProvider("100", "101"))
    calls = []

    async def first(step, quotes):
        calls.append(("first", [(q.symbol, q.price) for q in quotes]))
        # The update is complete when listeners run: candles stored, board updated.
        rows = await db.query("SELECT COUNT(*) FROM candles")
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
        ("first saw", 6, D("101")),
        ("second", 3),
    ]


@pytest_twisted.ensureDeferred
async def test_a_failing_listener_is_logged_and_the_next_one_still_runs(make_service, clock, logs):
    service = make_service(ScriptedProvider("100", "101"))
    called = []

    def broken(step, quotes):
        raise ValueError("push failed")

    service.listeners += [broken, lambda step, quotes: called.append(step)]
    await start(service)
    await tick(service, clock)
    assert len(called) == 2
    failures = logs.newest(10, "critical")
    assert len(failures) == 2
    assert "after the market update" in failures[0].message and "ValueError: push failed" in failures[0].message


@pytest_twisted.ensureDeferred
async def test_a_failing_provider_is_logged_and_the_next_tick_still_runs(db, make_service, clock, logs, settings):
    provider = ScriptedProvider("100", "fail", "raise", "103")
    service = make_service(provider)
    updates = []
    service.listeners.append(lambda step, quotes: updates.append(step))
    t0 = clock.seconds()
    await start(service)
    await tick(service, clock)  # a failed Deferred
    await tick(service, clock)  # an exception raised by fetch itself
    # Nothing was stored or published by the failed updates; the board keeps the last good quote.
    assert len(await candle_rows(db)) == 3
    assert (service.board.get("AAPL").price, service.board.get("AAPL").time) == (D("100"), utc(t0))
    assert len(updates) == 1
    failures = logs.newest(10, "critical")
    assert [f.message.splitlines()[0] for f in failures] == [
        "market data update failed; will try again next interval"] * 2
    assert "RuntimeError: feed down (failed)" in failures[0].message
    assert "RuntimeError: feed down (raised)" in failures[1].message
    await tick(service, clock)
    rows = await candle_rows(db)
    assert len(rows) == 6
    # The first bar after the outage covers the whole gap since the last good one.
    assert {r[1] for r in rows[3:]} == {iso(utc(t0))}
    assert provider.asked[-1] == utc(t0 + 3 * settings.update_interval)
    assert service.board.get("AAPL").price == D("103")
    assert len(updates) == 2
    assert len(provider.asked) == 4  # every interval asked again


@pytest_twisted.ensureDeferred
async def test_restart_resumes_prices_from_the_last_stored_close(db, make_service, clock):
    first = make_service(SimulatedProvider(9))
    await start(first)
    await tick(first, clock)
    await tick(first, clock)
    await first.stopService()
    rows = await candle_rows(db)
    first_opens = {r[0]: r[2] for r in rows[:3]}
    last_closes = {r[0]: r[5] for r in rows[-3:]}

    clock.advance(60)
    second = make_service(SimulatedProvider(9))  # a new process: same seed, fresh state
    await start(second)
    rows = await candle_rows(db)
    assert len(rows) == 12
    resumed = rows[-3:]
    assert {r[1] for r in resumed} == {iso(utc(clock.seconds() - 5))}
    for symbol, _, open_units, *_ in resumed:
        assert open_units == last_closes[symbol]  # continues the walk where it stopped...
        assert open_units != first_opens[symbol]  # ...instead of starting the walk over


@pytest_twisted.ensureDeferred
async def test_restart_restores_the_board_before_the_provider_answers(make_service, clock):
    first = make_service(ScriptedProvider("100.25", "101.5"))
    await start(first)
    await tick(first, clock)
    stored_at = utc(clock.seconds())
    await first.stopService()

    clock.advance(60)
    provider = ScriptedProvider("fail")
    board = QuoteBoard(("AAPL", "MSFT", "TSLA"))
    second = make_service(provider, board)
    await start(second)
    assert provider.resumed == {"AAPL": D("101.5"), "MSFT": D("101.5"), "TSLA": D("101.5")}
    assert (board.get("MSFT").price, board.get("MSFT").time) == (D("101.5"), stored_at - timedelta(seconds=5))


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
