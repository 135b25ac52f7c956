"""The replay of history: the shipped data, the replay clock, and trading through splits and dividends
(a small CSV fixture, tests/fixtures/replay), on both databases."""

import os
from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal as D

import pytest
import pytest_twisted
from twisted.internet import defer

from papertrader.app import Stamp
from papertrader.app.trading import TradingCommands, rules_from
from papertrader.errors import InvalidInput, UnknownSymbol
from papertrader.market import calendar
from papertrader.market.board import QuoteBoard
from papertrader.market.history import HistoryError, load_files, load_shipped, read_csv, shipped_symbols
from papertrader.market.replay import ReplayClock, ReplaySource
from papertrader.market.service import MarketService
from papertrader.market.setup import MarketSetupError, build
from papertrader.master.accounts import Accounts
from papertrader.master.candles import CandleStore
from papertrader.master.order_store import OrderStore
from papertrader.times import iso, utc
from papertrader.trading.corporate import Dividend, Split

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "replay")
UTC = timezone.utc


@pytest.fixture(scope="module")
def nyse():
    return calendar.load("XNYS", 2023, 2025)


# --- the shipped history ------------------------------------------------------------------


def test_the_shipped_history_is_real_daily_data_with_its_splits_and_dividends():
    symbols = shipped_symbols()
    assert len(symbols) >= 25 and {"AAPL", "MSFT", "JPM", "XOM", "GOOGL", "FB"} <= set(symbols)
    history = load_shipped(["AAPL", "MSFT"])
    aapl = history.series["AAPL"]
    assert len(aapl) > 9000 and date.fromordinal(aapl.keys[-1]) == date(2018, 3, 27)
    # AAPL's 7-for-1 split of 2014-06-09: the raw price drops from about 645 to about 93.
    splits = [e for e in history.events if isinstance(e, Split) and e.symbol == "AAPL"]
    assert Split("AAPL", date(2014, 6, 9), D(7)) in splits
    i = aapl.keys.index(date(2014, 6, 9).toordinal())
    assert aapl.prices(i - 1)[3] > 600 and aapl.prices(i)[0] < 100
    assert any(isinstance(e, Dividend) and e.symbol == "MSFT" for e in history.events)
    assert history.assets["AAPL"].name == "Apple Inc."


def test_csv_files_are_checked_line_by_line():
    with pytest.raises(HistoryError, match="bad.csv:3: not a possible bar"):
        read_csv("X", ["date,open,high,low,close,volume", "2024-03-04,1,2,1,1,5", "2024-03-05,1,1,2,1,5"],
                 "bad.csv")
    with pytest.raises(HistoryError, match="time goes backwards"):
        read_csv("X", ["date,open,high,low,close,volume", "2024-03-05,1,1,1,1,5", "2024-03-04,1,1,1,1,5"], "b")
    with pytest.raises(HistoryError, match="the header must be"):
        read_csv("X", ["when,open,high,low,close,volume"], "b")
    history = load_files([FIXTURE])
    assert history.symbols == ["ABC", "XYZ"] and len(history.events) == 3
    assert history.assets["XYZ"].name == "Example Corporation"


# --- the replay clock ----------------------------------------------------------------------


def t(day, hour=14, minute=30):
    return datetime(2024, 3, day, hour, minute, tzinfo=UTC)


def test_one_session_per_update_then_wait_at_the_next_open(nyse):
    clock = ReplayClock(nyse, date(2024, 3, 2))  # a Saturday: the replay starts at Monday's open
    assert clock.now() == t(4, 14, 30) and clock.info().is_open
    step = clock.advance()
    assert (step.start, step.end) == (t(4), t(4, 21, 0))  # Monday's session (EST: 14:30-21:00 UTC)
    assert clock.now() == t(5)
    for _ in range(4):
        clock.advance()
    step = clock.advance()  # after Friday comes Monday; DST begins on 10 March: 13:30 UTC
    assert (step.start, step.end) == (t(11, 13, 30), t(11, 20, 0))


def test_clock_names_the_first_and_last_sessions_the_replay_plays(nyse):
    """replay_start on a Saturday: clock said 'from 2024-03-02', a day no session opens, though the replay's first
    session is Monday's.  It names the days of the first and last sessions played."""
    shown = ReplayClock(nyse, date(2024, 3, 2), date(2024, 3, 17)).describe()  # Saturday to Sunday
    assert (shown["start"], shown["end"]) == (datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 15, tzinfo=UTC))


def test_a_replay_on_an_exchange_opening_before_midnight_utc_plays_and_names_the_exchanges_days():
    """Sydney opens at 23:00 UTC the day before in its summer, Tokyo at 00:00 UTC: their days were counted as New
    York's.  replay_start 2024-01-15 on XASX began with the 16th's session (the 15th's had opened before midnight
    UTC) and a replay to 2024-03-14 played the 15th's; XTKS's clock said 'from 2024-03-03', a Sunday."""
    sydney = calendar.load("XASX", 2023, 2025)
    clock = ReplayClock(sydney, date(2024, 1, 15), date(2024, 3, 14))
    assert clock.now() == datetime(2024, 1, 14, 23, 0, tzinfo=UTC)  # Monday 15th, 10:00 in Sydney
    assert (clock.first_day, clock.last_day) == (date(2024, 1, 15), date(2024, 3, 14))
    shown = clock.describe()
    assert (shown["start"], shown["end"]) == (datetime(2024, 1, 15, tzinfo=UTC), datetime(2024, 3, 14, tzinfo=UTC))
    assert clock.seek(date(2024, 3, 14)) == datetime(2024, 3, 13, 23, 0, tzinfo=UTC)
    assert clock.advance().end == datetime(2024, 3, 14, 5, 0, tzinfo=UTC)  # the 14th's session, the last
    assert clock.advance() is None and clock.state == "ended"  # not the 15th's
    tokyo = ReplayClock(calendar.load("XTKS", 2023, 2025), date(2024, 3, 4), date(2024, 3, 8))
    assert (tokyo.first_day, tokyo.last_day) == (date(2024, 3, 4), date(2024, 3, 8))
    assert tokyo.describe()["start"] == datetime(2024, 3, 4, tzinfo=UTC)


def test_intraday_steps_stop_at_the_close_then_go_to_the_next_open(nyse):
    clock = ReplayClock(nyse, date(2024, 3, 4), step="2h")
    ends = [clock.advance().end for _ in range(4)]
    assert ends == [t(4, 16, 30), t(4, 18, 30), t(4, 20, 30), t(4, 21, 0)]
    assert clock.now() == t(5)


def test_the_end_stops_or_loops(nyse):
    clock = ReplayClock(nyse, date(2024, 3, 4), date(2024, 3, 5))
    assert [clock.advance().end.day for _ in range(2)] == [4, 5]
    assert clock.advance() is None and clock.state == "ended"
    looping = ReplayClock(nyse, date(2024, 3, 4), date(2024, 3, 5), loop=True)
    looping.advance(), looping.advance()
    again = looping.advance()
    assert again.reset and again.end == t(4, 21, 0)


def test_pause_resume_and_seek(nyse):
    clock = ReplayClock(nyse, date(2024, 3, 4))
    clock.pause()
    assert clock.advance() is None and clock.now() == t(4)
    clock.resume()
    assert clock.seek(date(2024, 3, 9)) == t(11, 13, 30)  # a Saturday: the next session's open
    step = clock.advance()
    assert step.end == t(11, 20, 0) and not step.reset
    assert step.skipped and step.start == t(11, 13, 30)  # the days between are not played
    assert not clock.advance().skipped
    clock.seek(date(2024, 3, 5))
    assert clock.advance().reset  # back in time


def test_seek_refuses_a_day_the_replay_does_not_play_naming_its_first_and_last_days(nyse):
    clock = ReplayClock(nyse, date(2024, 3, 4), date(2024, 3, 16))  # ends on a Saturday: last day Friday 15th
    assert (clock.first_day, clock.last_day) == (date(2024, 3, 4), date(2024, 3, 15))
    with pytest.raises(InvalidInput) as refused:
        clock.seek(date(2024, 3, 18))
    assert refused.value.message == ("seek 2024-03-18: that is after the replay's last day, 2024-03-15 (it plays"
                                     " 2024-03-04 to 2024-03-15)")
    with pytest.raises(InvalidInput, match="after the replay's last day, 2024-03-15"):
        clock.seek(date(2024, 3, 16))  # the end date itself, but no session opens from then on
    with pytest.raises(InvalidInput) as refused:
        clock.seek(date(2023, 1, 3))  # the calendar has it, the replay does not
    assert refused.value.message == ("seek 2023-01-03: that is before the replay's first day, 2024-03-04 (it plays"
                                     " 2024-03-04 to 2024-03-15)")
    assert clock.now() == t(4)  # nothing moved
    assert clock.seek(date(2024, 3, 2)) == t(4)  # the weekend before the first day: its first session
    assert clock.seek(date(2024, 3, 15)) == t(15, 13, 30)


def test_an_ended_replay_is_closed_for_good_and_refuses_orders_until_moved_back(nyse):
    clock = ReplayClock(nyse, date(2024, 3, 13), date(2024, 3, 14))
    clock.advance(), clock.advance()
    # Ended as the last session played: it stood "open" at Friday's open until the next update, and a day order
    # placed then waited for a session that never opens, its buying power held for good.
    assert clock.state == "ended" and not clock.describe()["is_open"]
    assert clock.advance() is None and clock.state == "ended"
    shown = clock.describe()
    assert (shown["state"], shown["is_open"], shown["end"]) == ("ended", False, datetime(2024, 3, 14, tzinfo=UTC))
    with pytest.raises(InvalidInput) as refused:
        clock.info(clock.now())  # what placing an order asks
    assert refused.value.message.startswith("the replay ended on 2024-03-14: no session opens after it, so no"
                                            " order can trade")
    assert clock.info(t(13, 15, 0)).is_open  # the past can still be asked about
    clock.seek(date(2024, 3, 13))
    assert clock.state == "running" and clock.info().is_open and clock.describe()["is_open"]


def test_a_replay_stepped_to_its_end_while_paused_is_paused_again_after_a_seek_back(nyse):
    """A backtest steps a paused replay in lockstep; once it had ended, a seek back (to run it again) set it
    running on its own: sessions played before the program asked for them."""
    clock = ReplayClock(nyse, date(2024, 3, 13), date(2024, 3, 14))
    clock.pause()
    clock.advance(paused_too=True), clock.advance(paused_too=True)
    assert clock.state == "ended"
    clock.seek(date(2024, 3, 13))
    assert clock.state == "paused" and clock.advance() is None  # (its timer plays nothing)
    assert clock.advance(paused_too=True) is not None


# --- trading through a replay, on both databases ----------------------------------------------------


class Replay:
    """A replay of the fixture driven by task.Clock: the market service, the trading layer, accounts."""

    def __init__(self, db, settings, clock, log, nyse, files=(FIXTURE,), fill_model="ideal", end=None):
        history = load_files(list(files))
        self.board = QuoteBoard(history.symbols)
        self.clock = ReplayClock(nyse, date(2024, 3, 4), end)
        self.store = OrderStore(db)
        self.trading = TradingCommands(db, self.store, self.board, self.clock, rules_from(replace(
            settings, fill_model=fill_model)), clock, log)
        self.market = MarketService(ReplaySource(history, nyse), self.board, self.clock, CandleStore(db),
                                    settings.update_interval, clock, log, state=lambda: db.run(self.store.all_state),
                                    save=lambda changes: db.run(self.store.save_state, changes))
        self.market.listeners.append(self.trading.market_step)
        self.market.rewinding.append(self.trading.market_moved_back)
        self.accounts = Accounts(db, settings, clock, log)
        self.wall = clock
        self.db = db

    async def start(self):
        self.market.startService()
        await self.market.started
        await self.market.busy

    async def session(self):
        """Play the next session."""
        self.wall.advance(self.market.interval)
        await self.market.busy

    async def user(self, name):
        await self.accounts.register(name, f"{name}@example.com", "correct horse battery")
        token, _, _ = await self.accounts.login(name, "correct horse battery", False, "w1", "192.0.2.1")
        return await self.accounts.authenticate(token)

    def order(self, session, client_order_id, side, symbol, quantity, **more):
        return self.trading.place_order(session, Stamp(utc(self.wall.seconds()), "192.0.2.1", "w1"),
                                        client_order_id, side, symbol, quantity, **more)


@pytest_twisted.async_yield_fixture
async def replay(db, settings, clock, log, nyse):
    r = Replay(db, settings, clock, log, nyse)
    await r.start()
    yield r
    await r.market.stopService()


@pytest_twisted.ensureDeferred
async def test_orders_fill_at_replayed_prices_and_market_time(replay):
    r = replay
    # The first update played Monday 4 March; market time waits at Tuesday's open.
    assert r.clock.now() == t(5) and r.board.get("XYZ").price == D("101.00")
    alice = await r.user("alice")
    order = await r.order(alice, "o1", "buy", "XYZ", "10")
    assert order["created"] == t(5)  # market time, not the wall clock
    await r.session()
    filled = await r.trading.get_order(alice, None, order["id"])
    assert (filled["status"], filled["average_price"]) == ("filled", D("103.00"))  # Tuesday's close (ideal)
    assert filled["fills"][0]["time"] == t(5, 21, 0)
    history = await r.trading.history(alice, None, 10)
    assert history["transactions"][0]["time"] == t(5, 21, 0)
    candles = await r.market.candles.read("XYZ", "1d", 10)
    assert [c["time"] for c in candles] == [t(4), t(5)]  # only what has been played: no future


@pytest_twisted.ensureDeferred
async def test_a_company_listed_later_in_the_replay_is_refused_with_its_first_day_until_it_trades(
        db, settings, clock, log, nyse, tmp_path):
    later = tmp_path / "NEW.csv"  # lists on Thursday 7 March, three sessions into the fixture
    later.write_text("date,open,high,low,close,volume\n2024-03-07,10.00,10.50,9.75,10.25,1000\n"
                     "2024-03-08,10.25,10.75,10.00,10.50,1000\n")
    r = Replay(db, settings, clock, log, nyse, files=(FIXTURE, str(later)))
    await r.start()
    try:
        alice = await r.user("alice")
        with pytest.raises(UnknownSymbol) as refused:  # market time: Tuesday 5 March
            await r.order(alice, "n1", "buy", "NEW", "5")
        assert str(refused.value) == "NEW does not trade yet: its prices start on 2024-03-07 (the market's date" \
                                     " is 2024-03-05)"
        assert (await r.trading.orders(alice, None, 10))["orders"] == []  # nothing written
        with pytest.raises(UnknownSymbol) as refused:  # a symbol never traded: the list is of those traded now
            await r.order(alice, "z1", "buy", "ZZZ", "5")
        assert str(refused.value) == "unknown symbol 'ZZZ': traded symbols are ABC, XYZ"
        await r.session()  # Tuesday
        await r.session()  # Wednesday
        await r.session()  # Thursday: NEW's first bar
        assert r.board.get("NEW").price == D("10.25")
        order = await r.order(alice, "n1", "buy", "NEW", "5")  # the same client order id: the refusal kept nothing
        assert order["status"] == "new"
        await r.session()
        assert (await r.trading.get_order(alice, None, order["id"]))["status"] == "filled"
    finally:
        await r.market.stopService()


@pytest_twisted.ensureDeferred
async def test_a_seek_back_forgets_the_days_after_it_so_nothing_of_the_future_shows(
        db, settings, clock, log, nyse, tmp_path):
    later = tmp_path / "NEW.csv"  # lists on Thursday 7 March
    later.write_text("date,open,high,low,close,volume\n2024-03-07,10.00,10.50,9.75,10.25,1000\n"
                     "2024-03-08,10.25,10.75,10.00,10.50,1000\n")
    r = Replay(db, settings, clock, log, nyse, files=(FIXTURE, str(later)))
    told = []
    r.market.rewound.append(told.append)
    await r.start()
    try:
        for _ in range(4):
            await r.session()  # Tuesday to Friday 8 March: NEW trades from Thursday
        played = await r.market.candles.read("XYZ", "1d", 10)
        assert [c["time"] for c in played] == [t(4), t(5), t(6), t(7), t(8)] and r.board.get("NEW") is not None
        r.market.control("pause")
        moved = await r.market.control("seek", "2024-03-05")
        assert moved["time"] == t(5)
        # At once, paused: the candles of the days to play again are gone, each price is the last before the
        # 5th (Monday's close, at its close), and NEW, not listed yet, has no price and is refused.
        assert [c["time"] for c in await r.market.candles.read("XYZ", "1d", 10)] == [t(4)]
        assert await r.market.candles.read("NEW", "1d", 10) == []
        xyz = r.board.get("XYZ")
        assert (xyz.price, xyz.time) == (D("101.00"), t(4, 21, 0)) and r.board.get("NEW") is None
        assert [[q.symbol for q in quotes] for quotes in told] == [["ABC", "XYZ"]]
        alice = await r.user("alice")
        with pytest.raises(UnknownSymbol) as refused:
            await r.order(alice, "n1", "buy", "NEW", "5")
        assert "does not trade yet" in str(refused.value)
        # Played again, the days are as they were the first time (not folded into what was there: volume once).
        r.market.control("resume")
        await r.session()
        again = await r.market.candles.read("XYZ", "1d", 10)
        assert again == played[:2]
    finally:
        await r.market.stopService()


@pytest_twisted.ensureDeferred
async def test_orders_placed_after_the_time_a_seek_goes_back_to_expire_and_the_others_trade_on(replay):
    """Else an order placed on the 6th could fill on the 5th's bar, before it was placed."""
    r = replay
    alice = await r.user("alice")
    early = await r.order(alice, "e1", "buy", "XYZ", "1", type="limit", limit_price="200.00", time_in_force="gtc")
    placed = await r.order(alice, "p1", "buy", "ABC", "1", type="limit", limit_price="1.00", time_in_force="gtc")
    await r.session()  # the 5th: `early` fills; now the 6th's open
    late = await r.order(alice, "l1", "buy", "XYZ", "1", type="limit", limit_price="200.00", time_in_force="gtc")
    assert (early["created"], late["created"]) == (t(5), t(6))
    await r.market.control("seek", "2024-03-05")  # back to the open `placed` was placed at
    expired = await r.trading.get_order(alice, None, late["id"])
    assert (expired["status"], expired["reason"]) == ("expired", "expired: market time was moved back to before it"
                                                                  " was placed")
    assert (await r.trading.get_order(alice, None, placed["id"]))["status"] == "new"
    await r.session()  # the 5th again: the expired order does not trade on it
    assert (await r.trading.get_order(alice, None, late["id"]))["filled_quantity"] == D(0)
    history = (await r.trading.history(alice, None, 10))["transactions"]
    assert [h["order_id"] for h in history if h["kind"] == "fill"] == [early["id"]]  # the first 5th's fill, once


@pytest_twisted.ensureDeferred
async def test_a_seek_and_an_update_falling_due_meanwhile_take_turns(replay):
    """The update falls due while the seek waits on the database: it plays after the seek, from the new time, and
    its step is what is saved (a seek saved over it would play that day twice after a restart)."""
    r = replay
    for _ in range(3):
        await r.session()  # Tuesday to Thursday 7 March
    # The seek's save waits at a gate, opened once the update has played (were they to interleave) or is seen
    # waiting for the seek (as they take turns).
    gate = defer.Deferred()

    def open_gate(*_):
        if not gate.called:
            gate.callback(None)

    r.market.save = lambda changes: gate.addCallback(lambda _: r.db.run(r.store.save_state, changes))
    r.market.listeners.append(open_gate)
    seeking = r.market.control("seek", "2024-03-05")  # running, not paused
    r.wall.advance(r.market.interval)  # the update falls due
    if r.market._moving.waiting:
        open_gate()
    await seeking
    await r.market.busy
    assert [c["time"] for c in await r.market.candles.read("XYZ", "1d", 10)] == [t(4), t(5)]
    xyz = r.board.get("XYZ")
    assert (xyz.price, xyz.time) == (D("103.00"), t(5, 21, 0))  # Tuesday's close, played after the seek
    state = await r.db.run(r.store.all_state)
    assert state["last_step"] == iso(t(5, 21, 0)) and r.clock.now() == t(6)


@pytest_twisted.ensureDeferred
async def test_when_the_candles_cannot_be_forgotten_at_a_seek_nothing_plays_until_they_are(replay):
    """The database refuses the seek's delete once (locked, unreachable): the prices are rewound anyway, and the
    market stands still, saying so, until the candles after the new time are gone; then it plays on."""
    import sqlite3

    r = replay
    for _ in range(3):
        await r.session()  # to Thursday 7 March
    real, failures = r.market.candles.forget_from, []

    def forget(moment, symbols):  # refused twice: at the seek, and at the first update after it
        if len(failures) < 2:
            failures.append(moment)
            return defer.fail(sqlite3.OperationalError("database is locked"))
        return real(moment, symbols)

    r.market.candles.forget_from = forget
    await r.market.control("seek", "2024-03-05")
    assert failures == [t(5)] and r.board.get("XYZ").price == D("101.00")  # (logged, not raised)
    await r.session()  # refused again: nothing plays on top of the candles of the days after
    assert failures == [t(5), t(5)] and r.clock.now() == t(5)
    assert [c["time"] for c in await r.market.candles.read("XYZ", "1d", 10)] == [t(4), t(5), t(6), t(7)]
    await r.session()  # forgotten, then the 5th plays
    assert [c["time"] for c in await r.market.candles.read("XYZ", "1d", 10)] == [t(4), t(5)]
    assert r.clock.now() == t(6) and r.board.get("XYZ").price == D("103.00")


@pytest_twisted.ensureDeferred
async def test_a_seek_forward_plays_from_there_without_trading_the_days_skipped(replay):
    r = replay
    alice = await r.user("alice")
    day_order = await r.order(alice, "d1", "buy", "XYZ", "10")  # Tuesday 5 March's, a day order
    gtc = await r.order(alice, "g1", "buy", "ABC", "10", type="limit", limit_price="20.40", time_in_force="gtc")
    r.clock.seek(date(2024, 3, 12))  # the operator skips to Tuesday 12
    await r.session()
    # The days between are not played: no candle holds them, the day order expired unfilled (its session
    # went by), the gtc limit waits for the first price of the 12th that reaches it.
    candles = await r.market.candles.read("XYZ", "1d", 10)
    assert [c["time"] for c in candles] == [t(4), t(12, 13, 30)]  # (summer time from the 10th)
    ended = await r.trading.get_order(alice, None, day_order["id"])
    assert (ended["status"], ended["filled_quantity"]) == ("expired", D(0))
    waiting = await r.trading.get_order(alice, None, gtc["id"])
    history = (await r.trading.history(alice, None, 20))["transactions"]
    assert all(h["time"] >= t(12, 13, 30) for h in history)  # nothing traded on a day not played
    assert [h["order_id"] for h in history if h["kind"] == "fill"] == (
        [gtc["id"]] if waiting["status"] == "filled" else [])


@pytest_twisted.ensureDeferred
async def test_a_fill_at_the_open_is_dated_then_and_is_not_the_day_before_after_a_seek_back(
        db, settings, clock, log, nyse):
    """The bar model: a market order placed while market time waits at Wednesday's open fills at that open, and
    its fill, the order's fill time and its history row say so (not the close).  Moved back to Tuesday and
    Tuesday played again, that fill (dated at Wednesday's open, which is market time now) is not Tuesday's."""
    r = Replay(db, settings, clock, log, nyse, fill_model="bar")
    await r.start()
    try:
        alice = await r.user("alice")
        await r.session()  # Tuesday
        order = await r.order(alice, "o1", "buy", "XYZ", "10")
        await r.session()  # Wednesday
        filled = await r.trading.get_order(alice, None, order["id"])
        assert filled["status"] == "filled" and filled["fills"][0]["time"] == t(6) == filled["updated"]
        assert D("103.00") < filled["average_price"] < D("103.10")  # the open, plus slippage
        [row] = (await r.trading.history(alice, None, 10))["transactions"]
        assert row["time"] == t(6)
        await r.market.control("seek", "2024-03-05")
        await r.session()  # Tuesday again: market time waits at Wednesday's open
        assert r.clock.now() == t(6)
        portfolio = await r.trading.portfolio(alice, None)
        assert portfolio["change_today"] == D("20.00")  # 10 held x (Tuesday's close 103.00 - Monday's 101.00)
        assert portfolio["last_equity"] == portfolio["cash"] + D("1010.00")
    finally:
        await r.market.stopService()


@pytest_twisted.ensureDeferred
async def test_a_split_and_dividends_change_positions_cash_and_open_orders(replay):
    r = replay
    alice = await r.user("alice")
    await r.order(alice, "b1", "buy", "XYZ", "10")
    await r.order(alice, "b2", "buy", "ABC", "100")
    await r.session()  # Tuesday: filled at 103.00 and 20.50
    sell = await r.order(alice, "s1", "sell", "XYZ", "4", type="limit", limit_price="120.00", time_in_force="gtc")
    await r.session()  # Wednesday
    await r.session()  # Thursday
    await r.session()  # Friday 8 March: the 2-for-1 split
    portfolio = await r.trading.portfolio(alice, None)
    xyz = next(p for p in portfolio["positions"] if p["symbol"] == "XYZ")
    assert (xyz["quantity"], xyz["cost"], xyz["average_price"]) == (D(20), D("1030.00"), D("51.5000"))
    adjusted = await r.trading.get_order(alice, None, sell["id"])
    assert (adjusted["quantity"], adjusted["limit_price"], adjusted["status"]) == (D(8), D("60.00"), "new")
    history = (await r.trading.history(alice, None, 20))["transactions"]
    split = [h for h in history if h["kind"] == "split"]
    assert len(split) == 1 and split[0]["quantity"] == D(20)
    cash_before = portfolio["cash"]
    await r.session()  # Monday 11
    await r.session()  # Tuesday 12: XYZ pays 0.50 a share on 20 shares
    portfolio = await r.trading.portfolio(alice, None)
    assert portfolio["cash"] == cash_before + D("10.00")
    await r.session()  # Wednesday 13: ABC's ex-date (paid on the 15th)
    assert (await r.trading.portfolio(alice, None))["cash"] == cash_before + D("10.00")
    await r.session()  # Thursday 14
    await r.session()  # Friday 15: ABC pays 0.10 on 100 shares
    assert (await r.trading.portfolio(alice, None))["cash"] == cash_before + D("20.00")
    dividends = [h for h in (await r.trading.history(alice, None, 20))["transactions"] if h["kind"] == "dividend"]
    assert [(d["symbol"], d["amount"], d["time"].day) for d in dividends] == [("XYZ", D("10.00"), 12),
                                                                             ("ABC", D("10.00"), 15)]
    # The books still balance: cash = start + every amount in the history.
    history = (await r.trading.history(alice, None, 50))["transactions"]
    assert (await r.trading.portfolio(alice, None))["cash"] == D("100000.00") + sum(h["amount"] for h in history)


@pytest_twisted.ensureDeferred
async def test_a_fraction_a_split_leaves_of_a_whole_shares_asset_can_be_sold(db, settings, clock, log, nyse,
                                                                            tmp_path):
    """An asset that is not fractionable, split 3-for-2: 101 shares became 151.5, and every sale of the half
    share (or of the whole position) was refused 'trades in whole shares only'."""
    import shutil

    from papertrader.errors import InvalidInput

    files = tmp_path / "replay"
    shutil.copytree(FIXTURE, files)
    (files / "assets.csv").write_text((files / "assets.csv").read_text().replace("NYSE,us_equity,true",
                                                                                 "NYSE,us_equity,false"))
    (files / "events.csv").write_text((files / "events.csv").read_text().replace("split,2024-03-08,,2",
                                                                                 "split,2024-03-08,,1.5"))
    r = Replay(db, settings, clock, log, nyse, files=(str(files),))
    await r.start()
    try:
        alice = await r.user("alice")
        with pytest.raises(InvalidInput, match="XYZ trades in whole shares only"):
            await r.order(alice, "b0", "buy", "XYZ", "0.5")
        await r.order(alice, "b1", "buy", "XYZ", "101")
        for _ in range(4):  # to Friday 8 March: the split
            await r.session()
        held = next(p for p in (await r.trading.portfolio(alice, None))["positions"] if p["symbol"] == "XYZ")
        assert held["quantity"] == D("151.5")
        with pytest.raises(InvalidInput, match="XYZ trades in whole shares only"):
            await r.order(alice, "b2", "buy", "XYZ", "0.5")  # adding a fraction: still whole shares only
        for other in ("0.25", "1.5", "100.5"):  # another fraction than the split's: still whole shares only
            with pytest.raises(InvalidInput, match="XYZ trades in whole shares only"):
                await r.order(alice, f"s-{other}", "sell", "XYZ", other)
        await r.order(alice, "s1", "sell", "XYZ", "0.5")
        await r.session()
        held = next(p for p in (await r.trading.portfolio(alice, None))["positions"] if p["symbol"] == "XYZ")
        assert held["quantity"] == D(151)
    finally:
        await r.market.stopService()


@pytest_twisted.ensureDeferred
async def test_a_seek_back_across_a_split_and_a_dividend_undoes_the_split_and_plays_both_again(replay):
    """Held through the 2-for-1 split, then moved back before it: the 20 shares stayed 20 beside the prices of
    before (equity up by half the position, no trade), and playing the split day again made them 40.  The
    dividend paid stays paid, and is paid again to whoever holds at its ex-date when it plays again (its price
    drop plays again too)."""
    r = replay
    alice = await r.user("alice")
    await r.order(alice, "b1", "buy", "XYZ", "10")
    await r.session()  # Tuesday: filled at 103.00
    for _ in range(5):
        await r.session()  # ... Friday 8 (the split: 20 shares), Monday 11, Tuesday 12 (0.50 a share: 10.00)
    sell = await r.order(alice, "s1", "sell", "XYZ", "4", type="limit", limit_price="120.00", time_in_force="gtc")
    before = await r.trading.portfolio(alice, None)
    assert next(p for p in before["positions"] if p["symbol"] == "XYZ")["quantity"] == D(20)
    await r.market.control("seek", "2024-03-07")  # Thursday: before the split and the dividend
    portfolio = await r.trading.portfolio(alice, None)
    xyz = next(p for p in portfolio["positions"] if p["symbol"] == "XYZ")
    assert (xyz["quantity"], xyz["average_price"], xyz["price"]) == (D(10), D("103.0000"), D("98.00"))
    assert portfolio["cash"] == before["cash"]  # the dividend stays paid
    assert portfolio["equity"] == portfolio["cash"] + D("980.00")  # 10 x Wednesday's close: no windfall
    assert (await r.trading.get_order(alice, None, sell["id"]))["status"] == "expired"  # placed after Thursday
    history = (await r.trading.history(alice, None, 50))["transactions"]
    split, undone = [h for h in history if h["kind"] == "split"]
    assert split["details"] == "2-for-1 split: 10 -> 20 shares"
    assert (undone["quantity"], undone["details"]) == (D(10), "2-for-1 split undone (market time moved back to"
                                                               " before it): 20 -> 10 shares")
    await r.session()  # Thursday 7 again: its change counts from Wednesday, not from the days left behind
    portfolio = await r.trading.portfolio(alice, None)
    assert portfolio["change_today"] == D("15.00")  # 10 x (99.50 - 98.00); the later dividend is not today's
    assert portfolio["last_equity"] == portfolio["cash"] + D("980.00")
    for _ in range(3):
        await r.session()  # Friday 8 (the split again), Monday 11, Tuesday 12 (its dividend again)
    portfolio = await r.trading.portfolio(alice, None)
    xyz = next(p for p in portfolio["positions"] if p["symbol"] == "XYZ")
    assert (xyz["quantity"], xyz["average_price"]) == (D(20), D("51.5000"))  # split once, not twice
    assert portfolio["cash"] == before["cash"] + D("10.00")  # 0.50 on the 20 shares held on the 12th again
    history = (await r.trading.history(alice, None, 50))["transactions"]
    assert [h["kind"] for h in history].count("dividend") == 2
    assert portfolio["cash"] == D("100000.00") + sum(h["amount"] for h in history)


@pytest_twisted.ensureDeferred
async def test_a_split_undone_and_played_again_gives_back_exactly_the_shares_held(replay):
    """Shares bought after a split that do not divide back exactly (3.000001 / 2 is 1.5000005, kept as
    1.500000): a seek back before the split and its day played again give back the 3.000001 held, not
    3.000000 (a quant's 223 shares came back as 222.999994 after a 7-for-1 split's round trip); shares
    bought in between are split as any others."""
    r = replay
    alice, bob = await r.user("alice"), await r.user("bob")
    for _ in range(4):
        await r.session()  # ... Friday 8: the split has happened
    await r.order(alice, "b1", "buy", "XYZ", "3.000001")
    await r.session()  # Monday 11: filled
    await r.market.control("seek", "2024-03-07")  # Thursday: before the split

    def held(portfolio):
        return next(p["quantity"] for p in portfolio["positions"] if p["symbol"] == "XYZ")

    assert held(await r.trading.portfolio(alice, None)) == D("1.500000")
    await r.order(bob, "b2", "buy", "XYZ", "1.000001")
    await r.session()  # Thursday 7 again: bob's buy fills
    await r.session()  # Friday 8: the split plays again
    assert held(await r.trading.portfolio(alice, None)) == D("3.000001")
    assert held(await r.trading.portfolio(bob, None)) == D("2.000002")
    history = (await r.trading.history(alice, None, 50))["transactions"]
    assert [h["details"] for h in history if h["kind"] == "split"][-1] == "2-for-1 split: 1.5 -> 3.000001 shares"


@pytest_twisted.ensureDeferred
async def test_a_dividend_owed_when_market_time_moves_back_before_its_ex_date_is_owed_once_when_it_plays_again(
        replay):
    r = replay
    alice = await r.user("alice")
    await r.order(alice, "b1", "buy", "ABC", "100")
    for _ in range(8):
        await r.session()  # Tuesday 5 (filled) ... Wednesday 13: ABC's ex-date (0.10 a share, paid on the 15th)
    cash = (await r.trading.portfolio(alice, None))["cash"]
    await r.market.control("seek", "2024-03-12")  # before the ex-date: what it made owed is forgotten
    for _ in range(4):
        await r.session()  # Tuesday 12, Wednesday 13 (owed again), Thursday 14, Friday 15 (paid)
    assert (await r.trading.portfolio(alice, None))["cash"] == cash + D("10.00")  # once, not twice
    history = (await r.trading.history(alice, None, 50))["transactions"]
    assert [(h["kind"], h["amount"]) for h in history if h["kind"] == "dividend"] == [("dividend", D("10.00"))]


@pytest_twisted.ensureDeferred
async def test_a_dividend_and_a_fill_in_the_same_step_are_recorded_in_the_order_they_happened(replay):
    r = replay
    alice = await r.user("alice")
    await r.order(alice, "b1", "buy", "XYZ", "10")
    for _ in range(5):
        await r.session()  # Tuesday 5 (filled) ... Monday 11 (the split doubled it to 20)
    await r.order(alice, "s1", "sell", "XYZ", "5")
    await r.session()  # Tuesday 12: the dividend is paid, then the sell fills
    history = (await r.trading.history(alice, None, 50))["transactions"]
    assert [h["kind"] for h in history][-2:] == ["dividend", "fill"]
    cash = D("100000.00")
    for h in history:  # each row's cash is the one before plus its amount: the ledger reads in order
        cash += h["amount"]
        assert h["cash_after"] == cash, h
    assert (await r.trading.portfolio(alice, None))["cash"] == cash  # (the equity curve walks these rows)


@pytest_twisted.ensureDeferred
async def test_a_restarted_replay_goes_on_from_where_it_was(db, settings, clock, log, nyse):
    first = Replay(db, settings, clock, log, nyse)
    await first.start()
    await first.session()
    await first.session()
    await first.market.stopService()
    second = Replay(db, settings, clock, log, nyse)
    await second.start()  # resumes at Thursday's open, and plays Thursday
    try:
        assert second.clock.now() == t(8)
        days = [c["time"].day for c in await second.market.candles.read("XYZ", "1d", 10)]
        assert days == [4, 5, 6, 7]  # no session played twice
    finally:
        await second.market.stopService()


@pytest_twisted.ensureDeferred
async def test_a_restarted_replays_prices_are_as_of_the_last_update_with_todays_change(db, settings, clock, log,
                                                                                       nyse):
    """After a restart a daily replay's price said the session's open (the start of its stored daily bar), not
    its close, and had no previous close (no change today), until the next update."""
    first = Replay(db, settings, clock, log, nyse)
    await first.start()
    await first.session()
    before = first.market.board.get("XYZ")
    await first.market.control("pause")  # (so that the next one plays nothing: its board is the restored one)
    await first.market.stopService()
    second = Replay(db, settings, clock, log, nyse)
    await second.start()
    try:
        assert second.market.market_clock.state == "paused"
        restored = second.market.board.get("XYZ")
        assert (restored.price, restored.time, restored.previous_close, restored.session_open) == (
            before.price, before.time, before.previous_close, before.session_open)
        assert before.time == t(5, 21, 0) and before.previous_close is not None  # (the close of Tuesday's session)
    finally:
        await second.market.stopService()


def test_the_default_market_is_the_replay_of_the_shipped_history(settings):
    from papertrader.config import Settings

    market = build(replace(Settings()), clock=None)
    assert market.clock.name == "replay" and market.calendar.name == "XNYS"
    assert len(market.assets) >= 25 and "AAPL" in market.assets and "AMZN" not in market.assets
    with pytest.raises(MarketSetupError, match="after the end of the history"):
        build(replace(Settings(), replay_start="2030-01-02"), clock=None)
    with pytest.raises(MarketSetupError, match="no history for TSLA"):
        build(replace(Settings(), assets=("AAPL", "TSLA")), clock=None)


@pytest_twisted.ensureDeferred
async def test_after_the_replays_last_day_orders_are_refused_and_seek_stays_inside_it(db, settings, clock, log,
                                                                                     nyse):
    r = Replay(db, settings, clock, log, nyse)
    ending = ReplayClock(nyse, date(2024, 3, 4), date(2024, 3, 15))  # the fixture's last day
    r.clock = r.trading.market_clock = r.market.market_clock = ending
    await r.start()
    try:
        alice = await r.user("alice")
        with pytest.raises(InvalidInput) as refused:
            await r.market.control("seek", "2025-01-02")
        assert refused.value.message == ("seek 2025-01-02: that is after the replay's last day, 2024-03-15 (it"
                                         " plays 2024-03-04 to 2024-03-15)")
        with pytest.raises(InvalidInput) as refused:
            await r.market.control("seek", "2023-01-03")
        assert "before the replay's first day, 2024-03-04" in refused.value.message
        with pytest.raises(InvalidInput) as refused:
            await r.market.control("seek", "2024-02-30")
        assert refused.value.message == ("seek: there is no day 2024-02-30 (the month has fewer days, or there is"
                                         " no such month)")
        assert (await r.market.control("status"))["time"] == t(5)  # none of them moved it
        for _ in range(10):
            await r.session()  # the 5th to the 15th, then the end
        shown = await r.market.control("status")
        assert (shown["state"], shown["is_open"]) == ("ended", False)
        with pytest.raises(InvalidInput) as refused:
            await r.order(alice, "late", "buy", "XYZ", "1")
        assert refused.value.message.startswith("the replay ended on 2024-03-15: no session opens after it")
        assert await r.db.run(lambda c: r.store.open_orders(c, alice.portfolio_id)) == []
        moved = await r.market.control("seek", "2024-03-11")
        assert (moved["state"], moved["time"]) == ("running", t(11, 13, 30))
        order = await r.order(alice, "again", "buy", "XYZ", "1")
        assert order["status"] == "new"
    finally:
        await r.market.stopService()


# --- an operator pauses, resumes and moves the replay ----------------------------------------------


async def run_admin(*argv):
    """papertrader-admin ARGV as a real process (the master keeps running in this one); (status, output)."""
    import sys

    from twisted.internet import reactor

    from tests.conftest import WatchedProcess, bounded

    proc = WatchedProcess()
    reactor.spawnProcess(proc, sys.executable, [sys.executable, "-m", "papertrader.admin", *argv],
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    ended = await bounded(proc.ended, "papertrader-admin")
    return getattr(ended, "exitCode", None), proc.output.decode()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_the_history_before_the_start_is_counted_in_words_that_fit_one(tmp_path, settings, database_url, clock):
    """"1 daily bars of history before 2024-03-04 stored": a count of one is said in the singular."""
    from tests.conftest import start_cluster

    prices = tmp_path / "ONE.csv"
    prices.write_text("date,open,high,low,close,volume\n2024-03-01,10,11,9,10,100\n2024-03-04,10,11,9,10,100\n")
    d = await start_cluster(tmp_path, replace(settings, provider="replay", assets=(), replay_files=str(prices),
                                              replay_start="2024-03-04"), database_url, clock)
    try:
        said = [e.message for e in d.master.logs.newest(200, "info") if "daily bar" in e.message]
        assert said == ["market data: 1 daily bar of history before 2024-03-04 stored"], said
    finally:
        await d.cluster.stopService()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_pause_resume_and_seek_from_papertrader_admin_and_the_console(tmp_path, settings, database_url,
                                                                            clock):
    import json

    from tests.conftest import start_cluster

    replay_settings = replace(settings, provider="replay", assets=(), replay_files=FIXTURE,
                              replay_start="2024-03-04", fill_model="ideal")
    d = await start_cluster(tmp_path, replay_settings, database_url, clock)
    try:
        market = d.master.market
        assert market.market_clock.now() == t(5)
        status, out = await run_admin("--data-dir", d.data_dir, "market", "pause", "--json")
        assert status == 0, out
        assert json.loads(out)["state"] == "paused" and json.loads(out)["master_running"] is True
        await d.tick()
        assert market.market_clock.now() == t(5)  # market time stands still
        status, out = await run_admin("--data-dir", d.data_dir, "market", "resume")
        assert status == 0 and "replay:     running, 1d per update, from 2024-03-04" in out, out
        await d.tick()
        assert market.market_clock.now() == t(6)
        status, out = await run_admin("--data-dir", d.data_dir, "market", "seek", "2024-03-13", "--json")
        assert json.loads(out)["time"] == "2024-03-13T13:30:00+00:00", out
        await d.tick()
        assert d.master.board.get("XYZ").price == D("52.75")  # the 13th's close
        # The console has the same controls.
        from papertrader.master.console import namespace

        ns = namespace(d.master)
        state = await ns["seek"]("2024-03-05")
        assert state["time"] == t(5) and state["state"] == "running"
        # Shown as papertrader-admin shows it: times in New York's, the replay's first day as a day (they were
        # UTC, the first day the evening before).
        shown = repr(await ns["market"]())
        assert "time:" in shown and "2024-03-05 09:30:00 EST" in shown and "start:      2024-03-04\n" in shown, shown
        heartbeats = [row.split()[-3:-1] for row in repr(await ns["workers"]()).splitlines()[1:]]
        assert heartbeats and all(zone in ("EST", "EDT") for _, zone in heartbeats), heartbeats
        # The workers' prices go back with it at once (the 4th's close), before any update.
        from tests.conftest import until

        worker = d.cluster.workers[0]
        await until(lambda: worker.quotes.get("XYZ")["price"] == D("101.00"), "the worker's quotes to go back")
        assert [q["symbol"] for q in worker.quotes.all()] == ["ABC", "XYZ"]
        paused = await ns["pause"]()
        assert paused["state"] == "paused"
        status, out = await run_admin("--data-dir", d.data_dir, "market", "seek", "someday")
        assert status == 1 and "YYYY-MM-DD" in out
    finally:
        await d.cluster.stopService()
    # No master running: the decision is recorded and taken when it starts.
    status, out = await run_admin("--data-dir", d.data_dir, "--database", database_url, "market", "seek", "2024-03-11")
    assert status == 0 and "no master running" in out, out
    # Where the replay stands, as the database holds it (a microsecond before the open it was moved to): to the
    # second, in UTC, said so (no master is running to name the market's zone).
    assert "Last step: 2024-03-05 14:30:00 UTC, paused" in out, out
    d = await start_cluster(tmp_path, replay_settings, database_url, clock)
    try:
        assert d.master.market.market_clock.state == "paused"  # as it was left
        assert d.master.market.market_clock.now() == t(11, 13, 30)
    finally:
        await d.cluster.stopService()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_the_client_shows_replay_time_names_candles_by_range_and_stale_quotes(tmp_path, settings, database_url,
                                                                                   clock):
    import json

    from tests.conftest import start_cluster
    from tests.test_e2e import register_and_login

    later = tmp_path / "NEW.csv"  # lists on Monday 11 March
    later.write_text("date,open,high,low,close,volume\n" + "".join(
        f"2024-03-{day:02d},10.00,10.50,9.75,10.25,1000\n" for day in (11, 12, 13, 14, 15)))
    d = await start_cluster(tmp_path, replace(settings, provider="replay", assets=(),
                                              replay_files=f"{FIXTURE},{later}", replay_start="2024-03-04"),
                            database_url, clock)
    try:
        await register_and_login(d)
        for _ in range(3):
            await d.tick()  # Monday to Thursday played
        # A quote of an asset listed later says so, as its orders do (it said 'unknown symbol'); an unknown one is.
        status, out, err = await d.cli("quote", "new", user="alice", json=False)
        assert (status, err) == (1, "papertrader: NEW does not trade yet: its prices start on 2024-03-11 (the"
                                    " market's date: papertrader clock)\n"), err
        status, out, err = await d.cli("quote", "ZZZ", user="alice", json=False)
        assert status == 1 and "unknown symbol 'ZZZ'" in err, err
        status, out, err = await d.cli("clock", user="alice")
        clock_answer = json.loads(out)
        assert (clock_answer["mode"], clock_answer["state"], clock_answer["step"]) == ("replay", "running", "1d")
        assert clock_answer["time"] == "2024-03-08T14:30:00+00:00" and clock_answer["source"] == "replay"
        status, out, _ = await d.cli("clock", user="alice", json=False)
        assert "replay:     running, 1d per update, from 2024-03-04 to 2024-03-15" in out
        assert "time:       2024-03-08 09:30:00 EST" in out, out  # New York's time, as the website shows it
        status, out, _ = await d.cli("assets", "--search", "soup", user="alice")
        assert [(a["symbol"], a["name"], a["stale"]) for a in json.loads(out)] == [("ABC", "Alphabet Soup Inc.",
                                                                                   False)]
        status, out, _ = await d.cli("candles", "XYZ", "--interval", "1d", "--start", "2024-03-05", "--limit", "2",
                                     user="alice")
        assert [c["close"] for c in json.loads(out)] == ["103.00", "98.00"]
        status, out, _ = await d.cli("candles", "XYZ", "--start", "March", user="alice")
        assert status == 1 and json.loads(out)["error"] == "invalid_input"
        # Whole sessions only: minute to hourly candles would never come, and the client says so.
        for interval in ("1m", "5m", "15m", "1h"):
            status, out, err = await d.cli("candles", "XYZ", "--interval", interval, user="alice", json=False)
            assert (status, out) == (1, "") and err == (
                f"papertrader: interval {interval} needs intraday prices, and this market is a replay of whole"
                " sessions (replay_step 1d: daily bars only); use --interval 1d\n")
        status, out, _ = await d.cli("candles", "XYZ", "--interval", "1h", user="alice")
        assert status == 1 and json.loads(out)["error"] == "invalid_input"
        status, out, _ = await d.cli("candles", "XYZ", "--limit", "1", user="alice", json=False)
        # 1d, the default: a day's candle shown as its day (JSON: its time, the session's open, in UTC)
        assert status == 0 and out.splitlines()[1].startswith("2024-03-07  "), out
        status, out, _ = await d.cli("candles", "XYZ", "--limit", "1", user="alice")
        assert json.loads(out)[0]["time"] == "2024-03-07T14:30:00+00:00"
        for _ in range(7):
            await d.tick()  # Thursday 8th to Friday 15th, the history's last day, then the end
        status, out, _ = await d.cli("clock", user="alice", json=False)
        assert "market:     closed: the replay ended on 2024-03-15 (no session opens; orders are refused)" in out
        assert "replay:     ended, 1d per update, from 2024-03-04 to 2024-03-15" in out
        assert "next open" not in out, out
        status, out, _ = await d.cli("buy", "XYZ", "1", user="alice")
        assert status == 1 and json.loads(out)["error"] == "invalid_input", out
        assert json.loads(out)["message"].startswith("the replay ended on 2024-03-15: no session opens after it")
        status, out = await run_admin("--data-dir", d.data_dir, "market", "seek", "2024-03-18")
        assert status == 1 and "after the replay's last day, 2024-03-15" in out, out
        status, out = await run_admin("--data-dir", d.data_dir, "market", "seek", "2024-02-30")
        assert status == 1 and "there is no day 2024-02-30" in out, out
    finally:
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_a_step_answers_within_its_time_budget_saying_how_many_updates_it_played(replay):
    """An account's ``market step N`` stops playing once its budget is spent (the callers give up after 30 s),
    after at least one update, and says how many it played; the clock is where they left it."""
    r = replay
    r.market.listeners.append(lambda step, quotes: r.wall.advance(15))  # each update takes 15 s of wall time
    before = r.clock.now()
    answer = await r.market.control("step", "5", by="alice", budget=20)
    assert (answer["played"], answer["state"]) == (2, "paused")  # 15 s, then 30 s: past the 20 s budget
    assert (before.date(), r.clock.now().date()) == (date(2024, 3, 5), date(2024, 3, 7))  # two sessions on
    answer = await r.market.control("step", "1", by="alice", budget=0)
    assert answer["played"] == 1  # one at least, whatever the budget


@pytest_twisted.ensureDeferred
async def test_an_update_whose_step_failed_waits_and_is_played_again_whole(replay, db):
    """The trading step fails (its database is away) at Tuesday's update: market time waits at Tuesday, and each
    interval plays that update again until the step takes it, with its candles (once).  Time used to go on: the
    day order placed for Tuesday never met Tuesday's bar and expired unfilled, and Tuesday had no candles."""
    import sqlite3

    from papertrader.master.db import is_unavailable

    r = replay
    real = r.trading.market_step
    r.market.transient = is_unavailable  # (as the master's)
    failures_left = [2]
    taken = []

    def flaky(step, quotes, candles=()):
        if failures_left[0]:
            failures_left[0] -= 1
            raise sqlite3.OperationalError("database or disk is full")
        taken.append((step, quotes, candles))
        return real(step, quotes, candles=candles)

    r.market.listeners[r.market.listeners.index(real)] = flaky
    r.trading.candles = r.market.candles  # as on the master: the step stores the update's candles
    r.market.candle_writer = flaky
    alice = await r.user("alice")
    order = await r.order(alice, "o1", "buy", "XYZ", "10")  # a day order, for Tuesday 5
    for _ in range(2):
        await r.session()  # Tuesday's update: the step fails
        assert (await r.trading.get_order(alice, None, order["id"]))["status"] == "new"
    await r.session()  # taken: Tuesday, not Wednesday
    filled = await r.trading.get_order(alice, None, order["id"])
    assert (filled["status"], filled["average_price"], filled["fills"][0]["time"]) == (
        "filled", D("103.00"), t(5, 21, 0))
    assert r.clock.now() == t(6)  # market time waits at Wednesday's open now
    rows = await db.query("SELECT symbol, volume FROM bars WHERE interval = '1d' AND time >= ? ORDER BY symbol",
                          ("2024-03-05",))
    bars = r.market.source.last_bars(["ABC", "XYZ"], t(6))
    assert [tuple(row) for row in rows] == [(s, bars[s].volume) for s in ("ABC", "XYZ")]  # Tuesday's, once
    # Played once more (as after a COMMIT whose answer was lost, though it was saved): nothing happens twice.
    [(step, quotes, candles)] = taken
    assert await real(step, quotes, candles=candles) == 0
    rows = await db.query("SELECT symbol, volume FROM bars WHERE interval = '1d' AND time >= ? ORDER BY symbol",
                          ("2024-03-05",))
    assert [tuple(row) for row in rows] == [(s, bars[s].volume) for s in ("ABC", "XYZ")]


@pytest_twisted.ensureDeferred
async def test_a_game_still_running_at_the_replays_end_finishes_though_that_updates_listener_failed(
        db, settings, clock, log, nyse):
    """A replay ends at its last session's close, so only its last update can finish a game ending that day.
    If that update's games listener fails (or a kill cuts it short), the next intervals, the replay ended,
    finish it: it does not stay running for good with its orders open."""
    from papertrader.app.games import GameCommands
    from papertrader.master.games import GameStore
    from papertrader.master.portfolios import PortfolioStore

    r = Replay(db, settings, clock, log, nyse, end=date(2024, 3, 8))  # Monday 4 to Friday 8 March
    games = GameCommands(db, GameStore(db), PortfolioStore(db), r.store, r.board, r.clock, clock, log,
                         trading=r.trading)
    r.trading.games = games.store
    failures = []

    async def games_listener(step, quotes=None):
        if r.clock.state == "ended" and not failures:
            failures.append(step.time)
            raise RuntimeError("could not serialize access")  # the last update's, once
        return await games.update(step, quotes)

    r.market.listeners.append(games_listener)
    r.market.ended.append(games.update)
    await r.start()
    last = r.clock.last_day
    teacher, alice = await r.user("teacher"), await r.user("alice")
    stamp = Stamp(utc(clock.seconds()), "192.0.2.1", "w1")
    assert last == date(2024, 3, 8)
    await games.create_game(teacher, stamp, "Last Cup", r.clock.now(), datetime(2024, 3, 9, tzinfo=timezone.utc),
                            "10000")  # through the replay's last day
    await games.join_game(alice, stamp, "Last Cup")
    waiting = await r.order(alice, "w", "buy", "XYZ", "1", portfolio="Last Cup", type="limit", limit_price="1.00",
                            time_in_force="gtc")
    for _ in range(20):
        if r.clock.state == "ended":
            break
        await r.session()
    assert r.clock.state == "ended" and failures  # the last update played; its games listener failed
    still = await r.trading.get_order(alice, None, waiting["id"], portfolio="Last Cup")
    assert still["status"] == "new"  # not finished by the failed update
    await r.session()  # the next interval: the replay has ended
    board = await games.game_leaderboard(teacher, stamp, "Last Cup")
    assert board["final"] and [s["username"] for s in board["standings"]] == ["alice"]
    ended = await r.trading.get_order(alice, None, waiting["id"], portfolio="Last Cup")
    assert ended["status"] == "canceled" and "market's last day" in ended["reason"]
    await r.session()  # and again: nothing more to do
    assert (await r.trading.get_order(alice, None, waiting["id"], portfolio="Last Cup"))["status"] == "canceled"
    await r.market.stopService()
