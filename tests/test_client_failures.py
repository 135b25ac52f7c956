"""What a user of the ``papertrader`` client meets when things go wrong (issue 8).

Interrupts are real signals sent to the real CLI running as a subprocess (and a Ctrl-C typed at a real
terminal); dying workers are real ``twistd papertrader-worker`` processes killed with real signals, or
in-process workers shut down or cut off; wrong servers are real listeners on loopback ports.  Each test
checks what the user sees: one line on stderr, never a traceback, exactly one JSON value with --json,
and an exit status that says what happened.
"""

import argparse
import json
import os
import re
import shlex
import sys

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, reactor

from papertrader import tls
from papertrader.client import cli
from papertrader.logs import LogEntry
from papertrader.master import files
from papertrader.worker.service import Worker
from tests.conftest import SeparatedProcess, WatchedProcess, start_cluster, wait_for_log
from tests.test_crash import TWISTD
from tests.test_e2e import register_and_login

#: Bound on every wait for something a real process or the cluster does (not a sleep).
BOUND = 60


def j(text):
    """The one JSON value ``text`` must hold (json.loads refuses a second one: 'Extra data')."""
    return json.loads(text)


def bounded(d, timeout=BOUND):
    """``d`` (a Deferred or a coroutine), failing after ``timeout`` seconds instead of hanging."""
    return defer.ensureDeferred(d).addTimeout(timeout, reactor)


@pytest_twisted.async_yield_fixture
async def cluster(tmp_path, settings, clock):
    """A master and two workers on SQLite: for what is about the client, not the database."""
    deployment = await start_cluster(tmp_path, settings, None, clock)
    yield deployment
    await deployment.cluster.stopService()


def worker(d, name):
    return next(w for w in d.cluster.workers if w.name == name)


class CLIProcess(SeparatedProcess):
    """The real ``papertrader`` command as a subprocess."""


def spawn_cli(d, *argv, user="alice", pty=False):
    proc = CLIProcess()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **d.env(user))
    reactor.spawnProcess(proc, sys.executable, [sys.executable, "-m", "papertrader.client.cli", *argv], env=env,
                         path=os.getcwd(), usePTY=pty)
    return proc


async def ended(proc):
    """The process's exit status (bounded wait)."""
    reason = await bounded(proc.ended)
    return reason.exitCode


async def worker_process(d, name, region="default"):
    """A worker as a real ``twistd papertrader-worker`` process, registered with and linked to ``d``'s master."""
    bundle = files.worker_dir(d.data_dir, name)
    armor = files.make_worker_bundle(d.data_dir, name, (), bundle)
    await d.master.workers.register(name, armor)
    cert = os.path.join(bundle, files.WORKER_CERT)
    proc = WatchedProcess()
    linked = wait_for_log(d.master.logs, f"worker {name} linked")
    # Heartbeats are driven by the test's clock: a long interval keeps the worker's watchdog quiet meanwhile.
    args = [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "papertrader-worker", "--data-dir", bundle,
            "--name", name, "--region", region, "--master", f"localhost:{d.master_port}",
            "--port", tls.listen_description(0, "127.0.0.1", cert), "--heartbeat-interval", "600"]
    reactor.spawnProcess(proc, sys.executable, args, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                         path=os.getcwd())
    await bounded(linked)
    return proc


async def stop_process(proc):
    if proc.transport.pid:
        proc.transport.signalProcess("KILL")
        await bounded(proc.ended)


def on_log(logs, text, action):
    """Run ``action`` synchronously at the first entry of ``logs`` containing ``text`` (before anything else
    the logging code goes on to do, such as answering)."""

    def observer(event):
        if text in LogEntry.from_event(event).message:
            logs.publisher.removeObserver(observer)
            action()

    logs.publisher.addObserver(observer)


def cut_clients(w):
    """Cut every client of worker ``w`` off, as a dying worker does."""
    for client in list(w.clients):
        client.transport.abortConnection()


def check_failure(status, out, err, code, exit_status=1):
    assert status == exit_status, (out, err)
    body = j(out)
    assert body["error"] == code, body
    assert "Traceback" not in err and "Error(" not in err and "b'" not in err, err
    return body


# --- 1. interrupts ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig, status", [("INT", 130), ("TERM", 143)])
@pytest_twisted.ensureDeferred
async def test_an_interrupt_stops_watch_quietly(cluster, sig, status):
    d = cluster
    await register_and_login(d)
    proc = spawn_cli(d, "watch", "AAPL")
    await proc.wait_for("Ctrl-C to stop")
    await d.tick()
    await proc.wait_for("AAPL ")  # a price line
    proc.transport.signalProcess(sig)
    assert await ended(proc) == status
    assert b"Traceback" not in proc.stderr
    assert b"papertrader:" not in proc.stderr  # no error, no "moving to another worker"


@pytest.mark.parametrize("sig, status, as_json", [("INT", 130, True), ("TERM", 143, False)])
@pytest_twisted.ensureDeferred
async def test_an_interrupted_buy_wait_shows_its_order_and_how_to_follow_it(cluster, sig, status, as_json):
    d = cluster
    await register_and_login(d)
    proc = spawn_cli(d, *(["--json"] if as_json else []), "buy", "AAPL", "2", "--wait")
    await proc.wait_for("waiting until it is filled or ends")
    proc.transport.signalProcess(sig)
    assert await ended(proc) == status
    [(order_id,)] = await d.master.db.query("SELECT id FROM orders")
    if as_json:
        order = j(proc.stdout)  # exactly one JSON value: the order
        assert (order["id"], order["status"]) == (order_id, "new")
    else:
        assert re.search(rb"^id:\s+%d$" % order_id, proc.stdout, re.M), proc.stdout
    assert f"papertrader order {order_id} --wait".encode() in proc.stderr
    assert b"Traceback" not in proc.stderr
    # Stopping the wait did not cancel the order: the next update fills it, and 'order ID' says so.
    await d.tick()
    status, out, err = await d.cli("order", str(order_id), user="alice")
    assert status == 0, err
    assert j(out)["status"] == "filled"


@pytest_twisted.ensureDeferred
async def test_ctrl_c_at_a_password_prompt_stops_at_once(cluster):
    d = cluster
    # A real terminal: the password is asked on it (with --json, the one JSON value says what happened).
    proc = spawn_cli(d, "--json", "login", "alice", pty=True)
    await proc.wait_for("Password: ")
    proc.transport.write(b"\x03")  # Ctrl-C typed at that terminal
    assert await ended(proc) == 130
    assert b"Traceback" not in proc.output
    assert j(proc.output.split(b"Password: ", 1)[1].strip()) == {"error": "interrupted",
                                                                 "message": "interrupted (SIGINT)"}


@pytest.mark.parametrize("argv, said", [
    (["register", "al", "al@example.com"], "username must be 3-24 characters"),
    (["register", "alice smith", "alice@example.com"], "username must be 3-24 characters"),
    (["register", "alice", "alice.example.com"], "email address is not valid"),
])
@pytest_twisted.ensureDeferred
async def test_register_refuses_a_malformed_username_or_email_before_asking_for_a_password(cluster, argv, said):
    """At a real terminal, a username or email that can never be accepted is said at once: not after the
    password was typed twice."""
    d = cluster
    proc = spawn_cli(d, "--json", *argv, pty=True)
    assert await ended(proc) == 1
    assert b"Password" not in proc.output and b"Traceback" not in proc.output, proc.output
    body = j(next(line for line in proc.output.splitlines() if line.startswith(b"{")))
    assert body["error"] == "invalid_input" and said in body["message"], body
    assert (await d.master.db.query("SELECT COUNT(*) FROM accounts"))[0][0] == 0


@pytest.mark.parametrize("typed, code, said", [
    (b"short", "weak_password", "password must be at least 8 characters"),
    (b"password123", "weak_password", "that password is too common"),
])
@pytest_twisted.ensureDeferred
async def test_a_new_password_that_can_never_do_is_refused_before_it_is_typed_again(cluster, typed, code, said):
    """register, and passwd's new password: the rules were checked only after the password had been typed twice."""
    d = cluster
    proc = spawn_cli(d, "--json", "register", "alice", "alice@example.com", pty=True)
    await proc.wait_for("Password: ")
    proc.transport.write(typed + b"\r")
    assert await ended(proc) == 1
    assert b"Repeat" not in proc.output and b"Traceback" not in proc.output, proc.output
    body = j(next(line for line in proc.output.splitlines() if line.startswith(b"{")))
    assert body["error"] == code and said in body["message"], body
    assert (await d.master.db.query("SELECT COUNT(*) FROM accounts"))[0][0] == 0

    await register_and_login(d)
    proc = spawn_cli(d, "--json", "passwd", pty=True)
    await proc.wait_for("Current password: ")
    proc.transport.write(b"correct horse\r")
    await proc.wait_for("New password: ")
    proc.transport.write(typed + b"\r")
    assert await ended(proc) == 1
    assert b"Repeat" not in proc.output, proc.output
    body = j(next(line for line in proc.output.splitlines() if line.startswith(b"{")))
    assert body["error"] == code and said in body["message"], body


async def portfolio_state(d, name):
    """(generation, open orders) of alice's portfolio ``name``."""
    status, out, _ = await d.cli("portfolio", "list", user="alice")
    generation = next(p["generation"] for p in j(out) if p["name"] == name)
    status, out, _ = await d.cli("orders", "--status", "open", "--portfolio", name, user="alice")
    return generation, len(j(out))


@pytest_twisted.ensureDeferred
async def test_a_reset_at_a_terminal_asks_first_and_only_yes_goes_on(cluster):
    d = cluster
    await register_and_login(d)
    await d.cli("portfolio", "create", "Swing", user="alice")
    await d.cli("buy", "AAPL", "1", "--limit", "1.00", "--tif", "gtc", "--portfolio", "Swing", user="alice")
    question = (b"Reset portfolio 'Swing'? Its open orders are canceled and its history archived; it starts again"
                b" with its starting cash. [y/N] ")
    for answer in (b"n", b""):  # a real terminal; Enter alone is no
        proc = spawn_cli(d, "portfolio", "reset", "Swing", pty=True)
        await proc.wait_for(question)
        proc.transport.write(answer + b"\n")
        assert await ended(proc) == 1
        assert proc.output.rstrip().endswith(b"papertrader: not confirmed; nothing was changed"), proc.output
        assert await portfolio_state(d, "Swing") == (0, 1)
    proc = spawn_cli(d, "portfolio", "reset", "Swing", pty=True)
    await proc.wait_for(question)
    proc.transport.write(b"Yes\n")
    assert await ended(proc) == 0
    assert b"Portfolio 'Swing' reset: 1 open order canceled" in proc.output and b"Traceback" not in proc.output
    assert await portfolio_state(d, "Swing") == (1, 0)


@pytest_twisted.ensureDeferred
async def test_ctrl_c_at_a_confirmation_stops_at_once_and_changes_nothing(cluster):
    d = cluster
    await register_and_login(d)
    status, out, err = await d.cli("game", "create", "Spring Cup", "--start", "2026-09-01", "--end", "2030-12-31",
                                   "--cash", "10000", user="alice")
    assert status == 0, err
    # (nobody plays in it: it has no ranking to become final, and the question says so)
    question = b"End game 'Spring Cup' now? Nobody plays in it: it ends with no ranking. [y/N] "
    proc = spawn_cli(d, "--json", "game", "end", "Spring Cup", pty=True)
    await proc.wait_for(question)
    proc.transport.write(b"\x03")  # Ctrl-C typed at that terminal
    assert await ended(proc) == 130
    assert b"Traceback" not in proc.output
    last = proc.output.strip().splitlines()[-1]
    assert last.startswith(b"{"), proc.output
    assert j(last) == {"error": "interrupted", "message": "interrupted (SIGINT)"}
    status, out, _ = await d.cli("game", "show", "Spring Cup", user="alice")
    assert j(out)["status"] != "ended"
    # Asked again, y (any case) ends it.
    proc = spawn_cli(d, "game", "end", "Spring Cup", pty=True)
    await proc.wait_for(question)
    proc.transport.write(b"Y\n")
    assert await ended(proc) == 0
    assert b"Spring Cup ended; nobody played in it, so it has no ranking." in proc.output
    status, out, _ = await d.cli("game", "show", "Spring Cup", user="alice")
    assert j(out)["status"] == "ended"
    # Played in but not ranked by any update yet: it said "Its final ranking is the last market update's" (there
    # was none); the next update makes it, as its answer and `game leaderboard` say.
    status, out, err = await d.cli("game", "create", "Summer Cup", "--start", "2026-09-01", "--end", "2030-12-31",
                                   "--cash", "10000", user="alice")
    assert status == 0, err
    await register_and_login(d, "bob")
    assert (await d.cli("game", "join", "Summer Cup", user="bob"))[0] == 0
    proc = spawn_cli(d, "game", "end", "Summer Cup", pty=True)
    await proc.wait_for(b"End game 'Summer Cup' now? No market update has ranked it yet: the next one makes its final"
                        b" ranking. [y/N] ")
    proc.transport.write(b"y\n")
    assert await ended(proc) == 0
    assert (b"Summer Cup ended before any market update ranked it: the next market update makes its final ranking."
            in proc.output), proc.output
    # A game that has not started is not said to have a final ranking, asked or told.
    status, out, err = await d.cli("game", "create", "Next Year", "--start", "2035-01-01", "--end", "2035-12-31",
                                   "--cash", "10000", user="alice")
    assert status == 0, err
    proc = spawn_cli(d, "game", "end", "Next Year", pty=True)
    await proc.wait_for(b"End game 'Next Year' now? It has not started: it ends without any trading. [y/N] ")
    proc.transport.write(b"y\n")
    assert await ended(proc) == 0
    assert b"Next Year ended before it started: no one traded in it." in proc.output


# --- 2. a worker that dies or stops during a command --------------------------------------------------------------


@pytest.mark.parametrize("sig", ["KILL", "TERM"])
@pytest_twisted.ensureDeferred
async def test_buy_wait_carries_on_when_its_worker_process_dies(deployment, sig):
    d = deployment
    await register_and_login(d)
    w3 = await worker_process(d, "w3")
    try:
        status, out, err = await d.cli("--worker", "w3", "whoami", user="alice")
        assert j(out)["worker"] == "w3"  # the client goes back to w3 from now on
        queued = wait_for_log(d.master.logs, "accepted: buy")
        buying = defer.ensureDeferred(d.cli("buy", "AAPL", "1", "--wait", user="alice"))
        await bounded(queued)
        w3.transport.signalProcess(sig)
        await bounded(w3.ended)
        await d.tick()
        status, out, err = await bounded(buying)
        assert status == 0, err
        order = j(out)
        assert order["status"] == "filled"
        assert "moving to another worker" in err and "Traceback" not in err
        # Exactly one order, filled once.
        assert (await d.master.db.query("SELECT COUNT(*) FROM orders"))[0][0] == 1
        assert (await d.master.db.query("SELECT COUNT(*) FROM transactions"))[0][0] == 1
    finally:
        await stop_process(w3)


@pytest_twisted.ensureDeferred
async def test_watch_moves_on_when_its_worker_process_is_killed(cluster):
    d = cluster
    await register_and_login(d)
    w3 = await worker_process(d, "w3")
    try:
        await d.cli("--worker", "w3", "whoami", user="alice")
        moved = defer.DeferredList([wait_for_log(worker(d, n).logs, "watches AAPL") for n in ("worker1", "worker2")],
                                   fireOnOneCallback=True, consumeErrors=True)
        watching = defer.ensureDeferred(d.cli("watch", "AAPL", "--count", "1", user="alice"))
        await w3.wait_for("watches AAPL")
        w3.transport.signalProcess("KILL")
        await bounded(w3.ended)
        await bounded(moved)
        await d.tick()
        status, out, err = await bounded(watching)
        assert status == 0, err
        assert j(out)["symbol"] == "AAPL"
        assert "moving to another worker" in err and "Traceback" not in err
    finally:
        await stop_process(w3)


@pytest_twisted.ensureDeferred
async def test_watch_waits_through_a_master_restart_and_goes_on(cluster):
    """The master restarts (its workers lose their link, no worker list can be had): watch says so once and
    waits, then goes on watching through a worker once the master is back."""
    from twisted.internet import endpoints

    from tests.conftest import until

    d = cluster
    await register_and_login(d)
    proc = spawn_cli(d, "watch", "AAPL")
    try:
        await proc.wait_for("watching via worker")
        listener = d.master.listener
        port = listener.port.getHost().port
        await listener.stopService()
        for linked in list(d.master.workers.linked.values()):
            linked.protocol.transport.abortConnection()
        await proc.wait_for("trying again every")
        assert not proc.ended.called  # still watching, not 'cannot reach the master' and exit 1
        # The first worker back is enough; the others' waits are then given up (consumeErrors: their end is no
        # error, which would otherwise surface in a later test when collected).
        waits = [wait_for_log(d.master.logs, f"worker {w.name} linked") for w in d.cluster.workers]
        relinked = defer.DeferredList(waits, fireOnOneCallback=True, consumeErrors=True)
        listener.endpoint = endpoints.serverFromString(reactor, tls.listen_description(
            port, "127.0.0.1", os.path.join(d.data_dir, files.MASTER_CERT)))
        listener.startService()
        await bounded(relinked)
        for wait in waits:
            wait.cancel()
        await until(lambda: proc.stderr.count(b"watching via worker") == 2, "watch to subscribe again", BOUND)
        await d.tick()
        await until(lambda: b"AAPL" in proc.stdout, "a price after the restart", BOUND)
        assert proc.stderr.count(b"trying again every") == 1 and b"Traceback" not in proc.stderr
    finally:
        if not proc.ended.called:
            proc.transport.signalProcess("INT")
    assert await ended(proc) == 130


@pytest_twisted.ensureDeferred
async def test_watch_orders_stops_when_its_session_ends_elsewhere(cluster):
    """logout --all (a lost laptop): a watch of the account's order events running with one of its sessions
    stops getting them and ends with not_logged_in, whichever worker it is on; a price watch goes on."""
    d = cluster
    await register_and_login(d)
    status, out, err = await d.cli("login", "alice", "--password-stdin", stdin="correct horse\n", user="alice-phone")
    assert status == 0, err  # a second device (its own config dir), from which the other sessions are ended
    subscribed = wait_for_log(worker(d, "worker1").logs, "watches the order events of alice")
    orders = spawn_cli(d, "--json", "--worker", "worker1", "watch", "--orders")
    prices = spawn_cli(d, "--worker", "worker1", "watch", "AAPL", user="bob")
    try:
        await bounded(subscribed)
        await prices.wait_for("watching via worker")
        status, out, err = await d.cli("logout", "--all", user="alice-phone")
        assert status == 0, err
        assert await ended(orders) == 1
        body = j(orders.stdout.decode().strip().splitlines()[-1])
        assert body["error"] == "not_logged_in" and "session ended" in body["message"], (body, orders.stderr)
        assert b"Traceback" not in orders.stderr
        assert not prices.ended.called and len(worker(d, "worker1").order_fanout) == 0
    finally:
        for proc in (orders, prices):
            if not proc.ended.called:
                proc.transport.signalProcess("INT")
                await ended(proc)


@pytest_twisted.ensureDeferred
async def test_an_order_whose_answer_is_lost_is_made_once_through_another_worker(deployment):
    d = deployment
    await register_and_login(d)
    await d.cli("--worker", "worker1", "whoami", user="alice")
    # worker1 dies right after the master made the order, before its answer reaches the client.
    on_log(d.master.logs, "accepted: buy", lambda: cut_clients(worker(d, "worker1")))
    status, out, err = await d.cli("buy", "AAPL", "3", user="alice")
    assert status == 0, err
    order = j(out)
    assert "moving to another worker: worker2" in err
    [(order_id, worker_name)] = await d.master.db.query("SELECT id, worker FROM orders")
    assert order["id"] == order_id and worker_name == "worker1"  # made once, by the first attempt


@pytest_twisted.ensureDeferred
async def test_a_replace_whose_answer_is_lost_is_done_once_through_another_worker(deployment):
    """Carried on through another worker without a client order id, a replace found its order replaced already
    and said so (an error for what was done); it now carries one and answers the order it made."""
    d = deployment
    await register_and_login(d)
    status, out, err = await d.cli("buy", "AAPL", "3", "--limit", "1.00", "--tif", "gtc", user="alice")
    assert status == 0, err
    original = j(out)["id"]
    await d.cli("--worker", "worker1", "whoami", user="alice")
    on_log(d.master.logs, "replaced by", lambda: cut_clients(worker(d, "worker1")))
    status, out, err = await d.cli("replace", str(original), "--limit", "2.00", user="alice")
    assert status == 0, err
    assert "moving to another worker: worker2" in err
    rows = await d.master.db.query("SELECT id FROM orders WHERE replaces = ?", (original,))
    assert [j(out)["id"]] == [r[0] for r in rows]  # made once, answered


@pytest_twisted.ensureDeferred
async def test_a_pinned_worker_that_fails_mid_order_is_reported_with_the_way_to_find_out(deployment):
    d = deployment
    await register_and_login(d)
    on_log(d.master.logs, "accepted: buy", lambda: cut_clients(worker(d, "worker1")))
    status, out, err = await d.cli("--worker", "worker1", "buy", "AAPL", "3", "--client-order-id", "pinned-1",
                                   user="alice")
    body = check_failure(status, out, err, "worker_failed")
    assert body["client_order_id"] == "pinned-1"
    assert "--client-order-id pinned-1" in body["message"] and "may have been made" in body["message"]
    assert "moving" not in err and err.count("\n") == 1
    # Doing what it says finds the order it made, and makes no second one.
    status, out, err = await d.cli("buy", "AAPL", "3", "--client-order-id", "pinned-1", user="alice")
    assert status == 0, err
    [(order_id,)] = await d.master.db.query("SELECT id FROM orders")
    assert j(out)["id"] == order_id


@pytest_twisted.ensureDeferred
async def test_a_pinned_worker_that_shuts_down_stops_watch_without_pretending_to_move(cluster):
    d = cluster
    await register_and_login(d)
    subscribed = wait_for_log(worker(d, "worker2").logs, "watches AAPL")
    watching = defer.ensureDeferred(d.cli("--worker", "worker2", "watch", "AAPL", user="alice"))
    await bounded(subscribed)
    await worker(d, "worker2").stopService()
    status, out, err = await bounded(watching)
    body = check_failure(status, out, err, "worker_failed")
    assert "worker2 is shutting down" in body["message"] and "--worker worker2" in body["message"]
    assert "moving" not in err


@pytest_twisted.ensureDeferred
async def test_a_pinned_worker_that_shuts_down_during_buy_wait_leaves_the_order_shown(cluster):
    d = cluster
    await register_and_login(d)
    proc = spawn_cli(d, "--json", "--worker", "worker2", "buy", "AAPL", "1", "--wait")
    await proc.wait_for("waiting until it is filled or ends")
    await worker(d, "worker2").stopService()
    assert await ended(proc) == cli.ORDER_OPEN
    order = j(proc.stdout)
    assert order["status"] == "new"
    err = proc.stderr.decode()
    assert "worker2 is shutting down" in err and f"papertrader order {order['id']} --wait" in err
    assert "moving" not in err and "Traceback" not in err


@pytest_twisted.ensureDeferred
async def test_buy_wait_keeps_trying_while_no_worker_answers_then_shows_the_order(cluster):
    d = cluster
    await register_and_login(d)
    proc = spawn_cli(d, "--json", "buy", "AAPL", "1", "--wait", "--timeout", "3")
    await proc.wait_for("waiting until it is filled or ends")
    for w in d.cluster.workers:  # every worker dies
        await w.listener.stopService()
        cut_clients(w)
    assert await ended(proc) == cli.ORDER_OPEN
    order = j(proc.stdout)
    assert order["status"] == "new"
    err = proc.stderr.decode()
    assert "trying again until the --timeout" in err
    assert f"cannot follow order {order['id']} any more" in err and "Traceback" not in err


@pytest_twisted.ensureDeferred
async def test_every_worker_unreachable_is_said_once_with_each_reason(cluster):
    d = cluster
    await register_and_login(d)
    for w in d.cluster.workers:
        await w.listener.stopService()
    status, out, err = await d.cli("whoami", user="alice")
    body = check_failure(status, out, err, "unreachable")
    assert "worker1" in body["message"] and "worker2" in body["message"]
    assert "no other worker is available" in body["message"] and "moving" not in err


# --- 3 and 19. one JSON value; an exit status for an order that exists ------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_rejected_order_is_one_json_value_and_exit_3(deployment):
    d = deployment
    await register_and_login(d)
    status, out, err = await d.cli("buy", "AAPL", "1", "--client-order-id", "r-1", user="alice")
    assert status == 0, err
    # The market step rejects it: the cash is gone by then (as after a price jump).
    await d.master.db.execute("UPDATE portfolios SET cash_cents = 0")
    await d.tick()
    for argv in (["buy", "AAPL", "1", "--client-order-id", "r-1"],  # the id sent again
                 ["buy", "AAPL", "1", "--client-order-id", "r-1", "--wait"],
                 ["order", str(j(out)["id"])]):
        status, out2, err = await d.cli(*argv, user="alice")
        assert status == cli.ORDER_ENDED, (argv, err)
        order = j(out2)  # the order, with its status and reason: no error object after it
        assert (order["status"], order["reason_code"]) == ("rejected", "insufficient_funds")
        assert err.count("\n") == 1 and "rejected" in err
    # A refusal where no order is made is another status.
    status, out, err = await d.cli("buy", "AAPL", "1", user="alice")
    check_failure(status, out, err, "insufficient_funds")


@pytest_twisted.ensureDeferred
async def test_wait_running_out_is_one_json_value_and_exit_4(cluster):
    d = cluster
    await register_and_login(d)
    status, out, err = await d.cli("buy", "AAPL", "1", "--wait", "--timeout", "0.5", user="alice")
    assert status == cli.ORDER_OPEN, err
    order = j(out)
    assert order["status"] == "new"
    assert f"still open after 0.5 seconds" in err and f"papertrader order {order['id']} --wait" in err


@pytest_twisted.ensureDeferred
async def test_the_way_to_follow_an_order_of_another_portfolio_names_that_portfolio(cluster):
    """An order placed with --portfolio is followed in that portfolio: the command the message gives works as
    typed (without --portfolio it would look in the portfolio commands trade, and find no such order)."""
    d = cluster
    await register_and_login(d)
    status, out, err = await d.cli("portfolio", "create", "Long term", "--cash", "5000", user="alice")
    assert status == 0, err
    status, out, err = await d.cli("buy", "AAPL", "1", "--portfolio", "Long term", "--wait", "--timeout", "0.5",
                                   user="alice")
    assert status == cli.ORDER_OPEN, err
    order = j(out)
    follow = f"papertrader order {order['id']} --wait --portfolio 'Long term'"
    assert f"follow it with '{follow}'" in err, err
    status, out, err = await d.cli(*shlex.split(follow)[1:], "--timeout", "0.5", user="alice")  # as typed
    assert status == cli.ORDER_OPEN and j(out)["id"] == order["id"], (out, err)


# --- 4. every failure has a documented code -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_config_dir_that_is_a_file_is_a_config_error_and_leaves_no_session(cluster):
    d = cluster
    await register_and_login(d, user="bob")
    home = os.path.join(d.home, "alice")
    os.makedirs(home)
    with open(os.path.join(home, "papertrader"), "w") as f:
        f.write("not a directory")
    status, out, err = await d.cli("register", "alice", "alice@example.com", "--password-stdin",
                                   stdin="correct horse\n", user="alice")
    assert status == 0, err  # remembering the worker is only a preference
    sessions = (await d.master.db.query("SELECT COUNT(*) FROM sessions"))[0][0]
    status, out, err = await d.cli("login", "alice", "--password-stdin", stdin="correct horse\n", user="alice")
    body = check_failure(status, out, err, "config_error")
    assert os.path.join(home, "papertrader") in body["message"] and "is a file" in body["message"]
    # The session it could not keep was ended on the master: nothing half-done.
    assert (await d.master.db.query("SELECT COUNT(*) FROM sessions"))[0][0] == sessions
    status, out, err = await d.cli("whoami", user="alice")
    check_failure(status, out, err, "config_error")


@pytest_twisted.ensureDeferred
async def test_a_damaged_session_file_means_log_in_again(cluster):
    d = cluster
    await register_and_login(d)
    path = os.path.join(d.home, "alice", "papertrader", "session.json")
    for content in (json.dumps({"token": "A" * 100_000}), "{not json", json.dumps(["token"]), "[" * 50_000):
        with open(path, "w") as f:
            f.write(content)
        status, out, err = await d.cli("whoami", user="alice")
        body = check_failure(status, out, err, "not_logged_in")
        assert "damaged" in body["message"] and "papertrader login" in body["message"]


@pytest_twisted.ensureDeferred
async def test_a_session_ended_elsewhere_says_how_to_log_in_again(cluster):
    """A session that ended (logout --all on another machine, a password change, its 24 hours) is met by the
    next command: the message says what to type, with the username the session was for."""
    d = cluster
    await register_and_login(d)
    status, out, err = await d.cli("login", "alice", "--password-stdin", stdin="correct horse\n", user="laptop")
    assert status == 0, err
    status, out, err = await d.cli("logout", "--all", user="laptop")
    assert status == 0, err
    for argv in (["portfolio"], ["buy", "AAPL", "1"], ["orders"]):
        status, out, err = await d.cli(*argv, user="alice")
        body = check_failure(status, out, err, "not_logged_in")
        assert body["message"].endswith("log in again with 'papertrader login alice'"), body
        status, out, err = await d.cli(*argv, user="alice", json=False)
        assert status == 1 and err.endswith("log in again with 'papertrader login alice'\n"), err
    # Logged in again as it says, the command works.
    status, out, err = await d.cli("login", "alice", "--password-stdin", stdin="correct horse\n", user="alice")
    assert status == 0, err
    status, out, err = await d.cli("portfolio", user="alice")
    assert status == 0, err


@pytest_twisted.ensureDeferred
async def test_arguments_amp_cannot_carry_are_invalid_input(cluster):
    d = cluster
    await register_and_login(d)
    for argv in (["quote", "A" * 70_000], ["quote", "AAPL\udcff"], ["buy", "AAPL", "1", "--client-order-id",
                                                                     "x" * 70_000]):
        status, out, err = await d.cli(*argv, user="alice")
        check_failure(status, out, err, "invalid_input")


# --- 5. messages that say what happened, quickly --------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_master_option_pointed_at_a_worker_says_so(cluster):
    d = cluster
    port = worker(d, "worker1").listener.port.getHost().port
    status, out, err = await d.cli("--master", f"localhost:{port}", "workers")
    body = check_failure(status, out, err, "wrong_server")
    assert "not a PaperTrader master" in body["message"] and "UNHANDLED" not in err


@pytest_twisted.ensureDeferred
async def test_master_option_pointed_at_a_workers_https_port_says_so_at_once(cluster):
    """A worker's website and HTTP API listener speaks TLS with the deployment's CA, then waits for an HTTP
    request line: the client makes it answer at once, and says it is not the master (not a 30 s timeout)."""
    from papertrader.master.files import WORKER_CERT
    from papertrader.tls import _escape
    from papertrader.worker.http.service import http_service

    d = cluster
    w = worker(d, "worker1")
    cert = os.path.join(w.data_dir, WORKER_CERT)
    service = http_service(w, reactor, f"ssl:0:interface=127.0.0.1:privateKey={_escape(cert)}:"
                                       f"certKey={_escape(cert)}", cert, d.master.settings)
    service.startService()
    try:
        port = await bounded(service.whenListening(), 15)
        started = reactor.seconds()
        # 15 s bounds a client that waits for its 30 s answer timeout.
        status, out, err = await bounded(d.cli("--master", f"localhost:{port}", "workers", json=False), 15)
        assert status == 1 and out == "" and reactor.seconds() - started < 15
        assert err == (f"papertrader: localhost:{port} is not a PaperTrader master: it answers HTTP (a worker's"
                       " website and HTTP API port?): give the master's HOST:PORT with --master or"
                       " PAPERTRADER_MASTER (its port is 2048 unless set otherwise)\n")
        status, out, err = await bounded(d.cli("--master", f"localhost:{port}", "workers"), 15)
        assert check_failure(status, out, err, "wrong_server")
        # The master itself still answers the client as before.
        status, out, err = await d.cli("workers")
        assert status == 0 and {w["name"] for w in j(out)} == {"worker1", "worker2"}, err
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_watch_of_an_unknown_symbol_names_the_traded_ones_as_quote_does(cluster):
    d = cluster
    said = {}
    for command in ("quote", "watch"):
        status, out, err = await bounded(d.cli(command, "ZZZZ", json=False), 15)
        assert status == 1 and out == "", (command, out, err)
        said[command] = err
    assert said["watch"] == said["quote"] == ("papertrader: unknown symbol 'ZZZZ': traded symbols are AAPL, MSFT,"
                                              " TSLA\n")
    status, out, err = await bounded(d.cli("watch", "AAPL", "zzzz"), 15)
    assert check_failure(status, out, err, "unknown_symbol")["message"] == (
        "unknown symbol 'ZZZZ': traded symbols are AAPL, MSFT, TSLA")
    # A typo names the one meant first, at the worker (its quotes) as at the master (tests/test_validation.py).
    status, out, err = await bounded(d.cli("quote", "APPL"), 15)
    assert check_failure(status, out, err, "unknown_symbol")["message"] == (
        "unknown symbol 'APPL': did you mean AAPL? traded symbols are AAPL, MSFT, TSLA")


@pytest_twisted.ensureDeferred
async def test_quote_of_several_symbols_a_line_each_and_each_refusal_named(cluster):
    """'quote AAPL MSFT' was a usage error (one symbol): now a line per symbol, and a refused one says which."""
    d = cluster
    status, out, err = await bounded(d.cli("quote", "AAPL", "msft", json=False), 15)
    assert status == 0 and err == "", err
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["SYMBOL", "NAME", "PRICE"] and [r.split()[0] for r in rows] == ["AAPL", "MSFT"]
    status, out, err = await bounded(d.cli("quote", "AAPL", "APPL", "TSLA,msft", json=False), 15)
    assert status == 1 and [r.split()[0] for r in out.splitlines()[1:]] == ["AAPL", "TSLA", "MSFT"], out
    assert err == ("papertrader: APPL: unknown symbol: did you mean AAPL?\n"
                   "papertrader: traded symbols are AAPL, MSFT, TSLA\n")
    status, out, err = await bounded(d.cli("quote", "AAPL", "APPL", "aapl"), 15)  # (AAPL once)
    assert status == 1, err
    good, bad = j(out)
    assert good["symbol"] == "AAPL" and "price" in good
    assert bad == {"symbol": "APPL", "error": "unknown_symbol",
                   "message": "unknown symbol 'APPL': did you mean AAPL? traded symbols are AAPL, MSFT, TSLA"}
    # Several unknown: each named once, the traded symbols listed once (they were repeated on every line).
    status, out, err = await bounded(d.cli("quote", "NOPE", "AAPL", "ZZZZ", json=False), 15)
    assert status == 1 and [r.split()[0] for r in out.splitlines()[1:]] == ["AAPL"], out
    assert err == ("papertrader: NOPE: unknown symbol\npapertrader: ZZZZ: unknown symbol\n"
                   "papertrader: traded symbols are AAPL, MSFT, TSLA\n")
    status, out, err = await bounded(d.cli("quote", "NOPE", "ZZZZ", json=False), 15)
    assert (status, out, err.count("\n")) == (1, "", 3) and err.startswith("papertrader: NOPE: unknown symbol\n")
    status, out, err = await bounded(d.cli("quote", "AAPL"), 15)  # one symbol: one object, as before
    assert status == 0 and j(out)["symbol"] == "AAPL"


class Silent(protocol.Protocol):
    """Accepts connections and never says a word."""


class Banner(protocol.Protocol):
    """Speaks another protocol (an SSH server's greeting) and waits."""

    def connectionMade(self):
        self.transport.write(b"SSH-2.0-OpenSSH_9.6\r\n")


@pytest.mark.parametrize("server, code", [(Silent, "unreachable"), (Banner, "wrong_server")])
@pytest_twisted.ensureDeferred
async def test_a_server_that_does_not_speak_tls_fails_fast(cluster, server, code):
    d = cluster
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(server), interface="127.0.0.1")
    try:
        started = reactor.seconds()
        # 15 s bounds a client that waits for its 30 s answer timeout instead of the TLS handshake's few.
        status, out, err = await bounded(d.cli("--master", f"localhost:{port.getHost().port}", "workers"), 15)
        body = check_failure(status, out, err, code)
        assert "TLS" in body["message"]
        assert reactor.seconds() - started < 15
    finally:
        await port.stopListening()


async def worker_with_a_certificate_for_another_host(d, tmp_path, name, region):
    """A registered worker whose certificate is valid for another host name than the one clients use."""
    bundle = str(tmp_path / name)
    armor = files.make_worker_bundle(d.data_dir, name, (), bundle)
    await d.master.workers.register(name, armor)
    ca = tls.CertificateAuthority.ensure(d.data_dir)
    cert = os.path.join(bundle, files.WORKER_CERT)
    ca.issue(f"PaperTrader worker {name}", ["eu1.example.com"], cert)
    linked = wait_for_log(d.master.logs, f"worker {name} linked")
    w = Worker(bundle, name, ("localhost", d.master_port), d.master.settings, reactor,
               listen=tls.listen_description(0, "127.0.0.1", cert), clock=d.clock, region=region)
    w.startService()
    await bounded(linked)
    return w


@pytest_twisted.ensureDeferred
async def test_a_worker_whose_certificate_does_not_match_its_host_is_a_bad_certificate(cluster, tmp_path):
    d = cluster
    await register_and_login(d)
    w = await worker_with_a_certificate_for_another_host(d, tmp_path, "w3", "far")
    try:
        status, out, err = await d.cli("--worker", "w3", "whoami", user="alice")
        body = check_failure(status, out, err, "bad_certificate")
        assert "not valid for the host name 'localhost'" in body["message"]
        assert "VerificationError" not in err
        # Unpinned, it is skipped like an unreachable one, and the user is told.
        status, out, err = await d.cli("--region", "far", "whoami", user="alice")
        assert status == 0, err
        assert j(out)["worker"] != "w3"
        assert "w3" in err and "not valid for the host name" in err
    finally:
        await w.stopService()


@pytest_twisted.ensureDeferred
async def test_a_master_address_whose_certificate_does_not_fit_says_to_check_master(cluster, tmp_path):
    """--master with the master's name but a worker's port (2050 for 2048), whose certificate names the worker's
    own host: the client said only "the deployment's operator must give it a certificate for that name", sending a
    user who mistyped the port to the operator."""
    d = cluster
    w = await worker_with_a_certificate_for_another_host(d, tmp_path, "w4", "far")
    try:
        port = w.listener.port.getHost().port
        status, out, err = await d.cli("--master", f"localhost:{port}", "workers")
        body = check_failure(status, out, err, "bad_certificate")
        assert body["message"] == (f"the master at localhost:{port} has a certificate that is not valid for the host"
                                   " name 'localhost': check --master (PAPERTRADER_MASTER): the master's name and"
                                   " port as its operator gives them (a worker's port has a certificate of its"
                                   " own); if they are right, the operator must give the master a certificate for"
                                   " that name"), body["message"]
    finally:
        await w.stopService()


# --- 7. option checks --------------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_bad_option_values_are_refused_clearly_and_consistently(cluster):
    d = cluster
    await register_and_login(d)
    cases = [
        (["buy", "AAPL", "1", "--timeout", "-5"], "--timeout"),
        (["buy", "AAPL", "1", "--timeout", "0"], "--timeout"),
        (["buy", "AAPL", "1", "--wait", "--timeout", "nan"], "--timeout"),
        (["buy", "AAPL", "1", "--wait", "--timeout", "inf"], "--timeout"),
        (["watch", "AAPL", "--count", "0"], "--count"),
        (["watch", "AAPL", "--count", "-3"], "--count"),
        (["buy", "AAPL", "1", "--client-order-id", ""], "client_order_id"),
        # A quantity is written as a price is: digits and one point.
        (["buy", "AAPL", "1_000"], "not a plain positive number"),
        (["buy", "AAPL", "1e3"], "not a plain positive number"),  # not 1,000 shares
        (["buy", "AAPL", "\u0661\u0660"], "not a plain positive number"),  # Arabic-Indic digits: 10 to Decimal
        (["sell", "AAPL", "\uff12"], "not a plain positive number"),  # a full-width 2
    ]
    for argv, words in cases:
        status, out, err = await d.cli(*argv, user="alice")
        body = check_failure(status, out, err, "invalid_input")
        assert words in body["message"], (argv, body)
    assert (await d.master.db.query("SELECT COUNT(*) FROM orders"))[0][0] == 0
    # A long unknown symbol is unknown wherever it is asked about.
    for argv in (["quote", "X" * 17], ["buy", "X" * 17, "1"], ["quote", "NOPE"]):
        status, out, err = await d.cli(*argv, user="alice")
        body = check_failure(status, out, err, "unknown_symbol")
        assert "traded symbols are" in body["message"]


@pytest_twisted.ensureDeferred
async def test_a_mistyped_option_names_the_one_meant_and_the_commands_help(cluster):
    """'--limt' is a usage error that says which option was meant and where the command's options are listed
    (not the top-level help, which lists commands), and nothing is done."""
    d = cluster
    await register_and_login(d)
    cases = [
        (["buy", "AAPL", "10", "--limt", "180"], "did you mean --limit?", "papertrader buy --help"),
        (["sell", "AAPL", "1", "--stop-lss", "170"], "did you mean --stop-loss?", "papertrader sell --help"),
        (["orders", "--stauts", "open"], "did you mean --status?", "papertrader orders --help"),
        (["game", "create", "Cup", "--start", "2024-01-02", "--end", "2024-02-01", "--cash", "100", "--prviate"],
         "did you mean --private?", "papertrader game create --help"),
        (["buy", "AAPL", "10", "extra"], "unrecognized arguments: extra", "papertrader buy --help"),
    ]
    for argv, meant, where in cases:
        status, out, err = await d.cli(*argv, user="alice")
        body = check_failure(status, out, err, "usage", exit_status=2)
        assert meant in body["message"] and f"(see '{where}')" in body["message"], (argv, body)
        assert "papertrader --help" not in body["message"], body
    assert (await d.master.db.query("SELECT COUNT(*) FROM orders"))[0][0] == 0


@pytest_twisted.ensureDeferred
async def test_a_mistyped_command_or_action_names_the_one_meant(cluster):
    """'papertrader postions' got argparse's "invalid choice: 'postions' (choose from 'register', 'login', ...
    29 commands)" and no hint, though a mistyped option or symbol names the one meant."""
    d = cluster
    cases = [
        (["postions"], "unknown command 'postions': did you mean 'positions'?", "papertrader --help"),
        (["portfolio", "lsit"], "unknown action 'lsit': did you mean 'list'?", "papertrader portfolio --help"),
        (["game", "leaderbord", "Cup"], "did you mean 'leaderboard'?", "papertrader game --help"),
    ]
    for argv, meant, where in cases:
        status, out, err = await d.cli(*argv, user="alice")
        body = check_failure(status, out, err, "usage", exit_status=2)
        assert meant in body["message"] and f"(see '{where}')" in body["message"], (argv, body)
        assert "choose from" not in body["message"], body  # the one meant, not all of them
    # Nothing like any: the choices are listed, as before.
    status, out, err = await d.cli("xyzzy", user="alice")
    body = check_failure(status, out, err, "usage", exit_status=2)
    assert "xyzzy" in body["message"] and "positions" in body["message"], body


@pytest_twisted.ensureDeferred
async def test_a_price_written_with_a_dollar_sign_or_thousands_commas_says_how_to_write_it(cluster):
    """$180.50 or 1,000 (as the README writes amounts) is refused, nothing made, and the message shows the number
    to type; a comma that is not a thousands separator (180,50) is not guessed at."""
    d = cluster
    await register_and_login(d)
    cases = [
        (["buy", "AAPL", "10", "--limit", "$180.50"], "limit price '$180.50'", "write it as 180.50"),
        (["buy", "AAPL", "1,000"], "quantity '1,000'", "write it as 1000"),
        (["buy", "AAPL", "--notional", "$1,000"], "notional '$1,000'", "write it as 1000"),
        (["sell", "AAPL", "1", "--stop", "$ 1,234.5"], "stop price '$ 1,234.5'", "write it as 1234.5"),
        (["portfolio", "create", "swing", "--cash", "$25,000.00"], "cash '$25,000.00'", "write it as 25000.00"),
    ]
    for argv, what, advice in cases:
        status, out, err = await d.cli(*argv, user="alice")
        body = check_failure(status, out, err, "invalid_input")
        assert body["message"] == f"{what} is not a plain positive number (digits and one point): {advice}", body
    for argv in (["buy", "AAPL", "10", "--limit", "180,50"], ["buy", "AAPL", "1,00"], ["buy", "AAPL", "$-5"]):
        status, out, err = await d.cli(*argv, user="alice")
        body = check_failure(status, out, err, "invalid_input")
        assert body["message"].endswith("is not a plain positive number (digits and one point)"), body
    assert (await d.master.db.query("SELECT COUNT(*) FROM orders"))[0][0] == 0


# --- 8 and 9. where --json may go; help for everything ---------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_global_options_may_follow_the_command(cluster):
    d = cluster
    await register_and_login(d)
    status, out, err = await d.cli("orders", "--json", user="alice", json=False)
    assert status == 0, err
    assert j(out) == []
    status, out, err = await d.cli("whoami", "--worker", "worker2", "--json", user="alice", json=False)
    assert j(out)["worker"] == "worker2"
    status, out, err = await d.cli("buy", "AAPL", "--json", user="alice", json=False)  # usage, still JSON
    assert status == 2 and j(out)["error"] == "usage"


def _actions(parser, prefix="papertrader"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield f"{prefix} COMMAND", action
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{prefix} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield f"{prefix} {(action.option_strings or [action.dest])[0]}", action


def test_every_argument_and_option_has_help_and_shows_its_default():
    undocumented, no_default = [], []
    for name, action in _actions(cli.build_parser()):
        if not action.help or action.help == argparse.SUPPRESS:
            undocumented.append(name)
            continue
        takes_a_value = action.option_strings and action.nargs != 0
        if takes_a_value and "default" not in action.help:
            no_default.append(name)
        if isinstance(action.default, (int, float)) and not isinstance(action.default, bool) and \
                f"default {action.default:g}" not in action.help:
            no_default.append(name)
    assert not undocumented
    assert not no_default


def test_help_is_printed_for_every_command(capsys):
    for command in cli.build_parser()._subparsers._group_actions[0].choices:
        assert cli.main([command, "--help"]) == 0
        assert "--json" in capsys.readouterr().out


# --- siblings -----------------------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_watch_stops_quietly_when_its_reader_goes_away(cluster):
    """``papertrader watch AAPL | head -1``: once nobody reads, it stops (141, as after SIGPIPE), quietly."""
    d = cluster
    await register_and_login(d)
    proc = spawn_cli(d, "watch", "AAPL")
    await proc.wait_for("Ctrl-C to stop")
    await d.tick()
    await proc.wait_for("AAPL ")
    proc.transport.closeChildFD(1)  # the reader of its stdout is gone
    await d.tick()
    await d.tick()
    assert await ended(proc) == 141
    assert b"Traceback" not in proc.stderr and b"Exception ignored" not in proc.stderr


@pytest_twisted.ensureDeferred
async def test_a_retried_command_that_may_have_been_done_says_so(cluster):
    d = cluster
    await register_and_login(d)
    await d.cli("--worker", "worker1", "whoami", user="alice")
    # worker1 fails right after the master made the account; the client sends Register again elsewhere.
    on_log(d.master.logs, "account carol registered", lambda: cut_clients(worker(d, "worker1")))
    status, out, err = await d.cli("register", "carol", "carol@example.com", "--password-stdin",
                                   stdin="long password\n", user="alice")
    body = check_failure(status, out, err, "username_taken")
    assert "may have been done" in body["message"]


@pytest_twisted.ensureDeferred
async def test_a_closed_standard_input_is_refused_not_a_crash(cluster):
    """``papertrader login alice --password-stdin <&-``: Python has no sys.stdin at all then."""
    d = cluster
    proc = CLIProcess()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **d.env("alice"))
    reactor.spawnProcess(proc, sys.executable, [sys.executable, "-m", "papertrader.client.cli", "--json", "login",
                                                "alice", "--password-stdin"],
                         env=env, path=os.getcwd(), childFDs={1: "r", 2: "r"})  # no fd 0
    status = await ended(proc)
    body = check_failure(status, proc.stdout.decode(), proc.stderr.decode(), "invalid_input")
    assert "no standard input" in body["message"]


@pytest_twisted.ensureDeferred
async def test_a_connection_closed_by_its_owner_fails_its_command_in_flight_with_a_typed_error(cluster):
    """A program that closes a Connection (stopping) while a command is on its way gets the command's typed
    error, at once, and the command is not carried on through another worker (the crash suite found a
    TypeError here: closing while a WatchOrders was being subscribed)."""
    from papertrader.client.connection import Connection
    from papertrader.errors import PaperTraderError
    from papertrader import commands

    with open(os.path.join(cluster.cluster.data_dir, "ca.pem"), "rb") as f:
        ca_pem = f.read()
    master = ("localhost", cluster.master.listener.port.getHost().port)
    for moment in ("while it opens", "once it was sent"):
        connection = Connection(reactor, master, ca_pem)
        if moment == "once it was sent":
            await bounded(connection.open())
        call = defer.ensureDeferred(connection.call(commands.WatchOrders, token="t" * 40))
        connection.close()
        with pytest.raises(PaperTraderError) as caught:
            await bounded(call)
        assert caught.value.code == "worker_failed", (moment, caught.value)
        assert connection.proto is None and connection.avoid == set(), moment
    # One command at a time on a connection: a second one before the first's answer is refused, clearly.
    connection = Connection(reactor, master, ca_pem)
    first = defer.ensureDeferred(connection.call(commands.WatchOrders, token="t" * 40))
    with pytest.raises(PaperTraderError) as caught:
        await bounded(connection.call(commands.WatchOrders, token="t" * 40))
    assert caught.value.code == "invalid_input" and "one command at a time" in caught.value.message
    with pytest.raises(PaperTraderError) as caught:
        await bounded(first)
    assert caught.value.code == "not_logged_in"  # the first went on, and was answered
    connection.close()


@pytest_twisted.ensureDeferred
async def test_without_a_terminal_a_password_prompt_says_to_use_password_stdin(tmp_path):
    """``echo PW | papertrader register ...`` from a cron job or a script (no terminal at all): one clear usage
    line, not Python's GetPassWarning and a password read back from the pipe."""
    import subprocess

    from twisted.internet import threads

    tls.CertificateAuthority.ensure(str(tmp_path / "ca"))
    ca = tmp_path / "ca" / tls.CA_CERT
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), XDG_CONFIG_HOME=str(tmp_path),
               PAPERTRADER_MASTER="localhost:9", PAPERTRADER_CA=str(ca))
    run = await threads.deferToThread(
        subprocess.run, [sys.executable, "-m", "papertrader.client.cli", "--json", "register", "alice",
                         "alice@example.com"],
        input="correct horse\n", capture_output=True, text=True, env=env, timeout=BOUND,
        start_new_session=True)  # a session of its own: no controlling terminal
    assert run.returncode == 2, run.stderr
    assert j(run.stdout) == {"error": "usage", "message": "no terminal to ask for the password on: give it on"
                                                          " standard input with --password-stdin"}
    assert "Warning" not in run.stderr and "Traceback" not in run.stderr


@pytest_twisted.ensureDeferred
async def test_an_ipv6_master_is_named_as_it_is_written(cluster):
    """--master '[::1]:PORT' (how an IPv6 address and port are written, and what --master reads) was named
    '::1:PORT' in the client's messages, which --master does not take back."""
    import socket

    d = cluster
    probe = socket.socket(socket.AF_INET6)
    try:
        probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    closed = probe.getsockname()[1]
    probe.close()
    status, out, err = await bounded(d.cli("--master", f"[::1]:{closed}", "workers", json=False), 15)
    assert status == 1 and f"the master at [::1]:{closed}" in err and f" ::1:{closed}" not in err, err
