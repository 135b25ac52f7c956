#!/usr/bin/env python
"""The crash suite's long run: a real master and workers killed with SIGKILL again and again while users trade.

Starts a master and two workers as ``twistd`` processes, three users trading every order type and time in
force over the real client connection, and kills the master, a worker or everything ``--kills`` times at
moments the seed chooses, restarting each time; then checks every account's orders, fills, cash and
positions in the database against what the clients were told, and every log for a traceback (see
``tests/crash_harness.py`` for the full list).  Prints the seed first and a summary at the end (kills,
orders acknowledged, fills, violations, and the command that replays the seed); exits 1 if anything was
violated, keeping the run's directory (logs and database) for a look.

    .venv/bin/python bench/crash_suite.py --kills 1000                  # SQLite, a random seed
    .venv/bin/python bench/crash_suite.py --kills 1000 --db postgres    # PostgreSQL (a schema of its own)
    .venv/bin/python bench/crash_suite.py --seed 1234 --kills 20        # replay a seed's schedule
    .venv/bin/python bench/crash_suite.py --kills 1000 --minutes 60     # at most an hour of kills, then the checks
"""

import argparse
import os
import secrets
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402

from bench.harness import create_schema, drop_schema, with_search_path  # noqa: E402
from papertrader.master.db import Database  # noqa: E402
from tests import crash_harness  # noqa: E402

POSTGRES = os.environ.get("PAPERTRADER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def main(reactor, args):
    seed = args.seed if args.seed is not None else secrets.randbelow(10**9)
    print(f"seed {seed} (replay: {crash_harness.replay_command(seed, args.kills, args.db)})", flush=True)
    workdir = tempfile.mkdtemp(prefix="papertrader-crash-")
    schema = None
    if args.db == "postgres":
        schema = create_schema(args.postgres_url)
        url = with_search_path(args.postgres_url, schema)
        print(f"PostgreSQL schema {schema}", flush=True)
        if not args.keep:  # stopped before the end (SIGTERM, Ctrl-C): the schema goes too
            # ("after": once the harness has killed its processes, which hold the schema's locks)
            stopped = reactor.addSystemEventTrigger("after", "shutdown", drop_schema, args.postgres_url, schema)
    else:
        url = Database.default_url(os.path.join(workdir, "master"))
    try:
        summary = await crash_harness.run(reactor, seed, args.kills, url, workdir, args.db, users=args.users,
                                          workers=args.workers, say=lambda text: print(text, flush=True),
                                          minutes=args.minutes)
    finally:
        if schema is not None and not args.keep:
            reactor.removeSystemEventTrigger(stopped)
            drop_schema(args.postgres_url, schema)
    print(summary.text(), flush=True)
    if summary.violations or args.keep:
        print(f"the run's files are kept in {workdir}" + (f" (PostgreSQL schema {schema})" if schema else ""))
        if summary.violations:
            raise SystemExit(1)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=1000, help="SIGKILLs in the run (default 1000)")
    parser.add_argument("--seed", type=int, help="the schedule's seed (default: a random one, printed)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite", help="default sqlite")
    parser.add_argument("--postgres-url", default=POSTGRES,
                        help="the PostgreSQL server (default $PAPERTRADER_TEST_POSTGRES or the local test database);"
                             " the run uses a schema of its own and drops it")
    parser.add_argument("--users", type=int, default=3, help="users trading at once (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--minutes", type=float,
                        help="start no kill after this many minutes, then check what was done (default: no limit)")
    parser.add_argument("--keep", action="store_true", help="keep the run's files (and schema) even if all is well")
    return parser.parse_args(argv)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, parse_args(sys.argv[1:]))))
