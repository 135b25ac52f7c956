"""Deployment settings: the config file's ``[papertrader]`` section, overridden by options.

The four global variables of the specification (assets, workers,
log_memory_size, update_interval) and the few others live here, validated once.
"""

import ast
import configparser
import re
import sys
from datetime import date
from dataclasses import asdict, dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from papertrader.master.validation import USERNAME_RE
from papertrader.money import money_text, parse_money

SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9.\-]{0,11}$")


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    #: Symbols the master retrieves and lets users trade (empty: the source's own list).
    assets: tuple = ()
    #: Workers the cluster starts (at least one).
    workers: int = 2
    #: Log entries each process keeps in memory (older ones are only in the log file).
    log_memory_size: int = 1000
    #: Candles a worker keeps cached across its answers (0: none).
    candle_cache_size: int = 100_000
    #: Seconds between market data updates and order queue passes (fractions allowed).
    update_interval: float = 5.0
    #: Cash a new account starts with.
    starting_cash: Decimal = Decimal("100000.00")
    #: Commission charged per filled order.
    commission: Decimal = Decimal("0.00")
    #: bcrypt cost factor for new password hashes.
    bcrypt_rounds: int = 12
    #: Processes that hash passwords at once (0: half the CPU cores, at least 1); logins queue beyond it.
    hash_processes: int = 0
    #: Seed of the simulated market's random walks (same seed, same prices).
    market_seed: int = 1
    #: Seconds a session may go unused before it ends (in addition to its 24 h / 30 day expiry).
    session_idle_timeout: float = 604800.0
    #: Failed logins (per account name, and per client address) before each attempt must wait longer.
    login_free_attempts: int = 5
    #: Login attempts a name or an address may make per throttle window, at most.
    login_ceiling: int = 30
    #: Accounts one client address may register per throttle window.
    registrations_per_address: int = 10
    #: Seconds over which the abuse limits count.
    throttle_window: float = 900.0
    #: The OpenID Connect provider users may sign in with ('papertrader login --provider NAME').
    oidc_name: str = "google"
    #: Its issuer URL (https; its /.well-known/openid-configuration is read).
    oidc_issuer: str = "https://accounts.google.com"
    #: The client id this deployment is registered with at the provider; empty: provider login is off.
    oidc_client_id: str = ""
    #: The client secret (better set in the environment as PAPERTRADER_OIDC_CLIENT_SECRET).
    oidc_client_secret: str = ""
    #: The workers' websites' sign-in return addresses (https://HOST:PORT/auth/callback) the master lets the
    #: provider send people back to, besides the command line's own http://127.0.0.1 listener.
    oidc_redirect_uris: tuple = ()
    #: Accounts (usernames) that may pause, resume, step and seek a replay through the HTTP API and the command
    #: line, as the operator's ``papertrader-admin market``: for a backtest in lockstep with its strategy.
    market_control: tuple = ()
    #: Seconds between the master's heartbeats to each worker.
    heartbeat_interval: float = 5.0
    #: Heartbeats a worker may miss before it is marked down and leaves the clients' list.
    heartbeat_misses: int = 3
    #: Seconds a worker lets requests wait for a master that is behind (every answer slower than this, for as
    #: long) before it refuses new ones at once, "throttled", until the master catches up; 0: never refuse.
    max_master_wait: float = 10.0
    #: Where prices come from: replay (real history), simulated, alpaca, nasdaq.
    provider: str = "replay"
    #: Trading sessions: always_open (one session per UTC day) or an exchange calendar such as XNYS
    #: (empty: XNYS, or always_open for the simulated market).
    calendar: str = ""
    #: Replay: the first day (empty: 2010-01-04 in the shipped history, the first day of replay_files), the last
    #: day (empty: the end of the data), one step per update (1d, or 1m, 5m, 1h... with intraday data), whether
    #: to start over at the end, and the operator's own CSV files (empty: the history shipped with PaperTrader).
    replay_start: str = ""
    replay_end: str = ""
    replay_step: str = "1d"
    replay_loop: bool = False
    #: A new replay starts paused: nothing plays until an operator (or a market_control account) resumes or
    #: steps it.  A data dir whose replay has run keeps its own state.
    replay_paused: bool = False
    replay_files: str = ""
    #: Seconds without a fresh bar after which a quote is shown as stale (0: twice the update interval,
    #: at least two minutes).
    max_quote_age: float = 0.0
    #: Days of minute candles kept (daily candles are kept for good).
    keep_minute_bars: int = 90
    #: Live providers: their base URLs (tests point them at a local server), the Alpaca feed, and the
    #: seconds any request may take.  Alpaca's keys come from APCA_API_KEY_ID and APCA_API_SECRET_KEY.
    alpaca_data_url: str = "https://data.alpaca.markets"
    alpaca_trading_url: str = "https://paper-api.alpaca.markets"
    alpaca_feed: str = "iex"
    nasdaq_url: str = "https://api.nasdaq.com"
    provider_timeout: float = 10.0
    #: How bars price fills: 'bar' (open, limits traded through, slippage, volume cap) or 'ideal' (the close).
    fill_model: str = "bar"
    #: The bar model's half-spread, in basis points of the price, paid by market-like fills.
    half_spread_bps: Decimal = Decimal("2")
    #: The bar model's market impact, in basis points, for a fill that takes all the liquidity a bar allows.
    impact_bps: Decimal = Decimal("10")
    #: The share of a bar's volume all orders together may take (the rest of an order waits for later bars).
    volume_share: Decimal = Decimal("0.1")
    #: zero, per_order, per_share or percent (empty: per_order if commission is set, else zero).
    commission_model: str = ""
    #: per_share: the rate per share.
    commission_per_share: Decimal = Decimal("0.005")
    #: per_share: the least one order pays.
    commission_minimum: Decimal = Decimal("0.00")
    #: per_share: the most one order pays (0: no maximum).
    commission_maximum: Decimal = Decimal("0.00")
    #: percent: the percent of the value traded.
    commission_percent: Decimal = Decimal("0")
    #: Percent above the last price at which a market-like buy reserves buying power.
    market_buy_buffer: Decimal = Decimal("5")
    #: Open orders one account may have at once.
    max_open_orders: int = 500
    #: Requests one API key may make a minute (HTTP API); more get HTTP 429.
    api_rate_limit: int = 200
    #: Connections one IP address may have open to one listener (the master's, a worker's, its HTTP API's).
    max_connections_per_address: int = 64
    #: Seconds a new connection has to finish its TLS handshake.
    handshake_timeout: float = 10.0
    #: Seconds an AMP connection may send nothing before it is closed (one watching prices or order events
    #: is never idle: it waits for pushes).
    idle_timeout: float = 300.0
    #: Bytes of answers and pushes that may wait, beyond the socket's buffers, for an AMP peer that does not
    #: read them; more and the connection is closed.
    max_unsent_bytes: int = 1_048_576
    #: Open portfolios one account may have at once.
    max_portfolios: int = 10
    #: The most starting cash a portfolio may be made with.
    max_portfolio_cash: Decimal = Decimal("10000000.00")
    #: Whether users may make margin portfolios (short selling, borrowing).
    margin_accounts: bool = False
    #: Initial margin (Reg T), percent of the positions' value.
    margin_initial: Decimal = Decimal("50")
    #: Maintenance margin, percent of a long position's value.
    margin_maintenance_long: Decimal = Decimal("25")
    #: Maintenance margin, percent of a short position's value.
    margin_maintenance_short: Decimal = Decimal("30")
    #: Hours a margin call may stay unmet before the platform liquidates.
    margin_call_hours: float = 48.0
    #: Yearly borrow fee on short positions, percent (charged daily: value x rate / 360).
    borrow_rate: Decimal = Decimal("0")

    def as_text(self):
        """Settings as strings, for display."""
        out = {}
        for key, value in asdict(self).items():
            if key == "oidc_client_secret" and value:
                value = "(set)"
            elif isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, Decimal):
                value = money_text(value) if key in MONEY else format(value, "f")
            out[key] = str(value)
        return out


NAMES = tuple(f.name for f in fields(Settings))
MONEY = {"starting_cash", "commission", "commission_minimum", "commission_maximum", "max_portfolio_cash"}
INTEGERS = {"workers": (1, 64), "log_memory_size": (1, 10_000_000),
            "candle_cache_size": (0, 10_000_000), "bcrypt_rounds": (4, 31), "hash_processes": (0, 64),
            "market_seed": (0, 2**63), "heartbeat_misses": (1, 1000), "login_free_attempts": (1, 1000),
            "login_ceiling": (1, 100_000), "registrations_per_address": (1, 100_000),
            "max_open_orders": (1, 100_000), "keep_minute_bars": (1, 36_500), "api_rate_limit": (1, 1_000_000),
            "max_connections_per_address": (1, 1_000_000), "max_unsent_bytes": (65_536, 2**30),
            "max_portfolios": (1, 1000)}
#: Settings that are a number of seconds (or hours): (lowest, highest, what is accepted).
FLOATS = {"throttle_window": (1, 86400, "must be between 1 and 86400 seconds"),
          "session_idle_timeout": (60, 31_536_000, "must be between 60 seconds and a year"),
          "handshake_timeout": (0.1, 86400, "must be between 0.1 and 86400 seconds"),
          "idle_timeout": (1, 86400, "must be between 1 and 86400 seconds"),
          "update_interval": (0.01, 86400, "must be between 0.01 and 86400 seconds"),
          "heartbeat_interval": (0.01, 86400, "must be between 0.01 and 86400 seconds"),
          "max_master_wait": (0, 29, "must be between 0 (never refuse) and 29 seconds (a call to the master waits"
                                     " 30 s at most)"),
          "margin_call_hours": (0, 24 * 365, "must be between 0 and 8760 hours"),
          "max_quote_age": (0, 86400 * 30, f"must be between 0 and {86400 * 30} seconds"),
          "provider_timeout": (0.1, 86400 * 30, f"must be between 0.1 and {86400 * 30} seconds")}
#: Decimal settings: (lowest, highest) allowed.
DECIMALS = {"half_spread_bps": (0, 1000), "impact_bps": (0, 1000), "volume_share": (Decimal("0.000001"), 1),
            "commission_per_share": (0, 100), "commission_percent": (0, 100), "market_buy_buffer": (0, 100),
            "margin_initial": (1, 100), "margin_maintenance_long": (1, 100), "margin_maintenance_short": (1, 100),
            "borrow_rate": (0, 100)}
CHOICES = {"fill_model": ("bar", "ideal"), "commission_model": ("", "zero", "per_order", "per_share", "percent"),
           "provider": ("replay", "simulated", "alpaca", "nasdaq"), "alpaca_feed": ("iex", "sip")}
#: What an exchange code of ``calendar`` looks like (exchange_calendars also has names such as 24/7).
EXCHANGE_CODE_RE = re.compile(r"[A-Z0-9]{3,5}")
URLS = ("alpaca_data_url", "alpaca_trading_url", "nasdaq_url")
#: Host names an OpenID Connect issuer may be reached at over plain http (a provider on this machine).
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _plain_http_off_loopback(url):
    """Whether ``url`` is plain http to another machine than this one (its secrets and answers open to anyone on
    the way): an issuer and a provider are reached over https, http only on loopback (a test server)."""
    try:
        parts = urlsplit(url)
        return parts.scheme == "http" and parts.hostname not in LOOPBACK
    except ValueError:  # (a host that cannot be read is not known to be this machine)
        return url.startswith("http://")


def issuer_problem(url):
    """Why ``url`` cannot be an OpenID Connect issuer (None if it can): an https URL with a host, or http on
    loopback."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    if not host or parts.scheme not in ("https", "http") or parts.query or parts.fragment:
        return "is not an issuer URL: https://HOST[/PATH], as the provider names itself"
    if _plain_http_off_loopback(url):
        return "is not https: an issuer is reached over https (http only on loopback)"
    return None


#: A website's sign-in return address (papertrader/worker/web/site.py serves /auth/callback).
REDIRECT_URI_RE = re.compile(r"https://[A-Za-z0-9.\-]+(:[0-9]{1,5})?/auth/callback")


def exchange_codes():
    """The exchange codes ``calendar`` may name: the exchange_calendars library's (aliases such as XNAS too).

    Checked with the other settings, so an unknown one is a usage mistake of every daemon, found before
    anything starts, not a failure of the master's market once its data dir and database are made.
    """
    import exchange_calendars

    names = exchange_calendars.get_calendar_names(include_aliases=True)
    return sorted(name for name in names if EXCHANGE_CODE_RE.fullmatch(name))


def _parse(name, raw):
    raw = str(raw).strip()
    try:
        if name == "assets":
            symbols = tuple(s.strip().upper() for s in raw.split(",") if s.strip())
            if not symbols:
                return ()
            for symbol in symbols:
                if not SYMBOL_RE.fullmatch(symbol):
                    raise ConfigError(f"assets: {symbol!r} is not a valid symbol")
            if len(set(symbols)) != len(symbols):
                raise ConfigError("assets: a symbol is listed twice")
            if len(symbols) > 200:
                raise ConfigError("assets: at most 200 symbols")
            return symbols
        if name == "oidc_redirect_uris":
            uris = tuple(u.strip() for u in raw.split(",") if u.strip())
            for uri in uris:
                if not REDIRECT_URI_RE.fullmatch(uri) or len(uri) > 200:
                    raise ConfigError(f"oidc_redirect_uris: {uri[:80]!r} is not https://HOST[:PORT]/auth/callback")
            if len(uris) > 100:
                raise ConfigError("oidc_redirect_uris: at most 100 addresses")
            return uris
        if name == "market_control":
            names = tuple(n.strip() for n in raw.split(",") if n.strip())
            for username in names:
                if not USERNAME_RE.fullmatch(username):
                    raise ConfigError(f"market_control: {username[:80]!r} is not a username (3-24 letters, digits,"
                                      " '_', '.' or '-')")
            if len(names) > 100:
                raise ConfigError("market_control: at most 100 usernames")
            return names
        if name in INTEGERS:
            low, high = INTEGERS[name]
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name}: {raw[:80]!r} is not a whole number: must be between {low} and {high}")
            if not low <= value <= high:
                raise ConfigError(f"{name}: must be between {low} and {high}")
            return value
        if name in FLOATS:
            low, high, accepted = FLOATS[name]
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{name}: {raw[:80]!r} is not a number: {accepted}")
            if not low <= value <= high:  # (nan compares false: refused too)
                raise ConfigError(f"{name}: {accepted}")
            return value
        if name in ("oidc_name", "oidc_issuer", "oidc_client_id", "oidc_client_secret"):
            if len(raw) > 500 or any(ch.isspace() for ch in raw):
                raise ConfigError(f"{name}: must be one word of at most 500 characters")
            if name == "oidc_issuer" and raw and issuer_problem(raw):
                raise ConfigError(f"oidc_issuer: {raw[:80]!r} {issuer_problem(raw)}")
            return raw
        if name in MONEY:
            return parse_money(raw)
        if name == "margin_accounts":
            if raw.lower() not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                raise ConfigError("margin_accounts: true or false")
            return raw.lower() in ("true", "yes", "1", "on")
        if name in DECIMALS:
            try:
                value = Decimal(raw)
            except InvalidOperation:
                raise ConfigError(f"{name}: {raw!r} is not a number")
            low, high = DECIMALS[name]
            if not value.is_finite() or not low <= value <= high:
                raise ConfigError(f"{name}: must be a number from {low} to {high}")
            return value
        if name in CHOICES:
            if raw not in CHOICES[name]:
                raise ConfigError(f"{name}: must be one of {', '.join(c for c in CHOICES[name] if c)}")
            return raw
        if name == "calendar":
            codes = exchange_codes() if raw not in ("", "always_open") else ()
            if codes and raw not in codes:
                raise ConfigError(f"calendar: {raw[:40]!r} is not a calendar: always_open, or an exchange code:"
                                  f" {', '.join(codes)}")
            return raw
        if name in ("replay_start", "replay_end"):
            if not raw:
                return ""
            try:
                return date.fromisoformat(raw).isoformat()
            except ValueError:
                raise ConfigError(f"{name}: a date, YYYY-MM-DD")
        if name == "replay_step":
            if not re.fullmatch(r"1d|[1-9][0-9]{0,3}[mh]", raw):
                raise ConfigError("replay_step: 1d, or a number of minutes or hours such as 1m, 5m, 1h")
            return raw
        if name in ("replay_loop", "replay_paused"):
            if raw.lower() not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                raise ConfigError(f"{name}: true or false")
            return raw.lower() in ("true", "yes", "1", "on")
        if name == "replay_files":
            if len(raw) > 4000:
                raise ConfigError("replay_files: too long")
            return raw
        if name in URLS:
            if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", raw) or len(raw) > 500:
                raise ConfigError(f"{name}: an http(s) URL")
            if _plain_http_off_loopback(raw):
                raise ConfigError(f"{name}: {raw!r} is not https: a provider is reached over https, so that its"
                                  " prices and an API key are not open to anyone on the way (http only on loopback,"
                                  " for a test server of your own)")
            return raw.rstrip("/")
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(f"{name}: {e}")
    raise ConfigError(f"unknown setting {name!r}")


#: Settings that were renamed: an ini file may still use the old name (an old name and its new one together
#: are an error).
RENAMED = {"hash_threads": "hash_processes"}
#: The config file's other sections and their keys, read by the daemon they concern (``[worker]``: by
#: papertrader-worker, papertrader/worker/service.py).  Every daemon refuses a section or a key not listed,
#: as it does an unknown ``[papertrader]`` setting: a typo must not quietly leave the default in place.
SECTIONS = {"worker": ("region",)}


def _check_sections(parser, path):
    """Refuse a section other than [papertrader] and SECTIONS, and a key those sections do not know."""
    known = ", ".join(f"[{name}]" for name in ("papertrader", *SECTIONS))
    for section in parser.sections():
        if section != "papertrader" and section not in SECTIONS:
            raise ConfigError(f"{path}: unknown section [{section}] (known: {known})")
    for section, keys in SECTIONS.items():
        if parser.has_section(section):
            for key in parser.options(section):
                if key not in keys and key not in parser.defaults():  # [DEFAULT]'s are checked in [papertrader]
                    raise ConfigError(f"{path}: unknown setting {key!r} in [{section}] (known: {', '.join(keys)})")


def _ini_mistake(error):
    """What an ini file's syntax error means, on one line with its line number and what to write instead
    (configparser's own text spans lines and names Python's terms)."""
    if isinstance(error, configparser.MissingSectionHeaderError):
        line = error.line.strip()
        if line.startswith("["):
            return f"line {error.lineno}: {line!r} is not a section header: write [papertrader]"
        return (f"line {error.lineno}: {line!r} comes before any section: begin the file with a line [papertrader]"
                " (a worker's region: [worker])")
    if isinstance(error, configparser.DuplicateOptionError):
        return (f"line {error.lineno}: {error.option!r} is set a second time in [{error.section}]: keep one of the"
                " two")
    if isinstance(error, configparser.DuplicateSectionError):
        return f"line {error.lineno}: a second [{error.section}] section: put its settings in the first one"
    if isinstance(error, configparser.ParsingError) and error.errors:
        lineno, text = error.errors[0]
        if sys.version_info < (3, 13):  # (configparser gives the line as its repr; from Python 3.13 on, as written)
            try:
                text = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                pass
        text = text.strip() if isinstance(text, str) else text
        return f"line {lineno}: {text!r} is not a setting: write NAME = VALUE"
    return " ".join(str(error).split())


def load_settings(path=None, overrides=None):
    """Read ``path`` (an ini file, optional) and apply ``overrides`` (name -> text)."""
    values = {}
    if path is not None:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f)
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}")
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text")
        except configparser.Error as e:
            raise ConfigError(f"{path}: {_ini_mistake(e)}")
        if not parser.sections():
            raise ConfigError(f"config file {path} has no [papertrader] section")
        _check_sections(parser, path)  # (a worker's file may hold its [worker] section alone: the defaults else)
        for key, raw in (parser.items("papertrader") if parser.has_section("papertrader") else ()):
            if key in RENAMED:
                if parser.has_option("papertrader", RENAMED[key]):
                    raise ConfigError(f"{path}: {key!r} is the old name of {RENAMED[key]!r}; keep one of them")
                key = RENAMED[key]
            if key not in NAMES:
                raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(NAMES)})")
            values[key] = _parse(key, raw)
    for key, raw in (overrides or {}).items():
        if raw is not None:
            values[key] = _parse(key, raw)
    settings = replace(Settings(), **values)
    if settings.oidc_client_id and not settings.oidc_issuer:
        raise ConfigError("oidc_issuer: empty, while oidc_client_id is set: give the provider's issuer URL, or leave"
                          " oidc_client_id empty (provider sign-in off)")
    try:
        margin_rules(settings)
    except ValueError as e:
        raise ConfigError(f"margin settings: {e}")
    return settings


def margin_rules(settings):
    """The MarginRules (papertrader/trading/margin.py) a deployment's settings choose."""
    from datetime import timedelta

    from papertrader.trading.margin import MarginRules

    hundred = Decimal(100)
    return MarginRules(initial=settings.margin_initial / hundred,
                       maintenance_long=settings.margin_maintenance_long / hundred,
                       maintenance_short=settings.margin_maintenance_short / hundred,
                       call_deadline=timedelta(hours=settings.margin_call_hours),
                       borrow_rate=settings.borrow_rate / hundred)
