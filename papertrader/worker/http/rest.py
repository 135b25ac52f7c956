"""The Alpaca-compatible REST API of a worker (klein on twisted.web).

Each request: check its size, authenticate its API key (headers ``APCA-API-KEY-ID`` and
``APCA-API-SECRET-KEY``, or ``Authorization: Basic`` of ``key:secret``), count it against the
key's rate limit, parse and check its parameters (:mod:`.params`), pass it on to the master through
the worker's gateway (stamped with the time, the client's address and this worker, answered by the
same application layer as AMP), and answer in Alpaca's JSON (:mod:`.alpaca`).  Latest quotes and
trades are read from the worker's quote cache, as the AMP ``Quote`` is.  A failure is always JSON
``{"code": <int>, "message": <text>}`` with the HTTP status Alpaca uses; never a redirect, an HTML
page or a traceback.
"""

import base64
import binascii
import hashlib
import math
import re
import uuid
from collections import OrderedDict, deque
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import unquote_to_bytes

from klein import Klein
from twisted.internet import defer
from twisted.web import resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from papertrader import commands
from papertrader.errors import (InsufficientPosition, NotLoggedIn, OutcomeUnknown, PaperTraderError, ServerError,
                                Throttled, UnknownSymbol)
from papertrader.master import validation
from papertrader.master.api_keys import credential
from papertrader.market.sources import asset_uuid
from papertrader.trading.settlement import settlement_date
from papertrader.worker.cache import SessionCache
from papertrader.worker.http import alpaca
from papertrader.worker.http.params import (
    MAX_NUMBER_TEXT,
    SYMBOL_RE,
    HttpError,
    Query,
    body,
    check_uuid,
    configuration_request,
    day_bounds,
    day_start,
    decimal_text,
    decode_token,
    encode_token,
    invalid,
    is_uuid,
    market_request,
    order_request,
    quantity_text,
    replace_request,
    shorten,
    timeframe,
    watchlist_request,
    watchlist_symbol,
)

#: Alpaca's corporate action types (its market data's ``types``): the splits and cash dividends are served, the
#: others are none here.
ALPACA_ACTION_TYPES = ("forward_split", "reverse_split", "unit_split", "cash_dividend", "stock_dividend", "spin_off",
                       "cash_merger", "stock_merger", "stock_and_cash_merger", "redemption", "name_change",
                       "worthless_removal", "rights_distribution")

#: Our error codes -> (HTTP status, Alpaca's code).  Anything else: 500.
STATUS = {
    "invalid_input": (422, 42210000),
    "unknown_symbol": (422, 42210000),
    "quote_unavailable": (422, 42210000),
    "duplicate_order": (422, 42210000),
    "order_not_open": (422, 42210000),
    "insufficient_funds": (403, 40310000),
    "insufficient_position": (403, 40310000),
    "game_rule": (403, 40310000),
    "game_closed": (403, 40310000),
    "trading_suspended": (403, 40310000),
    "not_permitted": (403, 40310000),
    "unknown_order": (404, 40410000),
    "unknown_portfolio": (404, 40410000),
    "unknown_watchlist": (404, 40410000),
    "portfolio_not_empty": (422, 42210000),
    "not_logged_in": (401, 40110000),
    "account_disabled": (403, 40310000),
    "bad_credentials": (401, 40110000),
    "throttled": (429, 42910000),
    "master_unavailable": (503, 50310000),
    # Not 504, which alpaca-py (and alpaca-trade-api) send again by themselves, POSTs too: a second order.
    "outcome_unknown": (502, 50210000),
    "database_unavailable": (503, 50310000),
    "server_error": (500, 50010000),
}

def look_for(error, client_order_id, more=""):
    """An order's ``outcome_unknown``, saying which order to look for (its client order id: the request's, or
    the one the server gave it)."""
    return OutcomeUnknown(f"{error.message}: it has client_order_id {client_order_id} (GET"
                          f" /v2/orders:by_client_order_id?client_order_id=...{more})")


#: Most orders one list answer holds (Alpaca's limit), and how many the worker asks the master for at a time
#: (one AMP answer holds at most 64 kB: about 55 orders at their largest).
MAX_ORDERS = 500
ORDER_CHUNK = 50
#: Most bars of one page (Alpaca's limit), and per answer of the master (about 150 bytes each in AMP).
MAX_BARS = 10_000
BAR_CHUNK = 350
#: Most symbols one market-data request names.
MAX_SYMBOLS = 200
#: Most sessions of one calendar answer of the master (ask again from the day after the last).
MAX_SESSIONS = 600
#: Days after a calendar's last session looked at for its settlement date (T+5 at most, with holidays).
SETTLEMENT_LOOKAHEAD = 14
#: Activity types: those this platform makes, and the rest of Alpaca's (asked for, they are simply none).
ACTIVITY_TYPES = {"FILL", "DIV", "SPLIT", "FEE"}
OTHER_ACTIVITY_TYPES = {"ACATC", "ACATS", "CFEE", "CIL", "CSD", "CSW", "DIVCGL", "DIVCGS", "DIVNRA", "DIVROC",
                        "DIVTXEX", "DIVWH", "EXTRD", "FXTRD", "INT", "INTPNL", "JNLC", "JNLS", "MA", "MEM",
                        "NC", "OCT", "OPASN", "OPCSH", "OPEXC", "OPEXP", "OPTRD", "PTC", "REORG", "SPIN", "SWP",
                        "VOF", "WH"}


class RateLimiter:
    """At most ``limit`` requests per key in any minute (the master counts them too, across workers, once the
    key's secret is checked).  The REST API counts by key and client address, so requests from elsewhere with
    a wrong secret cannot use up a strategy's minute."""

    def __init__(self, clock, limit):
        self.clock = clock
        self.limit = limit
        self._recent = {}

    def _recent_of(self, key, now):
        """``key``'s requests of the last minute (its deque; None if it has made none)."""
        recent = self._recent.get(key)
        while recent and recent[0] <= now - 60:
            recent.popleft()
        return recent

    def full(self, key):
        """Whether ``key`` has used its minute (nothing counted)."""
        return len(self._recent_of(key, self.clock.seconds()) or ()) >= self.limit

    def wait(self, key):
        """Whole seconds until ``key`` may be counted again."""
        now = self.clock.seconds()
        recent = self._recent_of(key, now)
        return int(recent[0] + 61 - now) if recent else 0

    def count(self, key):
        """Count a request of ``key``: (requests left in the minute, when the oldest counted leaves it (Unix
        seconds, rounded up)); Throttled if none is left (its ``reset`` says when one will be)."""
        now = self.clock.seconds()
        recent = self._recent_of(key, now)
        if recent is None:
            recent = self._recent[key] = deque()
        if len(recent) >= self.limit:
            refused = Throttled(f"{self.limit} requests in the last minute; wait {int(recent[0] + 61 - now)} s")
            refused.reset = math.ceil(recent[0] + 60)
            raise refused
        recent.append(now)
        if len(self._recent) > 100_000:
            self._recent = {k: v for k, v in self._recent.items() if v and v[-1] > now - 60}
        return self.limit - len(recent), math.ceil(recent[0] + 60)


#: Alpaca's endpoints this server does not serve (path patterns), and what they are: their 404 says so, so that
#: a program's author does not take it for a wrong URL.
NOT_SERVED = [
    (re.compile(r"^/v2/stocks/(?:[^/]+/)?trades(?:/|$)"), "historical trades (this platform keeps bars, not ticks; the"
                                                          " latest trade is /v2/stocks/trades/latest)"),
    (re.compile(r"^/v2/stocks/(?:[^/]+/)?quotes(?:/|$)"), "historical quotes (this platform keeps bars, not ticks; the"
                                                          " latest quote is /v2/stocks/quotes/latest)"),
    (re.compile(r"^/v2/stocks/(?:[^/]+/)?auctions(?:/|$)"), "auctions"),
    (re.compile(r"^/v[0-9a-z]+/options(?:/|$)|^/v2/options"), "options"),
    (re.compile(r"^/v[0-9a-z]+/crypto(?:/|$)|^/v2/crypto"), "crypto"),
    (re.compile(r"^/v1beta1/news(?:/|$)"), "news"),
    (re.compile(r"^/v1beta1/screener(?:/|$)"), "screeners"),
    (re.compile(r"^/v1beta1/forex(?:/|$)|^/v1beta1/fixed_income(?:/|$)|^/v1beta1/logos(?:/|$)"), "this data"),
    (re.compile(r"^/v2/corporate_actions(?:/|$)"), "the older corporate action announcements (use"
                                                   " /v1/corporate-actions)"),
    (re.compile(r"^/v1/(?:accounts|transfers|journals|events|oauth)(?:/|$)"), "the broker API"),
]


#: A path with the API's version twice: a base URL given with its /v2, to which alpaca-py adds /v2 again.
VERSION_TWICE_RE = re.compile(r"^/v2/+v2(?:/|$)")


def not_served(path):
    """The 404's words for ``path`` (bytes): which of Alpaca's endpoints this server does not serve, if one; or
    that the base URL was given with its /v2."""
    text = path.decode("utf-8", "replace")
    if VERSION_TWICE_RE.match(text):
        return (f"endpoint not found: {shorten(text, 100)} has /v2 twice; give the base URL without /v2 (alpaca-py's"
                " url_override: it adds /v2)")
    for pattern, what in NOT_SERVED:
        if pattern.search(text):
            return f"endpoint not served by PaperTrader: {what} (see its README, 'HTTP API')"
    return "endpoint not found"


def rate_headers(request, limit, remaining, reset):
    """Alpaca's rate limit headers: the requests a minute, those left, when the count next drops (Unix s)."""
    request.setHeader(b"X-RateLimit-Limit", b"%d" % limit)
    request.setHeader(b"X-RateLimit-Remaining", b"%d" % remaining)
    request.setHeader(b"X-RateLimit-Reset", b"%d" % reset)


def client_ip(request):
    return getattr(request.getClientAddress(), "host", "unknown")


def respond(request, status, value):
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"X-Frame-Options", b"DENY")
    if status == 204:
        return b""
    data = alpaca.dumps(value)
    request.setHeader(b"Content-Length", b"%d" % len(data))
    return data


def market_view(answer):
    """A MarketControl answer as the HTTP API shows it: Alpaca's clock, the market's ``mode`` (replay or live),
    a replay's ``state`` (running, paused, ended) and a step's ``played`` (how many updates it played)."""
    view = dict(alpaca.clock(answer), mode=answer["mode"], state=answer["state"])
    if answer.get("played") is not None:
        view["played"] = answer["played"]
    return view


def error_body(code, message):
    return {"code": code, "message": message}


class Guard(resource.Resource):
    """In front of the klein resource: a path that does not decode to UTF-8 text (klein would answer it in
    plain text) gets the API's JSON 400."""

    isLeaf = True

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def render(self, request):
        try:
            unquote_to_bytes(request.path).decode("utf-8")
        except UnicodeDecodeError:
            return respond(request, 400, error_body(40010000, "the path is not UTF-8 text"))
        return self.inner.render(request)


class RestApi:
    app = Klein()

    #: Requests a minute one address may make with credentials the master refused (unknown keys, wrong secrets):
    #: past it, credentials the worker has not seen accepted are refused (429) without asking the master.
    BAD_CREDENTIALS = 60
    #: Credentials remembered as accepted (about 100 bytes each).
    ACCEPTED_KEPT = 100_000

    def __init__(self, worker, rate_limit=200):
        self.worker = worker
        self.limiter = RateLimiter(worker.clock, rate_limit)
        self.refused = RateLimiter(worker.clock, self.BAD_CREDENTIALS)
        #: Credentials (their SHA-256) the master accepted here, newest last: an address over its refusals still
        #: has them checked (the session cache forgets them after a minute).
        self.accepted = OrderedDict()

    def resource(self):
        return Guard(self.app.resource())

    # --- plumbing ---------------------------------------------------------------------------

    def credential(self, request):
        key = (request.getHeader("APCA-API-KEY-ID") or "").strip()
        secret = (request.getHeader("APCA-API-SECRET-KEY") or "").strip()
        if not key and not secret:
            authorization = request.getHeader("Authorization") or ""
            if authorization[:6].lower() == "basic ":
                try:
                    key, _, secret = base64.b64decode(authorization[6:].strip(), validate=True).decode(
                        "utf-8").partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    key = secret = ""
        if not key or not secret or len(key) > 64 or len(secret) > 256:
            raise HttpError(401, 40110000, "unauthorized: send your API key as the APCA-API-KEY-ID and"
                                           " APCA-API-SECRET-KEY headers")
        token = credential(key, secret)
        address = client_ip(request)
        if self.refused.full(address) and not self.seen_accepted(token):
            raise Throttled(f"too many requests with unknown API keys or wrong secrets from your address; wait"
                            f" {self.refused.wait(address)} s")
        # Counted by the secret sent too: requests with a wrong one (from a neighbour behind the same address)
        # never use up the minute of the key's owner.
        try:
            remaining, reset = self.limiter.count((key, hashlib.sha256(secret.encode()).digest()[:12], address))
        except Throttled as refused:
            rate_headers(request, self.limiter.limit, 0, refused.reset)
            raise
        rate_headers(request, self.limiter.limit, remaining, reset)
        request.credential_from = address  # (a refusal of it counts against the address: typed_error)
        return token

    def call(self, request, command, token=None, **arguments):
        """Pass ``command`` on to the master for this request's API key; fires with the answer."""
        arguments = {k: v for k, v in arguments.items() if v is not None}
        token = token or self.credential(request)
        d = self.worker.gateway.forward(command, dict(arguments, token=token), client_ip(request))
        return d.addCallback(self._accepted, token)

    def _accepted(self, result, token):
        """Remember a credential the master accepted: an address over its refusals still has it checked."""
        key = SessionCache.key(token)
        self.accepted[key] = True
        self.accepted.move_to_end(key)
        while len(self.accepted) > self.ACCEPTED_KEPT:
            self.accepted.popitem(last=False)
        return result

    def seen_accepted(self, token):
        return self.worker.sessions.get(token) is not None or SessionCache.key(token) in self.accepted

    def ask(self, request, command, **arguments):
        """Pass a command that needs no account (market data, the calendar) on to the master, stamped."""
        arguments = {k: v for k, v in arguments.items() if v is not None}
        return self.worker.gateway.forward(command, arguments, client_ip(request))

    @defer.inlineCallbacks
    def who(self, request):
        """(credential, username) of this request's API key, checked (a command with no account needs it)."""
        token = self.credential(request)
        username = yield self.worker.gateway.session(token, client_ip(request))
        self._accepted(None, token)
        return token, username

    @defer.inlineCallbacks
    def naming_orders(self, request, error):
        """``error`` with the orders its message names by number (the command line's ids, which this API never
        shows) named by their ids, the ones /v2/orders/{id} takes ("another order" if one cannot be read)."""
        numbers = list(dict.fromkeys(ORDER_NUMBER_RE.findall(error.message)))[:MAX_ORDERS_NAMED]
        if not numbers:
            return error
        named = {}
        for number in numbers:
            try:
                found = yield self.call(request, commands.GetOrder, order_id=int(number))
            except PaperTraderError:
                found = None
            named[number] = f"order {found['uuid']}" if found else "another order"
        message = ORDER_NUMBER_RE.sub(lambda m: named.get(m.group(1), m.group(0)), error.message)
        return type(error)(message)

    @app.handle_errors(NotFound)
    def not_found(self, request, failure):
        return respond(request, 404, error_body(40410000, not_served(request.path)))

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(self, request, failure):
        return respond(request, 405, error_body(40510000, "method not allowed"))

    @app.handle_errors(HttpError)
    def http_error(self, request, failure):
        e = failure.value
        return respond(request, e.status, error_body(e.code, e.message))

    @app.handle_errors(PaperTraderError)
    def typed_error(self, request, failure):
        e = failure.value
        address = getattr(request, "credential_from", None)
        if isinstance(e, NotLoggedIn) and address is not None:
            try:
                self.refused.count(address)  # a credential the master refused, from this address
            except Throttled:
                pass
        status, code = STATUS.get(e.code, (500, 50010000))
        return respond(request, status, error_body(code, e.message))

    @app.handle_errors(HTTPException)
    def routing_error(self, request, failure):
        """The router's other refusals; a redirect (a path with '//') is answered as no such endpoint."""
        status = failure.value.code or 400
        if status < 400:
            return respond(request, 404, error_body(40410000, not_served(request.path)))
        return respond(request, status, error_body(status * 100_000, failure.value.description or "refused"))

    @app.handle_errors(Exception)
    def unexpected(self, request, failure):
        self.worker.log.failure("HTTP {method} {path} failed", failure, method=request.method.decode("latin-1"),
                                path=request.path.decode("latin-1")[:200])
        return respond(request, 500, error_body(50010000, ServerError().message))  # as the master's

    # --- account and clock ---------------------------------------------------------------------

    @app.route("/v2/account", methods=["GET"])
    @defer.inlineCallbacks
    def account(self, request):
        token, username = yield self.who(request)
        portfolio = yield self.call(request, commands.Portfolio, token=token)
        return respond(request, 200, alpaca.account(portfolio, username))

    @app.route("/v2/account/configurations", methods=["GET"])
    @defer.inlineCallbacks
    def account_configurations(self, request):
        answer = yield self.call(request, commands.PortfolioConfiguration)
        return respond(request, 200, alpaca.configuration(answer))

    @app.route("/v2/account/configurations", methods=["PATCH"])
    @defer.inlineCallbacks
    def set_account_configurations(self, request):
        wanted = configuration_request(body(request))
        answer = yield self.call(request, commands.ConfigurePortfolio, **wanted)
        return respond(request, 200, alpaca.configuration(answer))

    @app.route("/v2/clock", methods=["GET"])
    @defer.inlineCallbacks
    def clock(self, request):
        yield self.who(request)
        answer = yield self.ask(request, commands.Clock)
        return respond(request, 200, alpaca.clock(answer))

    @app.route("/v2/papertrader/market", methods=["GET"])
    @defer.inlineCallbacks
    def market_status(self, request):
        """PaperTrader's own: the clock as /v2/clock shows it, with the replay's ``state`` (any key)."""
        answer = yield self.call(request, commands.MarketControl, action="status")
        return respond(request, 200, market_view(answer))

    @app.route("/v2/papertrader/market/<string:action>", methods=["POST"])
    @defer.inlineCallbacks
    def market_control(self, request, action):
        """PaperTrader's own: a replay paused, resumed, stepped or moved by an account the operator named in
        ``market_control``; the answer is the clock as /v2/clock shows it, with the replay's ``state`` (and a
        step's ``played``)."""
        when = market_request(action, body(request), Query(request))
        answer = yield self.call(request, commands.MarketControl, action=action, when=when)
        return respond(request, 200, market_view(answer))

    # --- positions -------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def _positions(self, request):
        portfolio = yield self.call(request, commands.Portfolio)
        marginable = {}
        if portfolio["positions"]:
            # An asset's own, as /v2/assets shows it (Alpaca's asset_marginable is the asset's, not the account's).
            marginable = {a["symbol"]: bool(a.get("marginable")) for a in (yield self._assets(request))}
        return [alpaca.position(dict(p, marginable=marginable.get(p["symbol"], False)), asset_uuid(p["symbol"]),
                                p.get("exchange")) for p in portfolio["positions"]]

    @app.route("/v2/positions", methods=["GET"])
    @defer.inlineCallbacks
    def positions(self, request):
        positions = yield self._positions(request)
        return respond(request, 200, positions)

    @app.route("/v2/positions/<string:symbol_or_id>", methods=["GET"])
    @defer.inlineCallbacks
    def position(self, request, symbol_or_id):
        positions = yield self._positions(request)
        wanted = symbol_or_id.lower() if is_uuid(symbol_or_id) else symbol_or_id.upper()
        for p in positions:
            if wanted in (p["symbol"], p["asset_id"]):
                return respond(request, 200, p)
        raise HttpError(404, 40410000, "position does not exist")

    @defer.inlineCallbacks
    def _holds(self, request, symbol):
        """Whether the key's portfolio holds a position (long or short) in ``symbol``."""
        portfolio = yield self.call(request, commands.Portfolio)
        return any(p["symbol"] == symbol for p in portfolio["positions"])

    @defer.inlineCallbacks
    def _symbol_of(self, request, symbol_or_id):
        """A path's symbol, or the symbol of a position's asset id."""
        if not is_uuid(symbol_or_id):
            return symbol_or_id.upper()
        positions = yield self._positions(request)
        for p in positions:
            if p["asset_id"] == symbol_or_id.lower():
                return p["symbol"]
        raise HttpError(404, 40410000, "position does not exist")

    @app.route("/v2/positions/<string:symbol_or_id>", methods=["DELETE"])
    @defer.inlineCallbacks
    def close_position(self, request, symbol_or_id):
        query = Query(request)
        quantity = quantity_text("qty", query.text("qty", limit=MAX_NUMBER_TEXT))
        percentage = decimal_text("percentage", query.text("percentage", limit=MAX_NUMBER_TEXT),
                                  lambda name, text: validation.decimal(name, text, 6, Decimal(100)))
        if quantity is not None and percentage is not None:
            raise invalid("give qty or percentage, not both")
        symbol = yield self._symbol_of(request, symbol_or_id)
        client_order_id = str(uuid.uuid4())  # (what to look for if its answer is lost: see place_order)
        try:
            order = yield self.call(request, commands.ClosePosition, symbol=symbol, quantity=quantity,
                                    percentage=percentage, client_order_id=client_order_id)
        except UnknownSymbol:
            raise HttpError(404, 40410000, "position does not exist")
        except InsufficientPosition:
            # None held (Alpaca: 404), or open orders hold its shares (403): the positions tell which.
            if not (yield self._holds(request, symbol)):
                raise HttpError(404, 40410000, "position does not exist")
            raise
        except OutcomeUnknown as e:
            raise look_for(e, client_order_id)
        return respond(request, 200, alpaca.order(with_asset(order)))

    @app.route("/v2/positions", methods=["DELETE"])
    @defer.inlineCallbacks
    def close_all_positions(self, request):
        cancel_orders = Query(request).boolean("cancel_orders")
        answer = yield self.call(request, commands.CloseAllPositions, cancel_orders=cancel_orders or None)
        out = [alpaca.closed(o["symbol"], alpaca.order(with_asset(o))) for o in answer["orders"]]
        for f in answer["failures"]:
            status, code = STATUS.get(f["code"], (500, 50010000))
            out.append(alpaca.not_closed(f["symbol"], status, code, f["message"]))
        return respond(request, 207, out)

    # --- orders ----------------------------------------------------------------------------------

    @app.route("/v2/orders", methods=["POST"])
    @defer.inlineCallbacks
    def place_order(self, request):
        arguments = order_request(body(request))
        if arguments["client_order_id"] is None:
            arguments["client_order_id"] = str(uuid.uuid4())
        try:
            order = yield self.call(request, commands.PlaceOrder, **arguments)
        except OutcomeUnknown as e:
            raise look_for(e, arguments["client_order_id"], "; sent again with that client_order_id it is not"
                                                            " placed twice")
        except PaperTraderError as e:
            raise (yield self.naming_orders(request, e))
        return respond(request, 200, alpaca.order(with_asset(order)))

    @app.route("/v2/orders", methods=["GET"])
    @defer.inlineCallbacks
    def orders(self, request):
        query = Query(request)
        status = query.choice("status", ("open", "closed", "all"), "open")
        limit = query.integer("limit", 50, 1, MAX_ORDERS)
        direction = query.choice("direction", ("asc", "desc"), "desc")
        after, until = query.moment("after"), query.moment("until")
        side = query.choice("side", ("buy", "sell"))
        symbols = query.symbols("symbols", MAX_SYMBOLS)
        nested = query.boolean("nested")
        token = self.credential(request)
        orders = yield self._order_list(request, token, limit, direction, status=status, after=after, until=until,
                                        side=side, symbols=symbols, nested=bool(nested))
        return respond(request, 200, [alpaca.order(with_asset(o)) for o in orders])

    @defer.inlineCallbacks
    def _order_list(self, request, token, limit, direction, **filters):
        """Up to ``limit`` orders in ``direction``, asked of the master in answers that fit AMP."""
        out, cursor, chunk = [], None, ORDER_CHUNK
        while len(out) < limit:
            want = min(chunk, limit - len(out))
            paging = {"after_id": cursor} if direction == "asc" else {"before": cursor}
            answer = yield self.call(request, commands.Orders, token=token, limit=want, direction=direction,
                                     **filters, **paging)
            rows = answer["orders"]
            if direction == "asc":
                if answer.get("next_before") is not None and chunk > 1:
                    # The master cut the answer to fit AMP, keeping its last rows: ask for fewer at a time.
                    chunk = max(1, want // 2)
                    continue
                out.extend(rows)
                if len(rows) < want or not rows:
                    break
                cursor = rows[-1]["id"]
            else:
                out.extend(reversed(rows))  # the master lists them oldest first
                if answer.get("next_before") is None or not rows:
                    break
                cursor = answer["next_before"]
        return out[:limit]

    @app.route("/v2/orders", methods=["DELETE"])
    @defer.inlineCallbacks
    def cancel_all_orders(self, request):
        answer = yield self.call(request, commands.CancelAllOrders)
        return respond(request, 207, [alpaca.canceled(alpaca.order(with_asset(o))) for o in answer["orders"]])

    @app.route("/v2/orders:by_client_order_id", methods=["GET"])
    @defer.inlineCallbacks
    def order_by_client_order_id(self, request):
        client_order_id = Query(request).text("client_order_id", limit=128)
        if client_order_id is None:
            raise invalid("client_order_id is required")
        order = yield self.call(request, commands.GetOrder, client_order_id=client_order_id)
        return respond(request, 200, alpaca.order(with_asset(order)))

    @app.route("/v2/orders/<string:order_uuid>", methods=["GET"])
    @defer.inlineCallbacks
    def get_order(self, request, order_uuid):
        Query(request).boolean("nested")
        order = yield self.call(request, commands.GetOrder, order_uuid=check_uuid(order_uuid))
        return respond(request, 200, alpaca.order(with_asset(order)))

    @app.route("/v2/orders/<string:order_uuid>", methods=["DELETE"])
    @defer.inlineCallbacks
    def cancel_order(self, request, order_uuid):
        order_uuid = check_uuid(order_uuid)
        try:
            yield self.call(request, commands.CancelOrder, order_uuid=order_uuid)
        except PaperTraderError as e:
            raise (yield self.naming_orders(request, e))
        return respond(request, 204, None)

    @app.route("/v2/orders/<string:order_uuid>", methods=["PATCH"])
    @defer.inlineCallbacks
    def replace_order(self, request, order_uuid):
        order_uuid = check_uuid(order_uuid)
        arguments = replace_request(body(request))
        if arguments["client_order_id"] is None:
            arguments["client_order_id"] = str(uuid.uuid4())  # (what to look for if its answer is lost)
        try:
            order = yield self.call(request, commands.ReplaceOrder, order_uuid=order_uuid, **arguments)
        except OutcomeUnknown as e:
            raise look_for(e, arguments["client_order_id"], "; sent again with that client_order_id it is not"
                                                            " replaced twice")
        except PaperTraderError as e:
            raise (yield self.naming_orders(request, e))
        return respond(request, 200, alpaca.order(with_asset(order)))

    # --- calendar and assets ---------------------------------------------------------------------------

    @app.route("/v2/calendar", methods=["GET"])
    @defer.inlineCallbacks
    def calendar(self, request):
        query = Query(request)
        # Any days: a range reaching past the years the calendar covers lists the days inside them.
        first, last = query.day("start", bounded=False), query.day("end", bounded=False)
        yield self.who(request)
        if first is not None and last is not None and last < first:
            raise invalid("end must not come before start")
        start = day_start(first) if first is not None else None
        end = day_start(last) if last is not None else None
        sessions, zone = [], "UTC"
        while True:
            answer = yield self.ask(request, commands.Calendar, start=start, end=end)
            zone = answer.get("timezone") or "UTC"
            sessions.extend(answer["sessions"])
            if len(answer["sessions"]) < MAX_SESSIONS or end is None:
                break
            start = day_start(date.fromisoformat(sessions[-1]["date"])) + timedelta(days=1)
        # The sessions after the last, for the last days' settlement dates.
        after = []
        if sessions:
            following = date.fromisoformat(sessions[-1]["date"]) + timedelta(days=1)
            answer = yield self.ask(request, commands.Calendar, start=day_start(following),
                                    end=day_start(following + timedelta(days=SETTLEMENT_LOOKAHEAD)))
            after = answer["sessions"]
        dates = [date.fromisoformat(s["date"]) for s in sessions + after]
        days = [alpaca.calendar_day(s, zone, settlement_date(dates, i)) for i, s in enumerate(sessions)]
        return respond(request, 200, days)

    @defer.inlineCallbacks
    def _assets(self, request):
        out, after = [], None
        while True:
            answer = yield self.ask(request, commands.AssetList, after=after)
            out.extend(answer["assets"])
            if len(answer["assets"]) < 200:
                return out
            after = answer["assets"][-1]["symbol"]

    @app.route("/v2/assets", methods=["GET"])
    @defer.inlineCallbacks
    def assets(self, request):
        query = Query(request)
        status = query.choice("status", ("active", "inactive"))
        asset_class = query.choice("asset_class", ("us_equity", "us_option", "crypto", "crypto_perp"))
        exchange = query.text("exchange", limit=16)
        attributes = query.listing("attributes", 20)
        yield self.who(request)
        assets = [alpaca.asset(a) for a in (yield self._assets(request))]
        if attributes:
            assets = []  # no asset here has Alpaca's attributes
        if status is not None:
            assets = [a for a in assets if a["status"] == status]
        if asset_class is not None:
            assets = [a for a in assets if a["class"] == asset_class]
        if exchange is not None:
            assets = [a for a in assets if a["exchange"] == exchange.upper()]
        return respond(request, 200, assets)

    @app.route("/v2/assets/<string:symbol_or_id>", methods=["GET"])
    @defer.inlineCallbacks
    def asset(self, request, symbol_or_id):
        yield self.who(request)
        if is_uuid(symbol_or_id):
            for a in (yield self._assets(request)):
                if a["id"] == symbol_or_id.lower():
                    return respond(request, 200, alpaca.asset(a))
            raise HttpError(404, 40410000, "asset not found")
        try:
            answer = yield self.ask(request, commands.AssetList, symbol=symbol_or_id[:32])
        except UnknownSymbol:
            raise HttpError(404, 40410000, f"asset not found: {symbol_or_id[:32]}")
        return respond(request, 200, alpaca.asset(answer["assets"][0]))

    # --- watchlists ---------------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def _watchlist(self, request, answer):
        """One watchlist with its assets, as Alpaca answers about one list."""
        by_symbol = {a["symbol"]: a for a in (yield self._assets(request))} if answer["symbols"] else {}
        assets = [alpaca.asset(by_symbol[s]) for s in answer["symbols"] if s in by_symbol]
        return respond(request, 200, alpaca.watchlist(answer, answer["account_uuid"], assets))

    @staticmethod
    def _by_name(request):
        name = Query(request).text("name", limit=256)
        if name is None:
            raise invalid("name is required (the watchlist's name)")
        return {"watchlist_name": name}

    @staticmethod
    def _by_id(watchlist_id):
        return {"watchlist_id": check_uuid(watchlist_id, "watchlist")}

    @app.route("/v2/watchlists", methods=["GET"])
    @defer.inlineCallbacks
    def watchlists(self, request):
        answer = yield self.call(request, commands.Watchlists)
        return respond(request, 200, [alpaca.watchlist(w, answer["account_uuid"]) for w in answer["watchlists"]])

    @app.route("/v2/watchlists", methods=["POST"])
    @defer.inlineCallbacks
    def create_watchlist(self, request):
        name, symbols = watchlist_request(body(request), name_required=True)
        answer = yield self.call(request, commands.CreateWatchlist, name=name, symbols=symbols)
        return (yield self._watchlist(request, answer))

    @defer.inlineCallbacks
    def _get_watchlist(self, request, which):
        answer = yield self.call(request, commands.GetWatchlist, **which)
        return (yield self._watchlist(request, answer))

    @defer.inlineCallbacks
    def _update_watchlist(self, request, which):
        name, symbols = watchlist_request(body(request))
        if name is None and symbols is None:
            raise invalid("give the watchlist a new name or its symbols (or both)")
        answer = yield self.call(request, commands.UpdateWatchlist, name=name, symbols=symbols, **which)
        return (yield self._watchlist(request, answer))

    @defer.inlineCallbacks
    def _add_to_watchlist(self, request, which):
        symbol = watchlist_symbol(body(request))
        answer = yield self.call(request, commands.AddToWatchlist, symbols=[symbol], **which)
        return (yield self._watchlist(request, answer))

    @defer.inlineCallbacks
    def _delete_watchlist(self, request, which):
        yield self.call(request, commands.DeleteWatchlist, **which)
        return respond(request, 204, None)

    @app.route("/v2/watchlists/<string:watchlist_id>", methods=["GET"])
    def get_watchlist(self, request, watchlist_id):
        return self._get_watchlist(request, self._by_id(watchlist_id))

    @app.route("/v2/watchlists/<string:watchlist_id>", methods=["PUT"])
    def update_watchlist(self, request, watchlist_id):
        return self._update_watchlist(request, self._by_id(watchlist_id))

    @app.route("/v2/watchlists/<string:watchlist_id>", methods=["POST"])
    def add_to_watchlist(self, request, watchlist_id):
        return self._add_to_watchlist(request, self._by_id(watchlist_id))

    @app.route("/v2/watchlists/<string:watchlist_id>", methods=["DELETE"])
    def delete_watchlist(self, request, watchlist_id):
        return self._delete_watchlist(request, self._by_id(watchlist_id))

    @app.route("/v2/watchlists/<string:watchlist_id>/<string:symbol>", methods=["DELETE"])
    @defer.inlineCallbacks
    def remove_from_watchlist(self, request, watchlist_id, symbol):
        which = self._by_id(watchlist_id)
        answer = yield self.call(request, commands.RemoveFromWatchlist, symbols=[symbol[:32]], **which)
        return (yield self._watchlist(request, answer))

    @app.route("/v2/watchlists:by_name", methods=["GET"])
    def get_watchlist_by_name(self, request):
        return self._get_watchlist(request, self._by_name(request))

    @app.route("/v2/watchlists:by_name", methods=["PUT"])
    def update_watchlist_by_name(self, request):
        return self._update_watchlist(request, self._by_name(request))

    @app.route("/v2/watchlists:by_name", methods=["POST"])
    def add_to_watchlist_by_name(self, request):
        return self._add_to_watchlist(request, self._by_name(request))

    @app.route("/v2/watchlists:by_name", methods=["DELETE"])
    def delete_watchlist_by_name(self, request):
        return self._delete_watchlist(request, self._by_name(request))

    # --- portfolio history and activities ----------------------------------------------------------------

    @app.route("/v2/account/portfolio/history", methods=["GET"])
    @defer.inlineCallbacks
    def portfolio_history(self, request):
        query = Query(request)
        period = query.text("period", limit=16)  # (its form is the command's to check)
        frame = query.choice("timeframe", ("1Min", "5Min", "15Min", "1H", "1D"))
        start, end, date_end = query.moment("start"), query.moment("end"), query.day("date_end")
        query.choice("intraday_reporting", ("market_hours", "extended_hours", "continuous"))
        query.choice("pnl_reset", ("per_day", "no_reset"))
        query.boolean("extended_hours")
        query.text("cashflow_types", limit=400)
        if end is None and date_end is not None:
            end = day_start(date_end) + timedelta(days=1)
        token = self.credential(request)
        if frame not in (None, "1D"):
            market = yield self.ask(request, commands.Clock)
            if market.get("mode") == "replay" and market.get("step") == "1d":
                yield self.worker.gateway.session(token, client_ip(request))  # the key is checked first
                raise invalid(f"timeframe {frame} needs intraday prices, and this market is a replay of whole"
                              " sessions (replay_step 1d: daily bars only); use timeframe=1D")
        answer = yield self.call(request, commands.PortfolioHistory, token=token, period=period, timeframe=frame,
                                 start=start, end=end)
        zone = None
        if answer["timeframe"] == "1D" and answer["timestamps"]:
            # Alpaca labels a daily point with its day at 00:00 in New York (the exchange's time zone).
            day = datetime.fromtimestamp(answer["timestamps"][0], timezone.utc).date()
            calendar = yield self.ask(request, commands.Calendar, start=day_start(day), end=day_start(day))
            zone = calendar.get("timezone") or "UTC"
        return respond(request, 200, alpaca.portfolio_history(answer, zone))

    @app.route("/v2/account/activities", methods=["GET"])
    def activities(self, request):
        query = Query(request)
        types = query.listing("activity_types", 40)
        category = query.choice("category", ("trade_activity", "non_trade_activity"))
        if types is not None and category is not None:
            raise invalid("give activity_types or category, not both")
        if category == "trade_activity":
            types = ["FILL"]
        elif category == "non_trade_activity":
            types = sorted((ACTIVITY_TYPES | OTHER_ACTIVITY_TYPES) - {"FILL"})
        return self._activities(request, query, types)

    @app.route("/v2/account/activities/<string:activity_type>", methods=["GET"])
    def activities_of(self, request, activity_type):
        return self._activities(request, Query(request), [activity_type])

    @defer.inlineCallbacks
    def _activities(self, request, query, types):
        if types is not None:
            for t in types:
                if t not in ACTIVITY_TYPES and t not in OTHER_ACTIVITY_TYPES:
                    raise invalid(f"unknown activity type {t[:16]!r}")
            types = sorted(set(types) & ACTIVITY_TYPES)
        day = query.day("date")
        after, until = query.moment("after"), query.moment("until")
        if day is not None:
            if after is not None or until is not None:
                raise invalid("give date, or after and until, not both")
            after, until = day_bounds(day)
        direction = query.choice("direction", ("asc", "desc"), "desc")
        size = query.integer("page_size", 100, 1, 100)
        page_token = query.text("page_token", limit=80)
        token = self.credential(request)
        if types == []:  # only kinds of activity this platform never makes
            yield self.worker.gateway.session(token, client_ip(request))
            return respond(request, 200, [])
        answer = yield self.call(request, commands.Activities, token=token, types=types, after=after, until=until,
                                 direction=direction, page_size=size, page_token=page_token)
        return respond(request, 200, [alpaca.activity(a, answer.get("account_uuid")) for a in answer["activities"]])

    # --- market data ---------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def _bars(self, request, symbols, query):
        """One page of bars (at most ``limit``, in answers of the master that fit AMP) and the next page's
        token."""
        frame = timeframe(query)
        (start, start_day), (end, end_day) = query.moment_or_day("start"), query.moment_or_day("end")
        days = {k: v.isoformat() for k, v in (("start_day", start_day), ("end_day", end_day)) if v is not None}
        limit = query.integer("limit", 1000, 1, MAX_BARS)
        sort = query.choice("sort", ("asc", "desc"), "asc")
        adjustment = query.choice("adjustment", ("raw", "split", "dividend", "all"))
        query.text("feed", limit=16)
        query.text("asof", limit=16)
        currency = query.text("currency", limit=8)
        if currency not in (None, "USD"):
            raise invalid("currency: prices are in USD only")
        page = decode_token(query.text("page_token", limit=200))
        yield self.who(request)
        bars, left = [], limit
        while left > 0:
            answer = yield self.ask(request, commands.Bars, symbols=symbols, timeframe=frame, start=start, end=end,
                                    limit=min(BAR_CHUNK, left), page_token=page, sort=sort, adjustment=adjustment,
                                    **days)
            bars.extend(answer["bars"])
            left -= len(answer["bars"])
            page = answer.get("next_page_token")
            if page is None:
                break
        return bars, encode_token(page)

    @app.route("/v2/stocks/bars", methods=["GET"])
    @defer.inlineCallbacks
    def bars(self, request):
        query = Query(request)
        symbols = query.symbols("symbols", MAX_SYMBOLS, required=True)
        bars, token = yield self._bars(request, symbols, query)
        by_symbol = {}
        for b in bars:
            by_symbol.setdefault(b["symbol"], []).append(alpaca.bar(b))
        return respond(request, 200, {"bars": by_symbol, "next_page_token": token})

    @app.route("/v2/stocks/<string:symbol>/bars", methods=["GET"])
    @defer.inlineCallbacks
    def symbol_bars(self, request, symbol):
        query = Query(request)
        symbol = single_symbol(symbol)
        bars, token = yield self._bars(request, [symbol], query)
        return respond(request, 200, {"bars": [alpaca.bar(b) for b in bars], "symbol": symbol,
                                      "next_page_token": token})

    @app.route("/v1/corporate-actions", methods=["GET"])
    @defer.inlineCallbacks
    def corporate_actions(self, request):
        query = Query(request)
        symbols = query.symbols("symbols", MAX_SYMBOLS)
        types = query.listing("types", 20)
        unknown = sorted(set(types or ()) - set(ALPACA_ACTION_TYPES))
        if unknown:
            raise invalid(f"types: {shorten(unknown[0])!r} is not one of {', '.join(ALPACA_ACTION_TYPES)}")
        if query.listing("ids", 100) is not None:
            raise invalid("ids is not supported here: filter by symbols, types, start and end")
        cusips = query.listing("cusips", 100)
        start, end = query.day("start"), query.day("end")
        limit = query.integer("limit", 100, 1, 1000)
        sort = query.choice("sort", ("asc", "desc"), "asc")
        page = decode_token(query.text("page_token", limit=200))
        yield self.who(request)
        actions = []
        if cusips is None:  # (no CUSIPs are known here: none matches)
            left = limit
            while left > 0:
                answer = yield self.ask(request, commands.CorporateActions, symbols=symbols, kinds=types,
                                        start=start and start.isoformat(), end=end and end.isoformat(),
                                        limit=min(200, left), page_token=page, sort=sort)
                actions.extend(answer["actions"])
                left -= len(answer["actions"])
                page = answer.get("next_page_token")
                if page is None:
                    break
        else:
            page = None
        groups = {}
        for action in actions:
            groups.setdefault(action["kind"] + "s", []).append(alpaca.corporate_action(action))
        return respond(request, 200, {"corporate_actions": groups, "next_page_token": encode_token(page)})

    @app.route("/v2/stocks/bars/latest", methods=["GET"])
    @defer.inlineCallbacks
    def latest_bars(self, request):
        query = Query(request)
        bars = yield self._latest_bars(request, query, query.symbols("symbols", MAX_SYMBOLS, required=True))
        return respond(request, 200, {"bars": bars})

    @defer.inlineCallbacks
    def _latest_bars(self, request, query, symbols):
        """{symbol: Alpaca's Bar} of each symbol's newest bar (symbols without one are left out)."""
        query.text("feed", limit=16)
        yield self.who(request)
        answer = yield self.ask(request, commands.LatestBars, symbols=symbols, timeframe="1Min")
        bars = {b["symbol"]: alpaca.bar(b) for b in answer["bars"]}
        missing = [s for s in symbols if s.upper() not in bars]
        if missing:  # no minute bar (a replay of daily history has none): the newest daily bar, not nothing
            answer = yield self.ask(request, commands.LatestBars, symbols=missing, timeframe="1Day")
            bars.update((b["symbol"], alpaca.bar(b)) for b in answer["bars"])
        return bars

    @defer.inlineCallbacks
    def _cached(self, request, query, symbols=None):
        """The worker's cached quotes of ``symbols`` (default: the request's; those without one are left out)."""
        if symbols is None:
            symbols = query.symbols("symbols", MAX_SYMBOLS, required=True)
        query.text("feed", limit=16)
        query.text("currency", limit=8)
        yield self.who(request)
        cache = self.worker.quotes
        return {s: cache.get(s) for s in symbols if cache.get(s) is not None}

    @app.route("/v2/stocks/quotes/latest", methods=["GET"])
    @defer.inlineCallbacks
    def latest_quotes(self, request):
        quotes = yield self._cached(request, Query(request))
        return respond(request, 200, {"quotes": {s: alpaca.quote(q) for s, q in quotes.items()}})

    @app.route("/v2/stocks/trades/latest", methods=["GET"])
    @defer.inlineCallbacks
    def latest_trades(self, request):
        quotes = yield self._cached(request, Query(request))
        return respond(request, 200, {"trades": {s: alpaca.trade(q) for s, q in quotes.items()}})

    @defer.inlineCallbacks
    def _snapshots(self, request, query, symbols=None):
        quotes = yield self._cached(request, query, symbols)
        out = {}
        if not quotes:
            return out
        symbols = sorted(quotes)
        minutes = yield self.ask(request, commands.LatestBars, symbols=symbols, timeframe="1Min")
        days = yield self.ask(request, commands.LatestBars, symbols=symbols, timeframe="1Day", count=2)
        minute = {b["symbol"]: b for b in minutes["bars"]}
        daily = {}
        for b in days["bars"]:
            daily.setdefault(b["symbol"], []).append(b)
        for s in symbols:
            recent = daily.get(s, [])
            out[s] = {"latestTrade": alpaca.trade(quotes[s]), "latestQuote": alpaca.quote(quotes[s]),
                      "minuteBar": alpaca.bar(minute[s]) if s in minute else None,
                      "dailyBar": alpaca.bar(recent[-1]) if recent else None,
                      "prevDailyBar": alpaca.bar(recent[-2]) if len(recent) > 1 else None}
        return out

    @app.route("/v2/stocks/snapshots", methods=["GET"])
    @defer.inlineCallbacks
    def snapshots(self, request):
        snapshots = yield self._snapshots(request, Query(request))
        return respond(request, 200, snapshots)

    # Alpaca's one-symbol paths (alpaca-py asks for several symbols; programs calling the API themselves, and
    # Alpaca's older SDKs, for one): the same answers, as {"symbol": ..., "quote": ...} (a snapshot's keys
    # beside "symbol"); a symbol with none is a 404, where the many-symbol answers leave it out.

    @app.route("/v2/stocks/<string:symbol>/quotes/latest", methods=["GET"])
    def symbol_latest_quote(self, request, symbol):
        return self._one_symbol(request, symbol, self._cached, lambda q: {"quote": alpaca.quote(q)})

    @app.route("/v2/stocks/<string:symbol>/trades/latest", methods=["GET"])
    def symbol_latest_trade(self, request, symbol):
        return self._one_symbol(request, symbol, self._cached, lambda q: {"trade": alpaca.trade(q)})

    @app.route("/v2/stocks/<string:symbol>/bars/latest", methods=["GET"])
    def symbol_latest_bar(self, request, symbol):
        return self._one_symbol(request, symbol, self._latest_bars, lambda bar: {"bar": bar})

    @app.route("/v2/stocks/<string:symbol>/snapshot", methods=["GET"])
    def symbol_snapshot(self, request, symbol):
        return self._one_symbol(request, symbol, self._snapshots, lambda snapshot: snapshot)

    @defer.inlineCallbacks
    def _one_symbol(self, request, symbol, read, shape):
        """A one-symbol path: ``read(request, query, [symbol])`` (a many-symbol path's reader), its answer for
        the symbol given to ``shape(answer)`` for the keys beside "symbol"."""
        symbol = single_symbol(symbol)
        answers = yield read(request, Query(request), [symbol])
        return respond(request, 200, dict(shape(one_of(answers, symbol)), symbol=symbol))


#: "order 17" in a message of the application layer, which names orders by their numbers (the command line's ids).
ORDER_NUMBER_RE = re.compile(r"\border ([0-9]{1,18})\b(?!-)")
#: At most this many orders named in one message are looked up (a message names one or two).
MAX_ORDERS_NAMED = 3


def single_symbol(text):
    symbol = text.upper()
    if not SYMBOL_RE.fullmatch(symbol):
        raise invalid(f"invalid symbol {shorten(text)!r}")
    return symbol


def one_of(answers, symbol):
    """``symbol``'s answer of a one-symbol path; none is a 404 (the many-symbol paths leave it out)."""
    if symbol not in answers:
        raise HttpError(404, 40410000, f"no data of {symbol}")
    return answers[symbol]


def with_asset(order):
    asset_id = asset_uuid(order["symbol"])
    if order.get("legs"):
        order = dict(order, legs=[dict(leg, asset_id=asset_id) for leg in order["legs"]])
    return dict(order, asset_id=asset_id)

