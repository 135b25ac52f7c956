"""The master service: every concern of the master composed in one MultiService."""

import os

from twisted.internet import defer
from twisted.python import usage

from papertrader import commands, gpgkeys, tls
from papertrader.services import ListeningService, StagedService
from papertrader.logs import LogSystem
from papertrader.master import files
from papertrader.master.accounts import Accounts
from papertrader.master.db import Database
from papertrader.app import Application
from papertrader.app.accounts import AccountCommands
from papertrader.app.market_data import MarketDataCommands
from papertrader.app.trading import TradingCommands, rules_from
from papertrader.market import calendar
from papertrader.market.board import QuoteBoard
from papertrader.market.clock import MarketClock
from papertrader.market.service import MarketService
from papertrader.market.simulated import SimulatedSource
from papertrader.master.candles import CandleStore
from papertrader.master.order_store import OrderStore
from papertrader.master.protocol import MasterFactory
from papertrader.manhole import ManholeError, manhole_service
from papertrader.master import admin_channel, console, oidc
from papertrader.master.workers import WorkerMonitor, Workers
from papertrader.options import SettingsOptions

DEFAULT_PORT = 2048


class Options(SettingsOptions):
    synopsis = "--data-dir DIR [--config FILE] [--port 2048] [--database URL]"
    longdesc = "Run the PaperTrader master: accounts, orders, market data and worker management."
    optParameters = [
        ["port", "p", str(DEFAULT_PORT),
         "Port for workers and clients (TLS), or a strports description such as ssl:2048:interface=10.0.0.1:..."],
        ["database", None, None, "postgresql://user@host/db, or sqlite:///PATH (default: DIR/papertrader.db)."],
        ["host", None, None, "Host name or address clients and workers use for the master; added to its certificate."],
        ["manhole", None, None, "Open the admin console on this endpoint (see the README); nothing listens if unset."],
        ["manhole-keys", None, None, "authorized_keys file: makes the manhole SSH with these public keys."],
    ]


class Master(StagedService):
    """Master: database, accounts, market data, order queue, worker links, AMP listener."""

    def __init__(self, data_dir, settings, reactor, database=None, listen=DEFAULT_PORT, hostnames=(),
                 clock=None, source=None, manhole=None, manhole_keys=None):
        super().__init__()
        self.data_dir = data_dir
        self.settings = settings
        clock = clock or reactor
        files.ensure_master_files(data_dir, hostnames)
        self.logs = LogSystem("master", settings.log_memory_size, os.path.join(data_dir, "logs", "master.log"))
        self.log = self.logs.logger("papertrader.master")
        self.db = Database(database or Database.default_url(data_dir), data_dir)
        self.board = QuoteBoard(settings.assets)
        self.accounts = Accounts(self.db, settings, clock, self.log)
        self.provider = None
        if settings.oidc_client_id:
            self.provider = oidc.Provider(settings.oidc_name, settings.oidc_issuer, settings.oidc_client_id,
                                          settings.oidc_client_secret, clock, self.log)
        self.workers = Workers(self.db, gpgkeys.Keyring(files.keyring_dir(data_dir)), clock, self.log)
        try:
            self.market_clock = MarketClock(calendar.load(settings.calendar), clock)
        except calendar.CalendarError as e:
            raise ValueError(str(e))
        self.candles = CandleStore(self.db)
        self.orders = OrderStore(self.db)
        self.trading = TradingCommands(self.db, self.orders, self.board, self.market_clock, rules_from(settings),
                                       clock, self.log, publish=self.workers.push_order_events)
        self.app = Application(self.accounts, [
            AccountCommands(self.accounts, self.provider), self.trading,
            MarketDataCommands(self.board, self.candles, self.market_clock)])
        self.market = MarketService(source or SimulatedSource(settings.market_seed), self.board, self.market_clock,
                                    self.candles, settings.update_interval, clock, self.log)
        self.market.setServiceParent(self)
        self.listener = ListeningService(
            tls.server_endpoint(reactor, listen, os.path.join(data_dir, files.MASTER_CERT)),
            MasterFactory(self), self.log, "master")
        self.listener.setServiceParent(self)
        self.monitor = WorkerMonitor(self.workers, settings.heartbeat_interval, settings.heartbeat_misses, clock,
                                     self.log)
        self.monitor.setServiceParent(self)
        self.admin = ListeningService(admin_channel.server_endpoint(reactor, data_dir),
                                      admin_channel.AdminFactory(self), self.log, "admin channel")
        self.admin.setServiceParent(self)
        if manhole:
            manhole_service(manhole, console.namespace(self), data_dir, manhole_keys).setServiceParent(self)
            self.log.info("admin console (manhole) on {where}", where=manhole)
        self.market.listeners += [self.push_quotes, self.trading.market_step]
        self.accounts.on_session_ended.append(
            lambda token_hash: self.workers.broadcast(commands.SessionEnded, token_hash=token_hash))

    @defer.inlineCallbacks
    def _start(self):
        try:
            if not (yield self.db.lock()):
                raise RuntimeError("another master is already running against this database")
            applied = yield self.db.migrate()
            for name in applied:
                self.log.info("database migration {name} applied", name=name)
            for child in self:
                child.startService()
            port = yield self.listener.whenListening()
            # The admin channel's lock file also keeps a second master off this data dir.
            yield self.admin.whenListening()
        except Exception:
            self.log.failure("the master could not start")
            raise
        return port

    @defer.inlineCallbacks
    def _stop(self):
        yield super()._stop()
        self.db.close()
        self.workers.keyring.close()
        self.logs.close()

    @staticmethod
    def _quote_dicts(quotes):
        return [dict(symbol=q.symbol, price=q.price, time=q.time) for q in quotes]

    def push_quotes(self, step, quotes):
        if quotes:
            self.workers.broadcast(commands.QuotesTick, quotes=self._quote_dicts(quotes))

    def send_snapshot(self, protocol):
        protocol.callRemote(commands.QuotesTick, quotes=self._quote_dicts(self.board.all()))


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    try:
        master = Master(options["data-dir"], options.settings, reactor, database=options["database"],
                        listen=options["port"], hostnames=[options["host"]] if options["host"] else (),
                        manhole=options["manhole"], manhole_keys=options["manhole-keys"])
    except (gpgkeys.GPGMissing, ManholeError, ValueError) as e:
        raise usage.UsageError(str(e))
    master.reactor_to_stop = reactor
    return master
