"""Portfolios through the application layer and the stores, on both databases: two portfolios of one user never
mix; reset keeps the archive and the API keys; close says what must be done first; a margin portfolio's short
sale, margin call, forced liquidation and borrow fee on scripted prices, through the master's market step."""

import threading
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
import pytest_twisted

from papertrader.app import Stamp
from papertrader.app.portfolios import PortfolioCommands
from papertrader.app.trading import TradingCommands, rules_from
from papertrader.config import margin_rules
from papertrader.errors import InvalidInput, NotLoggedIn, PortfolioNotEmpty, UnknownOrder, UnknownPortfolio
from papertrader.market import calendar
from papertrader.market.board import Quote, QuoteBoard
from papertrader.market.clock import MarketClock
from papertrader.master.accounts import Accounts
from papertrader.master.api_keys import ApiKeys, credential
from papertrader.master.order_store import OrderStore
from papertrader.master.portfolios import PortfolioStore
from papertrader.times import utc
from papertrader.trading.market import Bar, MarketStep

D = Decimal
PASSWORD = "correct horse battery"


@pytest.fixture
def terms(settings):
    """Ideal fills (at the bar's close: exact prices), margin portfolios allowed, a 1-hour call deadline and a
    36% yearly borrow rate (0.1% of the short value a day)."""
    return replace(settings, fill_model="ideal", margin_accounts=True, margin_call_hours=1.0, borrow_rate=D("36"))


@pytest.fixture
def board(settings):
    return QuoteBoard(settings.assets)


@pytest.fixture
def published():
    return []


@pytest.fixture
def master(db, terms, board, clock, log, published):
    """The master's parts as master/service.py wires them."""
    class Parts:
        pass

    m = Parts()
    m.accounts = Accounts(db, terms, clock, log)
    m.api_keys = m.accounts.api_keys = ApiKeys(db, clock, log)
    m.orders = OrderStore(db, margin_rules(terms))
    m.trading = TradingCommands(db, m.orders, board, MarketClock(calendar.load("always_open"), clock),
                                rules_from(terms), clock, log, publish=published.extend)
    m.trading.api_keys = m.api_keys
    m.portfolios = PortfolioCommands(db, m.orders, PortfolioStore(db), terms, clock, log, m.trading)
    return m


@pytest.fixture
def user(master):
    async def make(name):
        await master.accounts.register(name, f"{name}@example.com", PASSWORD)
        token, _, _ = await master.accounts.login(name, PASSWORD, False, "worker1", "192.0.2.7")
        return await master.accounts.authenticate(token)
    return make


@pytest.fixture
def stamp(clock):
    return lambda: Stamp(utc(clock.seconds()), "192.0.2.7", "worker1")


@pytest.fixture
def step(master, board, clock):
    """One market step with a bar (open = high = low = close) at each given price, on market day ``today``."""
    def run(today=None, **prices):
        now = utc(clock.seconds())
        clock.advance(5)
        end = utc(clock.seconds())
        bars = {s: Bar(s, now, end, D(p), D(p), D(p), D(p), 1_000_000) for s, p in prices.items()}
        board.update([Quote(s, D(p), end) for s, p in prices.items()])
        return master.trading.market_step(MarketStep(end, bars, today=today))
    return run


@pytest_twisted.ensureDeferred
async def test_two_portfolios_of_one_user_never_mix(master, user, stamp, step):
    alice = await user("alice")
    t, p = master.trading, master.portfolios
    made = await p.create_portfolio(alice, stamp(), "Growth", cash="5000.00")
    assert (made["name"], made["kind"], made["cash"], made["default"]) == ("Growth", "cash", D("5000.00"), False)
    listed = await p.portfolios(alice, stamp())
    assert [(x["name"], x["default"]) for x in listed["portfolios"]] == [("default", True), ("Growth", False)]
    await step(AAPL="100")
    # The same client order id in each portfolio: two orders, one in each.
    a = await t.place_order(alice, stamp(), "same-id", "buy", "AAPL", "10")
    g = await t.place_order(alice, stamp(), "same-id", "buy", "AAPL", "2", portfolio="growth")
    assert a["id"] != g["id"]
    await step(AAPL="100")
    main = await t.portfolio(alice, stamp())
    growth = await t.portfolio(alice, stamp(), portfolio="GROWTH")  # names are matched without regard to case
    assert (main["portfolio"], main["cash"], main["positions"][0]["quantity"]) == ("default", D("99000.00"), 10)
    assert (growth["portfolio"], growth["cash"], growth["positions"][0]["quantity"]) == ("Growth", D("4800.00"), 2)
    assert [o["id"] for o in (await t.orders(alice, stamp(), 50))["orders"]] == [a["id"]]
    assert [o["id"] for o in (await t.orders(alice, stamp(), 50, portfolio="Growth"))["orders"]] == [g["id"]]
    assert [r["quantity"] for r in (await t.history(alice, stamp(), 50, portfolio="Growth"))["transactions"]] == [2]
    # One portfolio's order cannot be read, canceled or replaced through the other.
    with pytest.raises(UnknownOrder):
        await t.get_order(alice, stamp(), order_id=g["id"])
    with pytest.raises(UnknownOrder):
        await t.cancel_order(alice, stamp(), order_id=a["id"], portfolio="Growth")
    # Selling what only the other portfolio holds is refused.
    with pytest.raises(Exception) as refused:
        await t.place_order(alice, stamp(), "s-1", "sell", "AAPL", "5", portfolio="Growth")
    assert refused.value.code == "insufficient_position"
    # Another user never sees alice's portfolios, even by name.
    bob = await user("bob")
    with pytest.raises(UnknownPortfolio):
        await t.portfolio(bob, stamp(), portfolio="Growth")
    # Names: unique without regard to case, 1-64 characters; at most max_portfolios.
    with pytest.raises(InvalidInput):
        await p.create_portfolio(alice, stamp(), "GROWTH")
    with pytest.raises(InvalidInput):
        await p.create_portfolio(alice, stamp(), "x" * 65)
    with pytest.raises(InvalidInput):
        await p.create_portfolio(alice, stamp(), "rich", cash="99999999999.00")
    renamed = await p.rename_portfolio(alice, stamp(), "growth", "Value")
    assert renamed["name"] == "Value" and (await t.portfolio(alice, stamp(), portfolio="value"))["cash"] == D("4800")


@pytest_twisted.ensureDeferred
async def test_a_user_has_at_most_max_portfolios(master, user, stamp, terms):
    alice = await user("alice")
    for n in range(terms.max_portfolios - 1):
        await master.portfolios.create_portfolio(alice, stamp(), f"p{n}")
    with pytest.raises(InvalidInput) as refused:
        await master.portfolios.create_portfolio(alice, stamp(), "one-too-many")
    assert f"{terms.max_portfolios} portfolios" in refused.value.message


@pytest_twisted.ensureDeferred
async def test_reset_archives_the_history_cancels_open_orders_and_keeps_the_api_keys(master, user, stamp, step):
    alice = await user("alice")
    t, p = master.trading, master.portfolios
    await p.create_portfolio(alice, stamp(), "play", cash="1000.00")
    key = await master.api_keys.create(alice, "bot", "play")
    assert key["portfolio"] == "play"
    bot = await master.api_keys.authenticate(credential(key["key_id"], key["secret"]))
    await step(MSFT="10")
    filled = await t.place_order(bot, stamp(), "k-1", "buy", "MSFT", "20")  # the key trades "play"
    await step(MSFT="10")
    waiting = await t.place_order(bot, stamp(), "k-2", "buy", "MSFT", "1", type="limit", limit_price="5")
    assert (await t.portfolio(alice, stamp(), portfolio="play"))["cash"] == D("800.00")
    assert (await t.portfolio(alice, stamp()))["cash"] == D("100000.00")  # the default portfolio: untouched

    reset = await p.reset_portfolio(alice, stamp(), "play")
    assert (reset["generation"], reset["cash"], reset["canceled"]) == (1, D("1000.00"), 1)
    now = await t.portfolio(bot, stamp())
    assert (now["cash"], now["positions"], now["open_orders"], now["generation"]) == (D("1000.00"), [], 0, 1)
    assert (await t.get_order(bot, stamp(), order_id=waiting["id"]))["status"] == "canceled"
    # The lists show the new generation; the archive is still readable by generation.
    assert (await t.history(bot, stamp(), 50))["transactions"] == []
    assert (await t.orders(bot, stamp(), 50))["orders"] == []
    archived = await t.history(bot, stamp(), 50, generation=0)
    assert [(r["order_id"], r["quantity"]) for r in archived["transactions"]] == [(filled["id"], 20)]
    assert {o["id"] for o in (await t.orders(bot, stamp(), 50, generation=0))["orders"]} == {filled["id"],
                                                                                              waiting["id"]}
    with pytest.raises(InvalidInput):
        await t.history(bot, stamp(), 50, generation=2)
    # A key sees only its own portfolio, and cannot manage portfolios.
    assert [x["name"] for x in (await p.portfolios(bot, stamp()))["portfolios"]] == ["play"]
    with pytest.raises(InvalidInput):
        await p.reset_portfolio(bot, stamp(), "play")
    with pytest.raises(InvalidInput):
        await t.portfolio(bot, stamp(), portfolio="default")
    # The key still works after the reset, and trades the new generation (its client order ids are fresh).
    again = await t.place_order(bot, stamp(), "k-1", "buy", "MSFT", "3")
    assert again["id"] != filled["id"]
    await step(MSFT="10")
    assert (await t.portfolio(bot, stamp()))["cash"] == D("970.00")
    assert [k["key_id"] for k in await master.api_keys.list(alice)] == [key["key_id"]]


@pytest_twisted.ensureDeferred
async def test_close_says_what_must_be_done_first_and_ends_the_portfolios_keys(master, user, stamp, step):
    alice = await user("alice")
    t, p = master.trading, master.portfolios
    await p.create_portfolio(alice, stamp(), "side")
    key = await master.api_keys.create(alice, "bot", "side")
    await step(TSLA="50")
    await t.place_order(alice, stamp(), "o-1", "buy", "TSLA", "1", portfolio="side")
    await step(TSLA="50")
    await t.place_order(alice, stamp(), "o-2", "buy", "TSLA", "1", type="limit", limit_price="1", portfolio="side")
    with pytest.raises(PortfolioNotEmpty) as refused:
        await p.close_portfolio(alice, stamp(), "side")
    assert refused.value.message == ("portfolio 'side' is not empty: cancel its 1 open order and close its 1"
                                     " position first (or reset it)")
    with pytest.raises(InvalidInput):
        await p.close_portfolio(alice, stamp(), "default")  # the default portfolio stays
    await p.reset_portfolio(alice, stamp(), "side")
    closed = await p.close_portfolio(alice, stamp(), "side")
    assert "closed" in closed
    assert [x["name"] for x in (await p.portfolios(alice, stamp()))["portfolios"]] == ["default"]
    with pytest.raises(UnknownPortfolio):
        await t.portfolio(alice, stamp(), portfolio="side")
    with pytest.raises(NotLoggedIn):
        await master.api_keys.authenticate(credential(key["key_id"], key["secret"]))
    # The name is free again.
    assert (await p.create_portfolio(alice, stamp(), "side"))["generation"] == 0


@pytest_twisted.ensureDeferred
async def test_margin_portfolios_only_where_the_operator_allows_them(master, user, stamp):
    alice = await user("alice")
    master.portfolios.settings = replace(master.portfolios.settings, margin_accounts=False)
    with pytest.raises(InvalidInput) as refused:
        await master.portfolios.create_portfolio(alice, stamp(), "levered", margin=True)
    assert "margin_accounts" in refused.value.message
    # A cash portfolio cannot sell short.
    with pytest.raises(Exception) as short:
        await master.trading.place_order(alice, stamp(), "s-1", "sell", "AAPL", "1")
    assert short.value.code in ("insufficient_position", "quote_unavailable")


@pytest_twisted.ensureDeferred
async def test_a_short_sale_a_margin_call_and_a_forced_liquidation_on_scripted_prices(master, user, stamp, step,
                                                                                      clock, db, published):
    alice = await user("alice")
    t, p = master.trading, master.portfolios
    made = await p.create_portfolio(alice, stamp(), "levered", cash="10000.00", margin=True)
    assert made["kind"] == "margin"
    day = utc(clock.seconds()).date()
    await step(today=day, AAPL="50")
    # Short 100 at $50: equity 10,000, short value 5,000.  Reg T buying power before: 2 x 10,000.
    before = await t.portfolio(alice, stamp(), portfolio="levered")
    assert before["buying_power"] == D("20000.00")
    await t.place_order(alice, stamp(), "short-1", "sell", "AAPL", "100", portfolio="levered")
    await step(today=day, AAPL="50")
    shorted = await t.portfolio(alice, stamp(), portfolio="levered")
    assert (shorted["positions"][0]["quantity"], shorted["cash"]) == (-100, D("15000.00"))
    assert shorted["positions"][0]["available"] == -100  # no open buy covers any of it
    cover = await t.place_order(alice, stamp(), "cover-1", "buy", "AAPL", "30", portfolio="levered",
                                type="limit", limit_price="1.00", time_in_force="gtc")
    assert (await t.portfolio(alice, stamp(), portfolio="levered"))["positions"][0]["available"] == -70
    await t.cancel_order(alice, stamp(), cover["id"], portfolio="levered")
    # Held overnight: at the next day's first step the borrow fee, 5,000 x 36% / 360 = 5.00, once that day.
    day += timedelta(days=1)
    await step(today=day, AAPL="50")
    await step(today=day, AAPL="50")
    after = await t.portfolio(alice, stamp(), portfolio="levered")
    assert after["cash"] == D("15000.00") - D("5.00")
    assert (after["short_market_value"], after["equity"]) == (D("5000.00"), D("9995.00"))
    assert (after["initial_margin"], after["maintenance_margin"]) == (D("2500.00"), D("1500.00"))
    assert "margin_call" not in after
    fees = await t.history(alice, stamp(), 50, portfolio="levered")
    assert [r["amount"] for r in fees["transactions"] if r["kind"] == "borrow_fee"] == [D("-5.00")]

    # $100: short value 10,000, equity 4,995, maintenance 3,000: no call.  $120: equity 2,995 < 3,600: a call
    # for 605, with the deadline an hour (margin_call_hours) later.
    await step(today=day, AAPL="100")
    assert "margin_call" not in await t.portfolio(alice, stamp(), portfolio="levered")
    await step(today=day, AAPL="120")
    called = await t.portfolio(alice, stamp(), portfolio="levered")
    assert (called["equity"], called["maintenance_margin"], called["margin_call"]) == (
        D("2995.00"), D("3600.00"), D("605.00"))
    assert called["margin_call_deadline"] - called["margin_call_since"] == timedelta(hours=1)
    # Before the deadline nothing is sold.  Alice's own exits of the short (an OCO: cover at 60, or at 150)
    # hold every share she could cover.
    await step(today=day, AAPL="120")
    assert (await t.orders(alice, stamp(), 50, status="open", portfolio="levered"))["orders"] == []
    oco = await t.place_order(alice, stamp(), "exits", "buy", "AAPL", "100", type="limit", time_in_force="gtc",
                              order_class="oco", take_profit="60", stop_loss="150", portfolio="levered")

    # After it, the platform cancels her orders in AAPL (they would keep the shares it covers) and places the
    # documented liquidation: cover 605 / (30% x 120) = 16.8 -> 17 shares.
    clock.advance(3600)
    published.clear()
    await step(today=day, AAPL="120")
    canceled = [await t.get_order(alice, stamp(), order_id=o["id"], portfolio="levered") for o in [oco, *oco["legs"]]]
    assert [(o["status"], o["reason"].startswith("canceled by the platform: the margin call of 605.00")) for o in
            canceled] == [("canceled", True), ("canceled", True)]
    [liquidation] = (await t.orders(alice, stamp(), 50, status="open", portfolio="levered"))["orders"]
    assert (liquidation["side"], liquidation["quantity"], liquidation["type"]) == ("buy", 17, "market")
    assert liquidation["reason_code"] == "margin_liquidation"
    assert "placed by the platform" in liquidation["reason"]
    assert await db.query("SELECT origin FROM orders WHERE id = ?", (liquidation["id"],)) == [("liquidation",)]
    assert [(name, e["event"]) for name, e in published] == [("alice", "canceled"), ("alice", "canceled"),
                                                               ("alice", "accepted")]
    # While it is open (a step without a bar of AAPL does not fill it), no second one is placed.
    await step(today=day, MSFT="10")
    assert len((await t.orders(alice, stamp(), 50, status="open", portfolio="levered"))["orders"]) == 1
    # It fills at the next step with a bar; the call is then met and cleared.
    await step(today=day, AAPL="120")
    done = await t.portfolio(alice, stamp(), portfolio="levered")
    assert done["positions"][0]["quantity"] == -83
    assert "margin_call" not in done
    assert done["equity"] >= done["maintenance_margin"]
    # The books balance: cash = start + short proceeds - cover cost - fees.
    assert done["cash"] == D("10000.00") + D("5000.00") - 17 * D("120") - D("5.00")
    # The default portfolio never took part.
    assert (await t.portfolio(alice, stamp()))["cash"] == D("100000.00")


@pytest_twisted.ensureDeferred
async def test_the_borrow_fee_is_charged_once_a_day_for_the_days_since_the_last(master, user, stamp, step, clock):
    alice = await user("alice")
    t = master.trading
    await master.portfolios.create_portfolio(alice, stamp(), "short", cash="10000.00", margin=True)
    day = utc(clock.seconds()).date()
    await step(today=day, MSFT="10")
    await t.place_order(alice, stamp(), "s", "sell", "MSFT", "1000", portfolio="short")
    await step(today=day, MSFT="10")  # short 10,000 (a short opened and closed within the day pays nothing)
    await step(today=day, MSFT="10")
    await step(today=day + timedelta(days=1), MSFT="10")  # held overnight: one day, 10.00
    await step(today=day + timedelta(days=1), MSFT="10")
    await step(today=day + timedelta(days=4), MSFT="10")  # three calendar days later (a weekend)
    # Covered at the next day's first step: the night before, it was still held, and pays; then nothing does.
    await t.place_order(alice, stamp(), "c", "buy", "MSFT", "1000", portfolio="short")
    await step(today=day + timedelta(days=5), MSFT="10")
    await step(today=day + timedelta(days=6), MSFT="10")
    rows = (await t.history(alice, stamp(), 50, portfolio="short"))["transactions"]
    assert [r["amount"] for r in reversed(rows) if r["kind"] == "borrow_fee"] == [D("-10.00"), D("-30.00"),
                                                                                   D("-10.00")]
    done = await t.portfolio(alice, stamp(), portfolio="short")
    assert (done["positions"], done["cash"]) == ([], D("20000.00") - D("10000.00") - D("50.00"))


@pytest_twisted.ensureDeferred
async def test_closing_a_short_position_buys_it_back(master, user, stamp, step):
    alice = await user("alice")
    t = master.trading
    await master.portfolios.create_portfolio(alice, stamp(), "short", cash="10000.00", margin=True)
    await step(TSLA="20")
    await t.place_order(alice, stamp(), "s", "sell", "TSLA", "50", portfolio="short")
    await step(TSLA="20")
    half = await t.close_position(alice, stamp(), "TSLA", percentage="50", portfolio="short")
    assert (half["side"], half["quantity"]) == ("buy", 25)
    await step(TSLA="20")
    rest = await t.close_position(alice, stamp(), "TSLA", portfolio="short")
    assert (rest["side"], rest["quantity"]) == ("buy", 25)
    await step(TSLA="20")
    done = await t.portfolio(alice, stamp(), portfolio="short")
    assert (done["positions"], done["cash"]) == ([], D("10000.00"))


@pytest_twisted.ensureDeferred
async def test_which_portfolio_a_command_trades_follows_every_change_though_it_is_remembered(master, user, stamp,
                                                                                           step, db):
    """Commands find their portfolio from memory (no transaction of its own); every rename, new default, close
    and reset is seen by the very next command."""
    alice = await user("alice")
    t, p = master.trading, master.portfolios
    await p.create_portfolio(alice, stamp(), "Growth", cash="5000.00")
    await step(AAPL="100")
    assert (await t.portfolio(alice, stamp(), portfolio="Growth"))["portfolio"] == "Growth"
    assert (await t.portfolio(alice, stamp()))["portfolio"] == "default"
    store = master.trading.portfolios
    assert store.resolve_remembered(alice.account_id, "growth").name == "Growth"  # remembered: no Deferred
    await p.rename_portfolio(alice, stamp(), "Growth", "Value")
    with pytest.raises(UnknownPortfolio):
        await t.portfolio(alice, stamp(), portfolio="Growth")
    assert (await t.portfolio(alice, stamp(), portfolio="value"))["portfolio"] == "Value"
    await p.set_default_portfolio(alice, stamp(), "Value")
    order = await t.place_order(alice, stamp(), "to-value", "buy", "AAPL", "1")
    assert (await t.get_order(alice, stamp(), order_id=order["id"], portfolio="Value"))["id"] == order["id"]
    await step(AAPL="100")
    assert (await t.portfolio(alice, stamp()))["generation"] == 0
    await p.reset_portfolio(alice, stamp(), "Value")
    assert (await t.portfolio(alice, stamp()))["generation"] == 1  # the reset's new generation, not a remembered 0
    await p.set_default_portfolio(alice, stamp(), "default")
    await p.reset_portfolio(alice, stamp(), "Value")
    await p.close_portfolio(alice, stamp(), "Value")
    with pytest.raises(UnknownPortfolio):
        await t.place_order(alice, stamp(), "closed", "buy", "AAPL", "1", portfolio="Value")


@pytest_twisted.ensureDeferred
async def test_an_answer_read_while_a_portfolio_was_being_written_is_not_remembered(master, user, db):
    """The write's transaction is still open when the answer is read (SQLite: the reader sees the old row; the
    same holds for PostgreSQL's other connections): once it ends, that answer must not be served."""
    from twisted.internet import threads

    alice = await user("alice")
    store = PortfolioStore(db)
    question = (alice.account_id, None)
    old = await db.run(store.resolve, alice.account_id)
    in_write, finish = threading.Event(), threading.Event()

    def rename(cursor):
        store.rename(cursor, old, "Renamed")
        in_write.set()
        assert finish.wait(10)

    writing = db.run(rename)
    assert await threads.deferToThread(in_write.wait, 10)
    if db.dialect == "postgresql":  # another connection answers now, from the row as it was
        assert (await store.resolve_remembered(alice.account_id)).name == old.name
    else:  # one connection: the answer would wait for the write; keep one read before, as if just now
        store.remembered.keep(question, store.remembered.version, old)
    assert store.remembered.get(question) is None or store.remembered.get(question).name == old.name
    finish.set()
    await writing
    assert store.remembered.get(question) is None
    assert (await db.run(store.resolve, alice.account_id)).name == "Renamed"
    # Nothing written since: an answer is kept and served.
    found = await store.resolve_remembered(alice.account_id)
    assert store.resolve_remembered(alice.account_id) == found
