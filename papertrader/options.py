"""Command-line options shared by the twistd plugins: the settings and the data dir.

A usage mistake (a bad option, or a setting makeService refuses) is printed as one line on stderr and
the process exits with status 2: no traceback, no screen of usage text (``--help`` shows that).
"""

import configparser
import os

from twisted.python import usage

from papertrader.config import ConfigError, load_settings
from papertrader.gpgkeys import GPGMissing
from papertrader.manhole import ManholeError
from papertrader.market import setup as market_setup
from papertrader.services import usage_exit

#: What makeService reports as a usage mistake (one line, exit status 2) rather than a traceback.
USAGE_MISTAKES = (usage.UsageError, ManholeError, GPGMissing, OSError)


def usage_message(error):
    """The one line a usage mistake prints."""
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    return str(error)


class SettingsOptions(usage.Options):
    """Every setting of the config file, each also an option of the same name."""

    #: The twistd plugin these options belong to, for messages.
    command = "papertrader"
    #: Whether this daemon runs the market, whose settings are then checked against what exists (the replay's
    #: files, days and symbols, a live provider's keys) with the options: a worker never reads them.
    runs_market = True
    #: What the market settings were checked to be (papertrader.market.setup.Plan), for the master to build.
    market_plan = None

    optParameters = [
        ["data-dir", "d", None, "Directory for this server's files (created if missing). Required."],
        ["config", "c", None, "Config file (ini) with a [papertrader] section."],
        ["assets", None, None, "Comma-separated symbols to trade, e.g. AAPL,MSFT."],
        ["workers", None, None, "Number of workers (cluster)."],
        ["log-memory-size", None, None, "Log entries kept in memory."],
        ["candle-cache-size", None, None, "Candles a worker keeps cached across answers (0: none)."],
        ["update-interval", None, None, "Seconds between market updates and queue passes."],
        ["starting-cash", None, None, "Cash of a new account."],
        ["commission", None, None, "Commission per filled order."],
        ["bcrypt-rounds", None, None, "bcrypt cost factor for password hashes."],
        ["hash-processes", None, None, "Processes hashing passwords at once (0: half the CPU cores)."],
        ["hash-threads", None, None, "The old name of --hash-processes."],
        ["market-seed", None, None, "Seed of the simulated market."],
        ["session-idle-timeout", None, None, "Seconds a session may go unused before it ends."],
        ["login-free-attempts", None, None, "Failed logins before each attempt must wait longer."],
        ["login-ceiling", None, None, "Login attempts per name or address per throttle window."],
        ["registrations-per-address", None, None, "Registrations per client address per throttle window."],
        ["throttle-window", None, None, "Seconds over which the abuse limits count."],
        ["oidc-name", None, None, "Name of the OpenID Connect provider users sign in with (default google)."],
        ["oidc-issuer", None, None, "Issuer URL of that provider."],
        ["oidc-client-id", None, None, "Client id of this deployment at the provider (empty: provider login off)."],
        ["oidc-redirect-uris", None, None, "The websites' sign-in return addresses (https://HOST:PORT/auth/callback),"
                                           " comma-separated."],
        ["market-control", None, None, "Usernames that may pause, resume, step and seek a replay themselves,"
                                       " comma-separated (default: none)."],
        ["heartbeat-interval", None, None, "Seconds between the master's heartbeats to each worker."],
        ["heartbeat-misses", None, None, "Heartbeats a worker may miss before it is marked down."],
        ["max-master-wait", None, None, "Seconds a worker lets requests wait for a master that is behind before it"
                                        " refuses new ones until it catches up (default 10; 0: never)."],
        ["provider", None, None, "Where prices come from: replay (default: real history), simulated, alpaca, nasdaq."],
        ["calendar", None, None, "Trading sessions: always_open or an exchange code (default: XNYS; simulated:"
                                 " always_open)."],
        ["replay-start", None, None, "Replay: the first day, YYYY-MM-DD (default: 2010-01-04 in the shipped"
                                     " history, the first day of --replay-files)."],
        ["replay-end", None, None, "Replay: the last day (default: the end of the data)."],
        ["replay-step", None, None, "Replay: market time per update: 1d (default), or 1m, 5m, 1h... (intraday data)."],
        ["replay-loop", None, None, "Replay: start over at the end (true/false, default false)."],
        ["replay-paused", None, None, "Replay: a new replay starts paused until resumed or stepped (true/false,"
                                      " default false)."],
        ["replay-files", None, None, "Replay: your own CSV files or directories, comma-separated (default: the"
                                     " shipped history)."],
        ["max-quote-age", None, None, "Seconds without a fresh bar before a quote is stale (default: auto)."],
        ["keep-minute-bars", None, None, "Days of minute candles kept (default 90)."],
        ["alpaca-data-url", None, None, "Alpaca market data base URL."],
        ["alpaca-trading-url", None, None, "Alpaca trading API base URL (for the asset list)."],
        ["alpaca-feed", None, None, "Alpaca feed: iex (default) or sip."],
        ["nasdaq-url", None, None, "Nasdaq quote API base URL."],
        ["provider-timeout", None, None, "Seconds any request to a live provider may take (default 10)."],
        ["fill-model", None, None, "How bars price fills: bar (default) or ideal."],
        ["half-spread-bps", None, None, "bar model: half-spread in basis points (default 2)."],
        ["impact-bps", None, None, "bar model: market impact in basis points at full participation (default 10)."],
        ["volume-share", None, None, "bar model: share of a bar's volume orders may take (default 0.1)."],
        ["commission-model", None, None, "zero, per_order, per_share or percent."],
        ["commission-per-share", None, None, "per_share: rate per share (default 0.005)."],
        ["commission-minimum", None, None, "per_share: least per order (default 0.00)."],
        ["commission-maximum", None, None, "per_share: most per order (0: none)."],
        ["commission-percent", None, None, "percent: percent of the value traded."],
        ["market-buy-buffer", None, None, "Percent over the last price a market buy reserves (default 5)."],
        ["max-open-orders", None, None, "Open orders one account may have (default 500)."],
        ["api-rate-limit", None, None, "Requests one API key may make a minute (default 200)."],
        ["max-connections-per-address", None, None, "Connections one IP address may have open to a listener"
                                                    " (default 64)."],
        ["handshake-timeout", None, None, "Seconds a connection has to finish its TLS handshake (default 10)."],
        ["idle-timeout", None, None, "Seconds an AMP connection may send nothing (default 300; watching is not"
                                     " idle)."],
        ["max-unsent-bytes", None, None, "Bytes that may wait for an AMP peer that does not read (default 1048576)."],
        ["max-portfolios", None, None, "Open portfolios one account may have (default 10)."],
        ["max-portfolio-cash", None, None, "Most starting cash of a portfolio (default 10000000.00)."],
        ["margin-accounts", None, None, "Whether users may make margin portfolios: true or false (default)."],
        ["margin-initial", None, None, "Initial margin, percent (default 50, Reg T)."],
        ["margin-maintenance-long", None, None, "Maintenance margin on longs, percent (default 25)."],
        ["margin-maintenance-short", None, None, "Maintenance margin on shorts, percent (default 30)."],
        ["margin-call-hours", None, None, "Hours a margin call may stay unmet before liquidation (default 48)."],
        ["borrow-rate", None, None, "Yearly borrow fee on short positions, percent (default 0)."],
    ]

    _SETTINGS = ("assets", "workers", "log-memory-size", "candle-cache-size", "update-interval", "starting-cash", "commission",
                 "bcrypt-rounds", "hash-processes", "market-seed", "heartbeat-interval", "heartbeat-misses",
                 "max-master-wait", "session-idle-timeout", "login-free-attempts", "login-ceiling", "registrations-per-address",
                 "throttle-window", "oidc-name", "oidc-issuer", "oidc-client-id", "oidc-redirect-uris",
                 "market-control", "calendar", "fill-model",
                 "half-spread-bps", "impact-bps", "volume-share", "commission-model", "commission-per-share",
                 "commission-minimum", "commission-maximum", "commission-percent", "market-buy-buffer",
                 "max-open-orders", "api-rate-limit", "max-connections-per-address", "handshake-timeout",
                 "idle-timeout", "max-unsent-bytes", "provider", "replay-start", "replay-end", "replay-step",
                 "replay-loop", "replay-paused", "replay-files", "max-quote-age", "keep-minute-bars", "alpaca-data-url",
                 "alpaca-trading-url", "alpaca-feed", "nasdaq-url", "provider-timeout", "max-portfolios",
                 "max-portfolio-cash", "margin-accounts", "margin-initial", "margin-maintenance-long",
                 "margin-maintenance-short", "margin-call-hours", "borrow-rate")

    def parseOptions(self, options=None):
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            usage_exit(self.command, f"{e} (--help lists the options)")

    def postOptions(self):
        if not self["data-dir"]:
            raise usage.UsageError("--data-dir is required")
        self["data-dir"] = os.path.abspath(self["data-dir"])
        if os.path.exists(self["data-dir"]) and not os.path.isdir(self["data-dir"]):
            raise usage.UsageError(f"--data-dir: {self['data-dir']} is not a directory")
        config = self["config"]
        if config is None and os.path.exists(os.path.join(self["data-dir"], "papertrader.ini")):
            config = os.path.join(self["data-dir"], "papertrader.ini")
        self.config_path = config
        if self["hash-threads"] is not None:
            if self["hash-processes"] is not None:
                raise usage.UsageError("--hash-threads is the old name of --hash-processes: give one of them")
            self["hash-processes"] = self["hash-threads"]
        overrides = {name.replace("-", "_"): self[name] for name in self._SETTINGS}
        # A secret belongs in the environment (or a private config file), not on a command line.
        overrides["oidc_client_secret"] = os.environ.get("PAPERTRADER_OIDC_CLIENT_SECRET")
        try:
            self.settings = load_settings(config, overrides)
        except ConfigError as e:
            raise usage.UsageError(str(e))
        if self.runs_market:
            self._check_market()
        self._check_manhole()
        if self.get("port") not in (None, ""):  # the master's and a worker's TLS port
            from papertrader.tls import check_listen

            try:
                check_listen(self["port"])
            except ValueError as e:
                raise usage.UsageError(f"--port {self['port']}: {e}")

    def _check_manhole(self):
        """A console that would listen where it may not (a telnet one off loopback) or whose keys file is not there is
        a usage mistake, found before anything is made in the data dir."""
        listen = self.get("manhole")
        keys = self.get("manhole-keys")
        if listen in (None, ""):
            if keys:
                raise usage.UsageError("--manhole-keys needs --manhole ENDPOINT (where the SSH console listens, such"
                                       " as tcp:2222): without it no console listens")
            return
        from papertrader.manhole import check_authorized_keys, telnet_description

        if keys:
            try:
                check_authorized_keys(keys)
            except ManholeError as e:
                raise usage.UsageError(str(e))
        else:
            try:
                telnet_description(listen)
            except ManholeError as e:
                raise usage.UsageError(str(e))

    def _check_market(self):
        """A market setting that names what does not exist (a replay start after the history's end, a symbol it
        lacks, a missing file) is a usage mistake, found before the data dir or the database is touched."""
        try:
            self.market_plan = market_setup.check(self.settings)
        except market_setup.MarketSetupError as e:
            raise usage.UsageError(str(e))

    def section(self, name):
        """Another section of the config file (e.g. [worker]) as a dict; empty if absent."""
        if not self.config_path:
            return {}
        parser = configparser.ConfigParser(interpolation=None)
        with open(self.config_path, encoding="utf-8") as f:
            parser.read_file(f)
        return dict(parser.items(name)) if parser.has_section(name) else {}
