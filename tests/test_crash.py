"""Kill -9 the master right after it acknowledged an order: after restart the order fills exactly once.

The master runs as a real ``twistd papertrader-master`` process; a real worker
(in the test process) and the real client talk to it over TLS AMP.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys

import pytest_twisted
from twisted.internet import reactor

from papertrader import tls
from papertrader.master import files
from papertrader.worker.service import Worker
from tests.conftest import Client, WatchedProcess, wait_for_log

TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def start_master(data_dir, listen, interval):
    proc = WatchedProcess()
    args = [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "papertrader-master", "--data-dir", data_dir,
            "--port", listen, "--update-interval", str(interval), "--bcrypt-rounds", "4", "--assets", "AAPL,MSFT"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    reactor.spawnProcess(proc, sys.executable, args, env=env, path=os.getcwd())
    return proc


def register_worker(data_dir, name):
    subprocess.run([sys.executable, "-m", "papertrader.admin", "--data-dir", data_dir, "register-worker", name],
                   check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))


@pytest_twisted.ensureDeferred
async def test_order_acknowledged_before_kill_9_fills_once_after_restart(tmp_path, settings):
    data_dir = str(tmp_path / "master")
    files.ensure_master_files(data_dir)
    register_worker(data_dir, "w1")
    cert = os.path.join(data_dir, files.MASTER_CERT)

    # First life: a long interval, so the order is still open when the master dies.
    master = start_master(data_dir, tls.listen_description(0, "127.0.0.1", cert), 3600)
    await master.wait_for("master listening on port")
    port = int(master.output.split(b"master listening on port ")[1].split()[0])

    bundle = files.worker_dir(data_dir, "w1")
    worker = Worker(bundle, "w1", ("localhost", port), settings, reactor,
                    listen=tls.listen_description(0, "127.0.0.1", os.path.join(bundle, files.WORKER_CERT)))
    linked = wait_for_log(worker.logs, "linked to the master")
    worker.startService()
    try:
        await linked
        d = Client(data_dir, str(tmp_path / "home"), port)
        await master.wait_for("worker w1 linked")
        status, out, err = await d.cli("register", "carol", "carol@example.com", "--password-stdin",
                                       stdin="long password\n")
        assert status == 0, err
        status, out, err = await d.cli("login", "carol", "--password-stdin", stdin="long password\n")
        assert status == 0, err
        status, out, err = await d.cli("buy", "AAPL", "3", "--client-order-id", "before-crash")
        assert status == 0, err
        acknowledged = json.loads(out)
        assert acknowledged["status"] == "new"

        os.kill(master.transport.pid, signal.SIGKILL)  # no goodbye, no flush
        await master.ended

        # Second life, same port, short interval: the open order fills.
        relinked = wait_for_log(worker.logs, "linked to the master")
        master = start_master(data_dir, tls.listen_description(port, "127.0.0.1", cert), 0.2)
        await master.wait_for("market step: 1 fill")
        await relinked

        # A retry of the same order (as a client that never saw the ack would send) changes nothing.
        status, out, err = await d.cli("buy", "AAPL", "3", "--client-order-id", "before-crash")
        assert status == 0, err
        assert json.loads(out)["id"] == acknowledged["id"]
        status, out, _ = await d.cli("orders")
        [order] = json.loads(out)
        assert order["status"] == "filled" and order["id"] == acknowledged["id"]
        status, out, _ = await d.cli("history")
        [fill] = json.loads(out)
        status, out, _ = await d.cli("portfolio")
        portfolio = json.loads(out)
        assert portfolio["cash"] == fill["cash_after"]
        assert portfolio["positions"][0]["quantity"] == "3"
    finally:
        await worker.stopService()
        if master.transport.pid:
            os.kill(master.transport.pid, signal.SIGKILL)
            await master.ended

    # The ledger agrees with itself on disk.
    db = sqlite3.connect(os.path.join(data_dir, "papertrader.db"))
    assert db.execute("SELECT COUNT(*) FROM transactions").fetchone()[0] == 1
    cash, = db.execute("SELECT cash_cents FROM portfolios").fetchone()
    amount, = db.execute("SELECT amount_cents FROM transactions").fetchone()
    assert cash == 100000_00 + amount
