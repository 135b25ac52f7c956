"""The master service: every concern of the master composed in one MultiService."""

import os
import sqlite3
from datetime import datetime, timezone
from decimal import Decimal
from urllib.parse import urlsplit

import psycopg
from twisted.application import service
from twisted.internet import defer
from twisted.python import usage

from papertrader import commands, gpgkeys, pools, times, tls
from papertrader.guard import Limits, guarded
from papertrader.options import USAGE_MISTAKES, usage_message
from papertrader.services import (ListeningService, StagedService, StartError, describe_failure, port_endpoint,
                                  usage_exit)
from papertrader.logs import LogSystem
from papertrader.master import files
from papertrader.master.accounts import Accounts
from papertrader.errors import OutcomeUnknown
from papertrader.master.db import Database, is_unavailable, pg_url, redact
from papertrader.master.upgrades import UpgradeRefused
from papertrader.app import Application
from papertrader.app.accounts import AccountCommands
from papertrader.app.market_data import MarketDataCommands
from papertrader.app.games import GameCommands
from papertrader.app.portfolios import PortfolioCommands
from papertrader.app.trading import TradingCommands, rules_from
from papertrader.app.watchlists import WatchlistCommands
from papertrader.config import margin_rules
from papertrader.market.board import QuoteBoard
from papertrader.master.games import GameStore
from papertrader.market.service import MarketService
from papertrader.market.setup import build as build_market
from papertrader.master.api_keys import ApiKeys
from papertrader.trading.fill_models import bid_ask
from papertrader.master.candles import CandleStore
from papertrader.master.order_store import OrderStore
from papertrader.master.portfolios import PortfolioStore
from papertrader.master.protocol import MasterFactory
from papertrader.manhole import manhole_service
from papertrader.master import admin_channel, console, oidc
from papertrader.master.workers import WorkerMonitor, Workers
from papertrader.options import SettingsOptions

DEFAULT_PORT = 2048


class Options(SettingsOptions):
    command = "papertrader-master"
    synopsis = "--data-dir DIR [--config FILE] [--port 2048] [--database URL]"
    longdesc = "Run the PaperTrader master: accounts, orders, market data and worker management."
    optParameters = [
        ["port", "p", str(DEFAULT_PORT),
         "Port for workers and clients (TLS), or an ssl: strports description such as ssl:2048:interface=10.0.0.1:..."],
        ["database", None, None, "postgresql://user@host/db, or sqlite:///PATH (default: the one the master last"
                                 " used, else DIR/papertrader.db)."],
        ["host", None, None, "Host name or address clients and workers use for the master; added to its certificate."],
        ["manhole", None, None, "Open the admin console on this endpoint (see the README); nothing listens if unset."],
        ["manhole-keys", None, None, "authorized_keys file: makes the manhole SSH with these public keys."],
    ]

    optFlags = [["new-database", None, "Start on a --database other than the one this data dir's master last used, as"
                                       " it is (nothing is copied between them: see copy-database)."]]

    def postOptions(self):
        super().postOptions()
        check_database_url(self["database"])
        if self["host"] is not None:
            try:
                tls.check_hostname(self["host"])
            except ValueError as e:
                raise usage.UsageError(str(e))


def check_database_url(url):
    """Refuse a --database URL of a kind we cannot use (a usage mistake, found before anything starts)."""
    if url is not None and urlsplit(url).scheme not in ("sqlite", "postgresql", "postgres"):
        raise usage.UsageError(f"--database: unsupported database URL {redact(url)!r}: use sqlite:///PATH or"
                               " postgresql://USER@HOST/DBNAME")
    if url is not None and urlsplit(url).scheme != "sqlite":
        try:
            pg_url(url)
        except ValueError as e:
            raise usage.UsageError(f"--database: {e}")


#: Errors of the database driver that mean "cannot reach or open the database", not a bug of ours.
_DATABASE_UNAVAILABLE = (sqlite3.OperationalError, psycopg.OperationalError)


class Master(StagedService):
    """Master: database, accounts, market data, order queue, worker links, AMP listener."""

    what = "master"

    def __init__(self, data_dir, settings, reactor, database=None, listen=DEFAULT_PORT, hostnames=(),
                 clock=None, source=None, manhole=None, manhole_keys=None, market_plan=None, new_database=False):
        super().__init__()
        self.data_dir = data_dir
        try:  # (before anything is made: a refused switch leaves the data dir as it was)
            database = files.database_to_use(data_dir, database, new_database)
        except files.DatabaseSwitch as e:
            raise usage.UsageError(str(e))
        self.settings = settings
        self.reactor = reactor
        clock = clock or reactor
        ca = files.ensure_master_files(data_dir, hostnames)
        self.logs = LogSystem("master", settings.log_memory_size, os.path.join(data_dir, "logs", "master.log"),
                              reactor=reactor)
        self.log = self.logs.logger("papertrader.master")
        ends = ca.cert.not_valid_after_utc
        if ends - datetime.now(timezone.utc) < files.CA_WARNING:
            self.log.warn("the deployment's CA certificate (ca.pem) expires on {day}: then no client, worker or"
                          " browser will trust this master or its workers; see the README's 'Certificates' for"
                          " making new ones", day=ends.date().isoformat())
        #: The --database URL (None: SQLite in the data dir).
        self.database = database
        self.db = Database(database or Database.default_url(data_dir), data_dir)
        self.db.on_answer = self.database_back  # (an outage ends when the database answers, not a command)
        #: Every open AMP connection (workers and clients asking for the worker list).
        self.connections = set()
        market = build_market(settings, clock, reactor, self.log, market_plan)  # a MarketSetupError is a ValueError
        if source is not None:
            market.source = source
        self.board = QuoteBoard(market.assets)
        pools.HASHING.resize(settings.hash_processes)
        self.accounts = Accounts(self.db, settings, clock, self.log, market_clock=market.clock)
        self.api_keys = self.accounts.api_keys = ApiKeys(self.db, clock, self.log, settings.api_rate_limit)
        self.provider = None
        if settings.oidc_client_id:
            self.provider = oidc.Provider(settings.oidc_name, settings.oidc_issuer, settings.oidc_client_id,
                                          settings.oidc_client_secret, clock, self.log,
                                          redirect_uris=settings.oidc_redirect_uris)
        # A master killed with SIGKILL leaves the gpg-agent of its keyring behind: end it before use.
        gpgkeys.stop_agent(files.keyring_dir(data_dir))
        self.workers = Workers(self.db, gpgkeys.Keyring(files.keyring_dir(data_dir)), clock, self.log)
        self.market_clock = market.clock
        self.candles = CandleStore(self.db, settings.keep_minute_bars)
        self.orders = OrderStore(self.db, margin_rules(settings))
        self.portfolio_store = PortfolioStore(self.db)
        self.trading = TradingCommands(self.db, self.orders, self.board, self.market_clock, rules_from(settings),
                                       clock, self.log, publish=self.workers.push_order_events,
                                       candles=self.candles)
        self.portfolios = PortfolioCommands(self.db, self.orders, self.portfolio_store, settings, clock, self.log,
                                            self.trading)
        self.trading.api_keys = self.api_keys
        self.game_store = self.trading.games = GameStore(self.db)
        self.games = GameCommands(self.db, self.game_store, self.portfolio_store, self.orders, self.board,
                                  self.market_clock, clock, self.log, publish=self.workers.push_order_events,
                                  margin_allowed=settings.margin_accounts, trading=self.trading,
                                  max_cash=settings.max_portfolio_cash)
        self.market = MarketService(market.source, self.board, self.market_clock, self.candles,
                                    settings.update_interval, clock, self.log, settings.max_quote_age,
                                    state=lambda: self.db.run(self.orders.all_state),
                                    save=lambda changes: self.db.run(self.orders.save_state, changes))
        self.app = Application(self.accounts, [
            AccountCommands(self.accounts, self.provider), self.trading, self.portfolios, self.games,
            MarketDataCommands(self.board, self.candles, self.market_clock, market.source,
                               margin_rules(settings) if settings.margin_accounts else None,
                               controllers=settings.market_control, control=self.market.control),
            WatchlistCommands(self.db, self.board, self.portfolio_store, clock)])
        self.market.setServiceParent(self)
        self.listener = ListeningService(
            port_endpoint(reactor, listen, os.path.join(data_dir, files.MASTER_CERT)),
            guarded(MasterFactory(self), Limits.from_settings(settings), self.log, "master", reactor), self.log, "master")
        self.listener.setServiceParent(self)
        self.monitor = WorkerMonitor(self.workers, settings.heartbeat_interval, settings.heartbeat_misses, clock,
                                     self.log)
        self.monitor.setServiceParent(self)
        self.admin = ListeningService(admin_channel.server_endpoint(reactor, data_dir),
                                      admin_channel.AdminFactory(self), self.log, "admin channel")
        self.admin.setServiceParent(self)
        self.manhole = None
        if manhole:
            self.manhole = manhole_service(manhole, console.namespace(self), data_dir, manhole_keys, reactor, self.log)
            self.manhole.setServiceParent(self)
            self.log.info("admin console (manhole) on {where}", where=manhole)
        # The leaderboards follow the trading step whose fills they count.
        self.market.listeners += [self.push_quotes, self.trading.market_step, self.push_stepped, self.games.update]
        self.market.candle_writer = self.trading.market_step  # the update's candles, with its step
        # The step's failures worth holding the update for: the database away, or its COMMIT's outcome unknown
        # (played again, a step already saved is recognised and not applied twice).
        self.market.transient = lambda failure: is_unavailable(failure) or bool(failure.check(OutcomeUnknown))
        # A replay's end finishes the games still running (again while ended: its last update may have failed).
        self.market.ended.append(self.games.update)
        self.market.rewinding.append(self.trading.market_moved_back)
        self.market.rewound.append(self.push_all_quotes)
        self.market.state_changed.append(self.push_market_state)
        self.api_keys.on_revoked.append(lambda key_id, reason=None: self.workers.broadcast(
            commands.KeyRevoked, key_id=key_id, **({"reason": reason} if reason else {})))
        self.games.on_changed.append(self.push_games_changed)
        self.portfolios.on_changed.append(lambda username, **what: self.workers.broadcast(
            commands.PortfoliosChanged, username=username, **what))
        self.accounts.on_session_ended.append(
            lambda token_hash: self.workers.broadcast(commands.SessionEnded, token_hash=token_hash))

    #: The configuration file the settings were read from (set by makeService; None: none).
    config_path = None

    @defer.inlineCallbacks
    def _start(self):
        """Take the locks, migrate, and only then open the ports: a second master never listens, even briefly."""
        from papertrader import __version__

        # What an operator asks first of a log: which release, with what (a secret is never in a URL we print).
        self.log.info("PaperTrader {version} master starting: data dir {data_dir}, database {database},"
                      " configuration {config}", version=__version__, data_dir=self.data_dir,
                      database=redact(self.db.url), config=self.config_path or "none (the defaults and options)")
        # 1. The data dir: the admin channel's lock file keeps a second master off it.
        self.admin.startService()
        try:
            yield self.admin.whenListening()
        except StartError as e:
            if e.lock_held:
                raise StartError(f"another master is already running with the data dir {self.data_dir}")
            raise
        # 2. The database: one master per database (PostgreSQL: an advisory lock).  Noted first: papertrader-admin
        # (a migration refused until a backup is made, a status query after a failed start) must find this
        # database, never make one of its own in the data dir.
        files.record_database(self.data_dir, self.database)
        try:
            held = yield self.db.lock()
            if not held:
                raise StartError(f"another master is already running against the database {redact(self.db.url)}")
            upgrade = yield self.db.upgrade()
        except UpgradeRefused as e:
            raise StartError(e.message)
        except _DATABASE_UNAVAILABLE as e:
            why = describe_failure(e)
            if self.db.dialect == "sqlite":  # (sqlite:///PATH is PATH from the root: name the file itself)
                directory = os.path.dirname(self.db.path) or "."
                if not os.path.isdir(directory):
                    why += f": its directory {directory} does not exist"
                raise StartError(f"cannot use the database {redact(self.db.url)} (the file {self.db.path}): {why}")
            raise StartError(f"cannot use the database {redact(self.db.url)}: {why}")
        if upgrade.backup:
            self.log.info("database at schema version {version} backed up to {path} before migrating",
                          version=upgrade.before, path=upgrade.backup)
        for name in upgrade.applied:
            self.log.info("database migration {name} applied", name=name)
        if upgrade.applied and upgrade.before:
            self.log.info("database migrated from schema version {before} to {after}", before=upgrade.before,
                          after=upgrade.after)
        # 3. Only now the services and the ports the world sees.
        self.market.startService()
        self.monitor.startService()
        self.listener.startService()
        port = yield self.listener.whenListening()
        files.record_port(self.data_dir, port)
        if self.manhole is not None:
            self.manhole.startService()
            yield self.manhole.whenListening()
        return port

    @defer.inlineCallbacks
    def _stop(self):
        """Stop listening, stop the loops, drop every connection, close the database, release the data dir's
        lock (the admin channel), and close the log file last."""
        service.Service.stopService(self)
        for child in (self.listener, self.manhole, self.monitor, self.market):
            if child is not None and child.running:
                yield child.stopService()
        yield self.drop_connections()
        self.db.close()
        # Only now: papertrader-admin restore waits for this lock, so it never replaces a database still open.
        if self.admin.running:
            yield self.admin.stopService()
        self.workers.keyring.close()
        self.log.info("master stopped")
        self.logs.close()

    def drop_connections(self, grace=5.0):
        """Close every AMP connection (workers log their leaving); abort those not closed after ``grace`` s."""
        waiting = []
        for proto in list(self.connections):
            if proto.transport is not None:
                proto.transport.loseConnection()
                waiting.append(proto.lost)
        if not waiting:
            return defer.succeed(None)

        def abort():
            for proto in list(self.connections):
                if proto.transport is not None:
                    proto.transport.abortConnection()

        timer = self.reactor.callLater(grace, abort)
        done = defer.DeferredList(waiting)
        done.addBoth(lambda _: timer.cancel() if timer.active() else None)
        return done

    def _quote_dicts(self, quotes, bars=None):
        spread = getattr(self.trading.rules.fill_model, "half_spread_bps", Decimal(0))
        out, days = [], {}
        for q in quotes:
            bid, ask = bid_ask(q.price, spread)
            quote = dict(symbol=q.symbol, price=q.price, time=q.time, stale=q.stale,
                         name=self.board.info[q.symbol].name or None, bid=bid, ask=ask,
                         previous_close=q.previous_close, session_open=q.session_open)
            bar = (bars or {}).get(q.symbol)
            if bar is not None and bar.end == q.time:
                quote.update(bar_start=bar.start, open=bar.open, high=bar.high, low=bar.low, volume=bar.volume)
                span = (bar.start, bar.end)
                if span not in days:
                    days[span] = self._day_of(bar)
                quote["bar_day"] = days[span]
            out.append({k: v for k, v in quote.items() if v is not None})
        return out

    def _day_of(self, bar):
        """For a bar that spans its whole session (a replay of whole days): midnight of its day in the market's
        zone, the time the REST API's daily bar of that day shows (papertrader/app/market_data.py); else None."""
        calendar = getattr(self.market_clock, "calendar", None)
        if calendar is None:
            return None
        zone = times.market_zone(self.market_clock)
        day = bar.start.astimezone(zone).date()
        session = calendar.session_on(day)
        if session is None or bar.start > session.open or bar.end < session.close:
            return None
        return times.local_midnight(day, zone)

    #: Since when (clock seconds) the database has not answered the commands, and how many it refused (None: it
    #: answers).
    _away = None
    _refused = 0

    def database_away(self, failure):
        """A command failed because the database is away: said once when it starts (not a traceback a command)."""
        self._refused += 1
        if self._away is None:
            self._away = self.reactor.seconds()
            self.log.error("the database is not answering ({error}): commands that need it are refused"
                           " (database_unavailable: nothing done) until it answers again",
                           error=describe_failure(failure)[:300])

    def database_back(self):
        """The database answered a transaction: if it was away, it is back (said once)."""
        if self._away is not None:
            self.log.info("the database answers again after {seconds:.0f} s; {n} commands were refused meanwhile",
                          seconds=self.reactor.seconds() - self._away, n=self._refused)
            self._away, self._refused = None, 0

    def timezone(self):
        """The market calendar's time zone, an IANA name ('America/New_York'; 'UTC' for always_open): what
        clients and papertrader-admin show times in, for people."""
        return times.zone_name(self.market_clock)

    def _market_now(self):
        """The market clock now, as ``Clock`` answers it: QuotesTick's ``market_time``, ``market_open`` and
        ``market_state``."""
        now = self.market.market_clock.describe()
        return dict(market_time=now["time"], market_open=now["is_open"], market_state=now.get("state") or "running")

    def push_market_state(self):
        """A replay was paused or resumed: the workers' pages say so (no quote changed)."""
        self.workers.broadcast(commands.QuotesTick, quotes=[], **self._market_now())

    def push_quotes(self, step, quotes):
        """After each update, even one that changed no quote: the market's time moved (the website shows it)."""
        self.workers.broadcast(commands.QuotesTick, quotes=self._quote_dicts(quotes, step.bars), **self._market_now())

    def push_stepped(self, step, quotes):
        """After the trading step: the workers' pages of a new session ask for its figures now."""
        self.workers.broadcast(commands.MarketStepped, time=step.time)

    #: Usernames one GamesChanged names at most (an AMP value holds 64 KiB; a class enrolled at once is sent in parts).
    JOINED_PER_PUSH = 500

    def push_games_changed(self, name, joined=()):
        """A game's standings changed (None: an update ranked the games); ``joined``: who joined it, whose pages
        show its portfolio in their menus now."""
        named = {} if name is None else {"name": name}
        joined = list(joined)
        if not joined:
            self.workers.broadcast(commands.GamesChanged, **named)
        for first in range(0, len(joined), self.JOINED_PER_PUSH):
            self.workers.broadcast(commands.GamesChanged, usernames=joined[first:first + self.JOINED_PER_PUSH],
                                   **named)

    def send_snapshot(self, protocol):
        protocol.callRemote(commands.QuotesTick, quotes=self._quote_dicts(self.board.all()), replace=True,
                            **self._market_now())

    def push_all_quotes(self, quotes):
        """Market time was moved: every worker's quotes are these."""
        self.workers.broadcast(commands.QuotesTick, quotes=self._quote_dicts(quotes), replace=True,
                               **self._market_now())


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    try:
        master = Master(options["data-dir"], options.settings, reactor, database=options["database"],
                        listen=options["port"], hostnames=[options["host"]] if options["host"] else (),
                        manhole=options["manhole"], manhole_keys=options["manhole-keys"],
                        market_plan=options.market_plan, new_database=bool(options["new-database"]))
    except USAGE_MISTAKES as e:
        usage_exit("papertrader-master", usage_message(e))
    master.exit_on_failure = reactor
    master.config_path = options.config_path
    return master
