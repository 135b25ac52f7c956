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

from tests import crash_harness

KILLS = int(os.environ.get("PAPERTRADER_CRASH_KILLS", "20"))


@pytest.mark.timeout(300)
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
