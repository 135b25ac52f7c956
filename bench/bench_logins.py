#!/usr/bin/env python
"""Do logins slow down order acknowledgements?  p50/p99 of placing orders, alone and during a crowd of logins.

A master (in-process cluster) with the default bcrypt cost (12).  ``--clients`` (8) clients place limit buys
one after another through ``master.trading.place_order`` for ``--seconds`` (5) each phase; the three phases
take turns ``--rounds`` (3) times, and each one's figures are over all its turns:

1. alone: the baseline;
2. while ``--logins`` (20) people log in again and again at the same time, password hashing in its own
   bounded pool (``hash_processes``, default half the CPU cores);
3. the same crowd with the pool as large as the crowd (what a shared, unbounded thread pool does).

Printed per phase: orders acknowledged, p50 and p99 of an acknowledgement, logins done, and the p99 increase
against phase 1 (the goal: at most 10% with the bounded pool).

    .venv/bin/python bench/bench_logins.py
"""

import argparse
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402

from papertrader import pools  # noqa: E402
from papertrader.app import Stamp  # noqa: E402
from papertrader.times import utc  # noqa: E402
from bench.harness import bench_settings, percentile, running_cluster  # noqa: E402

PASSWORD = "benchmark-password"


async def phase(reactor, master, traders, symbol, seconds, crowd=(), stop_logins=None):
    latencies, logins = [], [0]
    deadline = time.perf_counter() + seconds
    tag = uuid.uuid4().hex[:6]

    async def trader(session, c):
        i = 0
        while time.perf_counter() < deadline:
            stamp = Stamp(utc(reactor.seconds()), "127.0.0.1", "bench")
            started = time.perf_counter()
            await master.trading.place_order(session, stamp, f"{tag}-{c}-{i}", "buy", symbol, "1", type="limit",
                                             limit_price="1.00", time_in_force="gtc")
            latencies.append(time.perf_counter() - started)
            i += 1
            if i % 40 == 0:  # keep the books small: every order reads its account's open orders
                await master.trading.cancel_all_orders(session, stamp)

    async def person(name):
        while time.perf_counter() < deadline:
            await master.accounts.login(name, PASSWORD, False, "bench", "127.0.0.1")
            logins[0] += 1

    await defer.gatherResults([defer.ensureDeferred(trader(s, c)) for c, s in enumerate(traders)]
                              + [defer.ensureDeferred(person(n)) for n in crowd], consumeErrors=True)
    return dict(latencies=latencies, logins=logins[0])


async def main(reactor, args):
    settings = bench_settings(workers=1, hash_processes=args.hash_processes)
    async with running_cluster(reactor, settings, args.database) as run:
        master = run.cluster.master
        label = run.label
        symbol = sorted(master.board.prices())[0]
        names = [f"p{uuid.uuid4().hex[:8]}" for _ in range(args.clients + args.logins)]
        for name in names:
            await master.accounts.register(name, f"{name}@example.com", PASSWORD)
        traders = []
        for name in names[:args.clients]:
            token, _, _ = await master.accounts.login(name, PASSWORD, False, "bench", "127.0.0.1")
            traders.append(await master.accounts.authenticate(token))
        crowd = names[args.clients:]
        bounded = pools.HASHING.size
        print(f"database: {label}; {os.cpu_count()} CPUs; bcrypt_rounds {settings.bcrypt_rounds};"
              f" {args.clients} clients placing orders, {args.seconds:g} s per phase", flush=True)
        # The phases take turns, ``--rounds`` times: whatever drifts during the run (the database growing, the
        # machine's other work) falls on every phase alike, not on the later ones.
        phases = [("alone", bounded, ()), (f"{args.logins} logins, hashing pool of {bounded}", bounded, crowd),
                  (f"{args.logins} logins, hashing pool of {args.logins}", args.logins, crowd)]
        runs = {name: [] for name, _, _ in phases}
        for _ in range(args.rounds):
            for name, size, people in phases:
                pools.HASHING.resize(size)
                runs[name].append(await phase(reactor, master, traders, symbol, args.seconds, people))
        pools.HASHING.resize(bounded)
        results = []
        for name, _, _ in phases:
            latencies = sorted(x for r in runs[name] for x in r["latencies"])
            results.append((name, dict(orders=len(latencies), p50=percentile(latencies, 50) * 1000,
                                       p99=percentile(latencies, 99) * 1000,
                                       logins=sum(r["logins"] for r in runs[name]))))
        base = results[0][1]
        for name, r in results:
            print(f"{name:34s}: {r['orders']:6d} orders acknowledged, p50 {r['p50']:6.1f} ms, p99 {r['p99']:6.1f} ms"
                  f" ({(r['p99'] / base['p99'] - 1) * 100:+5.1f}% p99), {r['logins']} logins", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="postgresql://... (default: SQLite in a temporary data dir)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3, help="how many times the phases take turns (default 3)")
    parser.add_argument("--hash-processes", type=int, default=0, help="the bounded pool's size (0: half the CPUs)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, parse_args(sys.argv[1:]))))
