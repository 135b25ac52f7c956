"""Orders through the application layer and the store, on both databases: durable acceptance, idempotent
client order ids, buying power with open orders, market steps that fill, cancel and replace."""

import time
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
import pytest_twisted
from twisted.internet import defer, threads

from papertrader.app import Stamp
from papertrader.app.trading import TradingCommands, rules_from
from papertrader.errors import (
    DuplicateOrder,
    InsufficientFunds,
    InsufficientPosition,
    InvalidInput,
    OrderNotOpen,
    UnknownOrder,
    UnknownSymbol,
)
from papertrader.market import calendar
from papertrader.market.board import Quote, QuoteBoard
from papertrader.market.clock import MarketClock
from papertrader.master.accounts import Accounts
from papertrader.master.order_store import OrderStore
from papertrader.money import to_cents
from papertrader.times import iso, utc
from papertrader.trading.market import Bar, MarketStep

D = Decimal
PASSWORD = "correct horse battery"


@pytest.fixture
def board(settings):
    return QuoteBoard(settings.assets)


@pytest.fixture
def accounts(db, settings, clock, log):
    return Accounts(db, settings, clock, log)


@pytest.fixture
def published():
    return []


@pytest.fixture
def make_trading(db, board, clock, log, published):
    def make(settings):
        return TradingCommands(db, OrderStore(db), board, MarketClock(calendar.load(settings.calendar or "always_open"), clock),
                               rules_from(settings), clock, log, publish=published.extend)
    return make


@pytest.fixture
def ideal(settings):
    """Settings whose fills are at the bar's close, whole (prices in these tests are then exact)."""
    return replace(settings, fill_model="ideal")


@pytest.fixture
def trading(make_trading, ideal):
    return make_trading(ideal)


@pytest.fixture
def quote(board, clock):
    def put(**prices):
        board.update([Quote(symbol, D(price), utc(clock.seconds())) for symbol, price in prices.items()])
    return put


@pytest.fixture
def user(accounts):
    async def make(name):
        await accounts.register(name, f"{name}@example.com", PASSWORD)
        token, _, _ = await accounts.login(name, PASSWORD, False, "worker1", "192.0.2.7")
        return await accounts.authenticate(token)
    return make


@pytest.fixture
def submit(trading, clock):
    def send(session, client_order_id, side, symbol, quantity=None, worker="worker1", ip="192.0.2.7", **more):
        stamp = Stamp(utc(clock.seconds()), ip, worker)
        return trading.place_order(session, stamp, client_order_id, side, symbol, quantity, **more)
    return send


@pytest.fixture
def step(trading, clock, quote):
    """One market step, with a bar (open = high = low = close) at each given price."""
    def run(**prices):
        now = utc(clock.seconds())
        clock.advance(5)
        end = utc(clock.seconds())
        bars = {s: Bar(s, now, end, D(p), D(p), D(p), D(p), 1_000_000) for s, p in prices.items()}
        quote(**prices)
        return trading.market_step(MarketStep(end, bars))
    return run


def stamp(clock):
    return Stamp(utc(clock.seconds()), "192.0.2.7", "worker1")


async def count(db, table, where="1 = 1"):
    return (await db.query(f"SELECT COUNT(*) FROM {table} WHERE {where}"))[0][0]


async def order_row(db, order_id):
    rows = await db.query("SELECT status, reason_code, reason FROM orders WHERE id = ?", (order_id,))
    return rows[0]


async def check_books(db, account_id, starting_cash):
    """The transaction history, the cash and the positions tell one story; returns (cash cents, positions)."""
    rows = await db.query(
        "SELECT side, symbol, quantity_units, price_units, commission_cents, amount_cents, cash_after_cents"
        " FROM transactions WHERE portfolio_id = ? ORDER BY id", (account_id,))
    cash = to_cents(starting_cash)
    held = {}
    for side, symbol, quantity, price, commission, amount, cash_after in rows:
        assert cash_after == cash + amount
        gross = to_cents(D(price) / 10_000 * D(quantity) / 1_000_000)
        assert amount == (-(gross + commission) if side == "buy" else gross - commission)
        cash = cash_after
        held[symbol] = held.get(symbol, 0) + (quantity if side == "buy" else -quantity)
    [(stored_cash,)] = await db.query("SELECT cash_cents FROM portfolios WHERE id = ?", (account_id,))
    assert stored_cash == cash
    positions = dict(await db.query("SELECT symbol, quantity_units FROM positions WHERE portfolio_id = ?",
                                    (account_id,)))
    assert positions == {s: q for s, q in held.items() if q}
    return cash, positions


# --- acceptance ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_order_is_answered_new_after_it_and_its_event_are_stored(db, user, submit, quote, clock, published):
    alice = await user("alice")
    quote(AAPL="150.25")
    order = await submit(alice, "o-1", "buy", "aapl", "10", worker="worker2", ip="198.51.100.3")
    assert order["status"] == "new"
    assert (order["side"], order["symbol"], order["quantity"], order["type"], order["time_in_force"]) == (
        "buy", "AAPL", D(10), "market", "day")
    assert order["client_order_id"] == "o-1" and order["created"] == utc(clock.seconds())
    assert order["filled_quantity"] == 0 and "average_price" not in order
    assert len(order["uuid"]) == 36
    rows = await db.query(
        "SELECT id, portfolio_id, client_order_id, side, symbol, quantity_units, status, received, client_ip, worker"
        " FROM orders")
    assert rows == [(order["id"], alice.account_id, "o-1", "buy", "AAPL", 10_000_000, "new",
                     iso(utc(clock.seconds())), "198.51.100.3", "worker2")]
    assert await db.query("SELECT order_id, kind FROM order_events") == [(order["id"], "accepted")]
    assert [(name, e["event"], e["order"]["id"]) for name, e in published] == [("alice", "accepted", order["id"])]
    # Nothing moves before a market step.
    assert await count(db, "transactions") == 0
    assert await check_books(db, alice.account_id, D("100000")) == (10_000_000, {})


@pytest_twisted.ensureDeferred
async def test_same_client_order_id_returns_the_same_order(db, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="150")
    first = await submit(alice, "retry-1", "buy", "AAPL", "10", worker="worker1")
    again = await submit(alice, "retry-1", "buy", "aapl", "10.000", worker="worker2")  # the same order, retried
    assert again == first
    assert await count(db, "orders") == 1


@pytest_twisted.ensureDeferred
async def test_a_retry_of_an_open_order_is_not_counted_twice_against_buying_power(db, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="100")
    first = await submit(alice, "big", "buy", "AAPL", "600", type="limit", limit_price="100")  # 60% of the cash
    # Counted twice it would need 120% of the cash: the retry must find the order, not check it again.
    again = await submit(alice, "big", "buy", "AAPL", "600", type="limit", limit_price="100")
    assert again["id"] == first["id"]


@pytest.mark.parametrize("side, symbol, quantity", [("sell", "AAPL", "10"), ("buy", "MSFT", "10"),
                                                    ("buy", "AAPL", "11")])
@pytest_twisted.ensureDeferred
async def test_same_client_order_id_for_another_order_is_refused(db, user, submit, quote, side, symbol, quantity):
    alice = await user("alice")
    quote(AAPL="150", MSFT="400")
    first = await submit(alice, "retry-1", "buy", "AAPL", "10")
    with pytest.raises(DuplicateOrder) as excinfo:
        await submit(alice, "retry-1", side, symbol, quantity)
    assert f"already used for order {first['id']}" in excinfo.value.message
    assert await count(db, "orders") == 1


@pytest_twisted.ensureDeferred
async def test_client_order_ids_belong_to_one_account(db, user, submit, quote):
    alice, bob = await user("alice"), await user("bob")
    quote(AAPL="150")
    a = await submit(alice, "o-1", "buy", "AAPL", "1")
    b = await submit(bob, "o-1", "buy", "AAPL", "2")
    assert a["id"] != b["id"]


@pytest_twisted.ensureDeferred
async def test_concurrent_orders_of_one_account_are_checked_one_after_the_other(db, user, submit, quote, trading):
    """Two buys of 60% of the cash sent at the same moment: exactly one is accepted (both databases)."""
    alice = await user("alice")
    quote(AAPL="100")
    for attempt in range(6):
        results = await defer.DeferredList(
            [submit(alice, f"c{attempt}-{n}", "buy", "AAPL", "600", type="limit", limit_price="100")
             for n in range(2)], consumeErrors=True)
        accepted = [r for ok, r in results if ok]
        refused = [r for ok, r in results if not ok]
        assert len(accepted) == 1 and refused[0].check(InsufficientFunds)
        await trading.cancel_all_orders(alice, None)


def wait_until_an_insert_waits_for(url, blocker_pid, waiting=1):
    """Block (in a thread) until ``waiting`` statements wait, directly or behind each other, for a lock held by
    the backend ``blocker_pid``."""
    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            blocked = conn.execute(
                "WITH RECURSIVE chain(pid) AS (SELECT %s::int UNION SELECT a.pid FROM pg_stat_activity a, chain"
                " WHERE chain.pid = ANY(pg_blocking_pids(a.pid))) SELECT COUNT(*) - 1 FROM chain",
                (blocker_pid,)).fetchone()[0]
            if blocked >= waiting:
                return
    raise AssertionError("nothing ever waited for the other transaction")


# Two transactions cannot interleave on SQLite (one connection); PostgreSQL has a pool of connections.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_an_order_waits_while_another_transaction_holds_its_account(db, database_url, user, submit, quote,
                                                                          clock):
    alice = await user("alice")
    quote(AAPL="150")
    other = psycopg.connect(database_url)
    try:
        other.execute("SELECT id FROM portfolios WHERE id = %s FOR UPDATE", (alice.account_id,))
        # A concurrent writer (a market step, another order) spends the cash meanwhile.
        other.execute("UPDATE portfolios SET cash_cents = 100 WHERE id = %s", (alice.account_id,))
        pending = submit(alice, "late", "buy", "AAPL", "10")
        await threads.deferToThread(wait_until_an_insert_waits_for, database_url, other.info.backend_pid)
        other.commit()
    finally:
        other.close()
    with pytest.raises(InsufficientFunds):  # checked against the cash as it is after the other commit
        await pending


@pytest_twisted.ensureDeferred
async def test_buying_power_counts_open_orders(db, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="600")
    await submit(alice, "a1", "buy", "AAPL", "100", type="limit", limit_price="600")  # 60000
    with pytest.raises(InsufficientFunds) as excinfo:
        await submit(alice, "a2", "buy", "AAPL", "100", type="limit", limit_price="600")
    assert excinfo.value.message == ("insufficient buying power: buying 100 AAPL needs up to 60000.00;"
                                     " buying power is 40000.00 after your open orders")
    assert await count(db, "orders") == 1
    await submit(alice, "a3", "buy", "AAPL", "66", type="limit", limit_price="600")  # 39600 still fits


@pytest_twisted.ensureDeferred
async def test_selling_more_than_held_or_already_offered_is_refused(db, user, submit, quote, step):
    alice = await user("alice")
    quote(AAPL="100")
    with pytest.raises(InsufficientPosition):
        await submit(alice, "s0", "sell", "AAPL", "1")
    await submit(alice, "b1", "buy", "AAPL", "5")
    await step(AAPL="100")
    with pytest.raises(InsufficientPosition, match="5 shares are available"):
        await submit(alice, "s1", "sell", "AAPL", "5.000001")
    sold = await submit(alice, "s2", "sell", "AAPL", "5", type="limit", limit_price="200")
    assert sold["status"] == "new"
    with pytest.raises(InsufficientPosition, match="held for your open sell orders"):
        await submit(alice, "s3", "sell", "AAPL", "1")


@pytest.mark.parametrize(
    "client_order_id, side, symbol, quantity, more, error",
    [
        ("o-1", "buy", "GOOG", "1", {}, UnknownSymbol),
        ("o-1", "buy", "", "1", {}, UnknownSymbol),
        ("o-1", "short", "AAPL", "1", {}, InvalidInput),
        ("o-1", "buy", "AAPL", "0", {}, InvalidInput),
        ("o-1", "buy", "AAPL", "-1", {}, InvalidInput),
        ("o-1", "buy", "AAPL", "0.0000001", {}, InvalidInput),
        ("o-1", "buy", "AAPL", "abc", {}, InvalidInput),
        ("o-1", "buy", "AAPL", "NaN", {}, InvalidInput),
        ("o-1", "buy", "AAPL", "1000000001", {}, InvalidInput),
        ("bad\tid", "buy", "AAPL", "1", {}, InvalidInput),
        ("x" * 129, "buy", "AAPL", "1", {}, InvalidInput),
        ("o-1", "buy", "AAPL", "1", {"type": "iceberg"}, InvalidInput),
        ("o-1", "buy", "AAPL", "1", {"time_in_force": "forever"}, InvalidInput),
        ("o-1", "buy", "AAPL", "1", {"type": "limit", "limit_price": "1e3"}, InvalidInput),
        ("o-1", "buy", "AAPL", "1", {"type": "limit", "limit_price": "99.999"}, InvalidInput),
        ("o-1", "buy", "AAPL", "1", {"type": "limit"}, InvalidInput),
        ("o-1", "buy", "AAPL", "1", {"notional": "100"}, InvalidInput),
        ("o-1", "buy", "AAPL", None, {"notional": "100.001"}, InvalidInput),
        ("o-1", "buy", "AAPL", None, {}, InvalidInput),
    ],
)
@pytest_twisted.ensureDeferred
async def test_invalid_orders_are_refused_and_write_nothing(db, user, submit, quote, client_order_id, side, symbol,
                                                            quantity, more, error):
    alice = await user("alice")
    quote(AAPL="100")
    with pytest.raises(error):
        await submit(alice, client_order_id, side, symbol, quantity, **more)
    assert await count(db, "orders") == 0 and await count(db, "order_events") == 0


@pytest_twisted.ensureDeferred
async def test_an_order_worth_less_than_a_cent_is_refused(db, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="313.63")
    with pytest.raises(InvalidInput, match="below one cent"):
        await submit(alice, "tiny", "buy", "AAPL", "0.00001")


@pytest_twisted.ensureDeferred
async def test_open_orders_per_account_are_capped(db, make_trading, settings, user, quote, clock):
    trading = make_trading(replace(settings, max_open_orders=3))
    alice = await user("alice")
    quote(AAPL="1.00")
    for n in range(3):
        await trading.place_order(alice, stamp(clock), f"o{n}", "buy", "AAPL", "1")
    with pytest.raises(InvalidInput, match="3 open orders"):
        await trading.place_order(alice, stamp(clock), "one-too-many", "buy", "AAPL", "1")


# --- market steps --------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_step_fills_in_arrival_order_and_the_books_agree(db, user, submit, quote, step, trading):
    alice, bob = await user("alice"), await user("bob")
    quote(AAPL="150", MSFT="400", TSLA="250")
    a1 = await submit(alice, "a1", "buy", "AAPL", "10")
    a3 = await submit(alice, "a3", "buy", "MSFT", "2.5")
    b1 = await submit(bob, "b1", "buy", "TSLA", "1")
    assert await step(AAPL="150.2537", MSFT="410.10", TSLA="250") == 3
    filled = await trading.get_order(alice, None, a1["id"])
    assert (filled["status"], filled["filled_quantity"], filled["average_price"]) == ("filled", D(10),
                                                                                      D("150.2537"))
    assert [f["amount"] for f in filled["fills"]] == [D("-1502.54")]  # 1502.537 -> 1502.54
    assert (filled["worker"], filled["client_ip"]) == ("worker1", "192.0.2.7")
    cash, positions = await check_books(db, alice.account_id, D("100000"))
    assert cash == 10_000_000 - 150254 - 102525
    assert positions == {"AAPL": 10_000_000, "MSFT": 2_500_000}
    assert await check_books(db, bob.account_id, D("100000")) == (10_000_000 - 25000, {"TSLA": 1_000_000})
    assert (await order_row(db, a3["id"]))[0] == (await order_row(db, b1["id"]))[0] == "filled"
    kinds = await db.query("SELECT kind FROM order_events WHERE order_id = ? ORDER BY id", (a1["id"],))
    assert kinds == [("accepted",), ("fill",)]


@pytest_twisted.ensureDeferred
async def test_an_order_accepted_before_a_step_trades_in_it_however_late_its_commit(db, user, submit, quote, step,
                                                                                    trading):
    """Orders accepted while the market's time was before a bar are traded by that bar's step, even when their
    transaction had to wait behind another (a group commit in flight) and the step began meanwhile: the step
    waits for the commits of what was accepted before it.  (It ran first, so the waiting order missed its bar:
    a fill at the next bar's price, or a day order expired unfilled at a session's last step.)"""
    alice = await user("alice")
    quote(AAPL="100")
    await trading.portfolio(alice, None)  # its portfolio known: placing an order now queues its unit at once
    first = submit(alice, "a1", "buy", "AAPL", "1")  # its transaction starts at once
    second = submit(alice, "a2", "buy", "AAPL", "1")  # waits for the first's commit
    stepped = step(AAPL="100")  # the bar [t, t + 5 s): both were accepted at t
    await first
    await second
    await stepped
    await step(AAPL="110")
    for order_id in ("a1", "a2"):
        [(price,)] = await db.query("SELECT t.price_units FROM transactions t JOIN orders o ON o.id = t.order_id"
                                    " WHERE o.client_order_id = ?", (order_id,))
        assert price == 100 * 10_000, order_id


@pytest_twisted.ensureDeferred
async def test_a_buy_the_cash_no_longer_pays_is_rejected_at_the_fill(db, user, submit, quote, step, trading):
    alice = await user("alice")
    quote(AAPL="400")
    await submit(alice, "a1", "buy", "AAPL", "100")  # 42000 reserved (5% buffer)
    second = await submit(alice, "a2", "buy", "AAPL", "100")  # 84000 of 100000: accepted
    await step(AAPL="600")  # the price moved: the first takes 60000; the rest of the cash buys 66.67 shares
    rejected = await trading.get_order(alice, None, second["id"])
    # 66.666675 x 600 = 40000.005, which rounds (half-even) to the 40000.00 left.
    assert (rejected["status"], rejected["filled_quantity"]) == ("partially_filled", D("66.666675"))
    await step(AAPL="600")
    rejected = await trading.get_order(alice, None, second["id"])
    assert (rejected["status"], rejected["reason_code"]) == ("canceled", "insufficient_funds")
    assert (await check_books(db, alice.account_id, D("100000")))[0] >= 0


@pytest_twisted.ensureDeferred
async def test_orders_without_a_bar_stay_open(db, user, submit, quote, step):
    alice = await user("alice")
    quote(AAPL="190", MSFT="400")
    waiting = await submit(alice, "a1", "buy", "AAPL", "1")
    ready = await submit(alice, "m1", "buy", "MSFT", "1")
    assert await step(MSFT="400") == 1
    assert (await order_row(db, waiting["id"]))[0] == "new"
    assert (await order_row(db, ready["id"]))[0] == "filled"
    assert await step(AAPL="190.5") == 1
    await check_books(db, alice.account_id, D("100000"))


@pytest_twisted.ensureDeferred
async def test_commission_is_charged_and_is_part_of_the_cost(db, make_trading, ideal, user, quote, clock, step):
    trading = make_trading(replace(ideal, commission=D("1.50")))
    alice = await user("alice")
    quote(AAPL="100")
    await trading.place_order(alice, stamp(clock), "b", "buy", "AAPL", "10")
    bars = {"AAPL": Bar("AAPL", utc(clock.seconds()), utc(clock.seconds() + 5), D(100), D(100), D(100), D(100), 10**6)}
    clock.advance(5)
    await trading.market_step(MarketStep(utc(clock.seconds()), bars))
    await trading.place_order(alice, stamp(clock), "s", "sell", "AAPL", "4")
    bars = {"AAPL": Bar("AAPL", utc(clock.seconds()), utc(clock.seconds() + 5), D(110), D(110), D(110), D(110),
                        10**6)}
    clock.advance(5)
    await trading.market_step(MarketStep(utc(clock.seconds()), bars))
    rows = await db.query("SELECT commission_cents, amount_cents, cash_after_cents, realized_cents FROM transactions"
                          " ORDER BY id")
    # The sale removed 4/10 of the cost (1001.50): 400.60; it brought 438.50: 37.90 realized.
    assert rows == [(150, -100150, 10_000_000 - 100150, 0), (150, 43850, 10_000_000 - 100150 + 43850, 3790)]
    await check_books(db, alice.account_id, D("100000"))
    assert await db.query("SELECT quantity_units, cost_cents FROM positions") == [(6_000_000, 60090)]
    history = await trading.history(alice, None, 10)
    assert [(h["side"], h["commission"], h["amount"]) for h in history["transactions"]] == [
        ("buy", D("1.50"), D("-1001.50")), ("sell", D("1.50"), D("438.50"))]
    portfolio = await trading.portfolio(alice, None)
    position = portfolio["positions"][0]
    # The average entry price is what the fill paid (as Alpaca's avg_entry_price); the commission is in the cost.
    assert (position["average_price"], position["cost"]) == (D("100.0000"), D("600.90"))
    assert portfolio["realized_pl"] == D("37.90")


@pytest_twisted.ensureDeferred
async def test_a_retry_after_the_fill_returns_the_filled_order_and_fills_nothing_more(db, user, submit, quote, step):
    alice = await user("alice")
    quote(TSLA="250")
    await submit(alice, "r", "buy", "TSLA", "2")
    await step(TSLA="250")
    again = await submit(alice, "r", "buy", "TSLA", "2")
    assert (again["status"], again["average_price"]) == ("filled", D("250"))
    assert await step(TSLA="250") == 0
    assert await count(db, "transactions") == 1


@pytest_twisted.ensureDeferred
async def test_an_account_sees_only_its_own_orders(trading, user, submit, quote, step):
    alice, bob = await user("alice"), await user("bob")
    quote(AAPL="100")
    order = await submit(alice, "a", "buy", "AAPL", "1")
    await step(AAPL="100")
    with pytest.raises(UnknownOrder):
        await trading.get_order(bob, None, order["id"])
    with pytest.raises(UnknownOrder):
        await trading.cancel_order(bob, None, order["id"])
    assert (await trading.orders(bob, None, 10))["orders"] == []
    assert (await trading.history(bob, None, 10))["transactions"] == []
    portfolio = await trading.portfolio(bob, None)
    assert (portfolio["cash"], portfolio["equity"], portfolio["positions"]) == (D("100000.00"), D("100000.00"), [])
    assert [o["id"] for o in (await trading.orders(alice, None, 10))["orders"]] == [order["id"]]


@pytest_twisted.ensureDeferred
async def test_portfolio_values_positions_and_profit(trading, user, submit, quote, step, clock):
    alice = await user("alice")
    quote(AAPL="150.25", MSFT="400")
    await submit(alice, "a", "buy", "AAPL", "10")
    await submit(alice, "m", "buy", "MSFT", "0.5")
    await step(AAPL="150.25", MSFT="400")
    quote(AAPL="160.005")
    portfolio = await trading.portfolio(alice, None)
    cash = D("100000") - D("1502.50") - D("200.00")
    assert portfolio["cash"] == portfolio["buying_power"] == cash
    aapl, msft = portfolio["positions"]
    assert (aapl["symbol"], aapl["quantity"], aapl["average_price"], aapl["price"], aapl["market_value"]) == (
        "AAPL", D(10), D("150.2500"), D("160.005"), D("1600.05"))
    assert (aapl["unrealized_pl"], aapl["unrealized_percent"]) == (D("97.55"), D("6.49"))
    assert (msft["symbol"], msft["market_value"]) == ("MSFT", D("200.00"))
    assert portfolio["equity"] == cash + D("1600.05") + D("200.00")
    assert portfolio["unrealized_pl"] == D("97.55") and portfolio["realized_pl"] == D("0.00")


@pytest_twisted.ensureDeferred
async def test_paging_reads_every_order(trading, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="1.00")
    ids = [(await submit(alice, f"o{n}", "buy", "AAPL", "1", type="limit", limit_price="0.5"))["id"]
           for n in range(7)]
    seen, before = [], None
    while True:
        page = await trading.orders(alice, None, 3, "all", before)
        seen = [o["id"] for o in page["orders"]] + seen
        if "next_before" not in page:
            break
        before = page["next_before"]
    assert seen == ids
    assert [o["id"] for o in (await trading.orders(alice, None, 10, "closed"))["orders"]] == []
    assert len((await trading.orders(alice, None, 10, "open"))["orders"]) == 7


@pytest_twisted.ensureDeferred
async def test_orders_placed_at_one_market_time_show_times_apart_so_paging_by_time_skips_none(trading, user, submit,
                                                                                              quote, clock):
    """A replay's market time stands still between updates: the orders placed meanwhile must not share one
    time, or a strategy paging by ``until`` (the oldest shown's time, exclusive, as Alpaca's) skips the rest."""
    alice, bob = await user("alice"), await user("bob")
    quote(AAPL="1.00")
    ids = [(await submit(alice, f"o{n}", "buy", "AAPL", "1", type="limit", limit_price="0.5"))["id"]
           for n in range(30)]
    theirs = await submit(bob, "b0", "buy", "AAPL", "1", type="limit", limit_price="0.5")
    now = utc(clock.seconds())
    assert theirs["created"] == now  # each portfolio counts its own
    seen, until = [], None
    while True:
        page = (await trading.orders(alice, None, 7, "all", until=until))["orders"]  # the newest 7, oldest first
        if not page:
            break
        seen = [o["id"] for o in page] + seen
        until = page[0]["created"]
    assert seen == ids
    seen, after = [], None
    while True:
        page = (await trading.orders(alice, None, 7, "all", after=after, direction="asc"))["orders"]
        if not page:
            break
        seen += [o["id"] for o in page]
        after = page[-1]["created"]
    assert seen == ids
    shown = [o["created"] for o in (await trading.orders(alice, None, 100, "all", direction="asc"))["orders"]]
    assert shown == [now + timedelta(microseconds=n) for n in range(30)]
    clock.advance(5)  # market time moves on: the next order shows its own time
    later = await submit(alice, "later", "buy", "AAPL", "1", type="limit", limit_price="0.5")
    assert later["created"] == utc(clock.seconds())


@pytest_twisted.ensureDeferred
async def test_orders_shown_apart_still_fill_at_the_open_of_the_bar_they_were_placed_before(make_trading, settings,
                                                                                           user, clock):
    trading = make_trading(replace(settings, fill_model="bar"))
    alice = await user("alice")
    start = utc(clock.seconds())
    trading.board.update([Quote("AAPL", D("100"), start)])
    orders = [await trading.place_order(alice, stamp(clock), f"m{n}", "buy", "AAPL", "1") for n in range(3)]
    assert [o["created"] for o in orders] == [start + timedelta(microseconds=n) for n in range(3)]
    clock.advance(5)
    end = utc(clock.seconds())
    await trading.market_step(MarketStep(end, {"AAPL": Bar("AAPL", start, end, D(100), D(120), D(90), D(110),
                                                           1_000_000)}))
    filled = [await trading.get_order(alice, None, o["id"]) for o in orders]
    # at the bar's open (plus the bar model's half spread), each alike: not judged at its close as orders that
    # arrived during the bar are
    assert [(o["status"], o["average_price"]) for o in filled] == [("filled", D("100.0200"))] * 3
    assert all(o["updated"] >= o["created"] for o in filled)


# --- cancel and replace ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_cancel_and_replace_from_the_application(db, trading, user, submit, quote, step, published):
    alice = await user("alice")
    quote(AAPL="100")
    order = await submit(alice, "lim", "buy", "AAPL", "10", type="limit", limit_price="90", time_in_force="gtc")
    new = await trading.replace_order(alice, stamp(trading.clock), order["id"], limit_price="95", quantity="20")
    assert (new["replaces"], new["limit_price"], new["quantity"], new["status"]) == (order["id"], D(95), D(20),
                                                                                      "new")
    old = await trading.get_order(alice, None, order["id"])
    assert (old["status"], old["replaced_by"]) == ("replaced", new["id"])
    with pytest.raises(OrderNotOpen, match="already replaced"):
        await trading.cancel_order(alice, None, order["id"])
    canceled = await trading.cancel_order(alice, None, new["id"])
    assert canceled["status"] == "canceled"
    await step(AAPL="80")  # would have filled: nothing fills after a cancel
    assert await count(db, "transactions") == 0
    kinds = [e["event"] for _, e in published]
    assert kinds == ["accepted", "replaced", "accepted", "canceled"]


@pytest_twisted.ensureDeferred
async def test_cancel_all(trading, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="100")
    for n in range(3):
        await submit(alice, f"o{n}", "buy", "AAPL", "1", type="limit", limit_price="50")
    answer = await trading.cancel_all_orders(alice, None)
    assert [o["status"] for o in answer["orders"]] == ["canceled"] * 3
    assert (await trading.cancel_all_orders(alice, None))["orders"] == []


class _Recording:
    """A database cursor that remembers the statements run through it."""

    def __init__(self, cursor):
        self.cursor = cursor
        self.statements = []

    def execute(self, query, params=()):
        self.statements.append((query, params))
        return self.cursor.execute(query, params)

    def __getattr__(self, name):
        return getattr(self.cursor, name)


@pytest_twisted.ensureDeferred
async def test_an_order_reads_its_open_orders_without_walking_the_history(db, trading, user, submit, quote):
    """Every order placed reads its portfolio's open orders: that read uses the index of open orders (migration
    0011), so neither a long history of closed orders nor everybody else's open orders slow it down, and the
    orders it reads are exactly the open ones.  (Which index PostgreSQL picks depends on the table's size:
    on one this small it reads the table whole, so the plan is checked on SQLite.)"""
    alice, bob = await user("alice"), await user("bob")
    quote(AAPL="100")
    for n in range(120):
        await submit(alice, f"old{n}", "buy", "AAPL", "1", type="limit", limit_price="50")
        if n % 40 == 39:
            await trading.cancel_all_orders(alice, None)
    for n in range(100):  # other people's open orders are not hers to read either
        await submit(bob, f"bob{n}", "buy", "AAPL", "1", type="limit", limit_price="50")
    await submit(alice, "open1", "buy", "AAPL", "1", type="limit", limit_price="50")
    await submit(alice, "open2", "buy", "AAPL", "2", type="limit", limit_price="51")
    portfolio_id = (await trading.session_in(alice)).portfolio_id

    def read(cursor):
        recording = _Recording(cursor)
        found = trading.store.open_orders(recording, portfolio_id)
        plans = []
        if db.dialect == "sqlite":
            cursor.execute("ANALYZE")
            for query, params in recording.statements:
                cursor.execute("EXPLAIN QUERY PLAN " + query, params)
                plans.append(" ".join(str(part) for row in cursor.fetchall() for part in row))
        return found, plans

    found, plans = await db.run(read)
    assert [(o.client_order_id, o.quantity) for o in found] == [("open1", D(1)), ("open2", D(2))]
    if db.dialect == "sqlite":
        assert len(plans) == 2 and all("orders_open" in plan for plan in plans), plans


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_cancel_racing_a_step_either_wins_or_sees_the_fill(db, database_url, trading, user, submit, quote,
                                                                  clock):
    """PostgreSQL, where they can run at once: the step holds the account while it fills; the cancel waits
    and then finds the order filled (answered with what filled), never a fill after an accepted cancel."""
    alice = await user("alice")
    quote(AAPL="100")
    order = await submit(alice, "race", "buy", "AAPL", "10")
    other = psycopg.connect(database_url)
    try:
        other.execute("SELECT id FROM portfolios WHERE id = %s FOR UPDATE", (alice.account_id,))
        bars = {"AAPL": Bar("AAPL", utc(clock.seconds()), utc(clock.seconds() + 5), D(100), D(100), D(100), D(100),
                            10**6)}
        clock.advance(5)
        stepping = trading.market_step(MarketStep(utc(clock.seconds()), bars))
        await threads.deferToThread(wait_until_an_insert_waits_for, database_url, other.info.backend_pid)
        canceling = trading.cancel_order(alice, None, order["id"])
        await threads.deferToThread(wait_until_an_insert_waits_for, database_url, other.info.backend_pid, 2)
        other.commit()  # the step goes first (it asked first), then the cancel
    finally:
        other.close()
    assert await stepping == 1
    with pytest.raises(OrderNotOpen, match="already filled; 10 filled at an average 100.00"):
        await canceling
    assert await count(db, "transactions") == 1


# --- through the market service ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_market_update_then_step_at_the_new_bars(db, make_trading, settings, board, user, clock, log):
    from papertrader.market.service import MarketService
    from papertrader.market.simulated import SimulatedSource
    from papertrader.master.candles import CandleStore

    trading = make_trading(settings)  # the default bar model
    market = MarketService(SimulatedSource(2), board, trading.market_clock, CandleStore(db),
                           settings.update_interval, clock, log)
    market.listeners.append(trading.market_step)
    market.startService()
    try:
        await market.started
        await market.busy
        alice = await user("alice")
        order = await trading.place_order(alice, stamp(clock), "m", "buy", "MSFT", "3")
        clock.advance(settings.update_interval)
        await market.busy
        # Filled in the step that followed the update, inside that update's bar.
        [(low, high)] = await db.query("SELECT low_units, high_units FROM bars WHERE symbol = 'MSFT'"
                                       " AND interval = '1m' ORDER BY time DESC LIMIT 1")
        filled = await trading.get_order(alice, None, order["id"])
        assert filled["status"] == "filled"
        assert D(low) / 10_000 <= filled["average_price"] <= D(high) / 10_000
        assert filled["fills"][0]["model"].startswith("bar(")
        await check_books(db, alice.account_id, settings.starting_cash)
    finally:
        await market.stopService()


@pytest_twisted.ensureDeferred
async def test_what_the_source_says_of_an_asset_is_enforced(db, user, submit, quote, board):
    from papertrader.market.sources import Asset

    alice = await user("alice")
    quote(AAPL="100", MSFT="100")
    board.describe([Asset("AAPL", fractionable=False), Asset("MSFT", tradable=False)])
    with pytest.raises(InvalidInput, match="whole shares only"):
        await submit(alice, "f", "buy", "AAPL", "1.5")
    with pytest.raises(InvalidInput, match="whole shares only"):
        await submit(alice, "n", "buy", "AAPL", notional="50.00")
    with pytest.raises(InvalidInput, match="not tradable"):
        await submit(alice, "t", "buy", "MSFT", "1")
    assert (await submit(alice, "w", "buy", "AAPL", "2"))["status"] == "new"


# --- group commit ---------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_orders_sent_together_share_transactions_and_a_refusal_undoes_only_itself(db, user, submit, quote,
                                                                                       trading):
    """40 orders of 4 accounts at once: fewer transactions than orders; the refused ones (too big for the
    cash, a client_order_id reused for another order) leave no row behind; the same order sent twice in one
    batch is one order."""
    quote(AAPL="100")
    people = [await user(f"user{n}") for n in range(4)]
    before = trading.commits.transactions
    sends = []
    for n in range(10):
        for i, person in enumerate(people):
            quantity = "2000" if n == 5 else "1"  # 200,000 > 100,000 of cash: refused
            sends.append(submit(person, f"o{n}", "buy", "AAPL", quantity))
    sends.append(submit(people[0], "o1", "buy", "AAPL", "1"))  # the same request again: the same order
    sends.append(submit(people[1], "o2", "sell", "AAPL", "1"))  # o2 reused for another order: refused
    results = await defer.DeferredList(sends, consumeErrors=True)
    accepted = [r for ok, r in results if ok]
    refused = [r for ok, r in results if not ok]
    assert len(accepted) == 37 and len(refused) == 5
    assert sum(1 for r in refused if r.check(InsufficientFunds)) == 4 and refused[-1].check(DuplicateOrder)
    assert results[-2][1]["id"] == results[4][1]["id"]  # o1 of people[0]
    assert await count(db, "orders") == 36 and await count(db, "order_events") == 36
    assert trading.commits.transactions - before < 36
    for person in people:
        await check_books(db, person.account_id, D("100000.00"))


@pytest_twisted.ensureDeferred
async def test_two_orders_of_one_portfolio_in_one_transaction_each_see_the_other(db, user, submit, quote, trading):
    """A group commit reads every portfolio's book and open orders ahead, once for the whole transaction: the
    second of two orders of one portfolio in it must still count the first (each needs 60% of the cash: one
    is accepted, the other refused), and an order of another portfolio is accepted beside them."""
    quote(AAPL="100")
    alice = await trading.session_in(await user("alice"))
    bob = await trading.session_in(await user("bob"))
    before = trading.commits.transactions
    first = submit(alice, "a0", "buy", "AAPL", "1")  # its transaction starts at once; the next ones wait together
    together = [submit(alice, "a1", "buy", "AAPL", "600"), submit(alice, "a2", "buy", "AAPL", "600"),
                submit(bob, "b1", "buy", "AAPL", "600")]
    results = await defer.DeferredList([first] + together, consumeErrors=True)
    assert [ok for ok, _ in results] == [True, True, False, True]
    assert results[2][1].check(InsufficientFunds)
    assert await count(db, "orders") == 3
    # a0 alone, then a1 and a2 together (and b1 with them where it shares their lane: PostgreSQL has several)
    lanes = trading.commits.lanes
    shares = lanes[alice.portfolio_id % len(lanes)] is lanes[bob.portfolio_id % len(lanes)]
    assert trading.commits.transactions - before == (2 if shares else 3)


@pytest_twisted.ensureDeferred
async def test_what_a_group_reads_ahead_of_its_orders_answers_retries_and_times_as_each_order_alone(
        db, user, submit, quote, trading, clock):
    """A group commit reads ahead, for all its orders at once, whether their client_order_ids are taken and the
    time each portfolio's latest order shows: in one transaction, a retry of an order placed before is answered
    that order, an id taken by another order is refused, new ones are placed, and orders placed at the market time
    of their portfolio's latest show a microsecond after it, as when each order comes alone."""
    quote(AAPL="100")
    people = [await trading.session_in(await user(f"user{n}")) for n in range(5)]
    placed = [await submit(person, "x", "buy", "AAPL", "1") for person in people[:4]]
    now = utc(clock.seconds())
    assert [o["created"] for o in placed] == [now] * 4
    before = trading.commits.transactions
    first = submit(people[4], "w", "buy", "AAPL", "1")  # its transaction starts at once; the next ones wait together
    together = [submit(people[0], "x", "buy", "AAPL", "1"), submit(people[1], "y", "buy", "AAPL", "1"),
                submit(people[2], "x", "sell", "AAPL", "1"), submit(people[3], "y", "buy", "AAPL", "2")]
    results = await defer.DeferredList([first] + together, consumeErrors=True)
    assert [ok for ok, _ in results] == [True, True, True, False, True]
    assert results[3][1].check(DuplicateOrder)
    assert results[1][1]["id"] == placed[0]["id"] and results[1][1]["created"] == now
    assert results[2][1]["created"] == results[4][1]["created"] == now + timedelta(microseconds=1)
    assert results[0][1]["created"] == now  # that portfolio's first order
    assert await count(db, "orders") == 7
    if len(trading.commits.lanes) == 1:  # (SQLite: the four waited together)
        assert trading.commits.transactions - before == 2


@pytest_twisted.ensureDeferred
async def test_a_group_that_cannot_commit_acknowledges_none_of_its_orders(db, user, submit, quote, trading):
    alice = await user("alice")
    quote(AAPL="100")
    real_lock = trading.commits.lock

    def broken_lock(cursor, ids):
        cursor.execute("SELECT no_such_column FROM accounts")  # the whole transaction fails

    trading.commits.lock = broken_lock
    try:
        results = await defer.DeferredList([submit(alice, f"b{n}", "buy", "AAPL", "1") for n in range(5)],
                                           consumeErrors=True)
    finally:
        trading.commits.lock = real_lock
    assert all(not ok for ok, _ in results)
    assert await count(db, "orders") == 0
    order = await submit(alice, "b0", "buy", "AAPL", "1")  # the next group commits again
    assert order["status"] == "new" and await count(db, "orders") == 1


@pytest_twisted.ensureDeferred
async def test_a_fill_activity_says_the_orders_status_right_after_that_fill(make_trading, settings, user, clock,
                                                                             quote, board, logs):
    """Each fill of an order filled in parts says partially_filled, its last filled (Alpaca's order_status of a
    FILL activity); it said the order's status now, for all of them."""
    trading = make_trading(replace(settings, fill_model="bar", half_spread_bps=D(0), impact_bps=D(0),
                                   volume_share=D("0.5")))
    alice = await user("alice")
    quote(AAPL="100")
    await trading.place_order(alice, stamp(clock), "parts", "buy", "AAPL", "30")
    for _ in range(2):  # 20 shares a bar: 20, then the other 10
        start = utc(clock.seconds())
        clock.advance(5)
        end = utc(clock.seconds())
        await trading.market_step(MarketStep(end, {"AAPL": Bar("AAPL", start, end, D(100), D(100), D(100), D(100),
                                                                40)}))
    fills = (await trading.activities(alice, None, direction="asc"))["activities"]
    assert [(a["quantity"], a["leaves_qty"], a["order_status"]) for a in fills] == [
        (D(20), D(10), "partially_filled"), (D(10), D(0), "filled")]
    # (and the master's log counts them in words: it said "1 partial_fill")
    assert [e.message for e in logs.newest(None) if e.message.startswith("market step")] == [
        "market step: 1 partial fill", "market step: 1 fill"]
