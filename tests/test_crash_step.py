"""Kill -9 the master in the middle of a market step that partially fills orders, on both databases.

The master (a real ``twistd papertrader-master`` process) is stopped by a fault-injection point
inside the step's transaction, after its fills are written and before they are committed, then
killed with SIGKILL.  After a restart no fill is repeated, no order fills more than it asked, and
cash, positions and fills agree.
"""

import json
import os
import signal
import subprocess
import sys

from datetime import date

import pytest_twisted
from twisted.internet import reactor

from papertrader import faults, tls
from papertrader.master import files
from papertrader.market.history import load_shipped
from papertrader.master.db import Database
from papertrader.worker.service import Worker
from tests.conftest import Client, WatchedProcess, wait_for_log
from tests.test_crash import TWISTD


def start_master(data_dir, listen, database_url, pause_at=None):
    proc = WatchedProcess()
    args = [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "papertrader-master", "--data-dir", data_dir,
            "--port", listen, "--update-interval", "0.2", "--bcrypt-rounds", "4", "--assets", "AAPL,MSFT",
            "--database", database_url, "--volume-share", "0.0002"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop(faults.ENV, None)
    if pause_at:
        env[faults.ENV] = pause_at
    reactor.spawnProcess(proc, sys.executable, args, env=env, path=os.getcwd())
    return proc


def register_worker(data_dir, database_url, name):
    subprocess.run([sys.executable, "-m", "papertrader.admin", "--data-dir", data_dir, "--database", database_url,
                    "register-worker", name], check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))


async def kill(proc):
    if proc.transport.pid:
        os.kill(proc.transport.pid, signal.SIGKILL)
        await proc.ended


@pytest_twisted.ensureDeferred
async def test_kill_9_inside_a_step_with_partial_fills_repeats_no_fill(tmp_path, settings, database_url):
    data_dir = str(tmp_path / "master")
    files.ensure_master_files(data_dir)
    register_worker(data_dir, database_url, "w1")
    cert = os.path.join(data_dir, files.MASTER_CERT)
    master = start_master(data_dir, tls.listen_description(0, "127.0.0.1", cert), database_url,
                          pause_at="step-written")
    await master.wait_for("master listening on port")
    port = int(master.output.split(b"master listening on port ")[1].split()[0])
    bundle = files.worker_dir(data_dir, "w1")
    worker = Worker(bundle, "w1", ("localhost", port), settings, reactor,
                    listen=tls.listen_description(0, "127.0.0.1", os.path.join(bundle, files.WORKER_CERT)))
    linked = wait_for_log(worker.logs, "linked to the master")
    worker.startService()
    try:
        await linked.addTimeout(30, reactor)
        d = Client(data_dir, str(tmp_path / "home"), port)
        status, out, err = await d.cli("register", "dora", "dora@example.com", "--password-stdin",
                                       stdin="long password\n")
        assert status == 0, err
        status, out, err = await d.cli("login", "dora", "--password-stdin", stdin="long password\n")
        assert status == 0, err
        # A bar's volume is 1,000-100,000 shares: with a volume share of 0.0002 a bar gives 0.2-20 shares,
        # so 60 shares fill over several steps.
        status, out, err = await d.cli("buy", "MSFT", "60", "--client-order-id", "big")
        assert status == 0, err
        order_id = json.loads(out)["id"]

        await master.wait_for(f"paused at step-written", timeout=30)
        await kill(master)

        relinked = wait_for_log(worker.logs, "linked to the master")
        master = start_master(data_dir, tls.listen_description(port, "127.0.0.1", cert), database_url)
        await master.wait_for("market step: ", timeout=30)
        await relinked.addTimeout(30, reactor)
        await master.wait_for("market step: ", timeout=30)  # at least two steps after the restart
    finally:
        await worker.stopService()
        await kill(master)

    db = Database(database_url, data_dir)
    try:
        [(quantity,)] = await db.query("SELECT quantity_units FROM orders WHERE id = ?", (order_id,))
        fills = await db.query("SELECT quantity_units, amount_cents, cash_after_cents, time FROM transactions"
                               " WHERE order_id = ? ORDER BY id", (order_id,))
        assert fills, "nothing filled after the restart"
        assert sum(f[0] for f in fills) <= quantity
        assert len({f[3] for f in fills}) == len(fills)  # one fill per step: none repeated
        cash = 100000_00
        for _, amount, cash_after, _ in fills:
            assert cash_after == cash + amount
            cash = cash_after
        assert await db.query("SELECT cash_cents FROM portfolios") == [(cash,)]
        assert await db.query("SELECT quantity_units FROM positions") == [(sum(f[0] for f in fills),)]
        [(events,)] = await db.query("SELECT COUNT(*) FROM order_events WHERE order_id = ? AND kind IN"
                                     " ('fill', 'partial_fill')", (order_id,))
        assert events == len(fills)
        # The update the kill interrupted was stored neither half: each daily candle the replay played holds
        # its day's bar once (a candle written before the step's commit was its volume twice after the
        # restart played the day again), and none is of a day the market has not reached.
        history = load_shipped(["AAPL", "MSFT"])
        [(last_step,)] = await db.query("SELECT value FROM market_state WHERE name = 'last_step'")
        candles = await db.query("SELECT symbol, time, volume FROM bars WHERE interval = '1d' AND time >= ?",
                                 ("2010-01-04",))
        assert candles
        for symbol, time, volume in candles:
            series = history.series[symbol]
            [i] = series.between(date.fromisoformat(time[:10]).toordinal(), date.fromisoformat(time[:10]).toordinal() + 1)
            assert volume == series.volume[i], (symbol, time)
            assert time < last_step, (symbol, time, last_step)
    finally:
        db.close()
