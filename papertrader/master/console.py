"""The master's admin console (a manhole namespace): plain functions that print tables.

Functions that need the database return a Deferred; the console shows the
table when it fires ("Deferred #N called back: ...").  Every function also
returns its data, for scripting inside the console.
"""

import os
import shutil

from twisted.internet import defer

from papertrader import times, tls
from papertrader.errors import InvalidInput, PaperTraderError
from papertrader.manhole import Record, Table, Text, help_text, log_text
from papertrader.master import files
from papertrader.master.workers import allowed_change_text, parse_allowed, worker_rows
from papertrader.master.validation import WORKER_NAME_RE
from papertrader.money import from_cents, from_quantity_units

WORKER_COLUMNS = ["name", "state", "region", "host", "port", "clients", "commands_per_second", "last_heartbeat",
                  "version", "refused"]


def _refusal(failure):
    """An operator's mistake (an unknown worker...) is an answer to show, not a failure to log."""
    failure.trap(PaperTraderError)
    return Text(f"refused: {failure.value.message}")


def namespace(master):
    """The console's functions.  Times are shown as papertrader-admin shows them: in the market's zone (its
    calendar's), with the zone's abbreviation; the log's lines keep theirs, UTC."""
    ns = {}

    def zone():
        return times.zone(master.timezone())

    def table(rows, columns):
        return Table(rows, columns, zone())

    def record(*values, **fields):
        shown = Record(*values, **fields)
        shown.zone = zone()
        return shown

    def stored(text):
        """A time the database holds (ISO text), to be shown in the market's zone."""
        return times.parse_iso(text) if text else None

    def workers():
        """Every worker: state, region, address, clients, commands/s, last heartbeat."""
        return master.workers.overview().addCallback(lambda rows: table(worker_rows(rows, zone()), WORKER_COLUMNS))

    @defer.inlineCallbacks
    def worker(name, log_entries=20):
        """One worker's details, asked of the worker itself, with its newest log entries."""
        overview = {w["name"]: w for w in (yield master.workers.overview())}
        if name not in overview:
            return Text(f"no worker named {name!r}")
        record = Record(worker_rows([overview[name]], zone())[0])
        record.zone = zone()
        if name in master.workers.linked:
            status = yield master.workers.status(name, log_entries)
            logs = status.pop("logs")
            record.update(status)
            record["logs"] = "\n" + "\n".join(
                f"  {e['time']:%H:%M:%S} {e['level']:<5} {e['file']}:{e['line']} {e['message']}" for e in logs)
        return record

    def kick(name):
        """Disconnect a worker now and refuse it until allow(name); its clients move elsewhere."""
        return master.workers.kick(name).addCallback(
            lambda dropped: Text(f"worker {name} kicked" + (" and disconnected" if dropped else " (was not connected)"))
        ).addErrback(_refusal)

    def allow(name):
        """Let a kicked worker connect again."""
        return master.workers.allow(name).addCallback(
            lambda _: Text(f"worker {name} may connect again")).addErrback(_refusal)

    def revoke(name):
        """Remove a worker's registration for good (its key is deleted; it is refused from now on)."""
        return master.workers.revoke(name).addCallback(lambda _: Text(f"worker {name} revoked")).addErrback(_refusal)

    def allow_ip(name, *nets, any=False):
        """Set the addresses a worker may connect from: allow_ip(name, "10.0.0.0/8", "192.0.2.7"); any=True: any
        address; no address: show them.  A worker linked from one no longer allowed is disconnected at once."""
        from papertrader.master.admin_channel import change_allowed

        allowed = ",".join(str(n) for n in nets) if nets else None
        return change_allowed(master.workers, name, allowed, any).addCallback(
            lambda answer: Text(allowed_change_text(name, answer, bool(nets or any)))).addErrback(_refusal)

    def register_worker(name, host=None, allowed_ips=None, replace=False):
        """Create a worker bundle in DATA_DIR/workers/NAME and register its key (copy the bundle to the worker)."""
        return _register_worker(name, host, allowed_ips, replace).addErrback(_refusal)

    @defer.inlineCallbacks
    def _register_worker(name, host, allowed_ips, replace):
        if not isinstance(name, str) or not WORKER_NAME_RE.fullmatch(name):
            raise InvalidInput("a worker name is 1-32 letters, digits, '_', '.', '-'")
        if isinstance(allowed_ips, (list, tuple, set)):  # ["10.0.0.7", "10.1.0.0/16"], as "10.0.0.7,10.1.0.0/16"
            allowed_ips = ",".join(str(a) for a in allowed_ips)
        parse_allowed(allowed_ips)  # (before a bundle is made)
        if host is not None:
            try:
                tls.check_hostname(host, "host", port_from="the worker's --port sets it")
            except ValueError as e:
                raise InvalidInput(str(e))
        out = files.worker_dir(master.data_dir, name)
        made = not os.path.exists(out)
        if replace and not made:
            raise InvalidInput(f"replace=True makes a new key in a new bundle, and {out} holds the old one: remove it"
                               " first")
        try:
            armor = files.make_worker_bundle(master.data_dir, name, [host] if host else [], out)
            fingerprint = yield master.workers.register(name, armor, allowed_ips, replace=replace)
        except Exception:
            if made:  # refused: no bundle (with its private key) is left behind to be copied and fail
                shutil.rmtree(out, ignore_errors=True)
            raise
        return Text(f"worker {name} registered (key {fingerprint}); bundle in {out}")

    @defer.inlineCallbacks
    def accounts(limit=50):
        """The newest accounts: username, email, cash (of every portfolio), created."""
        rows = yield master.db.query(
            "SELECT a.username, a.email, (SELECT COALESCE(SUM(p.cash_cents), 0) FROM portfolios p WHERE"
            " p.account_id = a.id AND p.closed IS NULL), a.created FROM accounts a ORDER BY a.id DESC LIMIT ?",
            (limit,))
        return table([dict(username=r[0], email=r[1], cash=from_cents(r[2]), created=stored(r[3])) for r in rows],
                     ["username", "email", "cash", "created"])

    @defer.inlineCallbacks
    def account(username):
        """One account: cash, positions, open orders (of all its open portfolios), portfolios, live sessions."""
        rows = yield master.db.query(
            "SELECT a.id, a.username, a.email, (SELECT COALESCE(SUM(p.cash_cents), 0) FROM portfolios p WHERE"
            " p.account_id = a.id AND p.closed IS NULL), a.created FROM accounts a WHERE a.username_key = ?",
            (username.lower(),))
        if not rows:
            return Text(f"no account {username!r}")
        account_id, name, email, cash, created = rows[0]
        positions = yield master.db.query(
            "SELECT symbol, SUM(quantity_units) FROM positions WHERE portfolio_id IN (SELECT id FROM portfolios"
            " WHERE account_id = ?) GROUP BY symbol ORDER BY symbol", (account_id,))
        open_orders = yield master.db.query(
            "SELECT COUNT(*) FROM orders WHERE portfolio_id IN (SELECT id FROM portfolios WHERE account_id = ?)"
            " AND status IN ('new', 'partially_filled')", (account_id,))
        portfolios = yield master.db.query("SELECT name FROM portfolios WHERE account_id = ? AND closed IS NULL"
                                           " ORDER BY is_default DESC, id", (account_id,))
        sessions = yield master.db.query("SELECT COUNT(*) FROM sessions WHERE account_id = ?", (account_id,))
        return record(username=name, email=email, cash=from_cents(cash), created=stored(created),
                      positions=", ".join(f"{s} {from_quantity_units(q).normalize():f}" for s, q in positions) or "-",
                      open_orders=open_orders[0][0], portfolios=", ".join(r[0] for r in portfolios),
                      sessions=sessions[0][0])

    @defer.inlineCallbacks
    def queue(limit=50):
        """Open orders (waiting for the market), oldest first."""
        rows = yield master.db.query(
            "SELECT o.id, a.username, o.side, o.symbol, o.type, o.time_in_force, o.quantity_units, o.status,"
            " o.created, o.worker FROM orders o JOIN portfolios p ON p.id = o.portfolio_id"
            " JOIN accounts a ON a.id = p.account_id"
            " WHERE o.status IN ('new', 'partially_filled') ORDER BY o.id LIMIT ?", (limit,))
        return table([dict(id=r[0], username=r[1], side=r[2], symbol=r[3], type=r[4], tif=r[5],
                           quantity=from_quantity_units(r[6]) if r[6] is not None else None, status=r[7],
                           created=stored(r[8]), worker=r[9]) for r in rows],
                     ["id", "username", "side", "symbol", "type", "tif", "quantity", "status", "created", "worker"])

    def assets():
        """Every asset's latest price and its time."""
        return table([dict(symbol=q.symbol, price=q.price, time=q.time) for q in master.board.all()],
                     ["symbol", "price", "time"])

    def logs(n=20, level=None):
        """The newest n in-memory log entries (level: 'debug', 'info', 'warn', 'error', 'critical': that level only)."""
        return log_text(master.logs, n, level)

    def config():
        """The settings this master runs with."""
        return Record(master.settings.as_text(), data_dir=master.data_dir)

    def _market(action, when=None):
        return master.market.control(action, when).addCallback(
            lambda state: record({k: times.local_or_day(v, zone(), seconds=True) if k in ("start", "end") else v
                                  for k, v in state.items() if v is not None})).addErrback(_refusal)  # (days)

    def market():
        """The market clock: market time, open or closed, next open and close, source, replay state."""
        return _market("status")

    def pause():
        """Pause a replay: market time stands still (sessions and heartbeats go on)."""
        return _market("pause")

    def resume():
        """Resume a paused replay."""
        return _market("resume")

    def seek(day):
        """Move a replay to the open of the first session on or after day ('YYYY-MM-DD')."""
        return _market("seek", day)

    def step(n=1):
        """Pause a replay and play n updates (each with its trading step); answers once they are done."""
        return _market("step", str(n))

    def help():
        """This list."""
        return Text(help_text(ns))

    ns.update(workers=workers, worker=worker, kick=kick, allow=allow, revoke=revoke, allow_ip=allow_ip,
              register_worker=register_worker, accounts=accounts, account=account, queue=queue, assets=assets,
              market=market, pause=pause, resume=resume, seek=seek, step=step, logs=logs, config=config, help=help,
              master=master, os=os)
    return ns
