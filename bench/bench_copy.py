"""The memory and time of ``papertrader-admin copy-database`` on a database with many bars.

Makes a source database (PostgreSQL by default) at this release's schema, fills its ``bars`` table with
``--rows`` minute bars, makes an empty target of the other kind, then runs ``database_copy.copy`` in a fresh
Python process and prints its peak resident memory (``ru_maxrss``) before and after the copy, the copy's
elapsed time and the CPU time of that process (steadier than the elapsed time on a shared machine; the database
server's work is not in it).  The child process does nothing but the copy, so its peak is the copy's.  Everything it made
(the PostgreSQL schemas, the temporary directory) is removed at the end.

    .venv/bin/python bench/bench_copy.py                                  # PostgreSQL -> SQLite, 300,000 bars
    .venv/bin/python bench/bench_copy.py --source sqlite                  # SQLite -> PostgreSQL
    .venv/bin/python bench/bench_copy.py --postgres postgresql://postgres@127.0.0.1:5432/test --rows 1000000
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import psycopg  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from papertrader.master.db import Database  # noqa: E402

SYMBOLS = ("AAPL", "MSFT", "TSLA", "AMZN", "GOOG", "NVDA", "META", "NFLX", "INTC", "AMD")

#: Run in the child: the copy alone, measured.
CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from papertrader.master import database_copy
from papertrader.master.db import Database
source, target = Database(sys.argv[2]), Database(sys.argv[3])
def cpu(usage):
    return usage.ru_utime + usage.ru_stime
start = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
counts = database_copy.copy(source, target)
elapsed = time.perf_counter() - started
end = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"before_kib": start.ru_maxrss, "after_kib": end.ru_maxrss, "seconds": elapsed,
                  "cpu_seconds": cpu(end) - cpu(start), "rows": sum(counts.values())}))
"""


def bars(count):
    """``count`` minute bars (symbol, interval, time, open, high, low, close, volume), prices in 1e-4 units."""
    start = datetime.datetime(2020, 1, 2, 14, 30, tzinfo=datetime.timezone.utc)
    for n in range(count):
        symbol = SYMBOLS[n % len(SYMBOLS)]
        time = (start + datetime.timedelta(minutes=n // len(SYMBOLS))).isoformat()
        price = 1_000_000 + n % 5_000
        yield symbol, "1m", time, price, price + 100, price - 100, price + 50, 1_000 + n % 777


def fill(url, count):
    if url.startswith("sqlite"):
        import sqlite3

        connection = sqlite3.connect(Database(url).path)
        with connection:
            connection.executemany("INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?)", bars(count))
        connection.close()
        return
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        with cursor.copy("COPY bars (symbol, interval, time, open_units, high_units, low_units, close_units,"
                         " volume) FROM STDIN") as copy:
            for row in bars(count):
                copy.write_row(row)


def schema(postgres):
    name = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {name}")
    return name, f"{postgres}?options=-csearch_path%3D{name}"


def drop(postgres, name):
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {name} CASCADE")


@defer.inlineCallbacks
def make_schema(url):
    db = Database(url)
    try:
        yield db.upgrade(backup=False)
    finally:
        db.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--source", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="bench_copy_")
    name, postgres = schema(args.postgres)
    sqlite = f"sqlite:///{directory}/papertrader.db"
    source, target = (postgres, sqlite) if args.source == "postgresql" else (sqlite, postgres)
    try:
        try:  # (task.react always exits: 0 when the schemas were made)
            task.react(lambda reactor: defer.gatherResults([make_schema(source), make_schema(target)]))
        except SystemExit as e:
            if e.code:
                raise
        fill(source, args.rows)
        answer = subprocess.run([sys.executable, "-c", CHILD, ROOT, source, target], check=True,
                                capture_output=True, text=True)
        figures = json.loads(answer.stdout)
        print(f"copy {args.source} -> {'sqlite' if args.source == 'postgresql' else 'postgresql'}:"
              f" {figures['rows']} rows in {figures['seconds']:.2f} s"
              f" ({figures['rows'] / figures['seconds']:,.0f} rows/s), {figures['cpu_seconds']:.2f} s of CPU in"
              " the copying process")
        print(f"peak RSS before the copy: {figures['before_kib'] / 1024:.1f} MiB;"
              f" after: {figures['after_kib'] / 1024:.1f} MiB"
              f" (+{(figures['after_kib'] - figures['before_kib']) / 1024:.1f} MiB)")
    finally:
        drop(args.postgres, name)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
