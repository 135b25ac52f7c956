"""Each portfolio's open orders are kept in memory between transactions (papertrader/master/open_orders.py):
what the memory serves is exactly what the database holds, after every kind of write, on both databases,
including units refused inside a group transaction and a transaction that never commits."""

from decimal import Decimal

import pytest
import pytest_twisted
from twisted.internet import defer

from papertrader.errors import InsufficientFunds
from papertrader.trading.orders import Order, OrderType, Side, Status, TimeInForce
from papertrader.times import utc
from tests.test_portfolios import PASSWORD, board, master, published, stamp, step, terms, user  # noqa: F401

D = Decimal


async def served_is_stored(master, portfolio_ids):
    """For each portfolio the memory knows: the same orders, field for field (repr: Decimal exponents too)
    as the database's; returns how many it knew."""
    store = master.orders
    memory = store.open_memory
    stored = await master.trading.db.run(store.open_orders_of, portfolio_ids)
    known = 0
    for portfolio_id in portfolio_ids:
        served = memory.get(portfolio_id)
        if served is not None:
            known += 1
            assert [repr(o) for o in served] == [repr(o) for o in stored[portfolio_id]], portfolio_id
    return known


@pytest_twisted.ensureDeferred
async def test_what_the_memory_serves_is_what_the_database_holds_after_every_kind_of_write(master, user, stamp,
                                                                                        step):
    t, p = master.trading, master.portfolios
    alice, bob = await user("alice"), await user("bob")
    await p.create_portfolio(alice, stamp(), "Growth", cash="5000.00")
    await step(AAPL="100", MSFT="10")
    alice_in = (await t.session_in(alice)).portfolio_id
    growth = (await t.session_in(alice, "Growth")).portfolio_id
    bob_in = (await t.session_in(bob)).portfolio_id
    everyone = [alice_in, growth, bob_in]
    memory = master.orders.open_memory

    # Orders arriving together share transactions; some are refused inside them (savepoints rolled back).
    sent = []
    for n in range(12):
        sent.append(t.place_order(alice, stamp(), f"a{n}", "buy", "AAPL", "100", type="limit", limit_price="95",
                                  time_in_force="gtc"))  # 9,500 each of 100,000: the 11th and 12th are refused
        sent.append(t.place_order(alice, stamp(), f"g{n}", "buy", "MSFT", "10", type="limit", limit_price="9",
                                  time_in_force="gtc", portfolio="Growth"))
        sent.append(t.place_order(bob, stamp(), f"b{n}", "buy", "MSFT", "1", type="limit", limit_price="8"))
    results = await defer.DeferredList(sent, consumeErrors=True)
    refused = [r for ok, r in results if not ok]
    assert len(refused) == 2 and all(f.check(InsufficientFunds) for f in refused)
    assert master.trading.commits.transactions < len(sent)  # they did share transactions
    await served_is_stored(master, everyone)
    # Known after their writes; alice's default portfolio had refused units (rolled back): read it again.
    assert memory.get(growth) is not None and memory.get(bob_in) is not None
    hits = memory.hits
    await t.place_order(bob, stamp(), "b-more", "buy", "MSFT", "1", type="limit", limit_price="8")
    assert memory.hits == hits + 1  # read from memory, not from the database
    assert await served_is_stored(master, everyone) == 2
    await t.place_order(alice, stamp(), "a-more", "buy", "MSFT", "1", type="limit", limit_price="8")
    assert await served_is_stored(master, everyone) == 3

    # Replaced, canceled, all canceled.
    first = (await t.orders(alice, stamp(), 50, status="open"))["orders"][-1]
    await t.replace_order(alice, stamp(), order_id=first["id"], quantity="50", limit_price="96")
    second = (await t.orders(alice, stamp(), 50, status="open"))["orders"][-1]
    await t.cancel_order(alice, stamp(), order_id=second["id"])
    await t.cancel_all_orders(bob, stamp())
    await served_is_stored(master, everyone)
    await t.place_order(bob, stamp(), "b-after", "buy", "MSFT", "1", type="limit", limit_price="8")
    assert await served_is_stored(master, everyone) >= 1

    # A market step fills some (orders and fills written by the step), leaves others open.
    await step(AAPL="94", MSFT="9.5")
    await served_is_stored(master, everyone)
    await t.place_order(alice, stamp(), "after-step", "buy", "AAPL", "1", type="limit", limit_price="50",
                        time_in_force="gtc")
    await step(AAPL="94", MSFT="8")
    await t.place_order(bob, stamp(), "after-fill", "buy", "MSFT", "1", type="limit", limit_price="1")
    assert await served_is_stored(master, everyone) >= 2

    # A reset cancels the portfolio's open orders; an account's deletion cancels all of its orders.
    await p.reset_portfolio(alice, stamp(), "Growth")
    await served_is_stored(master, everyone)
    await master.accounts.delete(bob, PASSWORD)
    assert memory.get(bob_in) is None or memory.get(bob_in) == []
    await served_is_stored(master, everyone)


@pytest_twisted.ensureDeferred
async def test_what_the_memory_serves_is_what_the_database_holds_through_a_brackets_life(master, user, stamp, step):
    t = master.trading
    alice = await user("alice")
    await step(AAPL="100", MSFT="10")
    mine = [(await t.session_in(alice)).portfolio_id]
    entry = await t.place_order(alice, stamp(), "br", "buy", "MSFT", "10", type="market", time_in_force="gtc",
                                order_class="bracket", take_profit="12", stop_loss="8")
    take, stop = entry["legs"]
    assert await served_is_stored(master, mine) == 1  # held exits are kept with the open orders
    moved = await t.replace_order(alice, stamp(), order_id=stop["id"], stop_price="8.50")  # a held exit
    await served_is_stored(master, mine)
    await t.place_order(alice, stamp(), "more", "buy", "AAPL", "1", type="limit", limit_price="50")
    assert await served_is_stored(master, mine) == 1
    await step(AAPL="100", MSFT="10")  # the entry fills: its exits open
    await served_is_stored(master, mine)
    statuses = {o["id"]: o["status"] for o in (await t.orders(alice, stamp(), 50, status="open"))["orders"]}
    assert (statuses[take["id"]], statuses[moved["id"]]) == ("new", "new") and entry["id"] not in statuses
    await t.place_order(alice, stamp(), "more-2", "buy", "AAPL", "1", type="limit", limit_price="50")
    assert await served_is_stored(master, mine) == 1
    await t.cancel_order(alice, stamp(), order_id=take["id"])  # and with it the stop-loss
    await t.place_order(alice, stamp(), "more-3", "buy", "AAPL", "1", type="limit", limit_price="50")
    assert await served_is_stored(master, mine) == 1
    oco = await t.place_order(alice, stamp(), "oco", "sell", "MSFT", "10", type="limit", time_in_force="gtc",
                              order_class="oco", take_profit="12", stop_loss="8")
    await t.replace_order(alice, stamp(), order_id=oco["id"], limit_price="11")  # its stop-loss hangs from the new one
    await t.place_order(alice, stamp(), "more-4", "buy", "AAPL", "1", type="limit", limit_price="50")
    assert await served_is_stored(master, mine) == 1


@pytest_twisted.ensureDeferred
async def test_a_market_step_takes_the_open_orders_it_knows_from_memory_and_trades_them_in_time_order(
        master, user, stamp, step):
    t = master.trading
    alice, bob = await user("alice"), await user("bob")
    await step(AAPL="100")
    placed = []  # alice's and bob's orders in turns
    for i, (who, limit) in enumerate(((alice, "90"), (bob, "93"), (alice, "91"), (bob, "91"), (alice, "92"))):
        placed.append(await t.place_order(who, stamp(), f"o{i}", "buy", "AAPL", "1", type="limit",
                                          limit_price=limit, time_in_force="gtc"))
    ids = [(await t.session_in(who)).portfolio_id for who in (alice, bob)]
    memory = master.orders.open_memory
    hits, misses = memory.hits, memory.misses
    await step(AAPL="91")
    assert (memory.hits - hits, memory.misses - misses) == (2, 0)  # both portfolios, none from the database
    rows = await t.db.query("SELECT id, status FROM orders ORDER BY id")
    assert [status for _, status in rows] == ["new", "filled", "filled", "filled", "filled"]
    # The fills were made in the orders' time order (by id), across the two portfolios.
    fills = await t.db.query("SELECT order_id FROM transactions WHERE kind = 'fill' ORDER BY id")
    assert [order_id for (order_id,) in fills] == [o["id"] for o in placed[1:]]
    await served_is_stored(master, ids)


@pytest_twisted.ensureDeferred
async def test_open_orders_written_by_a_unit_that_fails_or_a_transaction_that_never_commits_are_not_served(
        master, user, stamp, step, clock):
    t = master.trading
    store, memory = master.orders, master.orders.open_memory
    alice = await t.session_in(await user("alice"))
    await step(AAPL="100")
    await t.place_order(alice, stamp(), "kept", "buy", "AAPL", "1", type="limit", limit_price="50",
                        time_in_force="gtc")
    pid = alice.portfolio_id
    assert await served_is_stored(master, [pid]) == 1
    now = utc(clock.seconds())
    phantom = Order(id=None, account_id=pid, client_order_id="phantom", side=Side.BUY, symbol="AAPL",
                    type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, quantity=D("1"), limit_price=D("40"),
                    status=Status.NEW, created=now)

    def write_then_fail(cursor, ahead=None):
        book, open_orders = ahead or t._own_read(cursor, pid)
        order = store.insert(cursor, phantom, now, "192.0.2.7", "worker1")
        store.open_after_commit(cursor, pid, open_orders, [order.id])
        raise RuntimeError("refused after writing")

    # A unit of a group transaction: rolled back to its savepoint, the others commit.
    with pytest.raises(RuntimeError):
        await t.commits.run(write_then_fail, [pid], t._read_ahead)
    await served_is_stored(master, [pid])
    assert [o.client_order_id for o in (await t.db.run(store.open_orders_of, [pid]))[pid]] == ["kept"]
    # A whole transaction that fails: nothing it handed over is kept.
    with pytest.raises(RuntimeError):
        await t.db.run(write_then_fail)
    await served_is_stored(master, [pid])
    await t.place_order(alice, stamp(), "next", "buy", "AAPL", "1", type="limit", limit_price="50",
                        time_in_force="gtc")
    assert [o.client_order_id for o in memory.get(pid)] == ["kept", "next"]
    assert await served_is_stored(master, [pid]) == 1


def test_the_memory_keeps_at_most_its_bound_and_never_what_changed_since_it_was_read():
    from papertrader.master.open_orders import OpenOrders

    memory = OpenOrders(max_orders=5)
    stamp = memory.stamp(1)
    memory.changed([1])  # a write while the read was under way
    memory.keep(1, stamp, ["o1"])
    assert memory.get(1) is None
    memory.keep(1, memory.stamp(1), ["o1", "o2"])
    memory.keep(2, memory.stamp(2), ["p1", "p2"])
    assert memory.get(1) == ["o1", "o2"] and memory.size == 4
    memory.keep(3, memory.stamp(3), ["q1", "q2"])  # 6 > 5: the portfolio kept longest ago goes
    assert memory.get(1) is None and memory.get(2) == ["p1", "p2"] and memory.size == 4
    memory.changed([2])
    assert memory.get(2) is None


@pytest_twisted.ensureDeferred
async def test_what_a_unit_handed_over_is_not_kept_if_the_commit_never_happens(master, user, stamp, step, clock):
    """The hand-over is stamped just before the commit; if the transaction then fails (here: something after
    it, before the commit), nothing is kept."""
    t = master.trading
    store = master.orders
    alice = await t.session_in(await user("alice"))
    await step(AAPL="100")
    pid = alice.portfolio_id
    await t.place_order(alice, stamp(), "kept", "buy", "AAPL", "1", type="limit", limit_price="50",
                        time_in_force="gtc")
    now = utc(clock.seconds())
    phantom = Order(id=None, account_id=pid, client_order_id="phantom", side=Side.BUY, symbol="AAPL",
                    type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, quantity=D("1"), limit_price=D("40"),
                    status=Status.NEW, created=now)

    def fail_after_the_stamp():
        raise RuntimeError("the commit never happens")

    def hand_over(cursor):
        _, open_orders = t._own_read(cursor, pid)
        order = store.insert(cursor, phantom, now, "192.0.2.7", "worker1")
        store.open_after_commit(cursor, pid, open_orders, [order.id])
        t.db.transaction().before_commit.append(fail_after_the_stamp)  # runs after the hand-over's stamp

    with pytest.raises(RuntimeError):
        await t.db.run(hand_over)
    await served_is_stored(master, [pid])
    await t.place_order(alice, stamp(), "next", "buy", "AAPL", "1", type="limit", limit_price="50",
                        time_in_force="gtc")
    assert [o.client_order_id for o in store.open_memory.get(pid)] == ["kept", "next"]


@pytest_twisted.ensureDeferred
async def test_a_step_trades_only_the_portfolios_it_locked_first(master, user, stamp, step, database_url):
    """PostgreSQL (SQLite has one writer): an order committed in another portfolio while a step runs, after
    the step took its locks, is not traded by that step (it could not hold that portfolio's lock: a group
    commit of the same portfolio could then see the step's half-written work); the next step trades it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one transaction at a time")
    import psycopg

    t, store = master.trading, master.orders
    alice, bob = await t.session_in(await user("alice")), await t.session_in(await user("bob"))
    await step(AAPL="100")
    await t.place_order(alice, stamp(), "a1", "buy", "AAPL", "1", type="limit", limit_price="90",
                        time_in_force="gtc")
    late = {}
    real_lock = store.lock_accounts

    def lock_then_let_bob_order(cursor, ids):
        real_lock(cursor, ids)
        if "id" not in late:  # the step's locks are held: bob's order commits on a connection of its own
            with psycopg.connect(database_url, autocommit=False) as other:
                order = Order(id=None, account_id=bob.portfolio_id, client_order_id="b-late", side=Side.BUY,
                              symbol="AAPL", type=OrderType.LIMIT, time_in_force=TimeInForce.GTC,
                              quantity=D("1"), limit_price=D("90"), status=Status.NEW,
                              created=utc(master.trading.clock.seconds() - 10))  # before the step's bar
                late["id"] = store.insert(other.cursor(), order, order.created, "192.0.2.7", "worker1").id
                other.commit()

    store.lock_accounts = lock_then_let_bob_order
    try:
        await step(AAPL="89")
    finally:
        del store.lock_accounts
    statuses = dict(await t.db.query("SELECT client_order_id, status FROM orders"))
    assert statuses == {"a1": "filled", "b-late": "new"}
    await step(AAPL="89")
    assert dict(await t.db.query("SELECT client_order_id, status FROM orders"))["b-late"] == "filled"


def test_past_its_bound_of_remembered_changes_the_memory_starts_again_and_trusts_no_earlier_stamp():
    from papertrader.master.open_orders import OpenOrders

    memory = OpenOrders(max_orders=100, max_changes=3)
    memory.keep(9, memory.stamp(9), ["kept"])
    early = memory.stamp(1)  # a read of portfolio 1 begins
    memory.changed([1, 2, 3])
    memory.changed([4])  # a fourth portfolio: its changes are forgotten, a new epoch begins
    assert memory.get(9) is None and memory.size == 0
    memory.keep(1, early, ["stale"])  # 1 changed after that read began: the forgotten change must not matter
    assert memory.get(1) is None
    memory.keep(1, memory.stamp(1), ["fresh"])
    assert memory.get(1) == ["fresh"]
