"""The Alpaca-compatible REST API of a worker (klein on twisted.web).

Each request: check its size, authenticate its API key (headers ``APCA-API-KEY-ID`` and
``APCA-API-SECRET-KEY``, or ``Authorization: Basic`` of ``key:secret``), count it against the
key's rate limit, parse and check its parameters, pass one command on to the master through the
worker's gateway (stamped with the time, the client's address and this worker, answered by the
same application layer as AMP), and answer in Alpaca's JSON.  A failure is always JSON
``{"code": <int>, "message": <text>}`` with the HTTP status Alpaca uses; never a redirect, an HTML
page or a traceback.
"""

import base64
import binascii
import json
from collections import deque
from decimal import Decimal, InvalidOperation

from klein import Klein
from twisted.internet import defer
from werkzeug.exceptions import MethodNotAllowed, NotFound

from papertrader import commands
from papertrader.errors import InvalidInput, PaperTraderError, Throttled
from papertrader.master.api_keys import credential
from papertrader.worker.http import alpaca

#: Our error codes -> (HTTP status, Alpaca's code).  Anything else: 500.
STATUS = {
    "invalid_input": (422, 42210000),
    "unknown_symbol": (422, 42210000),
    "quote_unavailable": (422, 42210000),
    "duplicate_order": (422, 42210000),
    "order_not_open": (422, 42210000),
    "insufficient_funds": (403, 40310000),
    "insufficient_position": (403, 40310000),
    "unknown_order": (404, 40410000),
    "not_logged_in": (401, 40110000),
    "bad_credentials": (401, 40110000),
    "throttled": (429, 42910000),
    "master_unavailable": (503, 50310000),
    "server_error": (500, 50010000),
}


class HttpError(Exception):
    """A refusal of the HTTP layer itself (before any command): its status, code and message."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class RateLimiter:
    """At most ``limit`` requests per key in any minute (the master counts them too)."""

    def __init__(self, clock, limit):
        self.clock = clock
        self.limit = limit
        self._recent = {}

    def count(self, key):
        now = self.clock.seconds()
        recent = self._recent.setdefault(key, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= self.limit:
            raise Throttled(f"{self.limit} requests in the last minute; wait {int(recent[0] + 61 - now)} s")
        recent.append(now)
        if len(self._recent) > 100_000:
            self._recent = {k: v for k, v in self._recent.items() if v and v[-1] > now - 60}


def client_ip(request):
    return getattr(request.getClientAddress(), "host", "unknown")


def respond(request, status, body):
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"X-Frame-Options", b"DENY")
    if status == 204:
        return b""
    return json.dumps(body, separators=(",", ":")).encode()


def error_body(code, message):
    return {"code": code, "message": message}


class RestApi:
    app = Klein()

    def __init__(self, worker, rate_limit=200):
        self.worker = worker
        self.limiter = RateLimiter(worker.clock, rate_limit)

    def resource(self):
        return self.app.resource()

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
        self.limiter.count(key)
        return credential(key, secret)

    def call(self, request, command, token=None, **arguments):
        """Pass ``command`` on to the master for this request's API key; fires with the answer."""
        arguments = {k: v for k, v in arguments.items() if v is not None}
        return self.worker.gateway.forward(command, dict(arguments, token=token or self.credential(request)),
                                           client_ip(request))

    @defer.inlineCallbacks
    def who(self, request):
        """(credential, username) of this request's API key, checked (a command with no account needs it)."""
        token = self.credential(request)
        username = yield self.worker.gateway.session(token, client_ip(request))
        return token, username

    def body(self, request):
        """The request's JSON object body ({} if there is none)."""
        if getattr(request, "too_large", False):
            raise HttpError(413, 41310000, "the request body is too large")
        raw = request.content.read() if request.content is not None else b""
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, 40010000, "the request body is not valid JSON")
        if not isinstance(data, dict):
            raise HttpError(422, 42210000, "the request body must be a JSON object")
        return data

    def query(self, request, name, default=None):
        values = request.args.get(name.encode())
        if not values:
            return default
        try:
            value = values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(422, 42210000, f"{name} is not UTF-8 text")
        if len(value) > 4096:
            raise HttpError(422, 42210000, f"{name} is too long")
        return value

    @app.handle_errors(NotFound)
    def not_found(self, request, failure):
        return respond(request, 404, error_body(40410000, "endpoint not found"))

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
        status, code = STATUS.get(e.code, (500, 50010000))
        return respond(request, status, error_body(code, e.message))

    @app.handle_errors(Exception)
    def unexpected(self, request, failure):
        self.worker.log.failure("HTTP {method} {path} failed", failure, method=request.method.decode("latin-1"),
                                path=request.path.decode("latin-1")[:200])
        return respond(request, 500, error_body(50010000, "internal error; it has been logged"))

    # --- account and clock ---------------------------------------------------------------------

    @app.route("/v2/account", methods=["GET"])
    @defer.inlineCallbacks
    def account(self, request):
        token, username = yield self.who(request)
        portfolio = yield self.call(request, commands.Portfolio, token=token)
        return respond(request, 200, alpaca.account(portfolio, username))

    @app.route("/v2/clock", methods=["GET"])
    @defer.inlineCallbacks
    def clock(self, request):
        yield self.who(request)
        answer = yield self.worker.gateway.forward(commands.Clock, {}, client_ip(request))
        return respond(request, 200, alpaca.clock(answer))

    # --- orders ----------------------------------------------------------------------------------

    @app.route("/v2/orders", methods=["POST"])
    @defer.inlineCallbacks
    def place_order(self, request):
        body = self.body(request)
        order = yield self.call(request, commands.PlaceOrder, **order_request(body))
        return respond(request, 200, alpaca.order(with_asset(order)))

    @app.route("/v2/orders/<string:order_uuid>", methods=["GET"])
    @defer.inlineCallbacks
    def get_order(self, request, order_uuid):
        order = yield self.call(request, commands.GetOrder, order_uuid=check_uuid(order_uuid))
        return respond(request, 200, alpaca.order(with_asset(order)))


def check_uuid(text):
    import uuid

    try:
        return str(uuid.UUID(text))
    except (ValueError, AttributeError):
        raise HttpError(404, 40410000, "order not found")


def with_asset(order):
    from papertrader.market.sources import asset_uuid

    return dict(order, asset_id=asset_uuid(order["symbol"]))


#: The body keys of POST /v2/orders this server understands (others are refused, by name).
ORDER_KEYS = {"symbol", "qty", "notional", "side", "type", "time_in_force", "limit_price", "stop_price",
              "trail_price", "trail_percent", "client_order_id", "extended_hours", "order_class", "position_intent"}


def decimal_text(name, value):
    """A JSON number or numeric string as the decimal text our commands take."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise HttpError(422, 42210000, f"{name} must be a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise HttpError(422, 42210000, f"{name} must be a number")
    if not number.is_finite():
        raise HttpError(422, 42210000, f"{name} must be a finite number")
    return format(number.normalize(), "f") if number == number.to_integral_value() else format(number, "f")


def text(name, value, limit=64):
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise HttpError(422, 42210000, f"{name} must be text of at most {limit} characters")
    return value


def order_request(body):
    """POST /v2/orders' body as PlaceOrder's arguments."""
    unknown = sorted(set(body) - ORDER_KEYS)
    if unknown:
        raise HttpError(422, 42210000, f"unknown or unsupported field {unknown[0]!r}"
                                       " (bracket, oco, oto and multi-leg orders are not simulated)")
    if body.get("extended_hours") not in (None, False):
        raise HttpError(422, 42210000, "extended hours trading is not simulated")
    if body.get("order_class") not in (None, "", "simple"):
        raise HttpError(422, 42210000, f"order_class {body['order_class']!r} is not simulated; use simple")
    side = text("side", body.get("side"))
    if side is None or text("symbol", body.get("symbol")) is None:
        raise HttpError(422, 42210000, "symbol and side are required")
    return dict(
        symbol=body["symbol"], side=side, type=text("type", body.get("type")) or "market",
        time_in_force=text("time_in_force", body.get("time_in_force")) or "day",
        quantity=decimal_text("qty", body.get("qty")), notional=decimal_text("notional", body.get("notional")),
        limit_price=decimal_text("limit_price", body.get("limit_price")),
        stop_price=decimal_text("stop_price", body.get("stop_price")),
        trail_price=decimal_text("trail_price", body.get("trail_price")),
        trail_percent=decimal_text("trail_percent", body.get("trail_percent")),
        client_order_id=text("client_order_id", body.get("client_order_id"), 128) or _random_id())


def _random_id():
    import uuid

    return str(uuid.uuid4())
