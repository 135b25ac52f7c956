#!/usr/bin/env python
"""Group commit: acknowledged orders per second against single durable commits, in one run.

For each number of concurrent clients (``--clients``, default 1,8,32,128), every client places its
orders one after another through ``master.trading.place_order`` (the whole acknowledgement: the
account locked, its book and open orders read, the core's checks, the order and its event written,
committed before the answer), on accounts of its own (fresh for each load, at most ``--per-account`` (50) orders
each):
limit buys far below the market (they stay open).
Twice: with group commit (the default), and with one transaction per order (``max_batch`` 1, the
behaviour before group commit).  Printed: acknowledgements per second, p50 and p99 of each call, and
orders per transaction.

The baseline, measured first in the same run on the same disk: single-row INSERT + COMMIT, one after
another, on the same kind of database (SQLite: WAL, ``synchronous=FULL``, in the same data dir;
PostgreSQL: the same server), i.e. what one durable commit costs here.

    .venv/bin/python bench/bench_commit.py                 # SQLite in a temporary data dir
    .venv/bin/python bench/bench_commit.py --database postgresql://postgres@127.0.0.1:5432/test
"""

import argparse
import collections
import os
import sqlite3
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task, threads  # noqa: E402

from papertrader.app import Stamp  # noqa: E402
from papertrader.master.group_commit import GroupCommit  # noqa: E402
from papertrader.times import utc  # noqa: E402
from bench.harness import bench_settings, percentile, running_cluster  # noqa: E402

PASSWORD = "benchmark-password"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu():
    """CPU seconds (user + system) of each kind of thread of this process so far: the reactor's, the database's
    (the connection pool's threads: the units' Python and SQL), the others' together; read from /proc (threads
    that ended are not counted)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    main = threading.main_thread().native_id
    cpu = collections.Counter()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        name = names.get(int(tid), "")
        kind = ("reactor" if int(tid) == main else "other" if "papertrader-" in name  # our own pools (bcrypt, ...)
                else "database" if name.startswith("PoolThread") else "other")
        cpu[kind] += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return cpu


def single_commits_sqlite(path, n):
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE IF NOT EXISTS baseline (id INTEGER PRIMARY KEY, account BIGINT, symbol TEXT,"
                       " quantity BIGINT, price BIGINT, created TEXT)")
    started = time.perf_counter()
    for i in range(n):
        connection.execute("BEGIN")
        connection.execute("INSERT INTO baseline (account, symbol, quantity, price, created) VALUES (?, ?, ?, ?, ?)",
                           (i % 7, "AAPL", 1_000_000, 10_000, "2026-01-01T00:00:00+00:00"))
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return n / elapsed


def single_commits_postgresql(url, n):
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS baseline (id BIGSERIAL PRIMARY KEY, account BIGINT,"
                           " symbol TEXT, quantity BIGINT, price BIGINT, created TEXT)")
        connection.commit()
        started = time.perf_counter()
        for i in range(n):
            connection.execute("INSERT INTO baseline (account, symbol, quantity, price, created) VALUES"
                               " (%s, %s, %s, %s, %s)", (i % 7, "AAPL", 1_000_000, 10_000, "2026-01-01T00:00:00+00:00"))
            connection.commit()
        elapsed = time.perf_counter() - started
    return n / elapsed


async def sessions_for(master, n, tag):
    sessions = []
    for i in range(n):
        name = f"c{tag}{i}"
        await master.accounts.register(name, f"{name}@example.com", PASSWORD)
        token, _, _ = await master.accounts.login(name, PASSWORD, False, "bench", "127.0.0.1")
        sessions.append(await master.accounts.authenticate(token))
    return sessions


async def load(reactor, master, sessions, clients, per_client, symbol, tag):
    """``clients`` concurrent clients; client c places its orders on sessions[c::clients] in turn."""
    latencies = []

    async def client(mine, c):
        for i in range(per_client):
            session = mine[i % len(mine)]
            stamp = Stamp(utc(reactor.seconds()), "127.0.0.1", "bench")
            started = time.perf_counter()
            order = await master.trading.place_order(session, stamp, f"{tag}-{c}-{i}", "buy", symbol, "1",
                                                     type="limit", limit_price="1.00", time_in_force="gtc")
            latencies.append(time.perf_counter() - started)
            if order["status"] != "new":
                raise RuntimeError(f"an order was not accepted: {order}")

    commits = master.trading.commits
    transactions_before, units_before = commits.transactions, commits.units
    started, cpu, threads_before = time.perf_counter(), time.process_time(), thread_cpu()
    await defer.gatherResults([defer.ensureDeferred(client(sessions[c::clients], c)) for c in range(clients)],
                              consumeErrors=True)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    by_thread = thread_cpu()
    by_thread.subtract(threads_before)
    latencies.sort()
    transactions = commits.transactions - transactions_before
    return dict(rate=len(latencies) / elapsed, p50=percentile(latencies, 50) * 1000,
                p99=percentile(latencies, 99) * 1000,
                per_transaction=(commits.units - units_before) / max(1, transactions),
                cpu=cpu / len(latencies) * 1e6,
                threads={kind: seconds / len(latencies) * 1e6 for kind, seconds in sorted(by_thread.items())})


async def main(reactor, args):
    settings = bench_settings(bcrypt_rounds=4, workers=1, max_open_orders=100_000)
    async with running_cluster(reactor, settings, args.database) as run:
        master = run.cluster.master
        data_dir, database, label = run.data_dir, run.database, run.label
        symbol = sorted(master.board.prices())[0]
        print(f"database: {label}; {args.orders} orders per load, limit buys of 1 {symbol} at 1.00 (they stay open)",
              flush=True)
        if master.db.dialect == "sqlite":
            baseline = await threads.deferToThread(single_commits_sqlite, os.path.join(data_dir, "baseline.db"),
                                                   args.baseline)
            what = "SQLite WAL synchronous=FULL, same data dir"
        else:
            baseline = await threads.deferToThread(single_commits_postgresql, database, args.baseline)
            what = "PostgreSQL, same server"
        print(f"baseline: single-row INSERT + COMMIT one after another: {baseline:.0f} commits/s ({what},"
              f" {args.baseline} commits)", flush=True)
        grouped = master.trading.commits
        single = GroupCommit(master.db, master.orders.lock_accounts, max_batch=1, lanes=len(grouped.lanes),
                             rolled_back=master.orders.rolled_back)
        for clients in args.clients:
            per_client = max(1, args.orders // clients)
            # Fresh accounts for each load, at most --per-account orders each (every order reads its account's
            # open orders: a load must not slow the next one down).
            n_accounts = max(clients, -(-clients * per_client // args.per_account))
            results = {}
            loads = (("one transaction per order", single), ("group commit", grouped))
            for name, commits in loads[1:] if args.group_only else loads:
                sessions = await sessions_for(master, n_accounts, uuid.uuid4().hex[:6])
                master.trading.commits = commits
                results[name] = await load(reactor, master, sessions, clients, per_client, symbol,
                                           uuid.uuid4().hex[:6])
            master.trading.commits = grouped
            for name, r in results.items():
                print(f"{clients:4d} clients, {name:26s}: {r['rate']:7.0f} acks/s ({r['rate'] / baseline:.2f}x the"
                      f" single-commit rate), p50 {r['p50']:6.1f} ms, p99 {r['p99']:6.1f} ms,"
                      f" {r['per_transaction']:.1f} orders per transaction, {r['cpu']:.0f} us CPU per order ("
                      + ", ".join(f"{kind} {us:.0f}" for kind, us in r["threads"].items()) + ")", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="postgresql://... (default: SQLite in a temporary data dir)")
    parser.add_argument("--clients", default="1,8,32,128",
                        type=lambda text: [int(n) for n in text.split(",") if n.strip()])
    parser.add_argument("--orders", type=int, default=1000, help="orders per load (default 1000)")
    parser.add_argument("--per-account", type=int, default=50,
                        help="orders per account at most (default 50: an order reads its account's ~25 open orders)")
    parser.add_argument("--group-only", action="store_true",
                        help="only the loads with group commit (for a profiler: py-spy record -- ...)")
    parser.add_argument("--baseline", type=int, default=1000, help="single commits of the baseline (default 1000)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, parse_args(sys.argv[1:]))))
