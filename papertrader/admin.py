"""``papertrader-admin``: operator commands run on the master's machine.

    papertrader-admin --data-dir DIR register-worker NAME [--host HOST]... [--allow-ip NET]... [--out DIR]
    papertrader-admin --data-dir DIR workers [--json]
    papertrader-admin --data-dir DIR kick|allow|revoke NAME

register-worker makes a worker bundle (CA certificate, the worker's TLS
certificate and GPG key) and records the key's fingerprint in the master's
database; copy the bundle to the worker's machine and use it as its data dir.

workers, kick, allow and revoke talk to the running master over its admin
channel (a Unix socket only the data dir's owner can open), so a kick takes
effect at once.  When no master is running they work on the database directly.
"""

import argparse
import json
import os
import sys

from twisted.internet import defer, task

from papertrader import commands, gpgkeys
from papertrader.client.output import plain, table
from papertrader.errors import PaperTraderError
from papertrader.logs import LogSystem
from papertrader.master import admin_channel, files
from papertrader.master.db import Database
from papertrader.master.validation import WORKER_NAME_RE
from papertrader.master.workers import Workers

LIVE = {"kick": commands.AdminKick, "allow": commands.AdminAllow, "revoke": commands.AdminRevoke}
COLUMNS = ["name", "state", "region", "host", "port", "clients", "commands_per_second", "last_heartbeat"]


def parser():
    p = argparse.ArgumentParser(prog="papertrader-admin", description="PaperTrader operator commands.")
    p.add_argument("--data-dir", required=True, help="the master's data dir")
    p.add_argument("--database", help="the master's database URL, if not SQLite in DIR")
    sub = p.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register-worker", help="create a worker bundle and register its key")
    reg.add_argument("name", help="worker name (1-32 letters, digits, _ . -)")
    reg.add_argument("--host", action="append", default=[],
                     help="host name or address clients use to reach the worker (repeatable)")
    reg.add_argument("--allow-ip", action="append", default=[],
                     help="address or network (CIDR) the worker may connect from (repeatable; default: any)")
    reg.add_argument("--out", help="where to write the bundle (default: DIR/workers/NAME)")
    workers = sub.add_parser("workers", help="list workers: state, region, address, load")
    workers.add_argument("--json", action="store_true")
    for name, what in (("kick", "disconnect a worker and refuse it until allowed"),
                       ("allow", "let a kicked worker connect again"),
                       ("revoke", "remove a worker's registration for good")):
        sub.add_parser(name, help=what).add_argument("name")
    return p


@defer.inlineCallbacks
def live(reactor, data_dir, command, **kwargs):
    """Ask the running master; fires None when no master is listening on the admin channel."""
    try:
        proto = yield admin_channel.connect(reactor, data_dir)
    except Exception:
        return None
    try:
        answer = yield proto.callRemote(command, **kwargs)
    finally:
        proto.transport.loseConnection()
    return answer


@defer.inlineCallbacks
def offline(reactor, args, data_dir, work):
    """Run ``work(workers)`` against the database and keyring directly."""
    logs = LogSystem("admin", 100, os.path.join(data_dir, "logs", "admin.log"), forward=False)
    db = Database(args.database or Database.default_url(data_dir), data_dir)
    keyring = gpgkeys.Keyring(files.keyring_dir(data_dir))
    try:
        yield db.migrate()
        result = yield work(Workers(db, keyring, reactor, logs.logger("papertrader.admin")))
    finally:
        keyring.close()
        db.close()
        logs.close()
    return result


@defer.inlineCallbacks
def run(reactor, args):
    data_dir = os.path.abspath(args.data_dir)
    if args.command == "register-worker":
        out = os.path.abspath(args.out or files.worker_dir(data_dir, args.name))
        armor = files.make_worker_bundle(data_dir, args.name, args.host, out)
        fingerprint = yield offline(reactor, args, data_dir,
                                    lambda w: w.register(args.name, armor, ",".join(args.allow_ip) or None))
        print(f"worker {args.name} registered, key fingerprint {fingerprint}")
        print(f"bundle: {out}")
        print(f"copy it to the worker's machine and run there:\n"
              f"  twistd -n papertrader-worker --data-dir BUNDLE_DIR --name {args.name}"
              f" --master MASTER_HOST:2048 --public-host {args.host[0] if args.host else 'WORKER_HOST'}")
    elif args.command == "workers":
        answer = yield live(reactor, data_dir, commands.AdminWorkers)
        if answer is None:
            rows = yield offline(reactor, args, data_dir, lambda w: w.overview())
        else:
            rows = answer["workers"]
        print(json.dumps(plain(rows)) if args.json else (table(rows, COLUMNS) if rows else "No workers."))
    else:
        answer = yield live(reactor, data_dir, LIVE[args.command], name=args.name)
        if answer is None:
            yield offline(reactor, args, data_dir, lambda w: getattr(w, args.command)(args.name))
            print(f"worker {args.name}: {args.command} recorded (no master running)")
        else:
            print(f"worker {args.name}: {args.command} done")


def main(argv=None):
    args = parser().parse_args(argv)
    if getattr(args, "name", None) is not None and not WORKER_NAME_RE.fullmatch(args.name):
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
            message = failure.value.message if failure.check(PaperTraderError) else failure.getErrorMessage()
            print(f"papertrader-admin: {message}", file=sys.stderr)
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
