"""``papertrader``: the command-line client.

    papertrader [--master HOST:PORT] [--ca-file PATH] [--worker NAME] [--region REGION] [--json] COMMAND ...

(the global options may also follow the command).  It asks the master for its
workers (the only thing it asks the master), then sends the command to a
worker, moving to another one when a worker fails (``connection.py``).

What a user gets back (the README's contract): one line on stderr per failure,
never a traceback; with ``--json`` exactly one JSON value on stdout per command
(``watch``: one per line); and an exit status that tells success (0), a failure
(1), a usage error (2), an order that exists but ended without filling in full
(rejected, canceled or expired: 3) or is still open when ``--wait`` ended (4), and
an interrupt (130 for Ctrl-C, 143 for SIGTERM).
"""

import argparse
import difflib
import errno
import getpass
import math
import os
import platform
import re
import shlex
import signal
import sys
import uuid
import webbrowser
from datetime import timezone

from twisted.internet import defer, task
from twisted.internet.ssl import Certificate

import papertrader
from papertrader import commands, times, tls
from papertrader.client import browser_login, output, tokens
from papertrader.client.connection import Connection
from papertrader.client.errors import (
    INTERRUPTED,
    USAGE,
    BadCAFile,
    BadCertificate,
    ConfigError,
    InternalError,
    NoWorker,
    Unreachable,
    WorkerFailed,
    WrongServer,
)
from papertrader.client.interrupts import Interrupted, Interrupts, NoInterrupts
from papertrader.client.interrupts import status as signal_status
from papertrader.errors import (
    InsufficientPosition,
    InvalidInput,
    MasterUnavailable,
    NotLoggedIn,
    PaperTraderError,
    ProviderLoginFailed,
    QuoteUnavailable,
    UnknownGame,
    UnknownPortfolio,
    UnknownSymbol,
)
from papertrader.logs import counted
from papertrader.master import validation
from papertrader.money import money_text
from papertrader.times import game_window, parse_when
from papertrader.trading.games import NO_SHARPE

ORDER_KEYS = ["id", "client_order_id", "side", "symbol", "quantity", "notional", "type", "time_in_force", "limit_price",
              "stop_price", "trail_price", "trail_percent", "stop_level", "order_class", "leg", "parent_id", "status",
              "filled_quantity", "average_price", "commission", "created", "expires", "trades_at", "replaces",
              "replaced_by", "reason"]
#: A bracket's, OCO's or OTO's exits, under the order they hang from.
LEG_COLUMNS = ["id", "leg", "side", "quantity", "type", "limit_price", "stop_price", "status", "filled_quantity",
               "average_price"]
ORDER_COLUMNS = ["id", "side", "symbol", "quantity", "type", "time_in_force", "limit_price", "stop_price", "status",
                 "filled_quantity", "average_price", "reason"]
OPEN = ("new", "partially_filled")
#: What this client says it is when it signs in (the account's sessions list shows it).
DEVICE = f"papertrader CLI {papertrader.__version__} on {platform.system() or 'an unknown system'}"
PORTFOLIO_ACTIONS = ("show", "create", "list", "use", "rename", "default", "close", "reset", "configure")
#: The switches of 'portfolio configure' (the portfolio's configuration that acts on orders).
CONFIGURE_SWITCHES = (("no_shorting", "long only: no short sales"),
                      ("suspend_trade", "no new orders or replacements (cancels still work)"),
                      ("fractional_trading", "fractions of a share and notional orders (off: whole shares only)"))
PORTFOLIO_COLUMNS = ["name", "kind", "cash", "starting_cash", "default", "in_use", "generation", "created",
                     "margin_call"]
TIMES_IN_FORCE = ("day", "gtc", "ioc", "fok", "opg", "cls")

# Exit statuses (the README lists them).
OK = 0
FAILED = 1
USAGE_STATUS = 2
ORDER_ENDED = 3
ORDER_OPEN = 4
OUTPUT_CLOSED = signal_status(signal.SIGPIPE)

#: Seconds between two looks at an order while waiting for it; at most WAIT_BACKOFF while no worker answers.
POLL = 0.25
WAIT_BACKOFF = 5.0
#: Longest --timeout (a day).
MAX_TIMEOUT = 86400
#: Longest line read from standard input (a password is at most 1024 characters).
MAX_LINE = 8192

#: Commands that change nothing: repeating them after a worker failed is harmless.
READ_ONLY = {commands.Whoami, commands.Assets, commands.Quote, commands.Candles, commands.GetOrder,
             commands.Orders, commands.Portfolio, commands.History, commands.Sessions, commands.Profile,
             commands.Watch, commands.WatchOrders, commands.Clock, commands.Portfolios, commands.Games,
             commands.ShowGame, commands.GameLeaderboard, commands.GameCurve, commands.GamePortfolio,
             commands.Watchlists, commands.GetWatchlist}
#: What a worker that fails on the way can do to a command: the client tries another, or reports it.
WORKER_TROUBLE = (NoWorker, Unreachable, WrongServer, BadCertificate, WorkerFailed, MasterUnavailable)


class UsageFailure(Exception):
    pass


class CommandInterrupted(Exception):
    """A signal interrupted a prompt."""


class OutputClosed(Exception):
    """Standard output was closed by its reader (``papertrader watch AAPL | head -3``)."""


#: argparse's refusal of a command or action name: the name typed, and the choices (quoted before Python 3.12.8).
INVALID_CHOICE_RE = re.compile(r"argument (\w+): invalid choice: '(.*)' \(choose from (.*)\)$")


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageFailure(f"{_meant_choice(message)} (see '{self.prog} --help')")


def _meant_choice(message):
    """argparse's "invalid choice" as "unknown command 'postions': did you mean 'positions'?" when one choice is
    close to what was typed; otherwise as argparse says it (every choice listed)."""
    found = INVALID_CHOICE_RE.match(message)
    if found is None:
        return message
    what, typed, choices = found.groups()
    meant = difflib.get_close_matches(typed, [c.strip().strip("'") for c in choices.split(",")], n=1, cutoff=0.6)
    if not meant:
        return message
    kind = {"COMMAND": "command", "ACTION": "action"}.get(what, what.lower())
    return f"unknown {kind} '{typed}': did you mean '{meant[0]}'?"


GLOBAL_DEFAULTS = {"master": None, "ca_file": None, "worker": None, "region": None, "json": False}

EPILOG = """\
exit status: 0 done; 1 failed (the message says why); 2 usage error; 3 the order exists and ended
without filling in full (rejected, canceled or expired); 4 the order exists and is still open (--wait
ran out or could not follow it); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); 141 standard
output was closed.
"""


def keys_still_work(keys):
    """What follows a password changed or every session ended, when the account has API keys: they still
    work (a key is not a session), and how to revoke one."""
    if not keys:
        return ""
    return (f" {output.keys_still_working(keys)} (ending sessions does not revoke keys): 'papertrader api-key list' shows them; revoke any"
            " you did not make with 'papertrader api-key revoke KEY_ID'.")


def add_global_options(parser, default):
    """The options every command takes, before or after the command's name."""
    value = (lambda key: GLOBAL_DEFAULTS[key]) if default else (lambda key: argparse.SUPPRESS)
    parser.add_argument("--master", metavar="HOST:PORT", default=value("master"),
                        help="the master (default: $PAPERTRADER_MASTER, else localhost:2048)")
    parser.add_argument("--ca-file", metavar="PATH", default=value("ca_file"),
                        help="the deployment's CA certificate, its ca.pem (default: $PAPERTRADER_CA)")
    parser.add_argument("--worker", metavar="NAME", default=value("worker"),
                        help="use this worker only, with no failover (default: the last one used if listed, else"
                             " the least loaded)")
    parser.add_argument("--region", metavar="REGION", default=value("region"),
                        help="prefer workers in this region (default: any)")
    parser.add_argument("--json", action="store_true", default=value("json"),
                        help="print JSON on stdout: one value per command, one per line for watch (default: text)")


def build_parser():
    p = Parser(prog="papertrader", description="Trade on a PaperTrader deployment.", epilog=EPILOG,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s {papertrader.__version__}",
                   help="print the version and exit")
    add_global_options(p, default=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser,
                           help="what to do ('papertrader COMMAND --help' tells more); global options may also"
                                " follow it")
    sub.required = True

    def command(name, help):
        parser = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".")
        add_global_options(parser, default=False)
        return parser

    def password_options(parser):
        parser.add_argument("--password-stdin", action="store_true",
                            help="read the password from one line of standard input (default: ask at a prompt)")

    def provider_options(parser, what):
        parser.add_argument("--provider", metavar="NAME", help=f"{what} (e.g. google; default: none)")
        parser.add_argument("--no-browser", action="store_true",
                            help="with --provider: print the sign-in URL instead of opening a browser")

    def portfolio_option(parser):
        parser.add_argument("--portfolio", metavar="NAME", default=None,
                            help="trade this portfolio (default: the one 'portfolio use' chose, else your default"
                                 " portfolio)")

    def limit_option(parser, default, most=200):
        parser.add_argument("--limit", type=int, default=default, metavar="N",
                            help=f"how many, newest last (1-{most}, default {default})")

    c = command("register", "create an account (asks for a password)")
    c.add_argument("username", help="3-24 letters, digits, '_', '.', '-'")
    c.add_argument("email", help="your email address")
    password_options(c)
    c = command("login", "log in and keep the session")
    c.add_argument("username", nargs="?",
                   help="your username (with --provider: the name of the new account, if none is linked yet)")
    c.add_argument("--remember", action="store_true", help="stay logged in for 30 days (default: 24 hours)")
    provider_options(c, "sign in with this identity provider")
    c.add_argument("--link", action="store_true",
                   help="with --provider: link the provider to your existing account (asks for its password)")
    password_options(c)
    c = command("set-password", "add a password to an account made through a provider")
    password_options(c)
    c = command("profile", "your profile, or another user's public profile")
    c.add_argument("username", nargs="?", help="another user (default: you)")
    visibility = c.add_mutually_exclusive_group()
    visibility.add_argument("--public", action="store_true", help="let other users see your positions")
    visibility.add_argument("--private", action="store_true", help="hide your positions from other users")
    c = command("delete-account", "delete your account's personal data (asks for proof)")
    password_options(c)
    provider_options(c, "prove it is you by signing in with this provider instead of a password")
    yes_option(c)
    c = command("logout", "end this session (or others: --all, --session ID)")
    which = c.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="end every session of the account, on every device")
    which.add_argument("--session", metavar="ID",
                       help="end the session with this id instead (see 'sessions'; default: this session)")
    command("sessions", "your sessions: id, device, created, last used (its last command that needed a login),"
                        " worker, address, expiry")
    c = command("api-key", "your API keys, for programs using the HTTP API (alpaca-py...)")
    c.add_argument("action", choices=("create", "list", "revoke"),
                   help="create a key (its secret is shown once), list them, or revoke one")
    c.add_argument("key_id", nargs="?", metavar="KEY_ID", help="with revoke: the key's id (see 'api-key list')")
    c.add_argument("--name", metavar="NAME", default=None,
                   help="with create: a name to tell the key by, e.g. the strategy's (default: API key)")
    c.add_argument("--portfolio", metavar="NAME", default=None,
                   help="with create: the portfolio the key trades (default: your default portfolio)")
    c = command("passwd", "change your password (ends your other sessions)")
    c.add_argument("--password-stdin", action="store_true",
                   help="read the current and the new password from standard input, one line each (default: ask)")
    command("whoami", "show the account and the worker in use")
    command("workers", "list the available workers")
    c = command("assets", "list the assets, their names and latest prices (stale ones marked)")
    c.add_argument("--search", metavar="TEXT", default=None,
                   help="only assets whose symbol or name contains TEXT, any case (default: all)")
    c = command("quote", "the latest price of assets, a line each (marked stale when no fresh price came for too"
                         " long)")
    c.add_argument("symbols", nargs="+", metavar="SYMBOL",
                   help="the assets' symbols, e.g. AAPL, or AAPL MSFT (or AAPL,MSFT)")
    c = command("watchlist", "your watchlists: named lists of symbols to follow, shown with their latest prices")
    c.add_argument("action", nargs="?", default="list",
                   choices=("list", "show", "create", "add", "remove", "rename", "delete"),
                   help="list your watchlists (the default); show one with its prices; create one (with"
                        " SYMBOLs); add or remove SYMBOLs; rename it to NEW_NAME; delete it")
    c.add_argument("name", nargs="?", metavar="NAME", help="the watchlist's name (quote it if it has spaces)")
    c.add_argument("words", nargs="*", metavar="SYMBOL|NEW_NAME",
                   help="with create, add and remove: symbols (e.g. AAPL MSFT); with rename: the new name")
    c = command("candles", "price history of an asset: OHLCV candles of an interval")
    c.add_argument("symbol", help="the asset's symbol, e.g. AAPL")
    c.add_argument("--interval", choices=("1m", "5m", "15m", "1h", "1d"), default=None,
                   help="the candles' length (default: 1d when a replay plays whole sessions, else 1m)")
    c.add_argument("--start", metavar="WHEN", default=None,
                   help="the first candles from this day or time (YYYY-MM-DD, or ISO 8601 with a UTC offset;"
                        " default: the newest candles)")
    c.add_argument("--end", metavar="WHEN", default=None,
                   help="only candles before this day or time (default: none)")
    limit_option(c, 20, 1000)

    def archive_options(parser, what):
        archive = parser.add_mutually_exclusive_group()
        archive.add_argument("--archived", action="store_true",
                             help=f"the {what} from before the portfolio's last reset (default: since it)")
        archive.add_argument("--generation", type=int, metavar="N",
                             help=f"the {what} of generation N: 0 before the first reset, 1 after it, ..."
                                  " (default: the current one)")

    def wait_options(parser):
        parser.add_argument("--wait", action="store_true",
                            help="wait until the order is filled or ends (canceled, expired, rejected); Ctrl-C stops"
                                 " waiting, not the order")
        parser.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                            help=f"how long --wait waits (more than 0, at most {MAX_TIMEOUT}; default 120)")

    def price_options(parser, replacing=False):
        def more(text):
            return " (default: keep the order's)" if replacing else f" ({text}; default: none)"

        parser.add_argument("--limit", metavar="PRICE", dest="limit_price",
                            help="a limit price: fill at this price or better" +
                                 more("a limit order; with --stop, a stop-limit order"))
        parser.add_argument("--stop", metavar="PRICE", dest="stop_price",
                            help="a stop price: trigger when the market reaches it" +
                                 more("a stop order; with --limit, a stop-limit order"))
        trail = parser.add_mutually_exclusive_group()
        trail.add_argument("--trail-price", metavar="AMOUNT",
                           help="a trailing stop this many dollars from the best price since it was placed" +
                                more("a trailing stop order"))
        trail.add_argument("--trail-percent", metavar="PERCENT",
                           help="a trailing stop this many percent from the best price since it was placed" +
                                more("a trailing stop order"))
        parser.add_argument("--tif", choices=TIMES_IN_FORCE, default=None if replacing else "day",
                            help="time in force: day (until the session's close), gtc (until canceled), ioc"
                                 " (what fills at once, the rest canceled), fok (all at once or nothing), opg (at"
                                 " the next open), cls (at the close)" +
                                 (" (default: keep the order's)" if replacing else " (default day)"))

    for side in ("buy", "sell"):
        c = command(side, f"{side} shares: a market order, or limit, stop, stop-limit or trailing stop")
        c.add_argument("symbol", help="the asset's symbol, e.g. AAPL")
        c.add_argument("quantity", nargs="?",
                       help="how many shares: a positive number with up to 6 decimals, e.g. 10 or 2.5 (or give"
                            " --notional)")
        c.add_argument("--notional", metavar="AMOUNT",
                       help=f"{side} this many dollars' worth instead of a quantity (a market day order; the"
                            " quantity is fixed at the fill; default: none)")
        price_options(c)
        c.add_argument("--take-profit", metavar="PRICE",
                       help="an exit that takes the profit: a limit order on the other side at this price, placed"
                            " with the order and held until it fills (a bracket order with --stop-loss, else an"
                            " oto order; with --oco, the sale itself; default: none)")
        c.add_argument("--stop-loss", metavar="PRICE",
                       help="an exit that stops the loss: a stop order on the other side at this price, held until"
                            " the order fills; the exits cancel each other (default: none)")
        c.add_argument("--stop-loss-limit", metavar="PRICE",
                       help="the stop-loss exit as a stop-limit order with this limit price (default: a stop order)")
        c.add_argument("--oco", action="store_true",
                       help="one cancels the other: " + (
                           "sell shares you hold at --take-profit (a limit order) or at --stop-loss" if side == "sell"
                           else "buy back a short position at --take-profit (a limit order, below the price) or at"
                                " --stop-loss (above it)") + ", whichever comes first (default: off)")
        wait_options(c)
        c.add_argument("--client-order-id", metavar="ID", default=None,
                       help="your id for this order, 1-128 printable characters (quote one with spaces); sending it"
                            " again never makes a second order (default: a random one)")
        portfolio_option(c)
    c = command("cancel", "cancel an open order (what already filled stays filled), or all of them")
    c.add_argument("id", type=int, nargs="?", help="the order's id (see 'orders --status open')")
    c.add_argument("--all", action="store_true", help="cancel every open order instead")
    portfolio_option(c)
    c = command("close", "sell a whole position at the market (a short one bought back), or every position")
    c.add_argument("symbol", nargs="?", help="the position's symbol")
    c.add_argument("--all", action="store_true", help="close every position instead")
    c.add_argument("--cancel-orders", action="store_true",
                   help="first cancel the open orders that hold its shares (a stop-loss, a limit sale; with --all,"
                        " every open order); without it, a close they hold shares of is refused")
    portfolio_option(c)
    c = command("replace", "replace an open order by a new one with these changes")
    c.add_argument("id", type=int, help="the open order's id")
    c.add_argument("--quantity", metavar="QUANTITY",
                   help="the new order's quantity (default: what the old one had left)")
    price_options(c, replacing=True)
    c.add_argument("--client-order-id", metavar="ID", default=None,
                   help="your id for the new order (default: a random one)")
    portfolio_option(c)
    c = command("order", "one of your orders and its fills (with --wait: until it is filled or ends)")
    c.add_argument("id", type=int, help="the order's id (see 'orders')")
    wait_options(c)
    portfolio_option(c)
    c = command("watch", "print each new price of these assets, and with --orders each event of your orders,"
                         " until interrupted")
    c.add_argument("symbols", nargs="*", metavar="SYMBOL", help="the assets' symbols, e.g. AAPL MSFT")
    c.add_argument("--orders", action="store_true",
                   help="also print each event of your orders: accepted, fills, cancels, expiries, replaces")
    c.add_argument("--count", type=int, default=None, metavar="N",
                   help="stop after N lines (default: until Ctrl-C)")
    c = command("orders", "your orders, newest last")
    limit_option(c, 50, 500)
    c.add_argument("--status", choices=("open", "closed", "all"), default="all",
                   help="open (new or partially filled), closed (filled, canceled, expired, replaced, rejected) or"
                        " all (default all)")
    c.add_argument("--before", type=int, metavar="ID",
                   help="only orders older than this id: page back with the smallest id shown (default: the"
                        " newest)")
    archive_options(c, "orders")
    portfolio_option(c)
    c = command("portfolio", "cash, buying power, positions with their value and profit or loss; or manage your"
                             " portfolios: create, list, use, rename, default, close, reset")
    c.add_argument("action", nargs="?", choices=PORTFOLIO_ACTIONS, metavar="ACTION",
                   help="show (default): the portfolio's cash, positions and margin; create NAME; list (IN_USE"
                        " marks the one commands trade: the one 'use' chose, else your default one); use NAME"
                        " (the one commands trade from now on; 'use --default' for your default one); rename OLD"
                        " NEW; default NAME (make it your default portfolio); close NAME (it must hold no open"
                        " orders and no positions; closing the one 'use' chose goes back to your default one);"
                        " reset NAME (asks first; cancel its open orders, archive its history, start again with its"
                        " starting cash; its API keys keep working); configure (show the portfolio's configuration,"
                        " or change it with the options below; --portfolio NAME for another than the one commands"
                        " trade)")
    c.add_argument("names", nargs="*", metavar="NAME", help="the portfolio's name (1-64 characters)")
    for name, what in CONFIGURE_SWITCHES:
        c.add_argument("--" + name.replace("_", "-"), choices=("on", "off"), default=None,
                       help=f"with configure: {what} (default: unchanged)")
    c.add_argument("--cash", metavar="AMOUNT", default=None,
                   help="with create: its starting cash (default: the server's starting cash)")
    c.add_argument("--margin", action="store_true",
                   help="with create: a margin account (short selling, borrowing; if the server offers them)")
    c.add_argument("--default", action="store_true",
                   help="with create: make it your default portfolio; with use: trade your default portfolio")
    c.add_argument("--closed", action="store_true", help="with list: the closed portfolios too")
    c.add_argument("--yes", action="store_true",
                   help="with reset: do not ask for confirmation (needed without a terminal; the other actions"
                        " ignore it)")
    portfolio_option(c)
    c = command("positions", "the positions 'portfolio' shows, alone: quantity, entry price, last price, value,"
                             " profit or loss")
    portfolio_option(c)
    c = command("history", "your transaction history: every fill, dividend and split, newest last")
    limit_option(c, 50, 500)
    c.add_argument("--before", type=int, metavar="ID",
                   help="only transactions older than this id: page back with the smallest id shown (default: the"
                        " newest)")
    archive_options(c, "transactions")
    portfolio_option(c)
    command("clock", "the market clock: market time, whether the market is open, the next open and close")
    c = command("market", "move a replay's clock yourself, if the operator named your account in market_control:"
                          " pause, resume, step [N] (pause, then play exactly N updates), seek DAY")
    c.add_argument("market_action", metavar="ACTION", choices=("status", "pause", "resume", "step", "seek"),
                   help="status, pause, resume, step or seek")
    c.add_argument("market_argument", metavar="N|DAY", nargs="?", default=None,
                   help="step: how many updates (1-260, default 1); seek: the day, YYYY-MM-DD")
    add_game_commands(command)
    return p


GAME_COLUMNS = ["name", "status", "start", "end", "starting_cash", "players", "private", "creator", "portfolio"]
GAME_FIELDS = ["name", "creator", "status", "start", "end", "ended_at", "starting_cash", "private", "portfolios",
               "players",
               "commission", "fill_model", "margin", "allow_short", "assets", "max_position", "portfolio",
               "board_updated", "invite_code", "removed"]


def portfolios_options(parser):
    """``--show-portfolios`` / ``--hide-portfolios`` of ``game create`` (and the operator's ``create-class``)."""
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--show-portfolios", action="store_true",
                       help="players may see each other's portfolios: positions, open orders, trades ('game"
                            " portfolio'; you, the creator, always may)")
    shown.add_argument("--hide-portfolios", action="store_true",
                       help="only you, the creator, see the players' portfolios (the default)")


def yes_option(parser):
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")


def add_game_commands(command):
    """``papertrader game ACTION ...``: trading games (papertrader/app/games.py)."""
    game = command("game", "trading games: create, join, invite, remove, end, list, show, leaderboard, portfolio")
    actions = game.add_subparsers(dest="game_action", metavar="ACTION", parser_class=Parser,
                                  help="what to do with games ('papertrader game ACTION --help' tells more)")
    actions.required = True

    def action(name, help):
        parser = actions.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".")
        add_global_options(parser, default=False)
        return parser

    c = action("create", "create a game: its dates, starting cash and rules (you manage it; join it to play)")
    c.add_argument("name", help="3-40 letters, digits, spaces, '_', '.', '-'")
    c.add_argument("--start", metavar="WHEN", required=True,
                   help="when trading opens: a day (from its midnight in the market's time zone) or an ISO 8601 time"
                        " with its UTC offset, on the market's clock (required: no default)")
    c.add_argument("--end", metavar="WHEN", required=True,
                   help="when trading closes: a day (the game runs through that day: it closes at the next"
                        " midnight in the market's time zone) or an ISO 8601 time (required: no default)")
    c.add_argument("--cash", metavar="AMOUNT", required=True,
                   help="each player's starting cash, e.g. 100000 (required: no default)")
    c.add_argument("--commission", metavar="MODEL", default=None,
                   help="zero, per_order:AMOUNT, per_share:RATE[:MIN[:MAX]] or percent:PERCENT (default: the"
                        " server's)")
    c.add_argument("--fill-model", choices=("bar", "ideal"), default=None,
                   help="how bars price fills (default: the server's)")
    short = c.add_mutually_exclusive_group()
    short.add_argument("--allow-short", action="store_true",
                       help="players may sell short (their portfolios are margin accounts)")
    short.add_argument("--no-short", action="store_true", help="no short selling (the default)")
    c.add_argument("--margin", action="store_true",
                   help="players' portfolios are margin accounts: they may borrow (default: cash accounts)")
    c.add_argument("--assets", metavar="A,B,...", default=None,
                   help="the only symbols that may be traded, comma-separated (default: all)")
    c.add_argument("--max-position", metavar="PCT", default=None,
                   help="the most one position may be worth, in percent of the portfolio's equity, once an order"
                        " that adds to it fills (default: no limit)")
    privacy = c.add_mutually_exclusive_group()
    privacy.add_argument("--private", action="store_true",
                         help="players join with an invite code (shown now; 'game invite' makes a new one)")
    privacy.add_argument("--public", action="store_true", help="anyone may see and join it (the default)")
    portfolios_options(c)
    c = action("join", "join a game: a portfolio named like the game is made for you")
    c.add_argument("name", help="the game's name")
    c.add_argument("--code", metavar="CODE", default=None,
                   help="a private game's invite code (default: none; a public game needs none)")
    c = action("invite", "a new invite code for your private game (the old one stops working)")
    c.add_argument("name", help="the game's name")
    c = action("remove", "remove a player from your game (their open orders in it are canceled; asks first)")
    c.add_argument("name", help="the game's name")
    c.add_argument("player", help="the player's username")
    yes_option(c)
    c = action("end", "end your game now (the final ranking is the last update's; asks first)")
    c.add_argument("name", help="the game's name")
    yes_option(c)
    action("list", "the games you may see: public ones, yours, and those you play in")
    c = action("show", "a game's dates, rules and players")
    c.add_argument("name", help="the game's name")
    c = action("leaderboard", "a game's ranking, as of the last market update (usernames only)")
    c.add_argument("name", help="the game's name")
    c.add_argument("--by", choices=("return", "sharpe"), default="return",
                   help="rank by total return or by the Sharpe ratio of daily returns (default return)")
    c.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N (default: all)")
    c.add_argument("--player", metavar="USERNAME", default=None,
                   help="show this player's equity curve instead, one point per market day (default: the"
                        " leaderboard)")
    c.add_argument("--csv", action="store_true",
                   help="print the standings as CSV, for a spreadsheet or a gradebook (rank, username, equity,"
                        " return_percent, sharpe)")
    c = action("portfolio", "a player's portfolio in a game: cash, positions, open orders and trades (the creator"
                            " sees every player's; players each other's if the game shows portfolios)")
    c.add_argument("name", help="the game's name")
    c.add_argument("player", help="the player's username")
    c.add_argument("--limit", type=int, default=50, metavar="N",
                   help="how many transactions, newest last (1-500, default 50)")
    c.add_argument("--before", type=int, metavar="ID",
                   help="only transactions older than this id: page back with the smallest id shown (default: the"
                        " newest)")


def _command_parser(parser, args):
    """The parser of the command ``args`` ran (``game create``'s, not the top level's)."""
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(args, sub.dest, None) if sub is not None else None
        if chosen not in (sub.choices if sub is not None else {}):
            return parser
        parser = sub.choices[chosen]


def parse(argv):
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        # What argparse would say, but from the command's own parser: its help lists the options meant, and a
        # mistyped one (--limt) is named with the one meant.
        command = _command_parser(parser, args)
        message = f"unrecognized arguments: {' '.join(extras)}"
        known = [o for a in command._actions for o in a.option_strings if o.startswith("--")]
        typed = [e.split("=", 1)[0] for e in extras if e.startswith("--")]
        meant = [m for t in typed for m in difflib.get_close_matches(t, known, n=1, cutoff=0.75)]
        if meant:
            message += f"; did you mean {meant[0]}?"
        command.error(message)
    for key, value in GLOBAL_DEFAULTS.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    return args


def _quote(quote):
    """A quote as shown: stale a plain boolean, no empty name."""
    return {k: v for k, v in dict(quote, stale=bool(quote.get("stale"))).items() if v is not None}


QUOTE_COLUMNS = ["symbol", "name", "price", "time", "stale"]
#: An unknown symbol's error as the server words it (papertrader/master/validation.py unknown_symbol).
UNKNOWN_SYMBOL_RE = re.compile(r"unknown symbol '[^']*': (?:did you mean (?P<meant>[^?]+)\? )?"
                               r"traded symbols are (?P<traded>.+)", re.S)


def _shown(quote):
    """A quote as a table shows it to a person: its prices quoted, 'stale' or nothing."""
    return dict(output.quoted(quote), stale="stale" if quote["stale"] else "")


def _shell_word(text):
    import shlex

    return shlex.quote(text)


def describe_event(event, zone=timezone.utc):
    """One order event as a line for people (its time in ``zone``): 'order 12 fill: buy 10 AAPL at 150.25
    (position 10)'."""
    order = output.plain(event["order"])
    what = f"{order['side']} {order.get('quantity') or '$' + str(order.get('notional'))} {order['symbol']}"
    text = f"order {order['id']} {event['event']}: {what} {order['type']}"
    if event.get("portfolio"):
        text = f"[{event['portfolio']}] {text}"
    if "price" in event:
        plain = output.plain(event)
        text += f", {plain['quantity']} at {plain['price']} (position {plain['position_quantity']})"
    if event["event"] in ("partial_fill", "fill"):
        text += f"; filled {order['filled_quantity']}"
    if order.get("reason") and event["event"] in ("canceled", "expired", "rejected"):
        text += f" ({order['reason']})"
    return f"{output.shown(event, zone)['time']}  {text}"


#: What a close's sale (or cover) refused for the open orders holding the position's shares says of them.
HELD_BY_ORDERS_RE = re.compile(r"\(([0-9.]+) (?:are|is) (held for your open sell orders|covered by your open buys)")


def close_refusal(message, args):
    """A close refused because open orders hold the position's shares (a stop-loss, a take-profit): which, and what
    to do (a close never sells short, whatever the sale's refusal says); any other refusal as it is."""
    held = HELD_BY_ORDERS_RE.search(message) if not args.cancel_orders else None
    if held is None:
        return message
    count = held.group(1)
    what = f"{count} {'share is' if count == '1' else 'shares are'} {held.group(2)}"
    command = "papertrader close --all --cancel-orders" if args.all else \
        f"papertrader close {_shell_word(args.symbol.upper())} --cancel-orders"
    if args.portfolio is not None:
        command += f" --portfolio {_shell_word(args.portfolio)}"
    return f"{what}; cancel them first, or close with '{command}'"


def ended_words(order):
    """How an order ended without filling in full, in words: 'order 25 expired', 'order 25 was canceled after
    filling 3', 'order 25 was rejected' (not 'order 25 was expired')."""
    filled = output.plain(order)["filled_quantity"] if order.get("filled_quantity") else None
    what = "expired" if order["status"] == "expired" else f"was {order['status']}"
    return f"order {order['id']} {what}" + (f" after filling {filled}" if filled else "")


def order_rows(orders):
    """Orders as the ORDER_COLUMNS table shows them: a notional order that has not filled yet has no quantity, so
    its QUANTITY cell shows its notional instead, as dollars ('$500.00'); a trailing stop's STOP_PRICE is its stop
    now (its ``stop_level``, as Alpaca's ``stop_price`` of one: the cell was empty); JSON keeps the orders as they
    are."""
    rows = [dict(o, quantity="$" + money_text(o["notional"]))
            if o.get("quantity") is None and o.get("notional") is not None else o for o in orders]
    rows = [dict(o, stop_price=o["stop_level"]) if o.get("stop_price") is None and o.get("stop_level") is not None
            else o for o in rows]
    return [dict(o, exit_of=f"{o['leg'].replace('_', '-')} of {o['parent_id']}") if o.get("leg") and o.get("parent_id")
            else dict(o, exit_of=f"{o['order_class']} (take-profit)") if o.get("leg") else o for o in rows]


HISTORY_COLUMNS = ["id", "time", "kind", "side", "symbol", "quantity", "price", "commission", "amount", "cash_after",
                   "realized_pl", "details"]


def _last_day(end, zone):
    """The day a game's ``end`` plays through when it is a midnight ('--end DAY': the next midnight in the
    market's zone; UTC's for a game made before), else None."""
    return None if end is None else times.last_day(end, zone)


def _game_start(start, zone=timezone.utc):
    """A game's start: a day when it is one's midnight, in ``zone`` or UTC ('--start 2016-03-01': '2016-03-01',
    not the evening before in New York), else the time in ``zone``; as the website shows it."""
    return times.local_or_day(start, zone, seconds=True)


def portfolio_text(p, first=(), zone=timezone.utc):
    """A Portfolio answer (or a player's in a game, with ``first`` fields before its own) as ``portfolio`` shows
    it, times in ``zone``: (the data --json prints, the text)."""
    data = dict(p, positions=[dict(pos, price=pos.get("price")) for pos in p["positions"]])
    text = output.fields(data, list(first) + [
        "portfolio", "kind", "cash", "buying_power", "equity", "realized_pl", "unrealized_pl", "change_today",
        "open_orders", "long_market_value", "short_market_value", "initial_margin", "maintenance_margin",
        "margin_call", "margin_call_deadline"], zone)
    if p.get("margin_call") is not None:
        text += (f"\n\nMARGIN CALL: equity is {output.plain(p)['margin_call']} short of the maintenance"
                 f" requirement; unless it is met by {output.shown(p, zone)['margin_call_deadline']}, the platform"
                 " sells (or covers) positions to meet it.")
    if p.get("suspend_trade"):
        text += "\n\nTrading is suspended in this portfolio: 'papertrader portfolio configure --suspend-trade off'."
    if p.get("no_shorting"):
        text += "\n\nLong only: short selling is turned off ('portfolio configure --no-shorting off')."
    if p["positions"]:
        text += "\n\n" + positions_table(data["positions"], zone)
    return data, text


def positions_table(positions, zone=timezone.utc):
    """A portfolio's positions as ``portfolio`` (and ``positions``) shows them."""
    return output.table([output.quoted(pos, {"price", "average_price"}) for pos in positions],
                        ["symbol", "quantity", "average_price", "price", "market_value", "unrealized_pl",
                         "unrealized_percent", "change_today"], zone)


#: The trading core's names of a portfolio's configuration (papertrader/trading/configuration.py), as the command
#: line changes them.
CONFIGURATION_WORDS = (
    (" (its configuration's suspend_trade): turn it off to place or replace orders",
     ": turn it off to place or replace orders: papertrader portfolio configure --suspend-trade off"),
    (" (its configuration's no_shorting)", " (papertrader portfolio configure --no-shorting off allows them)"),
    (" (its configuration's fractional_trading)",
     " (papertrader portfolio configure --fractional-trading on allows them)"),
)


def first_of(*deferreds):
    """A new Deferred that fires (with None) when the first of ``deferreds`` fires; it leaves their results be."""
    result = defer.Deferred()

    def fire(value):
        if not result.called:
            result.callback(None)
        return value

    for d in deferreds:
        d.addBoth(fire)
    return result


class CLI:
    def __init__(self, reactor, args, environ, stdin, stdout, stderr, interrupts=None):
        self.reactor = reactor
        self.args = args
        self.environ = environ
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.connection = None
        self.interrupts = interrupts or NoInterrupts()
        self.interrupts.on_interrupt = self.interrupt
        self.interrupted = None
        self.running = None
        self.streaming = False  # watch: one JSON value per line
        self.emitted = 0
        self.last_command = None
        self.chosen_portfolio = None  # the portfolio 'portfolio use' chose, when a command trades it

    # --- output ---------------------------------------------------------------

    def out(self, text):
        try:
            self.stdout.write(text + "\n")
            self.stdout.flush()
        except OSError as e:
            if isinstance(e, BrokenPipeError) or e.errno == errno.EPIPE:
                raise OutputClosed()
            raise

    def emit(self, data, text):
        self.out(output.to_json(data) if self.args.json else text)
        self.emitted += 1

    @property
    def zone(self):
        """The time zone a person reads times in (tables, fields; never --json): the market's, as the master named
        it in its list of workers, which every command asks for first (UTC before that, or if it did not say)."""
        return times.zone(self.connection.timezone if self.connection is not None else None)

    def note(self, text):
        """One line for the person at the terminal, on stderr."""
        try:
            self.stderr.write(f"papertrader: {text}\n")
            self.stderr.flush()
        except OSError:
            pass

    # --- input ----------------------------------------------------------------

    def prompt(self, read):
        """Run a blocking read (a prompt, a line of stdin); a signal interrupts it, a closed stdin is refused."""
        try:
            with self.interrupts.blocking():
                return read()
        except Interrupted as e:
            self.interrupted = self.interrupted or e.signum
            raise CommandInterrupted()
        except EOFError:
            raise InvalidInput("no answer: standard input is closed")

    def ask(self, question):
        """One line typed at the terminal in answer to ``question``, which is shown on stderr (stdout keeps only
        the command's output, one JSON value with --json); Ctrl-C interrupts it like any prompt."""
        def read():
            try:
                self.stderr.write(question)
                self.stderr.flush()
                line = self.stdin.readline(MAX_LINE + 1)
            except KeyboardInterrupt:  # Ctrl-C (Interrupted), whenever it came: what follows starts on a line of
                self.stderr.write("\n")  # its own
                self.stderr.flush()
                raise
            if not line:  # Ctrl-D
                self.stderr.write("\n")
                raise EOFError()
            return line

        return self.prompt(read).rstrip("\r\n")

    def confirm(self, question):
        """Go on only if the user agrees: --yes, or y/yes typed at the terminal after ``question`` (anything else
        changes nothing: InvalidInput). Without a terminal and without --yes, a usage error saying to pass it."""
        if self.args.yes:
            return
        if not self.at_terminal():
            raise UsageFailure(f"{self.command_name()} needs --yes when not run in a terminal")
        if self.ask(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
            raise InvalidInput("not confirmed; nothing was changed")

    def at_terminal(self):
        """Whether standard input is a terminal, where a person can answer a question (no stdin: no)."""
        return self.stdin is not None and self.stdin.isatty()

    def command_name(self):
        """The command as typed, without its arguments: 'portfolio reset', 'game end'."""
        a = self.args
        return " ".join(w for w in (a.command, getattr(a, "action", None), getattr(a, "game_action", None)) if w)

    def read_line(self, what="the password"):
        if self.stdin is None:
            raise InvalidInput(f"no standard input to read {what} from")
        try:
            line = self.prompt(lambda: self.stdin.readline(MAX_LINE + 1))
        except UnicodeDecodeError:
            raise InvalidInput(f"{what} on standard input is not UTF-8 text")
        if len(line) > MAX_LINE:
            raise InvalidInput(f"{what} is too long")
        return line.rstrip("\r\n")

    def token(self):
        session = tokens.load(self.environ)
        if session is None:
            raise NotLoggedIn("not logged in: run 'papertrader login USERNAME'")
        return session["token"]

    def named_portfolio(self):
        """' --portfolio NAME' when the command named its portfolio, for a command it tells the user to type next
        (which would otherwise look in the portfolio commands trade); else nothing."""
        name = getattr(self.args, "portfolio", None)
        return f" --portfolio {_shell_word(name)}" if name is not None else ""

    def in_portfolio(self):
        """The ``portfolio`` argument of a trading command: --portfolio, else the one 'portfolio use' chose (for
        this user), else none (the server's default portfolio)."""
        name = getattr(self.args, "portfolio", None)
        if name is None:
            name = self.chosen_portfolio = self.remembered_portfolio()
        return {"portfolio": name} if name else {}

    def remembered_portfolio(self):
        """The portfolio 'portfolio use' chose for the logged-in user (None: the default one)."""
        session = tokens.load(self.environ) or {}
        return tokens.remembered_portfolio(session.get("username"), self.environ)

    def secret(self, text):
        """A password typed at the terminal, not echoed; without a terminal (a pipe, a cron job) a usage error
        saying what to do instead, rather than Python's warnings and a prompt read from the pipe."""
        try:
            os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
        except OSError:
            raise UsageFailure("no terminal to ask for the password on: give it on standard input with"
                               " --password-stdin")
        return self.prompt(lambda: getpass.getpass(text))

    def password(self, confirm=False):
        """The password typed (with ``confirm``, a new one: typed twice, and what can never do is refused after the
        first time, not after the second; the master checks it again)."""
        if self.args.password_stdin:
            return self.read_line()
        first = self.secret("Password: ")
        if confirm:
            validation.password(first)
            if self.secret("Repeat password: ") != first:
                raise InvalidInput("the passwords do not match")
        return first

    # --- the connection ---------------------------------------------------------

    def check_options(self):
        """Values only the client uses are checked here, at once, as the server checks the others."""
        timeout = getattr(self.args, "timeout", None)
        if timeout is not None and not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
            raise InvalidInput(f"--timeout must be more than 0 and at most {MAX_TIMEOUT} seconds")
        count = getattr(self.args, "count", None)
        if count is not None and count < 1:
            raise InvalidInput("--count must be at least 1")
        if self.args.command == "watch" and not (self.args.symbols or self.args.orders):
            raise UsageFailure("watch needs SYMBOL... or --orders (or both)")
        if self.args.command == "cancel" and (self.args.id is None) == (not self.args.all):
            raise UsageFailure("cancel needs an order ID, or --all")
        if self.args.command in ("buy", "sell"):
            self._order_request()  # a usage error before anything is sent
        if self.args.command == "api-key" and (self.args.action == "revoke") != (self.args.key_id is not None):
            raise UsageFailure("api-key revoke needs a KEY_ID (and only revoke takes one)")
        if self.args.command == "watchlist":
            self._check_watchlist_words()

    def connect(self):
        master = self.args.master or self.environ.get("PAPERTRADER_MASTER") or "localhost:2048"
        try:
            master = tls.parse_hostport(master, 2048)
        except ValueError as e:
            raise UsageFailure(f"--master{'' if self.args.master else ' (PAPERTRADER_MASTER)'}: {e}")
        ca_file = self.args.ca_file or self.environ.get("PAPERTRADER_CA")
        if not ca_file:
            raise UsageFailure("no CA file: pass --ca-file PATH or set PAPERTRADER_CA (the deployment's ca.pem)")
        try:
            with open(ca_file, "rb") as f:
                ca_pem = f.read(1024 * 1024)
        except OSError as e:
            raise BadCAFile(f"cannot read the CA file {ca_file}: {(e.strerror or 'unreadable').lower()}")
        try:
            Certificate.loadPEM(ca_pem)
        except Exception:
            raise BadCAFile(f"{ca_file} is not a PEM certificate (use the deployment's ca.pem)")
        self.connection = Connection(self.reactor, master, ca_pem, self.args.worker, self.args.region,
                                     tokens.remembered_worker(self.environ), on_move=self.note)

    @defer.inlineCallbacks
    def call(self, command, **kwargs):
        self.last_command = command
        answer = yield self.connection.call(command, **kwargs)
        self.remember()
        return answer

    def remember(self):
        worker = self.connection.worker
        if worker is not None and worker["name"] != self.connection.remembered:
            tokens.remember_worker(worker["name"], self.environ)
            self.connection.remembered = worker["name"]

    # --- commands -----------------------------------------------------------

    @defer.inlineCallbacks
    def do_register(self):
        # What can never be accepted is said before the password is typed (twice); the master checks it again.
        validation.username(self.args.username)
        validation.email(self.args.email)
        password = self.password(confirm=True)
        account = yield self.call(commands.Register, username=self.args.username, email=self.args.email,
                                  password=password)
        self.emit(account, f"Account {account['username']} created with {output.plain(account)['cash']} cash."
                           f" Log in with: papertrader login {account['username']}")

    @defer.inlineCallbacks
    def do_login(self):
        if self.args.provider:
            answer = yield self._provider_login()
        else:
            if not self.args.username:
                raise UsageFailure("login needs a USERNAME (or --provider NAME)")
            password = self.password()
            answer = yield self.call(commands.Login, username=self.args.username, password=password,
                                     remember=self.args.remember, device=DEVICE)
        yield self._logged_in(answer)

    @defer.inlineCallbacks
    def _logged_in(self, answer):
        try:
            tokens.save({"token": answer["token"], "username": answer["username"],
                         "expires": answer["expires"].isoformat()}, self.environ)
        except ConfigError as e:
            # A session nobody can use is not left behind on the master.
            try:
                yield self.call(commands.Logout, token=answer["token"])
            except PaperTraderError:
                pass
            raise ConfigError(f"{e.message}; you are not logged in: fix this, then log in again")
        result = {"username": answer["username"], "expires": answer["expires"]}
        self.emit(result, f"Logged in as {answer['username']} until {output.shown(result, self.zone)['expires']}.")

    #: How the sign-in page is opened (a person's browser; tests put their own in).
    browser = staticmethod(webbrowser.open)

    @defer.inlineCallbacks
    def _provider_sign_in(self):
        """Run the browser part of a provider sign-in; fires with the provider's answer (state, code) and the
        sign-in's secret."""
        redirect_uri, callback, port = yield browser_login.listen(self.reactor)
        try:
            start = yield self.call(commands.ProviderStart, provider=self.args.provider, redirect_uri=redirect_uri)
            callback.expect(start["state"])
            self.stderr.write(f"Sign in with {self.args.provider} in your browser:\n  {start['url']}\n")
            if not self.args.no_browser:
                self.browser(start["url"])
            called_back = callback.result
            called_back.addTimeout(300, self.reactor)
            try:
                back = yield called_back
            except defer.TimeoutError:
                raise ProviderLoginFailed("no answer from the browser within 5 minutes")
        finally:
            yield port.stopListening()
        if "error" in back:
            raise ProviderLoginFailed(f"the provider said: {back['error'][:200]}")
        return dict(back, secret=start["secret"])

    @defer.inlineCallbacks
    def _provider_login(self):
        back = yield self._provider_sign_in()
        answer = yield self.call(commands.ProviderFinish, provider=self.args.provider, state=back["state"],
                                 code=back["code"], secret=back["secret"], remember=self.args.remember, device=DEVICE)
        if answer.get("token"):
            return answer
        if self.args.link:
            username = self.args.username or self.prompt(lambda: input("Your existing username: "))
            password = self.password()
            return (yield self.call(commands.ProviderLink, ticket=answer["ticket"], username=username,
                                    password=password))
        username = self.args.username
        if not username:
            if not self.at_terminal():
                raise UsageFailure(f"no account is linked to this sign-in yet: choose a username with"
                                   f" 'login --provider {self.args.provider} USERNAME' (suggested:"
                                   f" {answer['proposal']}), or add --link to use your existing account")
            username = self.prompt(lambda: input(f"New account's username [{answer['proposal']}]: ")).strip() \
                or answer["proposal"]
        return (yield self.call(commands.ProviderCreate, ticket=answer["ticket"], username=username))

    @defer.inlineCallbacks
    def do_profile(self):
        token = self.token()
        if self.args.public or self.args.private:
            yield self.call(commands.SetProfile, token=token, public_portfolio=self.args.public)
        arguments = {"username": self.args.username} if self.args.username else {}
        profile = yield self.call(commands.Profile, token=token, **arguments)
        profile = {k: v for k, v in profile.items() if v is not None}  # another user's: the public part
        text = output.fields(dict(profile, sign_in=", ".join(profile.get("sign_in") or []) or None),
                             ["username", "joined", "email", "cash", "sign_in", "public_portfolio"], self.zone)
        if profile.get("positions"):
            text += "\n\n" + output.table(profile["positions"], ["symbol", "quantity"])
        self.emit(profile, text)

    @defer.inlineCallbacks
    def do_delete_account(self):
        token = self.token()
        if not self.args.yes:
            if not self.at_terminal():
                raise UsageFailure("delete-account needs --yes when not run in a terminal")
            me = tokens.load(self.environ) or {}
            typed = self.ask(f"Type your username ({me.get('username')}) to delete your account: ")
            if typed != me.get("username"):
                raise InvalidInput("not confirmed; nothing was deleted")
        proof = {}
        if self.args.provider:
            back = yield self._provider_sign_in()
            proof = dict(provider=self.args.provider, state=back["state"], code=back["code"], secret=back["secret"])
        else:
            proof = dict(password=self.password())
        yield self.call(commands.DeleteAccount, token=token, **proof)
        tokens.clear(self.environ)
        self.emit({"deleted": True}, "Your account's personal data is deleted and you are logged out.")

    @defer.inlineCallbacks
    def do_set_password(self):
        token = self.token()
        password = self.password(confirm=True)
        yield self.call(commands.SetPassword, token=token, password=password)
        self.emit({"password_set": True}, "Password set: you can now log in with it as well.")

    @defer.inlineCallbacks
    def do_logout(self):
        token = self.token()
        if self.args.session:
            yield self.call(commands.EndSession, token=token, session_id=self.args.session)
            self.emit({"ended": self.args.session}, f"Session {self.args.session} ended.")
            return
        ended, keys = 1, 0
        try:
            if self.args.all:
                answer = yield self.call(commands.LogoutAll, token=token)
                ended, keys = answer["sessions_ended"], answer.get("api_keys", 0)
            else:
                yield self.call(commands.Logout, token=token)
        except NotLoggedIn:
            pass  # already ended on the master: forgetting it locally is all that is left
        tokens.clear(self.environ)
        if not self.args.all:
            return self.emit({"logged_out": True, "sessions_ended": ended}, "Logged out.")
        self.emit({"logged_out": True, "sessions_ended": ended, "api_keys": keys},
                  f"Logged out ({counted(ended, 'session')} ended)." + keys_still_work(keys))

    @defer.inlineCallbacks
    def do_sessions(self):
        answer = yield self.call(commands.Sessions, token=self.token())
        rows = answer["sessions"]
        self.emit(rows, output.table([dict(r, current="*" if r["current"] else "") for r in rows],
                                     ["id", "current", "device", "created", "last_used", "worker", "client_ip",
                                      "expires"], self.zone))

    @defer.inlineCallbacks
    def do_passwd(self):
        token = self.token()
        if self.args.password_stdin:
            old = self.read_line("the current password")
            new = self.read_line("the new password")
        else:
            old = self.secret("Current password: ")
            new = self.secret("New password: ")
            validation.password(new)  # (refused at once, not after it was typed again)
            if self.secret("Repeat new password: ") != new:
                raise InvalidInput("the new passwords do not match")
        answer = yield self.call(commands.ChangePassword, token=token, old_password=old, new_password=new)
        keys = answer.get("api_keys", 0)
        self.emit({"changed": True, "sessions_ended": answer["sessions_ended"], "api_keys": keys},
                  f"Password changed; {counted(answer['sessions_ended'], 'other session')} ended."
                  + keys_still_work(keys))

    @defer.inlineCallbacks
    def do_whoami(self):
        answer = yield self.call(commands.Whoami, token=self.token())
        answer["worker"] = self.connection.worker["name"]
        self.emit(answer, output.fields(answer, ["username", "email", "cash", "expires", "worker"], self.zone))

    @defer.inlineCallbacks
    def do_workers(self):
        workers = yield self.connection.workers()
        self.emit(workers, output.table(workers, ["name", "region", "host", "port", "load"])
                  if workers else "No worker available.")

    @defer.inlineCallbacks
    def do_assets(self):
        answer = yield self.call(commands.Assets)
        quotes = [_quote(q) for q in answer["quotes"]]
        if self.args.search is not None:
            wanted = self.args.search.strip().lower()
            quotes = [q for q in quotes if wanted in q["symbol"].lower() or wanted in (q.get("name") or "").lower()]
        self.emit(quotes, output.table([_shown(q) for q in quotes], ["symbol", "name", "price", "time", "stale"],
                                       self.zone)
                  if quotes else ("No asset matches." if self.args.search is not None else "No prices yet."))

    @defer.inlineCallbacks
    def do_quote(self):
        symbols = [w for word in self.args.symbols for w in word.split(",") if w.strip()] or self.args.symbols
        if len(symbols) == 1:  # one symbol: its quote, or its error, as a command's answer
            quote = yield self._quote_of(symbols[0])
            self.emit(quote, output.table([_shown(quote)], QUOTE_COLUMNS, self.zone))
            return
        # Several: a line each; a symbol refused is said on a line of its own, naming it (with --json, in the list
        # in its place), and the others are shown all the same.
        symbols = list(dict.fromkeys(s.strip().upper() for s in symbols))  # each once, in the order given
        quotes, refused = [], []
        for symbol in symbols:
            try:
                quotes.append((yield self._quote_of(symbol)))
            except (UnknownSymbol, QuoteUnavailable, InvalidInput) as e:
                refused.append(symbol)
                quotes.append({"symbol": symbol if len(symbol) <= 16 else symbol[:16] + "...", "error": e.code,
                               "message": e.message})
        if not self.args.json:
            traded = None
            for q in quotes:
                if "error" in q:
                    said = UNKNOWN_SYMBOL_RE.fullmatch(q["message"])
                    if said is None:
                        self.note(f"{q['symbol']}: {q['message']}")
                        continue
                    # Named once, by its line; the traded symbols once, after them all (not on every line).
                    traded = said.group("traded")
                    self.note(f"{q['symbol']}: unknown symbol" + (f": did you mean {said.group('meant')}?"
                                                                   if said.group("meant") else ""))
            if traded is not None:
                self.note(f"traded symbols are {traded}")
        found = [q for q in quotes if "error" not in q]
        if self.args.json or found:
            self.emit(quotes, output.table([_shown(q) for q in found], QUOTE_COLUMNS, self.zone))
        return FAILED if refused else OK

    @defer.inlineCallbacks
    def _quote_of(self, symbol):
        """The quote of ``symbol`` as shown; an unknown symbol's error says when an asset listed later trades."""
        try:
            answer = yield self.call(commands.Quote, symbol=symbol)
        except UnknownSymbol as unknown:
            yield self._listed_later(symbol, unknown)
        return _quote(answer)

    @defer.inlineCallbacks
    def _listed_later(self, symbol, unknown):
        """Raise ``unknown`` (a symbol the worker has no price of), or, for an asset the market lists later (a
        replay's, whose prices start on a later day), that it does not trade yet and from when, as an order of
        it says (it said 'unknown symbol ...: traded symbols are ...')."""
        try:
            found = (yield self.call(commands.AssetList, symbol=(symbol or "").strip().upper()[:16]))["assets"]
        except PaperTraderError:
            found = []
        if found and found[0].get("first_day"):
            raise UnknownSymbol(f"{found[0]['symbol']} does not trade yet: its prices start on"
                                f" {found[0]['first_day']} (the market's date: papertrader clock)")
        raise unknown

    @defer.inlineCallbacks
    def do_candles(self):
        window = {k: parse_when(f"--{k}", getattr(self.args, k)) for k in ("start", "end")
                  if getattr(self.args, k) is not None}
        if self.args.interval:
            window["interval"] = self.args.interval
        answer = yield self.call(commands.Candles, symbol=self.args.symbol, limit=self.args.limit, **window)
        candles = answer["candles"]
        # A day's candle is shown as its day (the website's table too): its time is the session's open (its date
        # in the market's zone: Sydney's opens the evening before in UTC), or a midnight UTC that would read as the
        # evening before in New York.
        daily = (answer.get("interval") or self.args.interval) == "1d"
        rows = [output.quoted(dict(c, time=times.day(c["time"], self.zone)) if daily else c) for c in candles]
        if candles:
            text = output.table(rows, ["time", "open", "high", "low", "close", "volume"], self.zone)
        else:
            text = "No candles yet." if self.args.json else (yield self._no_candles(window.get("start")))
        self.emit(candles, text)

    @defer.inlineCallbacks
    def _no_candles(self, start):
        """What no candles say: with a --start the market has not reached (a replay's date is years back), the
        market's date (its time, for a --start given as a time)."""
        try:
            now = (yield self.call(commands.Clock))["time"] if start is not None else None
        except PaperTraderError:
            now = None  # (the candles were answered: only the clock's date is missing)
        if now is None or start <= now:
            return "No candles yet."
        if len(self.args.start.strip()) == 10:  # a day
            return (f"No candles yet: --start {self.args.start.strip()} is after the market's date,"
                    f" {times.day(now, self.zone)} (its time: papertrader clock).")
        return (f"No candles yet: --start {times.local(start, self.zone, seconds=True)} is after the market's time,"
                f" {times.local(now, self.zone, seconds=True)} (papertrader clock).")

    # --- orders ---------------------------------------------------------------

    @defer.inlineCallbacks
    def _order(self, side):
        token = self.token()
        given = self.args.client_order_id
        client_order_id = given if given is not None else uuid.uuid4().hex
        again = (f"send the same order again with --client-order-id {_shell_word(client_order_id)} (that never makes"
                 " a second one)")
        try:
            order = yield self.call(commands.PlaceOrder, token=token, client_order_id=client_order_id, side=side,
                                    symbol=self.args.symbol, **self._order_request(), **self.in_portfolio())
        except (defer.CancelledError, CommandInterrupted):
            if not self.connection.sent:
                raise  # nothing was sent: a plain interrupt
            return self.fail(INTERRUPTED, f"interrupted before the order was acknowledged, so it may or may not"
                                          f" have been made: check with 'papertrader orders{self.named_portfolio()}', or {again}",
                             self.signal_status(), client_order_id=client_order_id)
        except PaperTraderError as e:
            if not self.connection.uncertain:
                raise  # refused, or never sent: no order was made
            return self.fail(e.code, f"{e.message}. The order may have been made before the worker failed: {again}",
                             client_order_id=client_order_id)
        return (yield self._follow(order, token))

    def _order_request(self):
        """The order's type, time in force, quantity or notional and prices, from the options."""
        a = self.args
        if (a.quantity is None) == (a.notional is None):
            raise UsageFailure(f"{a.command} needs a QUANTITY or --notional AMOUNT (one of them)")
        if a.trail_price or a.trail_percent:
            if a.limit_price or a.stop_price:
                raise UsageFailure("a trailing stop takes no --limit or --stop")
            kind = "trailing_stop"
        elif a.limit_price and a.stop_price:
            kind = "stop_limit"
        else:
            kind = "limit" if a.limit_price else "stop" if a.stop_price else "market"
        order_class = None
        if getattr(a, "oco", False):
            if kind not in ("market", "limit"):
                raise UsageFailure("an --oco order is a limit order at --take-profit: it takes no --stop or trail")
            kind, order_class = "limit", "oco"
        elif a.take_profit or a.stop_loss or a.stop_loss_limit:
            order_class = "bracket" if a.take_profit and a.stop_loss else "oto"
        request = dict(type=kind, time_in_force=a.tif, quantity=a.quantity, notional=a.notional,
                       limit_price=a.limit_price, stop_price=a.stop_price, trail_price=a.trail_price,
                       trail_percent=a.trail_percent, order_class=order_class, take_profit=a.take_profit,
                       stop_loss=a.stop_loss, stop_loss_limit=a.stop_loss_limit)
        return {k: v for k, v in request.items() if v is not None}

    def do_buy(self):
        return self._order("buy")

    def do_sell(self):
        return self._order("sell")

    @defer.inlineCallbacks
    def do_order(self):
        token = self.token()
        order = yield self.call(commands.GetOrder, token=token, order_id=self.args.id, **self.in_portfolio())
        return (yield self._follow(order, token))

    @defer.inlineCallbacks
    def _follow(self, order, token):
        """Show an order, after waiting for it with --wait; the exit status says what became of it."""
        problem = None
        if self.args.wait and order["status"] in OPEN:
            order, problem = yield self._wait(order, token)
            if problem is None and order.get("filled_quantity"):
                try:  # what the events said, with its fills
                    order = yield self.call(commands.GetOrder, token=token, order_id=order["id"],
                                            **self.in_portfolio())
                except PaperTraderError:
                    pass  # the order as the last event showed it
        self.emit(order, self._order_text(order))
        follow = f"follow it with 'papertrader order {order['id']} --wait{self.named_portfolio()}'"
        if order["status"] in ("rejected", "canceled", "expired"):
            self.note(f"{ended_words(order)}: {order.get('reason') or 'no reason given'}")
            return ORDER_ENDED
        if order["status"] not in OPEN or not self.args.wait:
            return OK
        stays = "it stays open until it fills, is canceled or expires"
        if problem is INTERRUPTED:
            self.note(f"stopped waiting: order {order['id']} is still open (an interrupt does not cancel it;"
                      f" {stays}); {follow}")
            return self.signal_status()
        if problem:
            self.note(f"cannot follow order {order['id']} any more: {problem}. The order is open ({stays}); {follow}")
        else:
            self.note(f"order {order['id']} is still open after {self.args.timeout:g} seconds ({stays}); {follow}")
        return ORDER_OPEN

    def _order_text(self, order):
        text = output.fields(order, [k for k in ORDER_KEYS if k != "order_class" or order.get(k) != "simple"],
                             self.zone)
        if order.get("legs"):
            text += "\n\nexits:\n" + output.table(order["legs"], LEG_COLUMNS, self.zone)
        if order.get("fills"):
            text += "\n\n" + output.table(order["fills"], ["time", "quantity", "price", "commission", "amount",
                                                            "model"], self.zone)
        return text

    @defer.inlineCallbacks
    def _wait(self, order, token):
        """Follow an open order until it is done, the time is up, or an interrupt; fires (order, problem).

        The worker pushes each event of the account's orders (WatchOrders): the client waits for those and
        asks for the order's state only after (re)subscribing, so nothing is missed across a failover.  A
        worker that fails on the way is the connection's business (it moves on); while no worker at all
        answers, it tries again, less often, until the time is up.
        """
        deadline = self.reactor.seconds() + self.args.timeout
        try:
            self.stderr.write(f"order {order['id']} is {order['status'].replace('_', ' ')}; waiting until it is filled"
                              " or ends (Ctrl-C stops waiting, not the order)\n")
            self.stderr.flush()
        except OSError:
            pass
        delay, problem = POLL, None
        subscribed = None
        try:
            while order["status"] in OPEN:
                left = deadline - self.reactor.seconds()
                if left <= 0:
                    break
                try:
                    if subscribed is None or subscribed is not self.connection.proto:
                        yield self.call(commands.WatchOrders, token=token)
                        subscribed = self.connection.proto
                        events = subscribed.order_events = []
                        order = yield self.call(commands.GetOrder, token=token, order_id=order["id"],
                                                **self.in_portfolio())
                        delay, problem = POLL, None
                        continue
                except WORKER_TROUBLE as e:
                    if self.args.worker:
                        return order, e.message  # pinned: nothing else to try
                    if problem is None:
                        self.note(f"{e.message}; trying again until the --timeout")
                    problem = e.message
                    subscribed = None
                    yield task.deferLater(self.reactor, min(delay, left), lambda: None)
                    delay = min(delay * 2, WAIT_BACKOFF)
                    self.connection.forget_failures()  # a worker back meanwhile is tried again
                    continue
                except PaperTraderError as e:  # the session ended meanwhile, ...
                    return order, e.message
                mine = [e for e in events if e["order"]["id"] == order["id"]]
                del events[:]
                if mine:
                    order = mine[-1]["order"]
                    continue
                timer = task.deferLater(self.reactor, left, lambda: None)
                timer.addErrback(lambda f: f.trap(defer.CancelledError))
                yield first_of(subscribed.next_event(), subscribed.ended, timer)
                timer.cancel()
                if subscribed.ended.called:
                    subscribed = None  # the worker went: subscribe again (and ask) through another
        except (defer.CancelledError, CommandInterrupted):
            return order, INTERRUPTED
        return order, problem

    # --- live prices ------------------------------------------------------------

    @defer.inlineCallbacks
    def do_watch(self):
        """Live prices and order events; when the worker goes, the connection carries on through another; while
        none answers (the master restarting), it waits for one."""
        self.streaming = True
        seen = 0
        watched = False
        done = defer.Deferred()

        def show(data, text):
            nonlocal seen
            if done.called:
                return
            seen += 1
            try:
                self.emit(data, text)
            except OutputClosed:
                done.errback(OutputClosed())
                return
            if self.args.count is not None and seen >= self.args.count:
                done.callback(None)

        def tick(quote):
            plain = output.shown(output.quoted(quote), self.zone)
            show(quote, f"{quote['symbol']:<8} {plain['price']:>12}  {plain['time']}" +
                 ("  stale" if quote.get("stale") else ""))

        def order_event(event):
            show(event, describe_event(event, self.zone))

        delay, problem = POLL, None
        while True:
            try:
                if self.args.symbols:
                    yield self.call(commands.Watch, symbols=self.args.symbols)
                if self.args.orders:
                    yield self.call(commands.WatchOrders, token=self.token())
            except WORKER_TROUBLE as e:
                # Watching was under way: no worker (or no master: a restart) answers now. Watch runs until
                # Ctrl-C, so it waits for them, trying again less and less often. (Not at the start, nor when
                # pinned to one worker with --worker: then the error is the answer.)
                if not watched or self.args.worker:
                    raise
                if problem is None:  # once, until it answers again
                    self.note(f"{e.message}; trying again every {WAIT_BACKOFF:g} s at most until it answers"
                              " (Ctrl-C to stop)")
                    problem = e.message
                yield task.deferLater(self.reactor, delay, lambda: None)
                delay = min(delay * 2, WAIT_BACKOFF)
                self.connection.forget_failures()
                continue
            watched, delay, problem = True, POLL, None
            proto = self.connection.proto
            proto.on_tick = tick
            proto.on_order_event = order_event
            if not self.args.json:
                self.stderr.write(f"watching via worker {self.connection.worker['name']}; Ctrl-C to stop\n")
                self.stderr.flush()
            yield first_of(done, proto.ended)
            if done.called:
                yield done  # raises OutputClosed if the reader went away
                return

    # --- lists ----------------------------------------------------------------

    @defer.inlineCallbacks
    def do_orders(self):
        arguments = dict(status=self.args.status, **self.in_portfolio())
        if self.args.before is not None:
            arguments["before"] = self.args.before
        arguments.update((yield self._generation()))
        answer = yield self.call(commands.Orders, token=self.token(), limit=self.args.limit, **arguments)
        orders = answer["orders"]
        columns = ORDER_COLUMNS
        if any(o.get("parent_id") or o.get("order_class", "simple") != "simple" for o in orders):
            columns = ORDER_COLUMNS[:-1] + ["exit_of", "reason"]  # which order a bracket's, OCO's or OTO's exit is of
        self.emit(orders, output.table(order_rows(orders), columns, self.zone) if orders else "No orders.")
        self._more(answer, orders)

    def _more(self, answer, rows):
        if rows and answer.get("next_before") is not None and not self.args.json:
            self.note(f"older ones: add --before {answer['next_before']}")

    @defer.inlineCallbacks
    def do_cancel(self):
        token = self.token()
        if self.args.all:
            answer = yield self.call(commands.CancelAllOrders, token=token, **self.in_portfolio())
            orders = answer["orders"]
            self.emit(orders, output.table(order_rows(orders), ORDER_COLUMNS, self.zone) if orders
                      else "No open orders to cancel.")
            return
        order = yield self.call(commands.CancelOrder, token=token, order_id=self.args.id, **self.in_portfolio())
        filled = output.plain(order)["filled_quantity"]
        self.emit(order, f"Order {order['id']} canceled" + (f" after filling {filled}." if order["filled_quantity"]
                                                             else "."))

    @defer.inlineCallbacks
    def do_close(self):
        a = self.args
        if a.all == bool(a.symbol):
            raise UsageFailure("close takes a SYMBOL or --all")
        token = self.token()
        if a.all:
            answer = yield self.call(commands.CloseAllPositions, token=token, cancel_orders=a.cancel_orders,
                                     **self.in_portfolio())
            orders, failures = answer["orders"], answer["failures"]
            text = output.table(order_rows(orders), ORDER_COLUMNS, self.zone) if orders else "No position to close."
            if answer.get("canceled"):
                text = f"{counted(answer['canceled'], 'open order')} canceled first.\n" + text
            if failures:
                text += "\n" + "\n".join(f"{f['symbol']}: not closed: {close_refusal(f['message'], a)}"
                                          for f in failures)
            self.emit(answer, text)
            return
        try:
            order = yield self.call(commands.ClosePosition, token=token, symbol=a.symbol,
                                    client_order_id=uuid.uuid4().hex, cancel_orders=a.cancel_orders,
                                    **self.in_portfolio())
        except InsufficientPosition as e:
            said = close_refusal(e.message, a)
            raise e if said == e.message else InsufficientPosition(f"cannot close {a.symbol.upper()}: {said}")
        canceled = order.pop("canceled_orders", None) or 0
        plain = output.plain(order)
        self.emit(dict(order, canceled_orders=canceled),
                  (f"{counted(canceled, 'open order')} of {order['symbol']} canceled, then order" if canceled else
                   "Order") + f" {order['id']}: {order['side']} {plain['quantity']} {order['symbol']} at the market"
                  f" ({order['status']}).")

    @defer.inlineCallbacks
    def do_replace(self):
        a = self.args
        # A client order id, given or made here: carried on through another worker, the replace is done once and
        # its new order answered (sent again without one, it would find the order replaced already).
        changes = dict(quantity=a.quantity, limit_price=a.limit_price, stop_price=a.stop_price,
                       trail_price=a.trail_price, trail_percent=a.trail_percent, time_in_force=a.tif,
                       client_order_id=a.client_order_id or uuid.uuid4().hex)
        order = yield self.call(commands.ReplaceOrder, token=self.token(), order_id=a.id,
                                **{k: v for k, v in changes.items() if v is not None}, **self.in_portfolio())
        self.emit(order, f"Order {a.id} replaced by order {order['id']}:\n" + output.fields(order, ORDER_KEYS,
                                                                                          self.zone))

    @defer.inlineCallbacks
    def do_api_key(self):
        token = self.token()
        action = self.args.action
        if action == "create":
            key = yield self.call(commands.CreateApiKey, token=token,
                                  **({"name": self.args.name} if self.args.name else {}),
                                  **({"portfolio": self.args.portfolio} if self.args.portfolio else {}))
            self.emit(key, f"API key {key['key_id']} ({key['name']}) created for portfolio"
                           f" {key.get('portfolio')!r}. Its secret, shown only this once:\n"
                           f"  {key['secret']}\n"
                           f"Programs send both as the APCA-API-KEY-ID and APCA-API-SECRET-KEY headers.")
        elif action == "list":
            answer = yield self.call(commands.ApiKeys, token=token)
            keys = answer["keys"]
            self.emit(keys, output.table(keys, ["key_id", "name", "portfolio", "created", "last_used"], self.zone)
                      if keys else "No API keys.")
        else:
            yield self.call(commands.RevokeApiKey, token=token, key_id=self.args.key_id)
            self.emit({"revoked": self.args.key_id}, f"API key {self.args.key_id} revoked.")

    def _check_watchlist_words(self):
        action, name, words = self.args.action, self.args.name, self.args.words
        if action == "list" and (name is not None or words):
            raise UsageFailure("watchlist list takes no NAME (see one with 'watchlist show NAME')")
        if action != "list" and name is None:
            raise UsageFailure(f"watchlist {action} needs the watchlist's NAME")
        if action in ("add", "remove") and not words:
            raise UsageFailure(f"watchlist {action} needs one or more SYMBOLs after the NAME")
        if action == "rename" and len(words) != 1:
            raise UsageFailure("watchlist rename needs NAME and NEW_NAME (quote a name that has spaces)")
        if action in ("show", "delete") and words:
            raise UsageFailure(f"watchlist {action} takes only the NAME (quote a name that has spaces)")

    @defer.inlineCallbacks
    def do_watchlist(self):
        token, action, name, words = self.token(), self.args.action, self.args.name, self.args.words
        which = {"watchlist_name": name} if name is not None else {}
        if action == "list":
            answer = yield self.call(commands.Watchlists, token=token)
            lists = [{k: v for k, v in w.items() if k != "watchlist_id"} for w in answer["watchlists"]]
            self.emit(answer["watchlists"], output.table(lists, ["name", "size", "updated"], self.zone) if lists else
                      "No watchlists. Make one: papertrader watchlist create NAME SYMBOL...")
            return
        if action in ("create", "add", "remove"):  # AAPL MSFT, or AAPL,MSFT as the website takes them
            words = [w for word in words for w in word.split(",") if w.strip()]
        if action == "create":
            made = yield self.call(commands.CreateWatchlist, token=token, name=name, symbols=words)
            self.emit(made, f"Watchlist {made['name']!r} created" + (
                f" with {', '.join(made['symbols'])}." if made["symbols"] else
                f" (empty: add symbols with 'papertrader watchlist add {_shell_word(made['name'])} SYMBOL...')."))
            return
        if action == "delete":
            yield self.call(commands.DeleteWatchlist, token=token, **which)
            self.emit({"deleted": name}, f"Watchlist {name!r} deleted.")
            return
        if action == "rename":
            renamed = yield self.call(commands.UpdateWatchlist, token=token, name=words[0], **which)
            self.emit(renamed, f"Watchlist {name!r} is now {renamed['name']!r}.")
            return
        if action in ("add", "remove"):
            asked = list(dict.fromkeys(w.strip().upper() for w in words))
            unchanged = []
            if action == "add":  # (to say which were listed already)
                before = (yield self.call(commands.GetWatchlist, token=token, **which))["symbols"]
                unchanged = [w for w in asked if w in before]
            found = yield self.call(commands.AddToWatchlist if action == "add" else commands.RemoveFromWatchlist,
                                    token=token, symbols=asked, **which)
            note = f" ({', '.join(unchanged)} already in it)" if unchanged else ""
            listed = ", ".join(found["symbols"]) or "no symbols"
            self.emit(found, f"Watchlist {found['name']!r}{note}: {listed}.")
            return
        found = yield self.call(commands.GetWatchlist, token=token, **which)
        quotes = {}
        if found["symbols"]:
            quotes = {q["symbol"]: _quote(q) for q in (yield self.call(commands.Assets))["quotes"]}
        rows = [quotes.get(symbol, {"symbol": symbol, "stale": False}) for symbol in found["symbols"]]
        self.emit(dict(found, quotes=rows), f"Watchlist {found['name']!r}:\n" + (
            output.table([_shown(q) for q in rows], ["symbol", "name", "price", "time", "stale"], self.zone)
            if rows else
            f"(empty: add symbols with 'papertrader watchlist add {_shell_word(found['name'])} SYMBOL...')"))

    @defer.inlineCallbacks
    def do_clock(self):
        self._show_clock((yield self.call(commands.Clock)))

    def _show_clock(self, clock):
        # In the zone the clock names (the master's list named the same one).
        zone = times.zone(clock["timezone"]) if clock.get("timezone") else self.zone
        self.emit(clock, output.clock_text(clock, zone))

    @defer.inlineCallbacks
    def do_market(self):
        action, argument = self.args.market_action, self.args.market_argument
        self._show_clock((yield self.call(commands.MarketControl, token=self.token(), action=action,
                                          **({"when": argument} if argument is not None else {}))))

    @defer.inlineCallbacks
    def _generation(self):
        """The ``generation`` argument of --generation N, or of --archived (the one before the current)."""
        if self.args.generation is not None:
            return {"generation": self.args.generation}
        if not self.args.archived:
            return {}
        p = yield self.call(commands.Portfolio, token=self.token(), **self.in_portfolio())
        if not p.get("generation"):
            raise InvalidInput(f"portfolio {p.get('portfolio')!r} was never reset: it has no archive")
        return {"generation": p["generation"] - 1}

    def do_portfolio(self):
        action = self.args.action or "show"
        wants = {"show": 0, "list": 0, "create": 1, "use": 1, "default": 1, "close": 1, "reset": 1, "rename": 2,
                 "configure": 0}[action]
        if action == "use" and self.args.default:
            wants = 0
        if len(self.args.names) != wants:
            raise UsageFailure(f"portfolio {action} takes {wants or 'no'} NAME{'s' if wants > 1 else ''}"
                               + (" (OLD NEW)" if action == "rename" else ""))
        return getattr(self, f"_portfolio_{action}")(*self.args.names)

    @defer.inlineCallbacks
    def _portfolio_list(self):
        answer = yield self.call(commands.Portfolios, token=self.token(), closed=self.args.closed)
        chosen = self.remembered_portfolio()

        def in_use(row):  # the one commands trade: the one 'portfolio use' chose, else the default one
            if row.get("closed") is not None:
                return False
            return row["name"].casefold() == chosen.casefold() if chosen is not None else bool(row["default"])

        rows = [dict(r, in_use=in_use(r)) for r in answer["portfolios"]]
        if chosen is not None and not any(r["in_use"] for r in rows):
            self.note(f"the portfolio 'portfolio use' chose, {chosen!r}, is not open any more (closed or renamed):"
                      " commands that trade fail until you run 'papertrader portfolio use --default' (your default"
                      " portfolio) or 'papertrader portfolio use NAME'")
        self.emit(rows, output.table([dict(r, default="yes" if r["default"] else "",
                                           in_use="yes" if r["in_use"] else "", margin_call=r.get("margin_call"))
                                      for r in rows], PORTFOLIO_COLUMNS + (["closed"] if self.args.closed else []),
                                     self.zone))

    @defer.inlineCallbacks
    def _portfolio_create(self, name):
        arguments = dict(name=name, margin=self.args.margin, default=self.args.default)
        if self.args.cash is not None:
            arguments["cash"] = self.args.cash
        made = yield self.call(commands.CreatePortfolio, token=self.token(), **arguments)
        self.emit(made, f"Portfolio {made['name']!r} created: a {made['kind']} account with"
                        f" {output.plain(made)['cash']} cash" + (" (your default portfolio)." if made["default"]
                                                                 else f". Trade it with --portfolio"
                                                                      f" {shlex.quote(made['name'])}, or make it"
                                                                      " the one commands trade: papertrader"
                                                                      f" portfolio use {shlex.quote(made['name'])}"))

    @defer.inlineCallbacks
    def _portfolio_use(self, name=None):
        session = tokens.load(self.environ)
        if session is None:
            raise NotLoggedIn("not logged in: run 'papertrader login USERNAME'")
        if name is not None:
            p = yield self.call(commands.Portfolio, token=session["token"], portfolio=name)  # it must exist
            name = p["portfolio"]
        tokens.remember_portfolio(session.get("username"), name, self.environ)
        self.emit({"portfolio": name}, f"Commands now trade portfolio {name!r}." if name
                  else "Commands now trade your default portfolio.")

    @defer.inlineCallbacks
    def _portfolio_rename(self, old, new):
        renamed = yield self.call(commands.RenamePortfolio, token=self.token(), name=old, new_name=new)
        session = tokens.load(self.environ) or {}
        used = tokens.remembered_portfolio(session.get("username"), self.environ)
        if used is not None and used.casefold() == old.casefold():
            tokens.remember_portfolio(session.get("username"), renamed["name"], self.environ)
        self.emit(renamed, f"Portfolio {old!r} is now {renamed['name']!r}.")

    @defer.inlineCallbacks
    def _portfolio_default(self, name):
        made = yield self.call(commands.SetDefaultPortfolio, token=self.token(), name=name)
        self.emit(made, f"Portfolio {made['name']!r} is now your default portfolio.")

    @defer.inlineCallbacks
    def _portfolio_close(self, name):
        closed = yield self.call(commands.ClosePortfolio, token=self.token(), name=name)
        session = tokens.load(self.environ) or {}
        used = tokens.remembered_portfolio(session.get("username"), self.environ)
        was_in_use = used is not None and used.casefold() in (name.casefold(), closed["name"].casefold())
        if was_in_use:
            tokens.remember_portfolio(session.get("username"), None, self.environ)
        self.emit(dict(closed, was_in_use=was_in_use),
                  f"Portfolio {closed['name']!r} closed (its API keys no longer work)." +
                  (" It was the one 'portfolio use' chose. Commands now trade your default portfolio." if was_in_use
                   else ""))

    @defer.inlineCallbacks
    def _portfolio_reset(self, name):
        token = self.token()
        self.confirm(f"Reset portfolio {name!r}? Its open orders are canceled and its history archived; it starts"
                     " again with its starting cash.")
        reset = yield self.call(commands.ResetPortfolio, token=token, name=name)
        self.emit(reset, f"Portfolio {reset['name']!r} reset: {reset['canceled']} open order"
                         f"{'' if reset['canceled'] == 1 else 's'} canceled, {output.plain(reset)['cash']} cash,"
                         f" generation {reset['generation']} (the history before it: 'papertrader history --archived"
                         f" --portfolio {_shell_word(reset['name'])}').")

    @defer.inlineCallbacks
    def _portfolio_configure(self):
        changes = {name: getattr(self.args, name) == "on" for name, _ in CONFIGURE_SWITCHES
                   if getattr(self.args, name) is not None}
        command = commands.ConfigurePortfolio if changes else commands.PortfolioConfiguration
        answer = yield self.call(command, token=self.token(), **changes, **self.in_portfolio())
        lines = [f"Portfolio {answer['portfolio']!r}" + (" now:" if changes else ":")]
        lines += [f"  {name.replace('_', ' '):<20} {'on ' if answer[name] else 'off'}  ({what})"
                  for name, what in CONFIGURE_SWITCHES]
        lines.append(f"  margin multiplier    {answer['max_margin_multiplier']}")
        self.emit(answer, "\n".join(lines))

    @defer.inlineCallbacks
    def _portfolio_show(self):
        p = yield self.call(commands.Portfolio, token=self.token(), **self.in_portfolio())
        self.emit(*portfolio_text(p, zone=self.zone))

    @defer.inlineCallbacks
    def do_positions(self):
        """The positions 'portfolio' shows, alone (Alpaca's 'positions')."""
        p = yield self.call(commands.Portfolio, token=self.token(), **self.in_portfolio())
        positions = portfolio_text(p, zone=self.zone)[0]["positions"]
        self.emit(positions, positions_table(positions, self.zone) if positions
                  else f"No positions in portfolio {p['portfolio']!r}.")

    @defer.inlineCallbacks
    def do_history(self):
        arguments = {"before": self.args.before} if self.args.before is not None else {}
        arguments.update(self.in_portfolio())
        arguments.update((yield self._generation()))
        answer = yield self.call(commands.History, token=self.token(), limit=self.args.limit, **arguments)
        rows = answer["transactions"]
        self.emit(rows, output.table(rows, HISTORY_COLUMNS, self.zone) if rows else "No transactions.")
        self._more(answer, rows)

    # --- games --------------------------------------------------------------------

    @defer.inlineCallbacks
    def do_game(self):
        a = self.args
        token = self.token()
        action = a.game_action
        if action == "create":
            arguments = dict(token=token, name=a.name, **game_window(a.start, a.end), starting_cash=a.cash,
                             margin=a.margin or a.allow_short,
                             allow_short=a.allow_short, private=a.private, show_portfolios=a.show_portfolios)
            if a.commission:
                arguments["commission"] = a.commission
            if a.fill_model:
                arguments["fill_model"] = a.fill_model
            if a.assets:
                arguments["assets"] = [s.strip().upper() for s in a.assets.split(",") if s.strip()][:1000]
            if a.max_position:
                arguments["max_position"] = a.max_position.rstrip("%")
            game = yield self.call(commands.CreateGame, **arguments)
            text = f"Game {game['name']} created ({'private' if game['private'] else 'public'})."
            if game.get("invite_code"):
                text += f" Invite code: {game['invite_code']}"
            self.emit(game, text + "\n\n" + self._game_text(game, self.zone))
        elif action == "join":
            try:
                game = yield self.call(commands.JoinGame, token=token, name=a.name,
                                       **({"code": a.code} if a.code else {}))
            except UnknownGame:
                if a.code:
                    raise
                # Without a code: how a private game is joined (the same words whether the game exists or not).
                raise UnknownGame(f"no game named {a.name!r}, or it is private: a private game is joined with the"
                                  f" invite code its creator gives, papertrader game join {_shell_word(a.name)}"
                                  " --code CODE")
            named = _shell_word(game.get('portfolio') or game['name'])
            self.emit(game, f"You joined {game['name']}: your portfolio {game.get('portfolio')!r} holds"
                            f" {output.plain(game)['starting_cash']}. Trade in it with --portfolio {named}, or"
                            f" make it the one your commands trade: papertrader portfolio use {named}")
        elif action == "invite":
            game = yield self.call(commands.GameInvite, token=token, name=a.name)
            self.emit(game, f"Invite code for {game['name']}: {game['invite_code']} (the previous one no longer"
                            " works). Players join with: papertrader game join"
                            f" {_shell_word(game['name'])} --code {game['invite_code']}")
        elif action == "remove":
            self.confirm(f"Remove {a.player} from game {a.name!r}? Their open orders in it are canceled and they"
                         " leave its leaderboard.")
            game = yield self.call(commands.RemoveGamePlayer, token=token, name=a.name, username=a.player)
            self.emit(game, f"{a.player} was removed from {game['name']}.")
        elif action == "end":
            question = f"End game {a.name!r} now? Its final ranking is the last market update's."
            if not a.yes and self.at_terminal():  # the question depends on whether it has started, and was ranked
                shown = yield self.call(commands.ShowGame, token=token, name=a.name)
                if shown["status"] == "upcoming":
                    question = f"End game {shown['name']!r} now? It has not started: it ends without any trading."
                elif not shown.get("players") and shown.get("board_updated") is None:
                    question = f"End game {shown['name']!r} now? Nobody plays in it: it ends with no ranking."
                elif shown.get("board_updated") is None:
                    question = (f"End game {shown['name']!r} now? No market update has ranked it yet: the next one"
                                " makes its final ranking.")
            self.confirm(question)
            game = yield self.call(commands.EndGame, token=token, name=a.name)
            started = game.get("ended_at") is None or game["ended_at"] >= game["start"]
            if not started:
                said = f"{game['name']} ended before it started: no one traded in it."
            elif not game.get("players") and game.get("board_updated") is None:  # (no ranking: game leaderboard too)
                said = f"{game['name']} ended; nobody played in it, so it has no ranking."
            elif game.get("board_updated") is None:  # (the first update after its end ranks it: game leaderboard)
                said = (f"{game['name']} ended before any market update ranked it: the next market update makes its"
                        " final ranking.")
            else:
                said = f"{game['name']} ended; its final ranking is the last market update's."
            self.emit(game, said)
        elif action == "list":
            games = (yield self.call(commands.Games, token=token))["games"]
            self.emit(games, output.table([self._game_row(g, self.zone) for g in games], GAME_COLUMNS, self.zone)
                      if games else "No games.")
        elif action == "show":
            game = yield self.call(commands.ShowGame, token=token, name=a.name)
            self.emit(game, self._game_text(game, self.zone))
        elif action == "portfolio":
            yield self._game_portfolio(token)
        elif a.player:
            curve = yield self.call(commands.GameCurve, token=token, name=a.name, username=a.player)
            points = curve["points"]
            self.emit(curve, output.table(points, ["day", "equity"]) if points else "No points yet.")
        else:
            yield self._leaderboard(token)

    @defer.inlineCallbacks
    def _game_portfolio(self, token):
        """``game portfolio NAME USERNAME``: shown as ``portfolio``, ``orders --status open`` and ``history`` show
        one's own."""
        a = self.args
        arguments = {"before": a.before} if a.before is not None else {}
        p = yield self.call(commands.GamePortfolio, token=token, name=a.name, username=a.player, limit=a.limit,
                            **arguments)
        data, text = portfolio_text(p, ["game", "username", "removed", "final_rank", "final_equity", "final_as_of"],
                                    self.zone)
        if p.get("final_equity") is not None:
            text += ("\n\nThe game is over: final_rank and final_equity are its final ranking's; the figures above"
                     " are at the market's prices now.")
        orders, rows = p["orders"], p["transactions"]
        text += "\n\nOpen orders:\n" + (output.table(order_rows(orders), ORDER_COLUMNS, self.zone) if orders
                                         else "none")
        text += "\n\nTransactions:\n" + (output.table(rows, HISTORY_COLUMNS, self.zone) if rows else "none")
        self.emit(data, text)
        self._more(p, rows)

    @defer.inlineCallbacks
    def _leaderboard(self, token):
        a = self.args
        wanted = a.limit if a.limit is not None else 10**9
        if wanted < 1:
            raise UsageFailure("--limit must be 1 or more")
        standings, board = [], None
        while len(standings) < wanted:
            page = min(500, wanted - len(standings))
            board = yield self.call(commands.GameLeaderboard, token=token, name=a.name, by=a.by,
                                    offset=len(standings), limit=page)
            standings += board["standings"]
            if len(board["standings"]) < page:
                break
        data = dict(board, standings=standings)
        updated = output.shown(board, self.zone).get("updated")
        # A game not started yet is ranked by the first market update after its start, not by the next one.
        starts = _game_start(board["starts"], self.zone) if board.get("starts") else None
        ranks = (f"the first market update after the game starts ({starts})" if starts else "the next market update")
        waiting = board.get("unranked") or []
        players = (f"{board['players']} player{'' if board['players'] == 1 else 's'},"
                   f" starting cash {output.plain(board)['starting_cash']}")
        if board["final"] and not updated:
            # Over before any update ranked it: the first update after its end ranks its players, once, and that is
            # its final ranking (the master's games update); nobody to rank, it has none.
            if waiting or board["players"]:
                head = (f"{board['name']}: ended before any market update ranked it, {players}: the next market"
                        f" update makes its final ranking (by {board['by']})")
                unranked = "Not ranked yet (the next market update ranks them, in the final ranking)"
            else:
                head, unranked = f"{board['name']}: ended, {players}: nobody played in it, so it has no ranking", ""
        else:
            head = (f"{board['name']}: {'final ranking' if board['final'] else 'leaderboard'} by {board['by']},"
                    f" {players}" + (f", as of {updated}" if updated else f", not computed yet ({ranks} does it)"))
            # (who joined after the last update before the end is in no ranking: the final one is that update's)
            unranked = ("Not ranked (joined after the last market update before the end)" if board["final"] else
                        f"Not ranked yet ({ranks} ranks them)")
        if a.csv:  # every player: those not ranked yet last, with no figures (a gradebook misses no one)
            self.out(output.standings_csv(standings, board.get("unranked"), newline="\n").rstrip("\n"))
            self.emitted += 1
            return
        rows = [dict(s, return_percent=f"{output.plain(s)['return_percent']}%",
                     sharpe=s["sharpe"] if s.get("sharpe") is not None else output.NOT_AVAILABLE) for s in standings]
        self.emit(data, head + ("\n\n" + output.table(rows, output.BOARD_COLUMNS) if rows else "")
                  + (f"\n\n{unranked}: {', '.join(waiting)}"
                     + (" ..." if len(waiting) >= 500 else "") if waiting else "")
                  + (f"\n\nSHARPE n/a: {NO_SHARPE}" if any(s.get("sharpe") is None for s in standings) else ""))

    @staticmethod
    def _game_row(game, zone=timezone.utc):
        """A game as ``game list`` shows it (times in ``zone``)."""
        row = dict(game, private="yes" if game["private"] else "no", start=_game_start(game["start"], zone))
        last = _last_day(game.get("end"), zone)
        if last is not None:
            row["end"] = str(last)  # as --end gave it (game show: with the closing time)
        return row

    @staticmethod
    def _game_text(game, zone=timezone.utc):
        """A game's dates, rules and players as ``game show`` shows them (times in ``zone``)."""
        shown = dict(game, private="yes" if game["private"] else "no", margin="yes" if game["margin"] else "no",
                     start=_game_start(game["start"], zone),
                     allow_short="yes" if game["allow_short"] else "no",
                     assets=", ".join(game["assets"]) if game["assets"] else "all",
                     max_position=f"{game['max_position']}%" if game.get("max_position") is not None else "no limit",
                     commission=game.get("commission") or "the server's",
                     fill_model=game.get("fill_model") or "the server's",
                     portfolios="shown to every player" if game.get("show_portfolios") else "shown to the creator only")
        if game.get("removed"):
            shown["removed"] = ", ".join(f"{r['username']} ({times.local(r['removed'], zone)})"
                                         for r in game["removed"])
        else:
            shown.pop("removed", None)
        last = _last_day(game.get("end"), zone)
        if last is not None:  # named as it was given (and as the website shows it)
            shown["end"] = (f"{last} (its last day: trading closes at"
                            f" {times.local(game['end'], zone, seconds=True)})")
        return output.fields(shown, GAME_FIELDS, zone)

    # --- running a command --------------------------------------------------------

    def interrupt(self, signum):
        """SIGINT or SIGTERM (from the reactor): stop the running command."""
        if self.interrupted is None:
            self.interrupted = signum
            if self.running is not None and not self.running.called:
                self.running.cancel()

    def signal_status(self):
        return signal_status(self.interrupted or self.interrupts.signum or signal.SIGINT)

    @defer.inlineCallbacks
    def run(self):
        """Run the command; fires with the exit status (never fails)."""
        try:
            status = yield self._run()
        except Exception:  # pragma: no cover - _run answers everything; this is the last net
            status = self.fail(InternalError.code, InternalError.__doc__)
        finally:
            if self.connection is not None:
                self.connection.close()
        return status

    @defer.inlineCallbacks
    def _run(self):
        try:
            self.check_options()
            self.connect()
            if self.interrupts.signum is not None:
                self.interrupted = self.interrupts.signum
                return self.stopped()
            self.running = defer.maybeDeferred(getattr(self, "do_" + self.args.command.replace("-", "_")))
            status = yield self.running
            return OK if status is None else status
        except UsageFailure as e:
            return self.fail(USAGE, str(e), USAGE_STATUS)
        except OutputClosed:
            return OUTPUT_CLOSED
        except (defer.CancelledError, CommandInterrupted):
            return self.stopped()
        except PaperTraderError as e:
            if self.interrupted is not None:
                return self.stopped()  # what failed was the interrupted command's clean-up
            return self.fail(e.code, self.explain(e))
        except Exception as e:
            return self.fail(InternalError.code, f"the client failed unexpectedly ({type(e).__name__}); this is a"
                                                 " bug: please report it with the command you ran")

    def saved_username(self):
        """The username of the saved session, if one is saved and readable (else None)."""
        try:
            session = tokens.load(self.environ)
        except PaperTraderError:
            return None
        username = session.get("username") if session else None
        return username if isinstance(username, str) and username.isprintable() and username else None

    def explain(self, e):
        """The message of error ``e``, and a word of warning if the command may have been done anyway."""
        message = e.message
        if type(e) is NotLoggedIn and "papertrader login" not in message:
            # The saved session ended on the server (expired, logout --all, a new password): say what to type.
            message = message.rstrip(".")
            message += "" if message.endswith("log in again") else "; log in again"
            message += f" with 'papertrader login {_shell_word(self.saved_username() or 'USERNAME')}'"
        if isinstance(e, UnknownPortfolio) and self.chosen_portfolio is not None:
            # (after the server's 'did you mean 'Swing 2'?', if it found the name meant: a sentence of its own)
            message += (" It is" if message.endswith("?") else ": it is")
            message += (" the portfolio 'papertrader portfolio use' chose, closed or renamed since; run"
                        " 'papertrader portfolio use --default' to trade your default portfolio, or 'papertrader"
                        " portfolio use NAME' for another (see 'papertrader portfolio list')")
        if self.connection is not None and self.connection.uncertain and self.last_command not in READ_ONLY:
            message += (". A worker failed while this command was under way, so it may have been done: check"
                        " before you try again")
        return message

    def stopped(self):
        """An interrupt: no error message (the user asked for it); with --json, one value saying so."""
        status = self.signal_status()
        if self.args.json and not self.streaming and not self.emitted:
            name = signal.Signals(status - 128).name
            try:
                self.out(output.to_json({"error": INTERRUPTED, "message": f"interrupted ({name})"}))
            except OutputClosed:
                pass
        return status

    def fail(self, code, message, status=FAILED, **extra):
        """One line on stderr; with --json, the error as the command's one JSON value (a stream's last line)."""
        for core, words in CONFIGURATION_WORDS:  # the settings named as this command line changes them
            message = message.replace(core, words)
        self.note(message)
        if self.args is not None and self.args.json and (self.streaming or not self.emitted):
            try:
                self.out(output.to_json(dict({"error": code, "message": message}, **extra)))
            except OutputClosed:
                return OUTPUT_CLOSED
            except OSError:
                pass  # stdout is broken in another way: stderr has the line already
        return status


def run(reactor, argv, environ=None, stdin=None, stdout=None, stderr=None, interrupts=None):
    """Parse ``argv`` and run it; a Deferred firing with the exit status."""
    environ = os.environ if environ is None else environ
    # A closed standard stream (papertrader ... >&-) is None in Python: write nowhere rather than fail.
    stdout = stdout or sys.stdout or open(os.devnull, "w")
    stderr = stderr or sys.stderr or open(os.devnull, "w")
    try:
        args = parse(argv)
    except UsageFailure as e:
        stderr.write(f"papertrader: {e}\n")
        if "--json" in argv:
            stdout.write(output.to_json({"error": USAGE, "message": str(e)}) + "\n")
        return defer.succeed(USAGE_STATUS)
    return CLI(reactor, args, environ, stdin if stdin is not None else sys.stdin, stdout, stderr, interrupts).run()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "--version") for a in argv):
        try:
            build_parser().parse_args(argv)
        except UsageFailure as e:
            sys.stderr.write(f"papertrader: {e}\n")
            return USAGE_STATUS
        except SystemExit as e:
            return e.code
    status = []

    def go(reactor):
        interrupts = Interrupts(reactor)
        interrupts.install()  # SIGINT now (the reactor keeps a handler it finds); both again once it runs
        reactor.callWhenRunning(interrupts.install)
        return run(reactor, argv, interrupts=interrupts).addCallback(status.append)

    try:
        task.react(go)
    except SystemExit:
        pass
    code = status[0] if status else FAILED
    if code == OUTPUT_CLOSED:
        # Nobody reads stdout any more: point it at /dev/null so the interpreter's last flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return code


if __name__ == "__main__":
    sys.exit(main())
