#!/usr/bin/env python
"""The market step with many open orders: one market update of the master, its open orders taken from the
master's memory, against the same update reading them from the database, in one run.

``--portfolios`` (400) accounts each place ``--per-portfolio`` (25) limit buys far below the market (they
stay open: 10,000 open orders by default), through ``master.trading.place_order`` with 64 concurrent
clients.  Then, ``--updates`` (6) times each, taking turns: a whole ``master.market.tick()`` (the update of
the quotes and the trading step over every open order, committed), with every portfolio's open orders
known to the memory (``papertrader/master/open_orders.py``: what a running master has after its first
step); and the baseline, the same tick after the memory was told every portfolio changed, so the step
reads and parses them from the database, as it did before it took them from memory.  Printed: each
tick's time, and the median of each.

    .venv/bin/python bench/bench_step.py                  # SQLite in a temporary data dir
    .venv/bin/python bench/bench_step.py --database postgresql://postgres@127.0.0.1:5432/test
"""

import argparse
import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402

from bench.bench_commit import load, sessions_for  # noqa: E402
from bench.harness import bench_settings, running_cluster  # noqa: E402


async def main(reactor, args):
    settings = bench_settings(bcrypt_rounds=4, workers=1, max_open_orders=100_000)
    async with running_cluster(reactor, settings, args.database) as run:
        master = run.cluster.master
        symbol = sorted(master.board.prices())[0]
        sessions = await sessions_for(master, args.portfolios, uuid.uuid4().hex[:6])
        clients = min(64, args.portfolios)
        await load(reactor, master, sessions, clients, args.portfolios * args.per_portfolio // clients, symbol,
                   uuid.uuid4().hex[:6])
        [(open_orders,)] = await master.db.query("SELECT count(*) FROM orders WHERE status = 'new'")
        print(f"database: {run.label}; {open_orders} open orders in {args.portfolios} portfolios", flush=True)
        memory = master.orders.open_memory
        ids = [p for (p,) in await master.db.query("SELECT DISTINCT portfolio_id FROM orders")]
        await master.market.tick()  # the first step keeps what it had to read
        times = {"from memory": [], "from the database (baseline)": []}
        for _ in range(args.updates):
            for name in times:
                if name != "from memory":
                    memory.changed(ids)
                started = time.perf_counter()
                await master.market.tick()
                times[name].append((time.perf_counter() - started) * 1000)
        for name, values in times.items():
            print(f"market update + step, open orders {name:30s}: median {statistics.median(values):6.0f} ms"
                  f" ({', '.join(f'{v:.0f}' for v in values)})", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="postgresql://... (default: SQLite in a temporary data dir)")
    parser.add_argument("--portfolios", type=int, default=400)
    parser.add_argument("--per-portfolio", type=int, default=25)
    parser.add_argument("--updates", type=int, default=6)
    return parser.parse_args(argv)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, parse_args(sys.argv[1:]))))
