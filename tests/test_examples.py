"""examples/: the moving-average crossover strategy (alpaca-py only) runs unchanged against a cluster."""

import json
import os
import re
import sys

import pytest_twisted
from twisted.internet import reactor

from tests.conftest import WatchedProcess, wait_for_log
from tests.http_helpers import api  # noqa: F401 (a fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BARS = 16


@pytest_twisted.ensureDeferred
async def test_the_crossover_example_trades_through_the_streams(api):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), APCA_API_KEY_ID=api.key_id,
               APCA_API_SECRET_KEY=api.secret, APCA_API_BASE_URL=api.url,
               PAPERTRADER_CA=os.path.join(api.d.data_dir, "ca.pem"))  # exported as the README's client section does
    assert api.url.startswith("http://")  # the quick start's plain loopback HTTP: the CA has nothing to do
    env.pop("REQUESTS_CA_BUNDLE", None)
    process = WatchedProcess()
    argv = [sys.executable, os.path.join(ROOT, "examples", "sma_crossover.py"), "--symbol", "AAPL", "--fast", "2",
            "--slow", "4", "--qty", "5", "--bars", str(BARS)]
    listening = wait_for_log(api.d.cluster.workers[0].logs, "listens to trade_updates", timeout=60)
    transport = reactor.spawnProcess(process, sys.executable, argv, env=env, path=ROOT)
    try:
        await process.wait_for("subscribed to bars: ['AAPL']")
        await listening
        for n in range(1, BARS + 1):
            await api.d.tick()  # one bar of AAPL; the orders of the bar before fill
            await process.wait_for(f"bar {n} AAPL ")
        ended = await process.wait_end(timeout=60)
    finally:
        if not process._end.settled:
            transport.signalProcess("KILL")
            await process.wait_end()
    output = process.output.decode()
    assert ended.exitCode == 0, output
    done = re.search(r"done: (\d+) bars, (\d+) orders, (\d+) fills, position (\S+)", output)
    assert done, output
    bars, orders, fills = (int(done.group(i)) for i in (1, 2, 3))
    assert bars == BARS and orders >= 2 and fills >= 1, output
    assert "order buy 5 AAPL" in output and "fill buy 5 AAPL @" in output
    # The orders are the account's, as the platform recorded them.
    status, out, err = await api.d.cli("orders", user="alice")
    assert status == 0, err
    placed = [o for o in json.loads(out) if o["symbol"] == "AAPL"]
    assert len(placed) == orders
    assert sum(1 for o in placed if o["status"] == "filled") >= fills
