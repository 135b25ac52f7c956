"""The crash suite's short run, on SQLite and PostgreSQL: 20 SIGKILLs of real processes while users trade.

A real master and two workers run as ``twistd`` processes; three users trade every order type and time in
force over the real client connection (some orders refused, resent, canceled, replaced); the master, a
worker or everything is killed with SIGKILL 20 times at moments a seed chooses, and restarted.  Then every
account's orders, fills, cash and positions are checked in the database against what the clients were told,
and every log for a traceback (``tests/crash_harness.py`` lists the checks).  The seed is random unless
``PAPERTRADER_CRASH_SEED`` is set; a failure names it and the command that replays it (``bench/crash_suite.py``
runs the long version).
"""

import os
import secrets

import pytest
import pytest_twisted
from twisted.internet import reactor

from papertrader.master.db import Database
from tests import crash_harness

KILLS = int(os.environ.get("PAPERTRADER_CRASH_KILLS", "20"))


@pytest.mark.timeout(360)  # the run is cancelled at 355 s, killing its processes
@pytest_twisted.ensureDeferred
async def test_no_acknowledged_order_is_lost_or_doubled_and_the_books_balance_after_sigkills(
        tmp_path, database_url):
    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    seed = int(os.environ.get("PAPERTRADER_CRASH_SEED") or secrets.randbelow(10**9))
    print(f"crash suite seed {seed}; replay: {crash_harness.replay_command(seed, KILLS, kind)}")
    summary = await crash_harness.run(reactor, seed, KILLS, database_url, str(tmp_path), kind)
    print(summary.text())
    assert not summary.violations, (
        f"the crash suite found {len(summary.violations)} violations with seed {seed}; replay it with\n"
        f"    {crash_harness.replay_command(seed, KILLS, kind)}\n(each process's output: {tmp_path / 'logs'})\n"
        f"{summary.text()}")
    # The run did what it is for: kills, orders acknowledged and filled between them.
    assert sum(summary.kills.values()) == KILLS
    assert summary.counters["acknowledged"] >= KILLS and summary.fills > 0, summary.text()

    # The checks can fail: a cent too many, a fill written twice and a lost acknowledged order are each found.
    db = Database(database_url, summary.data_dir)
    try:
        [(portfolio,)] = await db.query("SELECT p.id FROM portfolios p JOIN accounts a ON a.id = p.account_id"
                                        " WHERE a.username = 'trader1'")
        await db.execute("UPDATE portfolios SET cash_cents = cash_cents + 1 WHERE id = ?", (portfolio,))
        [(fill,)] = await db.query("SELECT MIN(id) FROM transactions WHERE kind = 'fill'")
        await db.execute(
            "INSERT INTO transactions (portfolio_id, order_id, kind, time, side, symbol, quantity_units, price_units,"
            " commission_cents, amount_cents, cash_after_cents, model) SELECT portfolio_id, order_id, kind, time,"
            " side, symbol, quantity_units, price_units, commission_cents, amount_cents, cash_after_cents, model"
            " FROM transactions WHERE id = ?", (fill,))
        [(lost, coid)] = await db.query(
            "SELECT id, client_order_id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM transactions t WHERE"
            " t.order_id = o.id) AND replaces IS NULL AND replaced_by IS NULL AND parent_id IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM orders l WHERE l.parent_id = o.id) ORDER BY id DESC LIMIT 1")
        await db.execute("DELETE FROM order_events WHERE order_id = ?", (lost,))
        await db.execute("DELETE FROM orders WHERE id = ?", (lost,))
    finally:
        db.close()
    found = "\n".join((await crash_harness.check(database_url, summary.data_dir, summary.traders))["violations"])
    assert "trader1: cash" in found, found
    assert f"transaction {fill + 0}" in found or "fills but" in found, found
    assert f"acknowledged order {lost} ({coid}) is not in the database" in found, found
