"""``papertrader-admin``: operator commands run on the master's machine.

    papertrader-admin [--json] --data-dir DIR [--database URL] register-worker NAME [--host HOST]...
                      [--allow-ip NET]... [--out DIR] [--replace]
    papertrader-admin [--json] --data-dir DIR workers
    papertrader-admin [--json] --data-dir DIR kick|allow|revoke NAME
    papertrader-admin [--json] --data-dir DIR [--database URL] allow-ip NAME [NET... | --any]
    papertrader-admin [--json] --data-dir DIR market [status|pause|resume|seek DATE]
    papertrader-admin [--json] --data-dir DIR [--database URL] migrate [--backed-up]
    papertrader-admin [--json] --data-dir DIR backup [--to FILE]
    papertrader-admin [--json] --data-dir DIR restore FILE
    papertrader-admin [--json] --data-dir DIR [--database URL] copy-database --to URL
    papertrader-admin [--json] --data-dir DIR game create-class NAME --players FILE --creator USERNAME ...
    papertrader-admin [--json] --data-dir DIR user list [--search TEXT]
    papertrader-admin [--json] --data-dir DIR user show|enable USERNAME
    papertrader-admin [--json] --data-dir DIR user disable USERNAME [--reason TEXT]
    papertrader-admin [--json] --data-dir DIR user reset-password USERNAME [--password-stdin]
    papertrader-admin [--json] --data-dir DIR user delete USERNAME [--yes]

``--json`` may also follow the command.  register-worker makes a worker bundle
(CA certificate, the worker's TLS certificate and GPG key) and records the key's
fingerprint in the master's database; copy the bundle to the worker's machine
and use it as its data dir.

workers, kick, allow, revoke, allow-ip and market talk to the running master over its
admin channel (a Unix socket only the data dir's owner can open), so a kick or a
pause takes effect at once.  allow-ip sets the addresses a registered worker may
connect from (--any: any address; with neither, it says what they are); a worker
linked from an address no longer allowed is disconnected at once, as by kick,
and refused from there when it comes back (register-worker --allow-ip for a registered
worker too).  When no master is running they work on the database
directly (a replay's pause, resume or seek then takes effect when it starts).

migrate applies the database migrations of this release (an existing SQLite
database is backed up first; an existing PostgreSQL one needs --backed-up).
backup copies the SQLite database with SQLite's online backup API, also while
the master runs; restore puts a backup in its place (no master may be running on
DIR), after checking it and migrating it if it is older.  For PostgreSQL, backup
and restore say how to use pg_dump and pg_restore.  copy-database copies the
master's database into an empty one of either kind (SQLite to PostgreSQL or back;
no master may be running), and the master starts on the copy from then on.

game and user need the running master (its admin channel); they refuse with
``master_not_running`` when none runs.  user disable ends the account's sessions
at once, refuses its logins and API keys until user enable; user reset-password
sets a generated password (printed once, never logged) or one read from stdin,
and ends the account's sessions.  Every user action is in the master's log.

Times are shown as the command line shows them: in the market's time zone with its
abbreviation ('2024-03-08 09:30:00 EST'), a day as its date; the running master names
the zone with its answers.  With no master running, a time read from the database is
shown in UTC, and says so.  ``--json`` keeps ISO-8601 in UTC.

DIR must be a master's data dir (one a master has started in): a mistyped path
is refused, never created.  A failure prints one line on stderr (with --json,
also ``{"error": CODE, "message": TEXT}`` on stdout) and exits 1; a usage
mistake exits 2.  Codes: ``usage``, ``bad_data_dir``, ``invalid_input``,
``gpg_missing``, ``database_unavailable``, ``master_running``, ``master_not_running``,
``unknown_users``, ``portfolio_names_taken``, ``unknown_user``, ``weak_password``, ``use_pg_dump``,
``server_error``, and those of
papertrader.master.upgrades.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import sqlite3
import sys
from datetime import timedelta, timezone

import psycopg
from twisted.internet import defer, task
from twisted.protocols import amp

import papertrader
from papertrader import commands, gpgkeys, times, tls
from papertrader.client.output import clock_text, plain, table
from papertrader.errors import InvalidInput, PaperTraderError, ServerError, UnknownCommand
from papertrader.logs import LogSystem, counted
from papertrader.master import admin_channel, backups, files
from papertrader.master.console import WORKER_COLUMNS
from papertrader.master.db import Database, password_hint, pg_dump_schema, redact, same_database
from papertrader.master.validation import WORKER_NAME_RE
from papertrader.master.workers import Workers, allowed_change_text, parse_allowed, worker_rows

LIVE = {"kick": commands.AdminKick, "allow": commands.AdminAllow, "revoke": commands.AdminRevoke}
#: The columns of the worker listing, as the master's console shows them (its VERSION column too).
COLUMNS = WORKER_COLUMNS


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


class MasterRunning(AdminError):
    """A master is running on that data dir or database; stop it first."""

    code = "master_running"


class MasterNotRunning(AdminError):
    """No master is running with this data dir (the command needs one)."""

    code = "master_not_running"


class UnknownUsers(AdminError):
    """Some usernames of a class file have no account."""

    code = "unknown_users"


class PortfolioNamesTaken(AdminError):
    """Some users of a class file have a portfolio named like the game (whose portfolio takes its name)."""

    code = "portfolio_names_taken"


class UsePgDump(AdminError):
    """backup and restore are for SQLite; PostgreSQL has pg_dump and pg_restore."""

    code = "use_pg_dump"


class UsageFailure(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageFailure(message)


def parser():
    p = Parser(prog="papertrader-admin", description="PaperTrader operator commands.")
    p.add_argument("--version", action="version", version=f"%(prog)s {papertrader.__version__}",
                   help="print the version and exit")
    p.add_argument("--data-dir", required=True, help="the master's data dir")
    p.add_argument("--database", help="the master's database URL, if not SQLite in DIR")
    p.add_argument("--json", action="store_true", help="print JSON on stdout (also accepted after the command)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser,
                           metavar="register-worker|workers|kick|allow|revoke|allow-ip|market|migrate|backup|"
                                   "restore|copy-database|game|user")

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
    reg.add_argument("--replace", action="store_true",
                     help="a worker registered already gets a new key (from a new bundle): the running one is"
                          " refused until it runs with the new bundle")
    command("workers", "list workers: state, region, address, load")
    for name, what in (("kick", "disconnect a worker and refuse it until allowed"),
                       ("allow", "let a kicked worker connect again"),
                       ("revoke", "remove a worker's registration for good")):
        command(name, what).add_argument("name")
    addresses = command("allow-ip", "set the addresses a registered worker may connect from (no bundle needed);"
                                    " a worker linked from one no longer allowed is disconnected")
    addresses.add_argument("name")
    addresses.add_argument("nets", nargs="*", metavar="NET",
                           help="an address or network (CIDR) it may connect from (several: any of them); none:"
                                " show them")
    addresses.add_argument("--any", action="store_true", help="let it connect from any address again")
    market = command("market", "the market clock: status, or pause, resume, move (seek) or step a replay")
    market.add_argument("action", nargs="?", default="status", choices=("status", "pause", "resume", "seek", "step"),
                        help="what to do (default: status); step: pause, play N updates, answer when done")
    market.add_argument("date", nargs="?", metavar="DATE|N",
                        help="with seek: the day to move the replay to, YYYY-MM-DD; with step: how many updates"
                             " (default 1)")
    mig = command("migrate", "apply this release's database migrations (SQLite: after a backup)")
    mig.add_argument("--backed-up", action="store_true",
                     help="PostgreSQL: you have backed the database up (pg_dump); required to migrate it")
    back = command("backup", "copy the SQLite database (online: the master may be running)")
    back.add_argument("--to", metavar="FILE", help="where (default: next to the database, named with its schema"
                                                   " version and the time); never overwritten")
    rest = command("restore", "replace the SQLite database by a backup (no master may be running)")
    rest.add_argument("file", metavar="FILE", help="a backup made by papertrader-admin backup or before a migration")
    copy = command("copy-database", "copy the master's database into an empty one (SQLite to PostgreSQL or back; no"
                                    " master may be running); the master then starts on the copy")
    copy.add_argument("--to", metavar="URL", required=True,
                      help="the database to copy into: postgresql://USER@HOST/DB or sqlite:///PATH, holding no"
                           " PaperTrader tables yet")
    game = command("game", "trading games: set one up for a whole class (the master must be running)")
    actions = game.add_subparsers(dest="game_action", required=True, parser_class=Parser, metavar="create-class")
    cls = actions.add_parser("create-class", help="create a game and join every user listed in a file to it")
    cls.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON on stdout")
    cls.add_argument("name", help="the game's name (3-40 letters, digits, spaces, '_', '.', '-')")
    cls.add_argument("--players", metavar="FILE", required=True,
                     help="the players' usernames, one a line ('#' starts a comment; blank lines are skipped)")
    cls.add_argument("--creator", metavar="USERNAME", required=True,
                     help="the account that manages the game (the teacher's): it may invite, remove and end")
    cls.add_argument("--start", metavar="WHEN", required=True, help="as 'papertrader game create --start'")
    cls.add_argument("--end", metavar="WHEN", required=True, help="as 'papertrader game create --end'")
    cls.add_argument("--cash", metavar="AMOUNT", required=True, help="each player's starting cash")
    cls.add_argument("--commission", metavar="MODEL", default=None, help="as 'papertrader game create'")
    cls.add_argument("--fill-model", choices=("bar", "ideal"), default=None, help="as 'papertrader game create'")
    short = cls.add_mutually_exclusive_group()
    short.add_argument("--allow-short", action="store_true", help="players may sell short (margin accounts)")
    short.add_argument("--no-short", action="store_true", help="no short selling (the default)")
    cls.add_argument("--margin", action="store_true", help="players' portfolios are margin accounts")
    cls.add_argument("--assets", metavar="A,B,...", default=None, help="the only symbols that may be traded")
    cls.add_argument("--max-position", metavar="PCT", default=None,
                     help="the most one position may be worth, in percent of the portfolio's equity")
    privacy = cls.add_mutually_exclusive_group()
    privacy.add_argument("--private", action="store_true",
                         help="private: only its players and creator see it (the default for a class)")
    privacy.add_argument("--public", action="store_true", help="anyone may see it and join")
    shown = cls.add_mutually_exclusive_group()
    shown.add_argument("--show-portfolios", action="store_true",
                       help="players may see each other's portfolios (the creator always sees them all)")
    shown.add_argument("--hide-portfolios", action="store_true",
                       help="only the creator sees the players' portfolios (the default)")

    user = command("user", "accounts: list, show, disable, enable, reset a password, delete (the master must be"
                           " running)")
    users = user.add_subparsers(dest="user_action", required=True, parser_class=Parser,
                                metavar="list|show|disable|enable|delete|reset-password")

    def user_command(name, help, username=True):
        c = users.add_parser(name, help=help)
        c.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON on stdout")
        if username:
            c.add_argument("username", metavar="USERNAME")
        return c

    listing = user_command("list", "every account: email, created, last login, disabled, portfolios, sessions,"
                                   " API keys", username=False)
    listing.add_argument("--search", metavar="TEXT", help="only accounts whose username or email holds TEXT")
    user_command("show", "one account in full")
    disable = user_command("disable", "refuse the account's logins and API keys, end its sessions now")
    disable.add_argument("--reason", metavar="TEXT", help="why (kept with the account and logged; the user does"
                                                           " not see it)")
    user_command("enable", "let a disabled account log in again")
    delete = user_command("delete", "delete the account as its owner's delete-account does: personal data"
                                    " removed, sessions ended, open orders canceled, API keys revoked (asks first)")
    delete.add_argument("--yes", action="store_true",
                        help="do not ask for confirmation (needed without a terminal)")
    reset = user_command("reset-password", "set a new password (generated and printed once, unless"
                                           " --password-stdin) and end the account's sessions")
    reset.add_argument("--password-stdin", action="store_true",
                       help="read the new password from the first line of standard input (registration's rules)")
    return p


#: Most usernames one class file may list, and most bytes it may have.
MAX_CLASS = 100_000
MAX_CLASS_FILE = 4 * 1024 * 1024
#: Usernames per admin-channel command (one AMP value holds at most 64 kB).
ENROL_CHUNK = 1000


def class_usernames(path):
    """The usernames of a class file, in order, without duplicates; InvalidInput for a bad file."""
    from papertrader.master import validation

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CLASS_FILE + 1)
    except OSError as e:
        raise InvalidInput(f"--players: cannot read {path}: {e.strerror or e}")
    if len(data) > MAX_CLASS_FILE:
        raise InvalidInput(f"--players: {path} is larger than {MAX_CLASS_FILE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"--players: {path} is not UTF-8 text")
    names, seen = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            validation.username(line)
        except InvalidInput:
            raise InvalidInput(f"--players: line {number} of {path} is not a username: {line[:32]!r}")
        if line.lower() not in seen:
            seen.add(line.lower())
            names.append(line)
    if not names:
        raise InvalidInput(f"--players: {path} lists no usernames")
    if len(names) > MAX_CLASS:
        raise InvalidInput(f"--players: at most {MAX_CLASS} usernames")
    return names


@defer.inlineCallbacks
def create_class(reactor, args, data_dir):
    """``game create-class``: check every username, create the game, join them all; the answer."""
    from papertrader.times import game_window

    names = class_usernames(args.players)
    arguments = dict(name=args.name, **game_window(args.start, args.end),
                     starting_cash=args.cash, margin=args.margin or args.allow_short, allow_short=args.allow_short,
                     private=not args.public, show_portfolios=args.show_portfolios)
    if args.commission:
        arguments["commission"] = args.commission
    if args.fill_model:
        arguments["fill_model"] = args.fill_model
    if args.assets:
        arguments["assets"] = [s.strip().upper() for s in args.assets.split(",") if s.strip()][:1000]
    if args.max_position:
        arguments["max_position"] = args.max_position.rstrip("%")
    try:
        proto = yield admin_channel.connect(reactor, data_dir)
    except Exception:
        raise MasterNotRunning("no master is running with this data dir: start it, then run create-class")
    try:
        unknown, conflicts = [], []
        for i in range(0, len(names), ENROL_CHUNK):
            check = yield proto.callRemote(commands.AdminEnrol, name=args.name, usernames=names[i:i + ENROL_CHUNK],
                                           dry_run=True)
            unknown += check["unknown"]
            conflicts += check.get("conflicts") or []
        if unknown:
            raise UnknownUsers(f"no account for {len(unknown)} of the {len(names)} usernames in {args.players}:"
                               f" {_some(unknown)}; nothing was created")
        if conflicts:
            raise PortfolioNamesTaken(
                f"{len(conflicts)} of the {len(names)} users in {args.players}"
                f" {'has' if len(conflicts) == 1 else 'have'} a portfolio named"
                f" {args.name!r}, the name their portfolio in the game would take: {_some(conflicts)}; nothing was"
                " created: ask them to rename it (papertrader portfolio rename), or leave them out of the file"
                " and invite them later")
        game = yield proto.callRemote(commands.AdminCreateGame, creator=args.creator, **arguments)
        joined, already = [], []
        for i in range(0, len(names), ENROL_CHUNK):
            answer = yield proto.callRemote(commands.AdminEnrol, name=game["name"], usernames=names[i:i + ENROL_CHUNK])
            joined += answer["joined"]
            unknown += answer["unknown"]
            already += answer["already"]
            conflicts += answer.get("conflicts") or []  # (made one since the check)
    finally:
        proto.transport.loseConnection()
    # The game as made, with the players just enrolled in it (it had none); and the market's zone.
    playing = args.creator.casefold() in {name.casefold() for name in joined}
    return dict(without_zone(game), players=len(joined), playing=playing, joined=joined, unknown=unknown,
                already=already, not_joined=conflicts), zone_of(game)


def game_dates(game, zone):
    """A game's start and end for a person, as 'papertrader game list' shows them: a day given as a day as that day
    ('2026-09-01 to 2027-06-30': --end's day is the last one played), a time in ``zone``."""
    start = times.local_or_day(game["start"], zone, seconds=True)
    last = times.last_day(game["end"], zone)
    return f"{start} to {last if last is not None else times.local(game['end'], zone, seconds=True)}"


def _some(names, most=20):
    """Up to ``most`` names, and how many more."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def zone_of(answer):
    """The time zone an answer of the running master names (its market calendar's), which its times are shown in
    for people; UTC when it names none (a master from before this)."""
    return times.zone((answer or {}).get("timezone"))


def without_zone(answer):
    """``answer`` as --json prints it: without the zone, which was said for the text."""
    return {k: v for k, v in answer.items() if k != "timezone"}


def market_text(answer):
    """The market clock as ``market`` prints it: as ``papertrader clock`` shows it (times in the market's zone, a
    replay's first and last day as days: it said 'is open: yes', 'mode: replay', unaligned)."""
    return clock_text(answer, zone_of(answer))


def stored_time(text):
    """A time the database holds (ISO text) for a person, with no master running to name the market's zone: in
    UTC, saying so, to the nearest second (a replay's position is kept a microsecond before it)."""
    return times.local(times.parse_iso(text) + timedelta(microseconds=500_000), timezone.utc, seconds=True)


@defer.inlineCallbacks
def market(reactor, args, data_dir, note=lambda text: None):
    """The market clock's state, after the action; fires (answer, master_running)."""
    if args.action == "seek":
        from papertrader.market.replay import parse_seek_date

        parse_seek_date(args.date)
    elif args.action == "step":
        from papertrader.market.service import parse_step_count

        parse_step_count(args.date)
    elif args.date:
        raise InvalidInput(f"market {args.action} takes no date")
    answer = yield live(reactor, data_dir, commands.AdminMarket, action=args.action,
                        **({"date": args.date} if args.date else {}))
    if answer is not None:
        return answer, True
    if args.action == "step":
        raise MasterNotRunning(f"no master is running with the data dir {data_dir}: start it, then run market step")

    def offline_state(workers):
        db = workers.db
        changes = {"pause": {"replay_state": "paused"}, "resume": {"replay_state": "running"},
                   "seek": {"replay_seek": args.date}}.get(args.action, {})

        def work(cursor):
            cursor.execute(db.sql("SELECT value FROM market_state WHERE name = 'provider'"))
            provider = (cursor.fetchone() or [None])[0]
            if changes and provider not in (None, "replay"):
                # As the running master says it (MarketService.control): nothing is recorded.
                raise InvalidInput(f"the market follows the wall clock (provider {provider}, as its master last"
                                   " ran): only a replay can be paused, resumed or moved")
            for name, value in changes.items():
                cursor.execute(db.sql("INSERT INTO market_state (name, value) VALUES (?, ?) ON CONFLICT (name)"
                                      " DO UPDATE SET value = excluded.value"), (name, value))
            cursor.execute(db.sql("SELECT name, value FROM market_state"))
            return dict(cursor.fetchall())

        return db.run(work)

    state = yield offline(reactor, args, data_dir, offline_state, note)
    return {"time": state.get("last_step"), "state": state.get("replay_state", "running"),
            "seek": state.get("replay_seek") or None}, False


@defer.inlineCallbacks
def on_master(reactor, data_dir, what, calls):
    """Run ``calls(proto)`` over the running master's admin channel; MasterNotRunning when none listens."""
    try:
        proto = yield admin_channel.connect(reactor, data_dir)
    except Exception:
        raise MasterNotRunning(f"no master is running with the data dir {data_dir}: start it, then run {what}")
    try:
        answer = yield calls(proto)
    finally:
        proto.transport.loseConnection()
    return answer


#: A generated password: 4 groups of 4 from 32 letters and digits that cannot be mistaken for each other (80
#: bits), easy to read out to a user.
PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
#: Longest line read from standard input for --password-stdin (a password is at most 1024 characters).
MAX_PASSWORD_LINE = 8192
USER_KEYS = ("username", "email", "created", "last_login", "disabled", "disabled_reason", "password", "portfolios",
             "sessions", "api_keys")
USER_COLUMNS = ["username", "email", "created", "last_login", "disabled", "portfolios", "sessions", "api_keys"]


def generated_password():
    return "-".join("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(4)) for _ in range(4))


def password_from_stdin(stdin):
    password = stdin.readline(MAX_PASSWORD_LINE).rstrip("\r\n")
    if not password:
        raise InvalidInput("--password-stdin: no password on standard input (one line)")
    return password


def user_view(user):
    """An account's answer with every key present (None where unknown), for JSON."""
    return {**{k: user.get(k) for k in USER_KEYS}, **{k: v for k, v in user.items() if k not in USER_KEYS}}


def when(value, zone):
    """A time of an account for a person: in ``zone`` (the market's) with its abbreviation, to the second, as the
    command line shows times; '-' for none."""
    return times.local(value, zone, seconds=True) if value is not None else "-"


@defer.inlineCallbacks
def user_command(reactor, args, data_dir, stdin):
    """``user ACTION``, over the running master's admin channel; fires with (the answer, the market's time zone,
    which the master named with it)."""
    what = f"user {args.user_action}"
    if args.user_action == "list":
        @defer.inlineCallbacks
        def pages(proto):
            found, after = [], None
            while True:
                page = yield proto.callRemote(commands.AdminUsers, search=args.search or None, after=after)
                found += page["users"]
                after = page.get("next")
                if after is None:
                    return found, zone_of(page)

        users, zone = yield on_master(reactor, data_dir, what, pages)
        return [user_view(u) for u in users], zone
    if args.user_action == "show":
        command, kwargs = commands.AdminUser, {}
    elif args.user_action == "disable":
        command, kwargs = commands.AdminDisableUser, {"reason": args.reason}
    elif args.user_action == "enable":
        command, kwargs = commands.AdminEnableUser, {}
    elif args.user_action == "delete":
        command, kwargs = commands.AdminDeleteUser, {}
    else:
        command, kwargs = commands.AdminResetPassword, {}

    def call(proto):
        if command is commands.AdminResetPassword:
            # Read once the master is known to run (no one types a password for nothing).
            kwargs["password"] = password_from_stdin(stdin) if args.password_stdin else generated_password()
        return proto.callRemote(command, username=args.username, **kwargs)

    answer = yield on_master(reactor, data_dir, what, call)
    zone, answer = zone_of(answer), without_zone(answer)
    if args.user_action == "show":
        return user_view(answer), zone
    if args.user_action == "reset-password":
        answer = dict(answer, password=None if args.password_stdin else kwargs["password"])
    return answer, zone


def user_text(args, answer, zone=timezone.utc):
    """What ``user ACTION`` prints without --json (times in ``zone``)."""
    action = args.user_action
    if action == "list":
        if not answer:
            return f"No account's username or email holds {args.search!r}." if args.search else "No accounts."
        rows = [dict(u, created=when(u["created"], zone), last_login=when(u["last_login"], zone),
                     disabled=(f"yes: {u['disabled_reason']}" if u.get("disabled_reason") else "yes")
                     if u["disabled"] else "no") for u in answer]
        return table(rows, USER_COLUMNS)
    name = answer["username"]
    if action == "show":
        lines = [("username", name), ("email", answer["email"]), ("created", when(answer["created"], zone)),
                 ("last login", when(answer["last_login"], zone)),
                 ("disabled", f"since {when(answer['disabled'], zone)}"
                              + (f": {answer['disabled_reason']}" if answer["disabled_reason"] else "")
                  if answer["disabled"] else "no"),
                 ("sign-in", ", ".join(answer["sign_in"]) or "none"),
                 ("portfolios", ", ".join(answer["portfolio_names"]) or "none"),
                 ("open orders", answer["open_orders"]), ("sessions", answer["sessions"]),
                 ("API keys", "; ".join(answer["keys"]) or "none")]
        return "\n".join(f"{k}: {v}" for k, v in lines)
    if action == "disable":
        keys = answer["api_keys"]
        return ((f"{name} was already disabled (since {when(answer['disabled'], zone)})" if answer["already"]
                 else f"{name} disabled")
                + f": {counted(answer['sessions_ended'], 'session')} ended, {counted(keys, 'API key')} refused"
                  " until 'user enable'; portfolios and open orders stay as they are")
    if action == "enable":
        return f"{name} enabled: may log in again" if answer["was_disabled"] else f"{name} was not disabled"
    if action == "delete":
        orders = answer["orders_canceled"]
        return (f"account {name} deleted: personal data removed, {counted(answer['sessions_ended'], 'session')}"
                f" ended, {counted(orders, 'open order')} canceled, API keys revoked")
    text = f"password of {name} reset; {counted(answer['sessions_ended'], 'session')} ended"
    if answer.get("password"):
        text += (f"\ntemporary password (shown only now): {answer['password']}\n"
                 f"give it to {name} privately; they can change it on the website's Account page or with"
                 " 'papertrader passwd'")
    return text


@defer.inlineCallbacks
def live(reactor, data_dir, command, **kwargs):
    """Ask the running master; fires None when no master is listening on the admin channel."""
    try:
        proto = yield admin_channel.connect(reactor, data_dir)
    except Exception:
        return None
    try:
        answer = yield proto.callRemote(command, **kwargs)
    except (UnknownCommand, amp.UnhandledCommand):
        raise UnknownCommand(f"the running master does not know this command ({command.__name__}): it runs an older"
                             " release of PaperTrader than this papertrader-admin; restart it with this release")
    finally:
        proto.transport.loseConnection()
    return answer


def open_database(args, data_dir):
    """The master's database: ``--database``, else the one the master last started with (DIR/database.url),
    else the SQLite database in DIR."""
    url = args.database or files.recorded_database(data_dir) or Database.default_url(data_dir)
    try:
        return Database(url, data_dir)
    except ValueError as e:
        where = "--database" if args.database else f"{files.DATABASE_FILE} in {data_dir}"
        raise InvalidInput(f"{where}: {e}")


def admin_log(data_dir):
    return LogSystem("admin", 100, os.path.join(data_dir, "logs", "admin.log"), forward=False)


@defer.inlineCallbacks
def upgrade(db, log, note, confirmed=False):
    """``db.upgrade()``, logged (DATA_DIR/logs/admin.log) and noted on stderr when it did anything."""
    try:
        done = yield db.upgrade(confirmed)
    except (sqlite3.OperationalError, psycopg.OperationalError) as e:
        raise DatabaseUnavailable(f"cannot open the database: {' '.join(str(e).split())}")
    if done.backup:
        log.info("database at schema version {version} backed up to {path} before migrating", version=done.before,
                 path=done.backup)
    if done.applied:
        log.info("database migrated from schema version {before} to {after}: {names}", before=done.before,
                 after=done.after, names=", ".join(done.applied))
        if done.before:
            note(f"database migrated from schema version {done.before} to {done.after}"
                 + (f"; backup of version {done.before}: {done.backup}" if done.backup else ""))
    return done


@defer.inlineCallbacks
def offline(reactor, args, data_dir, work, note=lambda text: None):
    """Run ``work(workers)`` against the database and keyring directly."""
    logs = admin_log(data_dir)
    try:
        db = open_database(args, data_dir)
    except InvalidInput:
        logs.close()
        raise
    keyring = gpgkeys.Keyring(files.keyring_dir(data_dir))
    try:
        log = logs.logger("papertrader.admin")
        yield upgrade(db, log, note)
        result = yield work(Workers(db, keyring, reactor, log))
    finally:
        keyring.close()
        db.close()
        logs.close()
    return result


class holding_data_dir:
    """The data dir's lock for the length of a ``with``: refused (MasterRunning) while a master runs there."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.lock = admin_channel.data_dir_lock(data_dir)

    def __enter__(self):
        if not self.lock.lock():
            pid = admin_channel.lock_holder(self.data_dir)
            raise MasterRunning(f"a master is running with the data dir {self.data_dir}"
                                f"{f' (pid {pid})' if pid else ''}: stop it first")
        return self

    def __exit__(self, *exc):
        self.lock.unlock()


def pg_dump_hint(db, command):
    url = redact(db.url)
    return (f"{command} works on SQLite databases; for PostgreSQL use pg_dump and pg_restore: pg_dump --format=custom"
            f" --file=papertrader.dump{pg_dump_schema(url)} --dbname='{url}' (the master may be running), and to"
            " restore, with no master"
            f" running: pg_restore --clean --if-exists --no-owner --dbname='{url}' papertrader.dump, then"
            f" papertrader-admin --data-dir {db.data_dir} --database '{url}' migrate --backed-up if the dump is"
            " older than this release" + password_hint(db.url))


@defer.inlineCallbacks
def migrate(reactor, args, data_dir, note):
    """Apply the pending migrations, holding the data dir's lock and the database's; fires an Upgrade."""
    db = open_database(args, data_dir)
    logs = admin_log(data_dir)
    try:
        with holding_data_dir(data_dir):
            try:
                held = yield db.lock()
            except psycopg.OperationalError as e:
                raise DatabaseUnavailable(f"cannot open the database: {' '.join(str(e).split())}")
            if not held:
                raise MasterRunning(f"a master is running against the database {redact(db.url)}: stop it first")
            done = yield upgrade(db, logs.logger("papertrader.admin"), lambda text: None, confirmed=args.backed_up)
    finally:
        db.close()
        logs.close()
    return done


def backup(args, data_dir):
    """Copy the SQLite database; (path, schema version)."""
    db = open_database(args, data_dir)
    db.close()
    if db.dialect != "sqlite":
        raise UsePgDump(pg_dump_hint(db, "backup"))
    to = os.path.abspath(args.to) if args.to else None
    try:
        made, version = backups.back_up(db.path, to)
    except FileExistsError:
        raise InvalidInput(f"{to or 'the backup file'} exists: a backup never overwrites a file; choose another"
                           " name (--to)")
    except OSError as e:
        raise InvalidInput(f"cannot write {to or db.path}: {e.strerror or e}")
    logs = admin_log(data_dir)
    try:
        logs.logger("papertrader.admin").info("backup of the database {path} (schema version {version}) written to"
                                              " {made}", path=db.path, version=version, made=made)
    finally:
        logs.close()
    return made, version


@defer.inlineCallbacks
def restore(args, data_dir):
    """Replace the SQLite database by the backup ``args.file``; fires a dict saying what was done."""
    db = open_database(args, data_dir)
    db.close()
    if db.dialect != "sqlite":
        raise UsePgDump(pg_dump_hint(db, "restore"))
    file = os.path.abspath(args.file)
    if not os.path.isfile(file):
        raise InvalidInput(f"{file} is not a file")
    if os.path.exists(db.path) and os.path.samefile(file, db.path):
        raise InvalidInput(f"{file} is the database itself")
    logs = admin_log(data_dir)
    log = logs.logger("papertrader.admin")
    try:
        with holding_data_dir(data_dir):
            known = db.known_version()
            tmp, version = backups.stage(file, os.path.dirname(db.path), known)
            try:
                migrated = version
                if version < known:
                    staged = Database("sqlite:///" + tmp)
                    try:
                        migrated = (yield staged.upgrade(backup=False)).after
                    finally:
                        staged.close()
                    backups.settle(tmp)
                saved = backups.put_in_place(tmp, db.path)
            finally:
                backups.discard(tmp)
            log.info("database {path} restored from {file} (schema version {version}, now {migrated}); the one it"
                     " replaced is {saved}", path=db.path, file=file, version=version, migrated=migrated,
                     saved=saved or "none")
    finally:
        logs.close()
    return {"file": file, "database": db.path, "version": version, "migrated_to": migrated, "replaced": saved}


@defer.inlineCallbacks
def copy_database(args, data_dir):
    """Copy the master's database into the empty ``args.to`` (papertrader/master/database_copy.py), holding the data
    dir's lock and both databases'; record it as the master's database.  Fires a dict saying what was done."""
    from twisted.internet import threads

    from papertrader.master import database_copy

    source = open_database(args, data_dir)
    try:
        target = Database(args.to, data_dir)
    except ValueError as e:
        source.close()
        raise InvalidInput(f"--to: {e}")
    logs = admin_log(data_dir)
    try:
        if same_database(args.to, source.url, data_dir):  # (however it is written: with or without :5432)
            raise InvalidInput(f"--to names the master's database itself ({redact(source.url)})")
        with holding_data_dir(data_dir):
            try:
                for db in (source, target):
                    if not (yield db.lock()):
                        raise MasterRunning(f"a master is running against the database {redact(db.url)}: stop it"
                                            " first")
                version = yield source.pool.runInteraction(source._current)
                theirs = yield target.pool.runInteraction(target._current)
            except (sqlite3.OperationalError, psycopg.OperationalError) as e:
                raise DatabaseUnavailable(f"cannot open a database: {' '.join(str(e).split())}")
            known = source.known_version()
            if version != known:
                raise InvalidInput(f"the master's database is at schema version {version}, this release's is {known}:"
                                   " migrate it first (papertrader-admin migrate)")
            if theirs:
                empty = (": move that file away first, or give --to a new file"
                         if target.url.startswith("sqlite") else
                         " (after a copy into it that failed: drop its tables, or its schema, first)")
                raise InvalidInput(f"{redact(target.url)} holds a PaperTrader database already (schema version"
                                   f" {theirs}): copy only into an empty database{empty}")
            yield target.upgrade(backup=False)
            counts = yield threads.deferToThread(database_copy.copy, source, target)
            files.record_database(data_dir, None if same_database(target.url, Database.default_url(data_dir),
                                                                    data_dir) else target.url)
            logs.logger("papertrader.admin").info(
                "database copied from {source} to {target}: {rows} rows of {tables} tables (schema version"
                " {version}); the master starts on the copy from now on", source=redact(source.url),
                target=redact(target.url), rows=sum(counts.values()), tables=len(counts), version=version)
    finally:
        source.close()
        target.close()
        logs.close()
    return {"from": redact(source.url), "to": redact(target.url), "version": version, "tables": len(counts),
            "rows": sum(counts.values()), "counts": counts}


def master_address(data_dir):
    """How a worker reaches this master, as far as the data dir tells: the name given with the master's
    --host (else MASTER_HOST) and the port it last listened on (DATA_DIR/master.port).  The certificate
    always holds the loopback names, so a loopback --host (127.0.0.1, localhost) cannot be told from none:
    MASTER_HOST then too."""
    names = tls.certificate_hostnames(os.path.join(data_dir, files.MASTER_CERT))
    own = [n for n in names if n not in tls.default_hostnames()]
    host = own[0] if own else "MASTER_HOST"
    if ":" in host:
        host = f"[{host}]"
    port = files.recorded_port(data_dir)
    return f"{host}:{port if port is not None else 'PORT'}"


@defer.inlineCallbacks
def run(reactor, args, out=None, note=None, stdin=None):
    """Run the parsed command; ``out`` takes what it prints (default: stdout), ``note`` what it says on the side
    (default: stderr); ``stdin``: where --password-stdin reads (default: standard input)."""
    out = out or (lambda text: print(text))
    note = note or (lambda text: print(f"papertrader-admin: {text}", file=sys.stderr))
    want_json = getattr(args, "json", False)
    data_dir = os.path.abspath(args.data_dir)
    if not files.is_master_dir(data_dir):
        hint = (" (to restore a backup onto a new machine, copy the old data dir's ca.pem, ca-key.pem,"
                " master.pem and gnupg/ into it first: a new CA would make every worker's bundle and every"
                " client's ca.pem useless)" if args.command == "restore" else "")
        if all(os.path.isfile(os.path.join(data_dir, name)) for name in (tls.CA_CERT, files.WORKER_CERT)):
            raise BadDataDir(f"{data_dir} is a worker's data dir (its bundle: {tls.CA_CERT}, {files.WORKER_CERT}),"
                             " not a master's: run papertrader-admin on the master's machine, with the master's"
                             " --data-dir")
        missing = [name for name in files.MASTER_FILES if not os.path.isfile(os.path.join(data_dir, name))]
        raise BadDataDir(f"{data_dir} is not a master's data dir (it has no {', '.join(missing)}):"
                         f" check --data-dir, or start the master there first{hint}")
    if args.command == "register-worker":
        allowed = ",".join(args.allow_ip) or None
        parse_allowed(allowed)  # refuse a bad --allow-ip before making anything
        for host in args.host:
            try:
                tls.check_hostname(host, port_from="the worker's --port sets it")
            except ValueError as e:
                raise InvalidInput(str(e))
        bundle = os.path.abspath(args.out or files.worker_dir(data_dir, args.name))
        made = not os.path.exists(bundle)
        if not made and not files.may_hold_bundle(bundle):
            raise InvalidInput(f"--out {bundle} holds other files and is not a worker bundle: give a directory that"
                               f" does not exist yet (the bundle is made there, such as"
                               f" {os.path.join(bundle, args.name)}), or this worker's bundle to make it again")
        if args.replace and not made:
            raise InvalidInput(f"--replace makes a new key in a new bundle, and {bundle} exists (a bundle there holds"
                               " the old key): give --out a new directory, or remove that one first")
        before = None
        try:
            armor = files.make_worker_bundle(data_dir, args.name, args.host, bundle)

            @defer.inlineCallbacks
            def register(workers):
                nonlocal before
                before = yield workers.registration(args.name)
                fingerprint = yield workers.register(args.name, armor, allowed, replace=args.replace)
                return fingerprint

            fingerprint = yield offline(reactor, args, data_dir, register, note)
        except Exception:
            if made:  # not registered: no bundle (with its private key) is left behind to be copied and fail
                shutil.rmtree(bundle, ignore_errors=True)
            raise
        # Without --host, a bundle made again keeps its certificate's names: name the one it has, if any.
        own = args.host or [n for n in tls.certificate_hostnames(os.path.join(bundle, files.WORKER_CERT))
                            if n not in tls.default_hostnames()]
        command = (f"twistd -n papertrader-worker --data-dir BUNDLE_DIR --name {args.name}"
                   f" --master {master_address(data_dir)} --public-host"
                   f" {own[0] if own else 'WORKER_HOST'}")
        replaced = before["fingerprint"] if before and before["state"] != "revoked" and \
            before["fingerprint"] != fingerprint else None
        cut = None
        if allowed is not None and before is not None:
            # Addresses changed for a registered worker: a running master cuts its link from an address no longer
            # allowed, as allow-ip does (the database has them already; no master running: the next connection).
            try:
                cut = yield live(reactor, data_dir, commands.AdminAllowIp, name=args.name, allowed=allowed)
            except UnknownCommand:  # (registered all the same)
                note("the running master is of an older release: the addresses apply at the worker's next"
                     " connection")
        disconnected = bool(cut and cut["disconnected"])
        if want_json:
            out(json.dumps({"name": args.name, "fingerprint": fingerprint, "bundle": bundle, "command": command,
                            "replaced": replaced, "disconnected": disconnected}))
        else:
            text = (f"worker {args.name} registered, key fingerprint {fingerprint}\n"
                    + (f"it replaces key {replaced}: a worker running with the old bundle keeps its link until it"
                       " reconnects; from then on only this bundle is admitted\n" if replaced else "")
                    + (f"it was connected from {cut.get('address')}, which is no longer allowed: disconnected, and"
                       " refused from there from now on\n" if disconnected else "")
                    + f"bundle: {bundle}\n"
                    f"copy it to the worker's machine and run there:\n  {command}")
            if "MASTER_HOST" in command:
                text += ("\nMASTER_HOST: the master's host name or address. Its certificate names only this machine"
                         " (localhost, 127.0.0.1, ::1: also when the master was started with one of them as --host),"
                         " so a worker here may use 127.0.0.1; for a worker elsewhere, restart the master with"
                         " --host NAME (NAME: what that worker reaches it by)")
            if "WORKER_HOST" in command:
                text += ("\nWORKER_HOST: what clients reach the worker by. Its certificate names only localhost,"
                         " 127.0.0.1 and ::1: a worker on another machine is registered with --host NAME (what"
                         " clients reach it by)")
            out(text)
    elif args.command == "workers":
        answer = yield live(reactor, data_dir, commands.AdminWorkers)
        if answer is None:
            rows = yield offline(reactor, args, data_dir, lambda w: w.overview(), note)
            note("no master is running with this data dir: the workers as registered (none is connected)")
        else:
            rows = answer["workers"]
        zone = zone_of(answer)
        out(json.dumps(plain(rows)) if want_json else
            (table(worker_rows(rows, zone), COLUMNS, zone) if rows else "No workers."))
    elif args.command == "allow-ip":
        allowed = ",".join(args.nets) if args.nets else None
        kwargs = {"any": True} if args.any else ({"allowed": allowed} if args.nets else {})
        answer = yield live(reactor, data_dir, commands.AdminAllowIp, name=args.name, **kwargs)
        running = answer is not None
        if not running:
            answer = yield offline(reactor, args, data_dir,
                                   lambda w: admin_channel.change_allowed(w, args.name, allowed, args.any), note)
        before, after = answer.get("before"), answer.get("after")
        if want_json:
            out(json.dumps({"name": args.name, "command": "allow-ip", "before": before.split(",") if before else None,
                            "after": after.split(",") if after else None,
                            "disconnected": bool(answer["disconnected"]), "master_running": running}))
        else:
            out(allowed_change_text(args.name, answer, bool(args.any or args.nets))
                + ("; no master is running: it applies when the worker connects"
                   if not running and (args.any or args.nets) else ""))
    elif args.command == "migrate":
        done = yield migrate(reactor, args, data_dir, note)
        if want_json:
            out(json.dumps({"before": done.before, "after": done.after, "applied": done.applied,
                            "backup": done.backup}))
        elif not done.applied:
            out(f"database at schema version {done.after}: up to date")
        else:
            out(f"database migrated from schema version {done.before} to {done.after} ({', '.join(done.applied)})"
                + (f"\nbackup of version {done.before}: {done.backup}" if done.backup else ""))
    elif args.command == "backup":
        path, version = backup(args, data_dir)
        if want_json:
            out(json.dumps({"file": path, "version": version, "bytes": os.path.getsize(path)}))
        else:
            out(f"backup of the database (schema version {version}) written to {path}")
    elif args.command == "copy-database":
        done = yield copy_database(args, data_dir)
        if want_json:
            out(json.dumps(done))
        else:
            out(f"copied {done['rows']} rows of {done['tables']} tables (schema version {done['version']}) from"
                f" {done['from']} to {done['to']}; the master starts on {done['to']} from now on (the old database"
                " is kept as it was)")
    elif args.command == "restore":
        done = yield restore(args, data_dir)
        if want_json:
            out(json.dumps(done))
        else:
            migrated = f", migrated to {done['migrated_to']}" if done["migrated_to"] != done["version"] else ""
            out(f"database {done['database']} restored from {done['file']} (schema version {done['version']}"
                f"{migrated})" + (f"\nthe database it replaced is saved as {done['replaced']}" if done["replaced"]
                                  else ""))
    elif args.command == "game":
        done, zone = yield create_class(reactor, args, data_dir)
        if want_json:
            out(json.dumps(plain(done)))
        else:
            text = (f"game {done['name']} created for {args.creator} ({'private' if done['private'] else 'public'}),"
                    f" {game_dates(done, zone)}: {counted(len(done['joined']), 'player')} joined")
            if done["already"]:
                text += f"; already in it: {', '.join(done['already'])}"
            if done["not_joined"]:
                text += (f"; not joined (a portfolio of theirs has the game's name: they rename it, then join it"
                         f" with 'papertrader game join'): {', '.join(done['not_joined'])}")
            if done.get("invite_code"):
                text += f"\ninvite code (for anyone joining later): {done['invite_code']}"
            out(text)
    elif args.command == "user":
        answer, zone = yield user_command(reactor, args, data_dir, stdin or sys.stdin)
        out(json.dumps(plain(answer)) if want_json else user_text(args, answer, zone))
    elif args.command == "market":
        answer, running = yield market(reactor, args, data_dir, note)
        if want_json:
            out(json.dumps(dict(plain(answer), master_running=running)))
        elif running:
            out(market_text(answer))
        else:
            done = {"status": "", "pause": "pause recorded; ", "resume": "resume recorded; ", "step": "",
                    "seek": f"seek to {args.date} recorded; "}[args.action]
            out(f"market: {done}no master running (it takes effect when the master starts)."
                f" Last step: {stored_time(answer['time']) if answer['time'] else 'none yet'}, {answer['state']}")
    else:
        answer = yield live(reactor, data_dir, LIVE[args.command], name=args.name)
        running = answer is not None
        if running:
            done = answer["done"]
        else:
            done = yield offline(reactor, args, data_dir, lambda w: getattr(w, args.command)(args.name), note)
        if want_json:
            out(json.dumps({"name": args.name, "command": args.command, "done": bool(done),
                            "master_running": running}))
        elif args.command == "revoke" and not done:
            out(f"worker {args.name}: already revoked")
        elif running:
            out(f"worker {args.name}: {args.command} done")
        else:
            out(f"worker {args.name}: {args.command} recorded (no master running)")


def describe(failure):
    """(code, message) of a failed command: typed errors keep their code; anything else is a bug."""
    if failure.check(PaperTraderError):
        return failure.value.code, failure.value.message
    return ServerError.code, f"unexpected error ({type(failure.value).__name__}: {failure.getErrorMessage()})"


def main(argv=None, stdout=None, stderr=None, stdin=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    stdin = stdin or sys.stdin

    def fail(code, message, status=1, want_json="--json" in argv):
        stderr.write(f"papertrader-admin: {message}\n")
        if want_json:
            stdout.write(json.dumps({"error": code, "message": message}) + "\n")
        return status

    try:
        p = parser()
        args, extra = p.parse_known_args(argv)
        if extra and args.command == "allow-ip" and not any(a.startswith("-") for a in extra):
            args.nets += extra  # (NETs after --any: 'allow-ip NAME --any 10.0.0.0/8' is refused below, saying why)
        elif extra:
            p.error(f"unrecognized arguments: {' '.join(extra)}")
    except UsageFailure as e:
        return fail("usage", str(e), 2)
    except SystemExit as e:  # --help
        return e.code or 0
    if args.command == "allow-ip" and args.any and args.nets:
        return fail("usage", "allow-ip: give addresses (NET) or --any, not both", 2, args.json)
    if args.command != "game" and getattr(args, "name", None) is not None and not WORKER_NAME_RE.fullmatch(args.name):
        return fail(InvalidInput.code, "a worker name is 1-32 letters, digits, '_', '.', '-'", 1, args.json)
    try:
        gpgkeys.check_installed()
    except gpgkeys.GPGMissing as e:
        return fail(GPGNotInstalled.code, str(e), 1, args.json)
    if args.command == "user" and args.user_action == "delete" and not args.yes:
        if not (stdin is not None and stdin.isatty()):
            return fail("usage", "user delete needs --yes when not run in a terminal", 2, args.json)
        stderr.write(f"Delete the account {args.username}? Its personal data is removed, its open orders canceled;"
                     f" this cannot be undone. Type its username to go on: ")
        stderr.flush()
        if stdin.readline(200).strip() != args.username:
            return fail(InvalidInput.code, "not confirmed; nothing was deleted", 1, args.json)
    status = []

    def go(reactor):
        d = run(reactor, args, out=lambda text: stdout.write(text + "\n"),
                note=lambda text: stderr.write(f"papertrader-admin: {text}\n"), stdin=stdin)

        def failed(failure):
            status.append(fail(*describe(failure), 1, args.json))

        return d.addErrback(failed)

    try:
        # Ctrl-C from here is the reactor's (it stops the command's reactor once the code running finishes, so a
        # backup, restore or migration is not cut mid-write): Twisted takes SIGINT over only from Python's
        # default handler, and the entry point's (papertrader/scripts.py) would exit at once.
        if signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, signal.default_int_handler):
            signal.signal(signal.SIGINT, signal.default_int_handler)
        task.react(go)
    except KeyboardInterrupt:  # before the reactor took SIGINT over
        return 128 + signal.SIGINT
    except SystemExit as e:
        if e.code:
            return e.code
    return status[0] if status else 0


if __name__ == "__main__":
    sys.exit(main())
