"""``papertrader-admin``: operator commands run on the master's machine.

    papertrader-admin [--json] --data-dir DIR [--database URL] register-worker NAME [--host HOST]...
                      [--allow-ip NET]... [--out DIR]
    papertrader-admin [--json] --data-dir DIR workers
    papertrader-admin [--json] --data-dir DIR kick|allow|revoke NAME
    papertrader-admin [--json] --data-dir DIR market [status|pause|resume|seek DATE]

``--json`` may also follow the command.  register-worker makes a worker bundle
(CA certificate, the worker's TLS certificate and GPG key) and records the key's
fingerprint in the master's database; copy the bundle to the worker's machine
and use it as its data dir.

workers, kick, allow, revoke and market talk to the running master over its
admin channel (a Unix socket only the data dir's owner can open), so a kick or a
pause takes effect at once.  When no master is running they work on the database
directly (a replay's pause, resume or seek then takes effect when it starts).

DIR must be a master's data dir (one a master has started in): a mistyped path
is refused, never created.  A failure prints one line on stderr (with --json,
also ``{"error": CODE, "message": TEXT}`` on stdout) and exits 1; a usage
mistake exits 2.  Codes: ``usage``, ``bad_data_dir``, ``invalid_input``,
``gpg_missing``, ``database_unavailable``, ``server_error``.
"""

import argparse
import json
from datetime import date
import os
import sqlite3
import sys

import psycopg
from twisted.internet import defer, task

from papertrader import commands, gpgkeys, tls
from papertrader.client.output import plain, table
from papertrader.errors import InvalidInput, PaperTraderError, ServerError
from papertrader.logs import LogSystem
from papertrader.master import admin_channel, files
from papertrader.master.db import Database
from papertrader.master.validation import WORKER_NAME_RE
from papertrader.master.workers import Workers, parse_allowed

LIVE = {"kick": commands.AdminKick, "allow": commands.AdminAllow, "revoke": commands.AdminRevoke}
COLUMNS = ["name", "state", "region", "host", "port", "clients", "commands_per_second", "last_heartbeat"]


class AdminError(PaperTraderError):
    """A failure of papertrader-admin itself."""


class BadDataDir(AdminError):
    """That is not a master's data dir."""

    code = "bad_data_dir"


class GPGNotInstalled(AdminError):
    """The gpg program is not installed."""

    code = "gpg_missing"


class DatabaseUnavailable(AdminError):
    """The master's database cannot be opened."""

    code = "database_unavailable"


class UsageFailure(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageFailure(message)


def parser():
    p = Parser(prog="papertrader-admin", description="PaperTrader operator commands.")
    p.add_argument("--data-dir", required=True, help="the master's data dir")
    p.add_argument("--database", help="the master's database URL, if not SQLite in DIR")
    p.add_argument("--json", action="store_true", help="print JSON on stdout (also accepted after the command)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name, help):
        c = sub.add_parser(name, help=help)
        # SUPPRESS: given after the command it sets args.json; absent there, it leaves the global one alone.
        c.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON on stdout")
        return c

    reg = command("register-worker", "create a worker bundle and register its key")
    reg.add_argument("name", help="worker name (1-32 letters, digits, _ . -)")
    reg.add_argument("--host", action="append", default=[],
                     help="host name or address clients use to reach the worker (repeatable)")
    reg.add_argument("--allow-ip", action="append", default=[],
                     help="address or network (CIDR) the worker may connect from (repeatable; default: any)")
    reg.add_argument("--out", help="where to write the bundle (default: DIR/workers/NAME)")
    command("workers", "list workers: state, region, address, load")
    for name, what in (("kick", "disconnect a worker and refuse it until allowed"),
                       ("allow", "let a kicked worker connect again"),
                       ("revoke", "remove a worker's registration for good")):
        command(name, what).add_argument("name")
    market = command("market", "the market clock: status, or pause, resume or move (seek) a replay")
    market.add_argument("action", nargs="?", default="status", choices=("status", "pause", "resume", "seek"),
                        help="what to do (default: status)")
    market.add_argument("date", nargs="?", help="with seek: the day to move the replay to, YYYY-MM-DD")
    return p


MARKET_KEYS = ["time", "mode", "state", "is_open", "next_open", "next_close", "calendar", "source", "step", "start",
               "end"]


@defer.inlineCallbacks
def market(reactor, args, data_dir):
    """The market clock's state, after the action; fires (answer, master_running)."""
    if args.action == "seek":
        try:
            date.fromisoformat(args.date or "")
        except ValueError:
            raise InvalidInput("market seek needs a date, YYYY-MM-DD")
    elif args.date:
        raise InvalidInput(f"market {args.action} takes no date")
    answer = yield live(reactor, data_dir, commands.AdminMarket, action=args.action,
                        **({"date": args.date} if args.date else {}))
    if answer is not None:
        return answer, True

    def offline_state(workers):
        db = workers.db
        changes = {"pause": {"replay_state": "paused"}, "resume": {"replay_state": "running"},
                   "seek": {"replay_seek": args.date}}.get(args.action, {})

        def work(cursor):
            for name, value in changes.items():
                cursor.execute(db.sql("INSERT INTO market_state (name, value) VALUES (?, ?) ON CONFLICT (name)"
                                      " DO UPDATE SET value = excluded.value"), (name, value))
            cursor.execute(db.sql("SELECT name, value FROM market_state"))
            return dict(cursor.fetchall())

        return db.run(work)

    state = yield offline(reactor, args, data_dir, offline_state)
    return {"time": state.get("last_step"), "state": state.get("replay_state", "running"),
            "seek": state.get("replay_seek") or None}, False


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
    try:
        db = Database(args.database or Database.default_url(data_dir), data_dir)
    except ValueError as e:
        logs.close()
        raise InvalidInput(f"--database: {e}")
    keyring = gpgkeys.Keyring(files.keyring_dir(data_dir))
    try:
        try:
            yield db.migrate()
        except (sqlite3.OperationalError, psycopg.OperationalError) as e:
            raise DatabaseUnavailable(f"cannot open the database: {' '.join(str(e).split())}")
        result = yield work(Workers(db, keyring, reactor, logs.logger("papertrader.admin")))
    finally:
        keyring.close()
        db.close()
        logs.close()
    return result


def master_address(data_dir):
    """How a worker reaches this master, as far as the data dir tells: the name given with the master's
    --host (else MASTER_HOST) and the port it last listened on (DATA_DIR/master.port)."""
    names = tls.certificate_hostnames(os.path.join(data_dir, files.MASTER_CERT))
    own = [n for n in names if n not in tls.default_hostnames()]
    host = own[0] if own else "MASTER_HOST"
    if ":" in host:
        host = f"[{host}]"
    port = files.recorded_port(data_dir)
    return f"{host}:{port if port is not None else 'PORT'}"


@defer.inlineCallbacks
def run(reactor, args, out=None):
    """Run the parsed command; ``out`` takes what it prints (default: stdout)."""
    out = out or (lambda text: print(text))
    want_json = getattr(args, "json", False)
    data_dir = os.path.abspath(args.data_dir)
    if not files.is_master_dir(data_dir):
        raise BadDataDir(f"{data_dir} is not a master's data dir (it has no {', '.join(files.MASTER_FILES)}):"
                         " check --data-dir, or start the master there first")
    if args.command == "register-worker":
        allowed = ",".join(args.allow_ip) or None
        parse_allowed(allowed)  # refuse a bad --allow-ip before making anything
        bundle = os.path.abspath(args.out or files.worker_dir(data_dir, args.name))
        armor = files.make_worker_bundle(data_dir, args.name, args.host, bundle)
        fingerprint = yield offline(reactor, args, data_dir, lambda w: w.register(args.name, armor, allowed))
        command = (f"twistd -n papertrader-worker --data-dir BUNDLE_DIR --name {args.name}"
                   f" --master {master_address(data_dir)} --public-host"
                   f" {args.host[0] if args.host else 'WORKER_HOST'}")
        if want_json:
            out(json.dumps({"name": args.name, "fingerprint": fingerprint, "bundle": bundle, "command": command}))
        else:
            out(f"worker {args.name} registered, key fingerprint {fingerprint}\n"
                f"bundle: {bundle}\n"
                f"copy it to the worker's machine and run there:\n  {command}")
    elif args.command == "workers":
        answer = yield live(reactor, data_dir, commands.AdminWorkers)
        if answer is None:
            rows = yield offline(reactor, args, data_dir, lambda w: w.overview())
        else:
            rows = answer["workers"]
        out(json.dumps(plain(rows)) if want_json else (table(rows, COLUMNS) if rows else "No workers."))
    elif args.command == "market":
        answer, running = yield market(reactor, args, data_dir)
        if want_json:
            out(json.dumps(dict(plain(answer), master_running=running)))
        elif running:
            out("\n".join(f"{k.replace('_', ' ')}: {v}" for k, v in plain(answer).items()
                          if k in MARKET_KEYS and v is not None))
        else:
            done = {"status": "", "pause": "pause recorded; ", "resume": "resume recorded; ",
                    "seek": f"seek to {args.date} recorded; "}[args.action]
            out(f"market: {done}no master running (it takes effect when the master starts)."
                f" Last step: {answer['time'] or 'none yet'}, {answer['state']}")
    else:
        answer = yield live(reactor, data_dir, LIVE[args.command], name=args.name)
        running = answer is not None
        if running:
            done = answer["done"]
        else:
            done = yield offline(reactor, args, data_dir, lambda w: getattr(w, args.command)(args.name))
        if want_json:
            out(json.dumps({"name": args.name, "command": args.command, "done": bool(done),
                            "master_running": running}))
        elif running:
            out(f"worker {args.name}: {args.command} done")
        else:
            out(f"worker {args.name}: {args.command} recorded (no master running)")


def describe(failure):
    """(code, message) of a failed command: typed errors keep their code; anything else is a bug."""
    if failure.check(PaperTraderError):
        return failure.value.code, failure.value.message
    return ServerError.code, f"unexpected error ({type(failure.value).__name__}: {failure.getErrorMessage()})"


def main(argv=None, stdout=None, stderr=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr

    def fail(code, message, status=1, want_json="--json" in argv):
        stderr.write(f"papertrader-admin: {message}\n")
        if want_json:
            stdout.write(json.dumps({"error": code, "message": message}) + "\n")
        return status

    try:
        args = parser().parse_args(argv)
    except UsageFailure as e:
        return fail("usage", str(e), 2)
    except SystemExit as e:  # --help
        return e.code or 0
    if getattr(args, "name", None) is not None and not WORKER_NAME_RE.fullmatch(args.name):
        return fail(InvalidInput.code, "a worker name is 1-32 letters, digits, '_', '.', '-'", 1, args.json)
    try:
        gpgkeys.check_installed()
    except gpgkeys.GPGMissing as e:
        return fail(GPGNotInstalled.code, str(e), 1, args.json)
    status = []

    def go(reactor):
        d = run(reactor, args, out=lambda text: stdout.write(text + "\n"))

        def failed(failure):
            status.append(fail(*describe(failure), 1, args.json))

        return d.addErrback(failed)

    try:
        task.react(go)
    except SystemExit as e:
        if e.code:
            return e.code
    return status[0] if status else 0


if __name__ == "__main__":
    sys.exit(main())
