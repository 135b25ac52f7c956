"""The order queue on both databases: durable submission, idempotent client order ids, the queue pass."""

import time
from dataclasses import replace
from decimal import Decimal

import psycopg
import pytest
import pytest_twisted
from twisted.internet import threads

from papertrader.errors import (
    DuplicateOrder,
    InsufficientFunds,
    InsufficientPosition,
    InvalidInput,
    UnknownOrder,
    UnknownSymbol,
)
from papertrader.master.accounts import Accounts
from papertrader.master.market import MarketService, Quote, QuoteBoard, SimulatedProvider
from papertrader.master.orders import Orders
from papertrader.money import to_cents, to_price_units
from papertrader.times import iso, utc

D = Decimal
PASSWORD = "correct horse battery"


@pytest.fixture
def board(settings):
    return QuoteBoard(settings.assets)


@pytest.fixture
def accounts(db, settings, clock, log):
    return Accounts(db, settings, clock, log)


@pytest.fixture
def orders(db, settings, board, clock, log):
    return Orders(db, settings, board, clock, log)


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
def submit(orders, clock):
    def send(session, client_order_id, side, symbol, quantity, worker="worker1", ip="192.0.2.7"):
        return orders.submit(session, client_order_id, side, symbol, quantity, utc(clock.seconds()), ip, worker)
    return send


async def count(db, table):
    return (await db.query(f"SELECT COUNT(*) FROM {table}"))[0][0]


async def status(db, order_id):
    rows = await db.query("SELECT status, price_units, amount_cents, reason_code, reason FROM orders WHERE id = ?",
                          (order_id,))
    return rows[0]


async def check_books(db, account_id, starting_cash):
    """The transaction history, the cash and the positions tell one story; returns (cash cents, positions)."""
    rows = await db.query(
        "SELECT side, symbol, quantity_units, price_units, commission_cents, amount_cents, cash_after_cents"
        " FROM transactions WHERE account_id = ? ORDER BY id", (account_id,))
    cash = to_cents(starting_cash)
    held = {}
    for side, symbol, quantity, price, commission, amount, cash_after in rows:
        assert cash_after == cash + amount
        gross = to_cents(D(price) / 10_000 * D(quantity) / 1_000_000)
        assert amount == (-(gross + commission) if side == "buy" else gross - commission)
        cash = cash_after
        held[symbol] = held.get(symbol, 0) + (quantity if side == "buy" else -quantity)
    [(stored_cash,)] = await db.query("SELECT cash_cents FROM accounts WHERE id = ?", (account_id,))
    assert stored_cash == cash
    positions = dict(await db.query("SELECT symbol, quantity_units FROM positions WHERE account_id = ?",
                                    (account_id,)))
    assert positions == {s: q for s, q in held.items() if q}
    return cash, positions


@pytest_twisted.ensureDeferred
async def test_submit_answers_queued_after_the_order_is_stored(db, user, submit, quote, clock):
    alice = await user("alice")
    quote(AAPL="150.25")
    order = await submit(alice, "o-1", "buy", "aapl", "10", worker="worker2", ip="198.51.100.3")
    assert order["status"] == "queued"
    assert (order["side"], order["symbol"], order["quantity"]) == ("buy", "AAPL", D(10))
    assert order["client_order_id"] == "o-1"
    assert order["created"] == utc(clock.seconds())
    assert "price" not in order and "amount" not in order
    rows = await db.query(
        "SELECT id, account_id, client_order_id, side, symbol, quantity_units, status, received, client_ip, worker"
        " FROM orders")
    assert rows == [(order["id"], alice.account_id, "o-1", "buy", "AAPL", 10_000_000, "queued",
                     iso(utc(clock.seconds())), "198.51.100.3", "worker2")]
    # Nothing moves before the queue pass.
    assert await count(db, "transactions") == 0
    assert await count(db, "positions") == 0
    assert await check_books(db, alice.account_id, D("100000")) == (10_000_000, {})


@pytest_twisted.ensureDeferred
async def test_same_client_order_id_returns_the_same_order(db, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="150")
    first = await submit(alice, "retry-1", "buy", "AAPL", "10", worker="worker1")
    again = await submit(alice, "retry-1", "buy", "aapl", "10.000", worker="worker2")  # the same order, retried
    assert again == first
    assert await count(db, "orders") == 1


def wait_until_an_insert_waits_for(url, blocker_pid):
    """Block (in a thread) until an INSERT INTO orders waits for a lock held by the backend ``blocker_pid``."""
    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE 'INSERT INTO orders%%'"
                " AND %s = ANY(pg_blocking_pids(pid))", (blocker_pid,)).fetchone()[0]
            if waiting:
                return
    raise AssertionError("no INSERT INTO orders ever waited for the concurrent retry")


# Two retries cannot race on SQLite (one connection); PostgreSQL has a pool of connections.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_retry_that_loses_the_race_gets_the_winning_order(db, database_url, user, submit, quote, clock):
    alice = await user("alice")
    quote(AAPL="150")
    # The other retry of the same order is inserting right now: its row exists but is not committed yet.
    other = psycopg.connect(database_url)
    try:
        [(winner_id,)] = other.execute(
            "INSERT INTO orders (account_id, client_order_id, side, symbol, quantity_units, status, created,"
            " received, client_ip, worker) VALUES (%s, 'race', 'buy', 'AAPL', 1000000, 'queued', %s, %s,"
            " '192.0.2.7', 'worker2') RETURNING id",
            (alice.account_id, iso(utc(clock.seconds())), iso(utc(clock.seconds())))).fetchall()
        retry = submit(alice, "race", "buy", "AAPL", "1")  # sees no order, then waits on the unique key
        await threads.deferToThread(wait_until_an_insert_waits_for, database_url, other.info.backend_pid)
        other.commit()
    finally:
        other.close()
    order = await retry
    assert (order["id"], order["status"], order["worker"]) == (winner_id, "queued", "worker2")
    assert await count(db, "orders") == 1


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
    assert await count(db, "orders") == 2


@pytest_twisted.ensureDeferred
async def test_queue_pass_fills_in_arrival_order_at_the_board_price(db, orders, user, submit, quote):
    alice, bob = await user("alice"), await user("bob")
    # Submitted before any price is known: no submit-time check is possible, all are queued.
    a1 = await submit(alice, "a1", "buy", "AAPL", "10")
    a2 = await submit(alice, "a2", "sell", "AAPL", "4")  # only possible because a1 fills first
    a3 = await submit(alice, "a3", "buy", "MSFT", "2.5")
    b1 = await submit(bob, "b1", "sell", "TSLA", "1")  # before bob's buy: nothing to sell yet
    b2 = await submit(bob, "b2", "buy", "TSLA", "1")
    quote(AAPL="150.2537", MSFT="410.10", TSLA="250")
    assert await orders.process() == (4, 1)

    assert await status(db, a1["id"]) == ("filled", 1_502_537, -150254, None, None)  # 1502.537 -> 1502.54
    assert await status(db, a2["id"]) == ("filled", 1_502_537, 60101, None, None)  # 601.0148 -> 601.01
    assert await status(db, a3["id"]) == ("filled", 4_101_000, -102525, None, None)
    state, _, amount, code, reason = await status(db, b1["id"])
    assert (state, amount, code) == ("rejected", None, "insufficient_position")
    assert "short selling is not allowed" in reason
    assert (await status(db, b2["id"]))[0] == "filled"

    cash, positions = await check_books(db, alice.account_id, D("100000"))
    assert cash == 10_000_000 - 150254 + 60101 - 102525
    assert positions == {"AAPL": 6_000_000, "MSFT": 2_500_000}
    assert await check_books(db, bob.account_id, D("100000")) == (10_000_000 - 25000, {"TSLA": 1_000_000})
    assert await db.query("SELECT COUNT(*) FROM transactions WHERE order_id = ?", (b1["id"],)) == [(0,)]

    filled = await orders.get(alice, a1["id"])
    assert (filled["status"], filled["price"], filled["amount"]) == ("filled", D("150.2537"), D("-1502.54"))
    assert "processed" in filled


@pytest_twisted.ensureDeferred
async def test_a_buy_that_can_no_longer_be_paid_is_rejected_when_processed(db, orders, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="400")
    first = await submit(alice, "a1", "buy", "AAPL", "100")  # 40000
    second = await submit(alice, "a2", "buy", "AAPL", "100")  # 40000 more: 80000 of 100000, accepted
    assert first["status"] == second["status"] == "queued"
    quote(AAPL="600")  # the price moved before the queue pass: 120000 is more than the cash
    assert await orders.process() == (1, 1)
    state, price, amount, code, reason = await status(db, second["id"])
    assert (state, price, amount, code) == ("rejected", None, None, "insufficient_funds")
    assert reason == ("insufficient funds: buying 100 AAPL at 600.00 costs 60000.00 with commission;"
                      " cash is 40000.00")
    assert await check_books(db, alice.account_id, D("100000")) == (4_000_000, {"AAPL": 100_000_000})
    assert await count(db, "transactions") == 1
    rejected = await orders.get(alice, second["id"])
    assert (rejected["status"], rejected["reason_code"]) == ("rejected", "insufficient_funds")


@pytest_twisted.ensureDeferred
async def test_buying_power_at_submit_counts_the_queued_orders(db, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="600")
    await submit(alice, "a1", "buy", "AAPL", "100")  # 60000: affordable alone
    with pytest.raises(InsufficientFunds) as excinfo:  # also affordable alone, but not after the first
        await submit(alice, "a2", "buy", "AAPL", "100")
    assert excinfo.value.message == ("insufficient funds: buying 100 AAPL at 600.00 costs 60000.00 with commission;"
                                     " cash is 40000.00 after your queued orders")
    assert await count(db, "orders") == 1
    await submit(alice, "a3", "buy", "AAPL", "66")  # 39600 still fits


@pytest_twisted.ensureDeferred
async def test_buying_more_than_the_cash_is_refused_at_submit(db, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="600")
    with pytest.raises(InsufficientFunds) as excinfo:
        await submit(alice, "a1", "buy", "AAPL", "167")  # 100200 > 100000
    assert "costs 100200.00" in excinfo.value.message
    assert await count(db, "orders") == 0


@pytest_twisted.ensureDeferred
async def test_selling_more_than_held_is_refused_at_submit(db, orders, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="100")
    with pytest.raises(InsufficientPosition):
        await submit(alice, "s0", "sell", "AAPL", "1")
    await submit(alice, "b1", "buy", "AAPL", "5")
    await orders.process()
    with pytest.raises(InsufficientPosition) as excinfo:
        await submit(alice, "s1", "sell", "AAPL", "5.000001")
    assert "holding 5" in excinfo.value.message
    assert await count(db, "orders") == 1
    sold = await submit(alice, "s2", "sell", "AAPL", "5")
    assert sold["status"] == "queued"
    # The queued sale already uses the whole position.
    with pytest.raises(InsufficientPosition, match="after your queued orders"):
        await submit(alice, "s3", "sell", "AAPL", "1")
    assert await count(db, "orders") == 2


@pytest_twisted.ensureDeferred
async def test_orders_without_a_quote_stay_queued(db, orders, user, submit, quote):
    alice = await user("alice")
    quote(MSFT="400")
    waiting = await submit(alice, "a1", "buy", "AAPL", "1")
    ready = await submit(alice, "m1", "buy", "MSFT", "1")
    assert await orders.process() == (1, 0)
    assert (await status(db, waiting["id"]))[0] == "queued"
    assert (await status(db, ready["id"]))[0] == "filled"
    assert await orders.process() == (0, 0)
    quote(AAPL="190.5")
    assert await orders.process() == (1, 0)
    assert (await status(db, waiting["id"]))[:3] == ("filled", 1_905_000, -19050)
    await check_books(db, alice.account_id, D("100000"))


@pytest_twisted.ensureDeferred
async def test_commission_is_charged_on_every_fill(db, settings, board, clock, log, user, quote):
    orders = Orders(db, replace(settings, commission=D("1.50")), board, clock, log)
    alice = await user("alice")
    quote(AAPL="100")
    await orders.submit(alice, "b", "buy", "AAPL", "10", utc(clock.seconds()), "192.0.2.7", "worker1")
    await orders.process()
    quote(AAPL="110")
    await orders.submit(alice, "s", "sell", "AAPL", "4", utc(clock.seconds()), "192.0.2.7", "worker1")
    await orders.process()
    rows = await db.query("SELECT commission_cents, amount_cents, cash_after_cents FROM transactions ORDER BY id")
    assert rows == [(150, -100150, 10_000_000 - 100150), (150, 43850, 10_000_000 - 100150 + 43850)]
    await check_books(db, alice.account_id, D("100000"))
    # The position's cost includes the buy's commission; the sale removed 4/10 of it.
    assert await db.query("SELECT quantity_units, cost_cents FROM positions") == [(6_000_000, 60090)]
    history = await orders.history(alice, 10)
    assert [(h["side"], h["commission"], h["amount"]) for h in history] == [
        ("buy", D("1.50"), D("-1001.50")), ("sell", D("1.50"), D("438.50"))]
    portfolio = await orders.portfolio(alice)
    assert portfolio["positions"][0]["average_price"] == D("100.1500")


@pytest_twisted.ensureDeferred
async def test_fractional_quantities_fill_with_half_even_rounding(db, orders, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="333.33")
    order = await submit(alice, "f", "buy", "AAPL", "0.5")
    assert await orders.process() == (1, 0)
    assert (await status(db, order["id"]))[2] == -16666  # 166.665 -> 166.66
    assert await check_books(db, alice.account_id, D("100000")) == (10_000_000 - 16666, {"AAPL": 500_000})
    portfolio = await orders.portfolio(alice)
    assert portfolio["positions"][0]["quantity"] == D("0.5")


@pytest.mark.parametrize(
    "client_order_id, side, symbol, quantity, error",
    [
        ("o-1", "buy", "GOOG", "1", UnknownSymbol),
        ("o-1", "buy", "", "1", UnknownSymbol),
        ("o-1", "short", "AAPL", "1", InvalidInput),
        ("o-1", "BUY!", "AAPL", "1", InvalidInput),
        ("o-1", "buy", "AAPL", "0", InvalidInput),
        ("o-1", "buy", "AAPL", "-1", InvalidInput),
        ("o-1", "buy", "AAPL", "0.0000001", InvalidInput),
        ("o-1", "buy", "AAPL", "abc", InvalidInput),
        ("o-1", "buy", "AAPL", "NaN", InvalidInput),
        ("o-1", "buy", "AAPL", "Infinity", InvalidInput),
        ("o-1", "buy", "AAPL", "1000000001", InvalidInput),
        ("bad id", "buy", "AAPL", "1", InvalidInput),
        ("x" * 65, "buy", "AAPL", "1", InvalidInput),
    ],
)
@pytest_twisted.ensureDeferred
async def test_invalid_orders_are_refused_and_write_nothing(db, user, submit, quote, client_order_id, side, symbol,
                                                            quantity, error):
    alice = await user("alice")
    quote(AAPL="100")
    with pytest.raises(error):
        await submit(alice, client_order_id, side, symbol, quantity)
    assert await count(db, "orders") == 0


@pytest_twisted.ensureDeferred
async def test_a_retry_after_the_fill_returns_the_filled_order_and_fills_nothing_more(db, orders, user, submit,
                                                                                      quote):
    alice = await user("alice")
    quote(TSLA="250")
    await submit(alice, "r", "buy", "TSLA", "2")
    await orders.process()
    again = await submit(alice, "r", "buy", "TSLA", "2")
    assert (again["status"], again["price"], again["amount"]) == ("filled", D("250"), D("-500.00"))
    assert await orders.process() == (0, 0)
    assert await count(db, "transactions") == 1
    assert await check_books(db, alice.account_id, D("100000")) == (10_000_000 - 50000, {"TSLA": 2_000_000})


@pytest_twisted.ensureDeferred
async def test_an_account_sees_only_its_own_orders(orders, user, submit, quote):
    alice, bob = await user("alice"), await user("bob")
    quote(AAPL="100")
    order = await submit(alice, "a", "buy", "AAPL", "1")
    await orders.process()
    with pytest.raises(UnknownOrder):
        await orders.get(bob, order["id"])
    assert await orders.list(bob, 10) == []
    assert await orders.history(bob, 10) == []
    assert (await orders.portfolio(bob)) == dict(cash=D("100000.00"), equity=D("100000.00"), positions=[])
    assert [o["id"] for o in await orders.list(alice, 10)] == [order["id"]]


@pytest_twisted.ensureDeferred
async def test_portfolio_values_positions_at_the_board_price(orders, user, submit, quote):
    alice = await user("alice")
    quote(AAPL="150.25", MSFT="400")
    await submit(alice, "a", "buy", "AAPL", "10")
    await submit(alice, "m", "buy", "MSFT", "0.5")
    await orders.process()
    quote(AAPL="160.005")
    portfolio = await orders.portfolio(alice)
    cash = D("100000") - D("1502.50") - D("200.00")
    assert portfolio["cash"] == cash
    aapl, msft = portfolio["positions"]
    assert (aapl["symbol"], aapl["quantity"], aapl["average_price"], aapl["price"], aapl["market_value"]) == (
        "AAPL", D(10), D("150.2500"), D("160.005"), D("1600.05"))
    assert (msft["symbol"], msft["market_value"]) == ("MSFT", D("200.00"))
    assert portfolio["equity"] == cash + D("1600.05") + D("200.00")


@pytest_twisted.ensureDeferred
async def test_market_update_then_queue_pass_at_the_new_prices(db, orders, board, user, submit, settings, clock, log):
    market = MarketService(db, SimulatedProvider(2), board, settings.update_interval, clock, log)
    market.listeners.append(orders.after_update)
    market.startService()
    try:
        await market.started
        await market.busy
        alice = await user("alice")
        order = await submit(alice, "m", "buy", "MSFT", "3")
        assert (await status(db, order["id"]))[0] == "queued"
        clock.advance(settings.update_interval)
        await market.busy
        # Filled by the pass that followed the update, at that update's price.
        [(close_units,)] = await db.query("SELECT close_units FROM candles WHERE symbol = 'MSFT' AND time = ?",
                                          (iso(utc(clock.seconds())),))
        state, price_units, _, _, _ = await status(db, order["id"])
        assert (state, price_units) == ("filled", close_units)
        assert price_units == to_price_units(board.get("MSFT").price)
        await check_books(db, alice.account_id, settings.starting_cash)
    finally:
        await market.stopService()


@pytest_twisted.ensureDeferred
async def test_an_order_worth_less_than_a_cent_is_refused_and_never_fills_free(db, user, submit, quote, orders):
    alice = await user("alice")
    quote(AAPL="313.63")
    with pytest.raises(InvalidInput, match="below one cent"):
        await submit(alice, "tiny", "buy", "AAPL", "0.00001")
    # Queued while there was no price, then the price makes it worthless: rejected, not free.
    order = await submit(alice, "tiny2", "buy", "TSLA", "1")
    quote(TSLA="0.0001")
    await orders.process()
    [row] = await db.query("SELECT status, reason_code FROM orders WHERE id = ?", (order["id"],))
    assert row == ("rejected", "order_too_small")


@pytest_twisted.ensureDeferred
async def test_queued_orders_per_account_are_capped(db, user, submit, quote):
    from papertrader.master.orders import MAX_QUEUED

    alice = await user("alice")
    quote(AAPL="1.00")
    for n in range(MAX_QUEUED):
        await submit(alice, f"o{n}", "buy", "AAPL", "1")
    with pytest.raises(InvalidInput, match="orders waiting"):
        await submit(alice, "one-too-many", "buy", "AAPL", "1")
