"""``papertrader-admin``: operator commands run on the master's machine.

    papertrader-admin --data-dir DIR register-worker NAME [--host HOST]... [--out DIR]
    papertrader-admin --data-dir DIR workers [--json]

register-worker makes a worker bundle (CA certificate, the worker's TLS
certificate and GPG key) and records the key's fingerprint in the master's
database; copy the bundle to the worker's machine and use it as its data dir.
It works whether or not the master is running.
"""

import argparse
import json
import os
import sys

from twisted.internet import defer, task

from papertrader import gpgkeys
from papertrader.logs import LogSystem
from papertrader.master import files
from papertrader.master.db import Database
from papertrader.master.validation import WORKER_NAME_RE
from papertrader.master.workers import Workers


def parser():
    p = argparse.ArgumentParser(prog="papertrader-admin", description="PaperTrader operator commands.")
    p.add_argument("--data-dir", required=True, help="the master's data dir")
    p.add_argument("--database", help="the master's database URL, if not SQLite in DIR")
    sub = p.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register-worker", help="create a worker bundle and register its key")
    reg.add_argument("name", help="worker name (1-32 letters, digits, _ . -)")
    reg.add_argument("--host", action="append", default=[],
                     help="host name or address clients use to reach the worker (repeatable)")
    reg.add_argument("--out", help="where to write the bundle (default: DIR/workers/NAME)")
    workers = sub.add_parser("workers", help="list registered workers")
    workers.add_argument("--json", action="store_true")
    return p


@defer.inlineCallbacks
def run(reactor, args):
    data_dir = os.path.abspath(args.data_dir)
    logs = LogSystem("admin", 100, os.path.join(data_dir, "logs", "admin.log"), forward=False)
    db = Database(args.database or Database.default_url(data_dir), data_dir)
    try:
        yield db.migrate()
        keyring = gpgkeys.Keyring(files.keyring_dir(data_dir))
        workers = Workers(db, keyring, reactor, logs.logger("papertrader.admin"))
        if args.command == "register-worker":
            out = os.path.abspath(args.out or files.worker_dir(data_dir, args.name))
            armor = files.make_worker_bundle(data_dir, args.name, args.host, out)
            fingerprint = yield workers.register(args.name, armor)
            print(f"worker {args.name} registered, key fingerprint {fingerprint}")
            print(f"bundle: {out}")
            print(f"copy it to the worker's machine and run there:\n"
                  f"  twistd -n papertrader-worker --data-dir BUNDLE_DIR --name {args.name}"
                  f" --master MASTER_HOST:2048 --public-host {args.host[0] if args.host else 'WORKER_HOST'}")
        elif args.command == "workers":
            rows = yield workers.registered()
            if args.json:
                print(json.dumps(rows))
            else:
                print(f"{'NAME':<24} {'FINGERPRINT':<42} REGISTERED")
                for row in rows:
                    print(f"{row['name']:<24} {row['fingerprint']:<42} {row['created']}")
        keyring.close()
    finally:
        db.close()
        logs.close()


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command == "register-worker" and not WORKER_NAME_RE.fullmatch(args.name):
        print("papertrader-admin: a worker name is 1-32 letters, digits, '_', '.', '-'", file=sys.stderr)
        return 2
    try:
        gpgkeys.check_installed()
    except gpgkeys.GPGMissing as e:
        print(f"papertrader-admin: {e}", file=sys.stderr)
        return 1
    status = []

    def go(reactor):
        d = run(reactor, args)

        def failed(failure):
            print(f"papertrader-admin: {failure.getErrorMessage()}", file=sys.stderr)
            status.append(1)

        return d.addErrback(failed)

    try:
        task.react(go)
    except SystemExit as e:
        if e.code:
            return e.code
    return status[0] if status else 0


if __name__ == "__main__":
    sys.exit(main())
