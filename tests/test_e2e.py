"""End to end: a real master and two workers on loopback, driven through the CLI over TLS AMP."""

import json
import os
import platform
from decimal import Decimal as D

import pytest_twisted
from twisted.internet import reactor
from twisted.logger import globalLogPublisher

import papertrader
from papertrader import commands
from papertrader.client.connection import Connection, connect
from papertrader.money import from_cents, from_price_units
from tests.conftest import wait_for_log


def j(text):
    return json.loads(text)


async def register_and_login(d, user="alice", password="correct horse"):
    status, out, err = await d.cli("register", user, f"{user}@example.com", "--password-stdin",
                                   stdin=password + "\n", user=user)
    assert status == 0, err
    status, out, err = await d.cli("login", user, "--password-stdin", stdin=password + "\n", user=user)
    assert status == 0, err
    return j(out)


@pytest_twisted.ensureDeferred
async def test_trade_from_the_client(deployment):
    d = deployment
    status, out, _ = await d.cli("workers")
    assert status == 0
    assert sorted(w["name"] for w in j(out)) == ["worker1", "worker2"]

    login = await register_and_login(d)
    assert login["username"] == "alice"

    status, out, _ = await d.cli("whoami", user="alice")
    me = j(out)
    assert (me["username"], me["email"], me["cash"]) == ("alice", "alice@example.com", "100000.00")

    status, out, _ = await d.cli("quote", "aapl", user="alice")
    assert status == 0
    quote = j(out)
    assert quote["symbol"] == "AAPL"

    status, out, err = await d.cli("buy", "AAPL", "10", user="alice")
    assert status == 0, err
    order = j(out)
    assert order["status"] == "new" and order["quantity"] == "10" and order["side"] == "buy"
    assert (order["type"], order["time_in_force"], order["filled_quantity"]) == ("market", "day", "0")

    await d.tick()
    status, out, _ = await d.cli("orders", user="alice")
    [filled] = j(out)
    assert filled["status"] == "filled" and filled["filled_quantity"] == "10"
    fill_price = D(filled["average_price"])
    candle = await d.master.db.query("SELECT low_units, high_units FROM bars WHERE symbol = 'AAPL'"
                                     " AND interval = '1m' ORDER BY time DESC LIMIT 1")
    low, high = (from_price_units(u) for u in candle[0])
    assert low <= fill_price <= high  # priced inside the bar it filled in

    status, out, _ = await d.cli("sell", "AAPL", "4", user="alice")
    assert j(out)["status"] == "new"
    await d.tick()

    status, out, _ = await d.cli("history", user="alice")
    buy, sell = j(out)
    sell_price = D(sell["price"])
    cost = (fill_price * 10).quantize(from_cents(1))
    proceeds = (sell_price * 4).quantize(from_cents(1))
    assert (buy["side"], buy["quantity"], buy["amount"], buy["price"]) == ("buy", "10", f"-{cost}",
                                                                          filled["average_price"])
    assert buy["cash_after"] == f"{100000 - cost:.2f}"
    assert (sell["side"], sell["quantity"], sell["amount"]) == ("sell", "4", f"{proceeds}")
    assert sell["cash_after"] == f"{100000 - cost + proceeds:.2f}"
    assert sell["realized_pl"] == f"{proceeds - (cost * 4 / 10).quantize(from_cents(1)):.2f}"
    assert buy["model"].startswith("bar(")

    status, out, _ = await d.cli("portfolio", user="alice")
    portfolio = j(out)
    assert portfolio["cash"] == f"{100000 - cost + proceeds:.2f}"
    [position] = portfolio["positions"]
    assert (position["symbol"], position["quantity"]) == ("AAPL", "6")
    current = d.master.board.get("AAPL").price
    assert position["market_value"] == f"{(current * 6).quantize(from_cents(1))}"
    assert portfolio["equity"] == f"{100000 - cost + proceeds + (current * 6).quantize(from_cents(1)):.2f}"

    status, out, _ = await d.cli("candles", "AAPL", "--limit", "2", user="alice")
    candles = j(out)
    assert len(candles) >= 1 and set(candles[0]) == {"time", "open", "high", "low", "close", "volume"}

    # The table output is for people: the same portfolio, readable.
    status, out, _ = await d.cli("portfolio", user="alice", json=False)
    assert "AAPL" in out and "cash:" in out


@pytest_twisted.ensureDeferred
async def test_candles_from_after_the_market_s_date_say_that_date(deployment):
    """'candles --start' a day the market has not reached said only 'No candles yet.': a replay's date is years
    before today's, and nothing said so."""
    d = deployment
    today = j((await d.cli("clock"))[1])["time"][:10]  # (the simulated market: UTC)
    status, out, err = await d.cli("candles", "AAPL", "--start", "2099-01-02", json=False)
    assert (status, out) == (0, f"No candles yet: --start 2099-01-02 is after the market's date, {today} (its time:"
                                " papertrader clock).\n"), err
    status, out, err = await d.cli("candles", "AAPL", "--start", "2099-01-02T10:00:00+00:00", json=False)
    assert status == 0 and out.startswith("No candles yet: --start 2099-01-02 10:00:00 UTC is after the market's"
                                          f" time, {today} "), out
    assert (await d.cli("candles", "AAPL", "--start", "2099-01-02"))[1] == "[]\n"  # (JSON: the candles, none)
    status, out, err = await d.cli("candles", "AAPL", "--start", "2001-01-02", "--end", "2001-01-03", json=False)
    assert (status, out) == (0, "No candles yet.\n"), err  # (before the market's date: nothing more to say)


@pytest_twisted.ensureDeferred
async def test_worker_stamps_every_order(deployment):
    d = deployment
    await register_and_login(d)
    status, out, _ = await d.cli("--worker", "worker2", "buy", "MSFT", "1", user="alice")
    order_id = j(out)["id"]
    rows = await d.master.db.query("SELECT worker, client_ip, received FROM orders WHERE id = ?", (order_id,))
    worker, client_ip, received = rows[0]
    assert worker == "worker2"
    assert client_ip == "127.0.0.1"
    assert received.startswith("20")


@pytest_twisted.ensureDeferred
async def test_logout_ends_the_session_on_every_worker(deployment):
    d = deployment
    await register_and_login(d)
    # Both workers have seen (and cached) the session.
    for worker in ("worker1", "worker2"):
        status, _, _ = await d.cli("--worker", worker, "whoami", user="alice")
        assert status == 0
    saved = open(f"{d.home}/alice/papertrader/session.json").read()
    status, _, _ = await d.cli("--worker", "worker1", "logout", user="alice")
    assert status == 0
    # Put the old token back, as a stolen copy would be, and try it on the other worker.
    with open(f"{d.home}/alice/papertrader/session.json", "w") as f:
        f.write(saved)
    status, out, err = await d.cli("--worker", "worker2", "whoami", user="alice")
    assert status == 1
    assert j(out)["error"] == "not_logged_in"


@pytest_twisted.ensureDeferred
async def test_retried_client_order_id_makes_one_order(deployment):
    d = deployment
    await register_and_login(d)
    first = await d.cli("--worker", "worker1", "buy", "TSLA", "2", "--client-order-id", "retry-1", user="alice")
    again = await d.cli("--worker", "worker2", "buy", "TSLA", "2", "--client-order-id", "retry-1", user="alice")
    assert first[0] == again[0] == 0
    assert j(first[1])["id"] == j(again[1])["id"]
    await d.tick()
    third = await d.cli("buy", "TSLA", "2", "--client-order-id", "retry-1", user="alice")
    assert j(third[1])["status"] == "filled"
    status, out, _ = await d.cli("orders", user="alice")
    assert len(j(out)) == 1
    status, out, _ = await d.cli("history", user="alice")
    assert len(j(out)) == 1
    # The same id for a different order is refused, not silently merged.
    status, out, _ = await d.cli("buy", "TSLA", "3", "--client-order-id", "retry-1", user="alice")
    assert status == 1 and j(out)["error"] == "duplicate_order"


@pytest_twisted.ensureDeferred
async def test_passwd_from_the_client_ends_other_sessions(deployment):
    """A new password ends the other sessions; the account's API keys still work, and the person is told so
    (someone who changes a password they fear was stolen must revoke the keys they did not make)."""
    d = deployment
    await register_and_login(d, user="alice")
    status, out, err = await d.cli("login", "alice", "--password-stdin", stdin="correct horse\n", user="laptop")
    assert status == 0, err
    status, out, err = await d.cli("passwd", "--password-stdin", stdin="correct horse\nbattery staple 42\n",
                                   user="alice")
    assert status == 0, err
    assert j(out) == {"changed": True, "sessions_ended": 1, "api_keys": 0}
    status, out, err = await d.cli("api-key", "create", "--name", "bot", user="alice")
    key = j(out)
    status, out, err = await d.cli("passwd", "--password-stdin", stdin="battery staple 42\ncorrect horse\n",
                                   user="alice", json=False)
    assert status == 0, err
    assert out.strip() == ("Password changed; 0 other sessions ended. Your API key still works (ending sessions does"
                           " not revoke keys): 'papertrader api-key list' shows them; revoke any you did not make"
                           " with 'papertrader api-key revoke KEY_ID'.")
    status, out, err = await d.cli("api-key", "revoke", key["key_id"], user="alice")
    assert status == 0, err
    status, out, err = await d.cli("passwd", "--password-stdin", stdin="correct horse\nbattery staple 42\n",
                                   user="alice")
    assert j(out)["api_keys"] == 0
    status, out, _ = await d.cli("whoami", user="laptop")
    assert j(out)["error"] == "not_logged_in"
    status, out, _ = await d.cli("whoami", user="alice")
    assert status == 0
    status, out, _ = await d.cli("passwd", "--password-stdin", stdin="battery staple 42\nletmein1\n", user="alice")
    assert j(out)["error"] == "weak_password"
    status, out, _ = await d.cli("passwd", "--password-stdin", stdin="battery staple 42\nbattery staple 42\n",
                                 user="alice")
    assert j(out) == {"error": "invalid_input",
                      "message": "the new password is the same as the current one: choose another"}


@pytest_twisted.ensureDeferred
async def test_sessions_listed_and_ended_from_the_client(deployment):
    d = deployment
    await register_and_login(d, user="alice")
    await d.cli("login", "alice", "--password-stdin", stdin="correct horse\n", user="phone")
    status, out, _ = await d.cli("sessions", user="alice")
    listed = j(out)
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    assert all(s["client_ip"] == "127.0.0.1" for s in listed)
    assert {s["device"] for s in listed} == {f"papertrader CLI {papertrader.__version__} on {platform.system()}"}
    phone = next(s["id"] for s in listed if not s["current"])
    status, out, err = await d.cli("logout", "--session", phone, user="alice")
    assert status == 0, err
    status, out, _ = await d.cli("whoami", user="phone")
    assert j(out)["error"] == "not_logged_in"
    await d.cli("login", "alice", "--password-stdin", stdin="correct horse\n", user="phone")
    status, out, _ = await d.cli("logout", "--all", user="alice")
    assert j(out) == {"logged_out": True, "sessions_ended": 2, "api_keys": 0}
    status, out, _ = await d.cli("whoami", user="phone")
    assert j(out)["error"] == "not_logged_in"


@pytest_twisted.ensureDeferred
async def test_a_sessions_last_use_is_its_last_command_that_needed_it(deployment):
    """'last used' is when the master last saw the session, to the second: every command that needs a login reaches
    the master, also when the worker's session cache knows the token (the cache only spares asking the master whose
    it is); quote, assets, candles and clock need no session and do not count.  The current session's last use is
    the sessions command itself."""
    from papertrader.client import tokens
    from papertrader.times import utc

    d = deployment
    await register_and_login(d, user="alice")
    await d.cli("login", "alice", "--password-stdin", stdin="correct horse\n", user="phone")
    d.clock.advance(2)
    status, out, err = await d.cli("portfolio", user="phone")  # the worker asks the master whose session it is
    assert status == 0, err
    d.clock.advance(3)
    token = tokens.load(d.env("phone"))["token"]
    assert any(w.sessions.get(token) for w in d.cluster.workers)
    status, out, err = await d.cli("whoami", user="phone")  # the worker knows it now: the master still sees it
    assert status == 0, err
    used = utc(d.clock.seconds()).isoformat()
    for argv in (["quote", "AAPL"], ["assets"], ["candles", "AAPL"], ["clock"]):
        d.clock.advance(3)
        status, out, err = await d.cli(*argv, user="phone")
        assert status == 0, err
    d.clock.advance(3)
    status, out, _ = await d.cli("sessions", user="alice")
    listed = {s["current"]: s["last_used"] for s in j(out)}
    assert listed == {False: used, True: utc(d.clock.seconds()).isoformat()}


@pytest_twisted.ensureDeferred
async def test_a_long_order_list_never_cuts_a_worker_off(deployment):
    """200 orders with long reasons do not fit one AMP value: the newest that fit come back, links stay up."""
    d = deployment
    await register_and_login(d)
    [(portfolio_id,)] = await d.master.db.query(
        "SELECT p.id FROM portfolios p JOIN accounts a ON a.id = p.account_id WHERE a.username = 'alice'")
    for n in range(200):
        await d.master.db.execute(
            "INSERT INTO orders (uuid, portfolio_id, client_order_id, side, symbol, type, time_in_force,"
            " quantity_units, status, created, updated, received, client_ip, worker, reason, reason_code)"
            " VALUES (?, ?, ?, 'buy', 'AAPL', 'market', 'day', 1000000, 'rejected', ?, ?, ?, '127.0.0.1',"
            " 'worker1', ?, 'insufficient_funds')",
            (f"00000000-0000-4000-8000-{n:012d}", portfolio_id, f"{n:064d}",
             f"2026-01-01T00:00:{n % 60:02d}.{n:06d}+00:00", f"2026-01-01T00:00:{n % 60:02d}.{n:06d}+00:00",
             "2026-01-01T00:00:00+00:00", "insufficient funds: " + "x" * 300))
    status, out, err = await d.cli("orders", "--limit", "200", user="alice")
    assert status == 0, err
    shown = j(out)
    assert 50 < len(shown) < 200
    assert shown[-1]["client_order_id"] == f"{199:064d}"  # the newest are kept
    assert len(d.master.workers.linked) == 2


@pytest_twisted.ensureDeferred
async def test_profiles_public_and_private(deployment):
    d = deployment
    await register_and_login(d, user="alice")
    await register_and_login(d, "bob")
    await d.cli("buy", "AAPL", "3", user="alice")
    await d.tick()
    status, out, _ = await d.cli("profile", user="alice")
    mine = j(out)
    assert (mine["username"], mine["email"], mine["sign_in"]) == ("alice", "alice@example.com", ["password"])
    assert mine["positions"] == [{"symbol": "AAPL", "quantity": "3"}]
    status, out, _ = await d.cli("profile", "alice", user="bob")
    seen = j(out)
    assert set(seen) == {"username", "joined", "public_portfolio"}  # no email, no cash, no positions
    await d.cli("profile", "--public", user="alice")
    status, out, _ = await d.cli("profile", "ALICE", user="bob")
    assert j(out)["positions"] == [{"symbol": "AAPL", "quantity": "3"}] and "email" not in j(out)
    status, out, _ = await d.cli("profile", "nobody", user="bob")
    assert j(out)["error"] == "invalid_input"


@pytest_twisted.ensureDeferred
async def test_delete_account_removes_personal_data_and_keeps_the_ledger(deployment):
    d = deployment
    await register_and_login(d, user="alice")
    await d.cli("buy", "AAPL", "2", user="alice")
    await d.tick()
    await d.cli("buy", "MSFT", "1", user="alice")  # still open when the account goes
    status, out, _ = await d.cli("delete-account", "--yes", "--password-stdin", stdin="wrong one here\n",
                                 user="alice")
    assert j(out) == {"error": "bad_credentials", "message": "the password is wrong: nothing was deleted"}
    status, out, err = await d.cli("delete-account", "--yes", "--password-stdin", stdin="correct horse\n",
                                   user="alice")
    assert status == 0, err
    [(username, email, hashed, cash)] = await d.master.db.query(
        "SELECT a.username, a.email, a.password_hash, p.cash_cents FROM accounts a JOIN portfolios p"
        " ON p.account_id = a.id")
    assert username.startswith("deleted-") and email == "" and hashed is None
    [(amount,)] = await d.master.db.query("SELECT amount_cents FROM transactions")
    assert cash == 100000_00 + amount  # the ledger still agrees
    statuses = await d.master.db.query("SELECT status, client_ip FROM orders ORDER BY id")
    assert statuses == [("filled", ""), ("canceled", "")]
    assert (await d.master.db.query("SELECT COUNT(*) FROM sessions"))[0][0] == 0
    status, out, _ = await d.cli("login", "alice", "--password-stdin", stdin="correct horse\n", user="alice")
    assert j(out)["error"] == "bad_credentials"
    status, out, err = await d.cli("register", "alice", "new@example.com", "--password-stdin",
                                   stdin="correct horse\n", user="alice")
    assert status == 0, err  # the name is free again


@pytest_twisted.ensureDeferred
async def test_a_client_gone_while_its_order_watch_is_checked_leaves_no_watcher_and_no_traceback(deployment):
    """Found by the crash suite: a client that closed its connection while the worker asked the master about
    its session made the worker log a traceback (its address was read from the closed connection) and would
    have kept the dead connection among the watchers of the account's order events."""
    d = deployment
    await register_and_login(d)
    ca = open(os.path.join(d.data_dir, "ca.pem"), "rb").read()
    connection = Connection(reactor, ("localhost", d.master_port), ca)
    try:
        token = (await connection.call(commands.Login, username="alice", password="correct horse",
                                       remember=False))["token"]
        [listed] = [w for w in await connection.workers() if w["name"] == d.cluster.workers[0].name]
    finally:
        connection.close()
    w = d.cluster.workers[0]
    assert w.sessions.get(token) is None  # so the worker must ask the master, and the client leaves meanwhile
    failures = []

    def observe(event):
        if event.get("log_failure") is not None or event.get("log_level") is not None and \
                event["log_level"].name in ("error", "critical"):
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        proto = await connect(reactor, "localhost", listed["port"], ca, "the worker")
        left = wait_for_log(w.logs, "left before its watch of alice's order events began")
        answer = proto.callRemote(commands.WatchOrders, token=token)
        answer.addErrback(lambda failure: None)  # the connection is gone before any answer
        proto.transport.loseConnection()
        await left
    finally:
        globalLogPublisher.removeObserver(observe)
    assert failures == []
    assert w.order_fanout.watchers() == [] and w.order_fanout.keys() == []
