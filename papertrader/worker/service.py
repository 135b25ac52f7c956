"""The worker service: client listener, master link, caches and logs in one MultiService.

A worker's data dir is the bundle ``papertrader-admin register-worker`` made
(or the cluster made): ``ca.pem``, ``worker.pem`` and ``gnupg/``; logs go to
``DIR/logs/worker.log``.
"""

import os
import re

from twisted.internet import defer
from twisted.python import usage

from papertrader import commands, gpgkeys, throttle, tls
from papertrader.options import USAGE_MISTAKES, usage_message
from papertrader.guard import Limits, guarded
from papertrader.services import ListeningService, StagedService, port_endpoint, usage_exit
from papertrader.logs import LogSystem
from papertrader.master.files import WORKER_CERT, make_private_dir
from papertrader.options import SettingsOptions
from papertrader.worker.cache import CandleCache, QuoteCache, SessionCache
from papertrader.throttle import Throttle
from papertrader.worker.fanout import Fanout
from papertrader.worker.gateway import Gateway
from papertrader.worker import console
from papertrader.manhole import manhole_service
from papertrader.worker.link import MasterLink
from papertrader.worker.protocol import WorkerFactory

DEFAULT_PORT = 2050
REGION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


class Options(SettingsOptions):
    command = "papertrader-worker"
    runs_market = False  # the market is the master's: checked there (the replay's files may be on its machine only)
    synopsis = "--data-dir DIR --master HOST:PORT --name NAME [--port 2050] [--public-host HOST]"
    longdesc = "Run a PaperTrader worker: serves clients and passes their commands on to the master."
    optParameters = [
        ["master", "m", "localhost:2048", "The master's HOST:PORT."],
        ["name", "n", None, "This worker's registered name. Required."],
        ["port", "p", str(DEFAULT_PORT), "Port for clients (TLS), or an ssl: strports description (TLS only)."],
        ["public-host", None, "localhost", "Host name clients use to reach this worker (must be in its certificate)."],
        ["region", "r", None, "This worker's region, shown to clients (default: [worker] region in the config, else"
                              " 'default')."],
        ["manhole", None, None, "Open an admin console on this endpoint (see the README); nothing listens if unset."],
        ["manhole-keys", None, None, "authorized_keys file: makes the manhole SSH with these public keys."],
        ["http", None, None, "Serve the HTTP API (Alpaca-compatible REST and streams) on this endpoint: a port (TLS"
                             " with the worker's certificate), or ssl:... / tcp:PORT:interface=127.0.0.1 (plain"
                             " HTTP, loopback only); nothing listens if unset."],
    ]

    def postOptions(self):
        super().postOptions()
        if not self["name"]:
            raise usage.UsageError("--name is required")
        try:
            tls.check_hostname(self["public-host"], "--public-host")
        except ValueError as e:
            raise usage.UsageError(str(e))
        try:
            self["master"] = tls.parse_hostport(self["master"], 2048)
        except ValueError as e:
            raise usage.UsageError(f"--master: {e}")
        if self["region"] is None:
            self["region"] = self.section("worker").get("region", "default")
        if not REGION_RE.fullmatch(self["region"]):
            raise usage.UsageError("--region: 1-64 letters, digits, '_', '.', '-'")


class Worker(StagedService):
    """A worker: listens for clients first, then links to the master (a worker that cannot serve anyone
    has no business with the master)."""

    def __init__(self, data_dir, name, master, settings, reactor, listen=DEFAULT_PORT, public_host="localhost",
                 clock=None, region="default", manhole=None, manhole_keys=None, http=None):
        super().__init__()
        self.name = name
        self.what = f"worker {name}"
        self.reactor = reactor
        self.region = region
        self.data_dir = data_dir
        self.public_host = public_host
        self.clock = clock or reactor
        ca_path = os.path.join(data_dir, tls.CA_CERT)
        cert_path = os.path.join(data_dir, WORKER_CERT)
        self.gnupg_home = os.path.join(data_dir, "gnupg")
        for path in (ca_path, cert_path, self.gnupg_home):
            if not os.path.exists(path):
                raise usage.UsageError(
                    f"{path} is missing: {data_dir} is not a worker bundle. Create one on the master with"
                    f" 'papertrader-admin --data-dir MASTER_DIR register-worker {name}' and copy it here.")
        owner = tls.worker_name_of(cert_path)
        if owner is not None and owner != name:
            raise usage.UsageError(f"--name {name}: {data_dir} is the bundle of worker {owner} (its certificate says"
                                   f" so): start it with --name {owner}, or give --data-dir the bundle of {name}")
        gpgkeys.check_installed()
        make_private_dir(data_dir)
        self.logs = LogSystem(f"worker {name}", settings.log_memory_size,
                              os.path.join(data_dir, "logs", "worker.log"), reactor=reactor)
        self.log = self.logs.logger(f"papertrader.worker.{name}")
        names = tls.certificate_hostnames(cert_path)
        if public_host not in names:
            self.log.warn("--public-host {host} is not in this worker's certificate ({names}): clients will refuse"
                          " it. Re-run register-worker with --host {host}.", host=public_host, names=", ".join(names))
        own = [n for n in names if n not in tls.default_hostnames()]
        if own and public_host in tls.default_hostnames():  # registered for other machines' clients
            self.log.warn("--public-host {host}{default} is what clients are told to reach this worker by: their own"
                          " machine; give --public-host the name its certificate has for it, {own}, unless every"
                          " client runs on this machine", host=public_host, own=own[0],
                          default=" (the default)" if public_host == "localhost" else "")
        self.quotes = QuoteCache()
        self.candles = CandleCache(max_candles=settings.candle_cache_size)
        self.sessions = SessionCache(self.clock)
        self.clients = set()
        #: Called with a game's name (None: every game) when the master says its standings changed.
        self.on_games_changed = []
        #: Called with a username (and renamed=OLD, name=NEW or closed=NAME) when the master says that user's
        #: portfolios changed (PortfoliosChanged).
        self.on_portfolios_changed = []
        #: Called with the market time of each update whose trading step the master has done (MarketStepped).
        self.on_stepped = []
        self.commands = 0
        self.gateway = Gateway(self)
        self.fanout = Fanout(self.log, clock=reactor)
        self.order_fanout = Fanout(self.log, commands.OrderEvent, what="order events", clock=reactor)
        self.sessions.on_forget.append(self._session_ended)
        # The worker's own abuse limits per client address (the master keeps its own too).
        self.login_throttle = Throttle(self.clock, settings.login_free_attempts, settings.login_ceiling,
                                       settings.throttle_window)
        self.register_throttle = throttle.registrations(self.clock, settings)
        with open(ca_path, "rb") as f:
            ca_pem = f.read()
        self.master_address = master
        host, port = master
        self.link = MasterLink(self, tls.client_endpoint(reactor, host, port, ca_pem), reactor,
                               watch_clock=self.clock, interval=settings.heartbeat_interval,
                               misses=settings.heartbeat_misses, address=tls.address_text(host, port),
                               max_wait=settings.max_master_wait)
        self.listener = ListeningService(port_endpoint(reactor, listen, cert_path), guarded(
            WorkerFactory(self), Limits.from_settings(settings), self.log, f"worker {name}", reactor,
            after_read=self.link.between), self.log, f"worker {name}")
        self.listener.setServiceParent(self)
        self.link.setServiceParent(self)
        self.order_fanout.on_first = lambda username: self.link.tell_watching("add", [username])
        self.order_fanout.on_last = lambda username: self.link.tell_watching("remove", [username])
        self.manhole = None
        if manhole:
            self.manhole = manhole_service(manhole, console.namespace(self), data_dir, manhole_keys, reactor, self.log)
            self.manhole.setServiceParent(self)
            self.log.info("admin console (manhole) on {where}", where=manhole)
        self.http = None
        #: The HTTP API's WebSocket streams (papertrader/worker/http/streams), when it serves them.
        self.streams = None
        if http is not None:
            from papertrader.worker.http.service import http_service

            self.http = http_service(self, reactor, http, cert_path, settings)
            self.http.setServiceParent(self)

    #: The configuration file the settings were read from (set by makeService; None: none).
    config_path = None

    @defer.inlineCallbacks
    def _start(self):
        """End a gpg-agent a killed predecessor left, listen for clients, and only then link to the master."""
        from papertrader import __version__

        self.log.info("PaperTrader {version} worker {name} starting: data dir {data_dir}, configuration {config}",
                      version=__version__, name=self.name, data_dir=self.data_dir,
                      config=self.config_path or "none (the defaults and options)")
        gpgkeys.stop_agent(self.gnupg_home)
        self.listener.startService()
        port = yield self.listener.whenListening()
        if self.manhole is not None:
            self.manhole.startService()
            yield self.manhole.whenListening()
        if self.http is not None:
            self.http.startService()
            yield self.http.whenListening()
        self.link.startService()
        return port

    def _session_ended(self, token_hash):
        """A session ended (logged out, everywhere too, a password change, the account disabled): its AMP
        clients stop getting its order events, and are told (they subscribe again and hear not_logged_in).
        (The website's live pages end their own: papertrader/worker/web/live.py.)"""
        for client in self.order_fanout.watchers():
            if getattr(client, "order_session", None) == token_hash:
                self.order_fanout.forget(client)
                client.order_session = None
                self.log.info("client {ip}: its session ended; no more order events", ip=client.client_ip())
                client.callRemote(commands.Notice, code="not_logged_in",
                                  message="your session ended (logged out, or the account was disabled): log in"
                                          " again").addErrback(lambda f: None)

    def tell_watchers(self, code, message):
        """Send a Notice to every AMP client watching live prices or order events (the trade streams of the
        HTTP API close when the master is lost)."""
        if self.streams is not None and code == "master_unavailable":
            self.streams.master_lost()
        for client in set(self.fanout.watchers()) | set(self.order_fanout.watchers()):
            client.callRemote(commands.Notice, code=code, message=message)

    def tell_clients(self, code, message, disconnect=False):
        """Send a Notice to every connected client (and, if asked, close their connections)."""
        for client in list(self.clients):
            client.callRemote(commands.Notice, code=code, message=message)
            if disconnect:
                client.transport.loseConnection()

    @defer.inlineCallbacks
    def _stop(self):
        """Tell the clients, stop listening, close the master link and the clients, then the log file last."""
        service_running = [c for c in (self.listener, self.manhole, self.http, self.link)
                           if c is not None and c.running]
        self.running = False
        self.tell_clients("worker_leaving", f"worker {self.name} is shutting down; use another worker")
        if self.streams is not None:
            self.streams.close_all()
        for child in service_running:
            yield child.stopService()
        for client in list(self.clients):
            client.transport.loseConnection()
        self.fanout.stop()
        self.order_fanout.stop()
        gpgkeys.stop_agent(self.gnupg_home)
        self.log.info("worker {name} stopped", name=self.name)
        self.logs.close()


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    try:
        worker = Worker(options["data-dir"], options["name"], options["master"], options.settings, reactor,
                        listen=options["port"], public_host=options["public-host"], region=options["region"],
                        manhole=options["manhole"], manhole_keys=options["manhole-keys"], http=options["http"])
    except USAGE_MISTAKES as e:
        usage_exit(Options.command, usage_message(e))
    # A worker that cannot listen for clients is of no use: it says why in its log and twistd exits non-zero.
    worker.exit_on_failure = reactor
    worker.config_path = options.config_path
    return worker
