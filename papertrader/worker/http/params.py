"""What an HTTP request to the REST API carries, checked: query parameters and JSON bodies.

alpaca-py sends GET and DELETE parameters in the query string (booleans as ``True``/``False``, lists
joined with commas, times as ISO 8601 with an offset such as ``+00:00``) and POST/PATCH parameters as a
JSON object (numbers as JSON numbers, ``qty: 1.0``).  Every check here raises :class:`HttpError` with
the status and Alpaca code of the refusal; what passes becomes the arguments of one command.
"""

import base64
import binascii
import json
import re
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation

from papertrader.errors import InvalidInput
from papertrader.market.periods import MINUTE_BUCKETS, MONTHS
from papertrader.market.service import MAX_STEP
from papertrader.master import validation
from papertrader.times import EARLIEST, LATEST, read_time
from papertrader.trading.pretrade import MAX_NOTIONAL, check_price

#: The longest value of one query parameter, in characters.
MAX_QUERY_VALUE = 4096
#: The days a day parameter that stands for a whole day (``date``, ``date_end``) may name.
FIRST_DAY, LAST_DAY = EARLIEST.date(), LATEST.date() - timedelta(days=1)


class HttpError(Exception):
    """A refusal of the HTTP layer itself (before any command): its status, code and message."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def invalid(message):
    """An invalid parameter: 422, Alpaca's 42210000."""
    return HttpError(422, 42210000, message)


class Query:
    """The query parameters of one request (the first value of each), checked as they are read."""

    def __init__(self, request):
        self.args = request.args

    def text(self, name, default=None, limit=MAX_QUERY_VALUE):
        values = self.args.get(name.encode())
        if not values:
            return default
        try:
            value = values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise invalid(f"{name} is not UTF-8 text")
        if len(value) > limit:
            raise invalid(f"{name} is too long (at most {limit} characters)")
        if any(ord(ch) < 32 for ch in value):
            raise invalid(f"{name} holds control characters")
        return value.strip() or default

    def boolean(self, name, default=False):
        """``True``/``true``/``1`` or ``False``/``false``/``0`` (alpaca-py sends Python's ``True``).  (Read at any
        length a query value may have, as ``integer``, ``choice`` and ``day`` are: one too long for what it takes is
        told what it takes, not that it is long.)"""
        value = self.text(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise invalid(f"{name} must be true or false")

    def integer(self, name, default, low, high):
        value = self.text(name)
        if value is None:
            return default
        if not re.fullmatch(r"[0-9]{1,10}", value) or not low <= int(value) <= high:
            raise invalid(f"{name} must be a whole number from {low} to {high}")
        return int(value)

    def choice(self, name, choices, default=None):
        value = self.text(name)
        if value is None:
            return default
        if value not in choices:
            raise invalid(f"{name} must be one of {', '.join(choices)}")
        return value

    def moment(self, name):
        """A time: RFC 3339 (``Z`` or an offset; without one, UTC) or a day (its start, UTC)."""
        value = self.text(name, limit=64)
        if value is None:
            return None
        return parse_moment(name, value)

    def moment_or_day(self, name):
        """(a time, None) of an RFC 3339 time, or (None, the day) of a day (YYYY-MM-DD: whose start depends on
        the market's time zone, which the master knows), or (None, None)."""
        value = self.text(name, limit=64)
        if value is None:
            return None, None
        moment = parse_moment(name, value)
        return (None, moment.date()) if len(value.strip()) == 10 else (moment, None)

    def day(self, name, bounded=True):
        """A day, YYYY-MM-DD: from FIRST_DAY to LAST_DAY, or (``bounded`` false: the calendar's ``start`` and
        ``end``, which list the days of a range that exist) any day Python knows."""
        value = self.text(name)
        if value is None:
            return None
        # Only YYYY-MM-DD: date.fromisoformat also takes 20240105 and the week date 2024-W01-5.
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise invalid(f"{name} must be a day, YYYY-MM-DD")
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise invalid(f"{name} must be a day, YYYY-MM-DD")
        if bounded and not FIRST_DAY <= day <= LAST_DAY:
            raise invalid(f"{name} is out of range: give a day from {FIRST_DAY} to {LAST_DAY}")
        return day

    def listing(self, name, most, limit=MAX_QUERY_VALUE):
        """A comma-separated list (empty items dropped), at most ``most`` items."""
        value = self.text(name, limit=limit)
        if value is None:
            return None
        items = [item.strip() for item in value.split(",") if item.strip()]
        if len(items) > most:
            raise invalid(f"{name}: at most {most} values")
        return items or None

    def symbols(self, name="symbols", most=200, required=False):
        items = self.listing(name, most)
        if items is None:
            if required:
                raise invalid(f"{name} is required (comma-separated symbols)")
            return None
        out = []
        for item in items:
            symbol = item.upper()
            if not SYMBOL_RE.fullmatch(symbol):
                raise invalid(f"invalid symbol {shorten(item)!r}")
            if symbol not in out:
                out.append(symbol)
        return out


#: A symbol as it may be written (letters, digits, '.', '-', '/'): anything else is refused before a lookup.
SYMBOL_RE = re.compile(r"[A-Z0-9][A-Z0-9./\-]{0,15}")


def shorten(text, most=24):
    return text if len(text) <= most else text[:most] + "..."


def parse_moment(name, value):
    value = re.sub(r" ([0-9]{2}:[0-9]{2})$", r"+\1", value.strip())  # a '+' sent unencoded became a space
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time(), timezone.utc)
        else:
            moment = read_time(value)
            if moment is None:
                raise ValueError(value)
    except ValueError:
        raise invalid(f"{name} must be a time in RFC 3339 (2024-01-02T15:04:05Z) or a day (2024-01-02)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc)  # (0001-01-01T00:00+01:00 is before the first time there is)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise invalid(f"{name} is out of range: give a time from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}")
    return moment


def day_start(day):
    return datetime.combine(day, time(), timezone.utc)


def day_bounds(day):
    """(after, until) of one UTC day for filters that keep times after ``after`` and before ``until``."""
    start = day_start(day)
    return start - timedelta(microseconds=1), start + timedelta(days=1)


def check_uuid(text, what="order"):
    """A path's id as a canonical UUID; anything else is no such thing (404)."""
    try:
        if len(text) > 64:
            raise ValueError
        return str(uuid.UUID(text))
    except ValueError:
        raise HttpError(404, 40410000, f"{what} not found")


def is_uuid(text):
    try:
        return len(text) <= 64 and bool(uuid.UUID(text))
    except ValueError:
        return False


# --- JSON bodies -----------------------------------------------------------------------------------


def body(request):
    """The request's JSON object body ({} if there is none)."""
    if getattr(request, "too_large", False):
        raise HttpError(413, 41310000, "the request body is too large (at most 64 kB)")
    raw = request.content.read() if request.content is not None else b""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise HttpError(400, 40010000, "the request body is not valid JSON")
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    return data


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


#: The longest numeric string a body may hold for a number, in characters.
MAX_NUMBER_TEXT = 1000


def decimal_text(name, value, check):
    """A JSON number or numeric string as the decimal text our commands take, refused here if ``check`` (one
    of :mod:`papertrader.master.validation`'s, which the command applies again) refuses it: named as the
    request names the field (``qty``, ``limit_price``), in the words every client gets."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise invalid(f"{name} must be a number")
    if isinstance(value, str) and len(value) > MAX_NUMBER_TEXT:
        raise invalid(f"{name} is too long (a number of at most {MAX_NUMBER_TEXT} characters)")
    written = str(value).strip()
    # Decimal() reads more than a number as JSON or Alpaca writes it: "1_0" (10) and digits of other scripts
    # ("١٢", 12).  Text is ASCII with no digit separator ("Infinity" and "NaN" pass here, refused below).
    if not written.isascii() or "_" in written:
        raise invalid(f"{name} must be a number")
    try:
        number = Decimal(written)
    except InvalidOperation:
        raise invalid(f"{name} must be a number")
    if not number.is_finite():
        raise invalid(f"{name} must be a finite number")
    if number <= 0:
        raise invalid(f"{name} must be positive")
    # Past 30 digits either side of the point a number is beyond every limit (size, decimals): check one of that
    # size instead of writing out, say, 1e999999999's billion digits (it is refused: never returned).
    if number.adjusted() > 30:
        number = Decimal("1e31")
    elif number.adjusted() < -30:
        number = Decimal("1e-31")
    shown = format(number.normalize(), "f") if number == number.to_integral_value() else format(number, "f")
    try:
        check(name, shown)
    except InvalidInput as e:
        raise invalid(e.message)
    return shown


def quantity_text(name, value):
    return decimal_text(name, value, lambda name, text: validation.quantity(text, name))


def price_text(name, value, tick=True):
    """A limit, stop or trail price's text, checked here as the trading core checks it (``tick``: its tick size
    too, which a replace's ``trail``, dollars or percent, does not have), so that a refusal names the field as
    the request does (``limit_price``)."""
    def check(name, text):
        validation.price(name, text)
        if tick:
            check_price(name, Decimal(text))

    return decimal_text(name, value, check)


def text(name, value, limit=64):
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise invalid(f"{name} must be text of at most {limit} characters")
    return value


def refuse_unknown(data, known, what):
    unknown = sorted(set(data) - known)
    if unknown:
        raise invalid(f"unknown or unsupported field {shorten(unknown[0], 40)!r} in {what}")


#: The body keys of POST /v2/orders this server understands (others are refused, by name).
ORDER_KEYS = {"symbol", "qty", "notional", "side", "type", "time_in_force", "limit_price", "stop_price",
              "trail_price", "trail_percent", "client_order_id", "extended_hours", "order_class", "position_intent",
              "take_profit", "stop_loss"}
ORDER_CLASSES = ("simple", "bracket", "oco", "oto")
POSITION_INTENTS = ("buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close")


def order_request(data):
    """POST /v2/orders' body as PlaceOrder's arguments (``client_order_id`` None if not given)."""
    if "legs" in data:
        raise invalid("legs: multi-leg (options) orders are not simulated; send simple, bracket, oco or oto orders")
    refuse_unknown(data, ORDER_KEYS, "an order")
    if data.get("extended_hours") not in (None, False):
        raise invalid("extended hours trading is not simulated; extended_hours must be false")
    order_class = data.get("order_class")
    if order_class not in (None, "") + ORDER_CLASSES:
        raise invalid(f"order_class {shorten(str(order_class))!r} is not simulated; use one of"
                      f" {', '.join(ORDER_CLASSES)}")
    take_profit = exit_prices("take_profit", data.get("take_profit"), {"limit_price"})
    stop_loss = exit_prices("stop_loss", data.get("stop_loss"), {"stop_price", "limit_price"})
    if data.get("position_intent") not in (None,) + POSITION_INTENTS:
        raise invalid(f"position_intent must be one of {', '.join(POSITION_INTENTS)}")
    side, symbol = text("side", data.get("side")), text("symbol", data.get("symbol"), 32)
    if not side or not symbol:
        raise invalid("symbol and side are required")
    quantity = quantity_text("qty", data.get("qty"))
    notional = decimal_text("notional", data.get("notional"),
                            lambda name, text: validation.money_amount(name, text, MAX_NOTIONAL))
    if (quantity is None) == (notional is None):
        raise invalid("give qty or notional (one of them)")
    return dict(
        symbol=symbol, side=side, type=text("type", data.get("type")) or "market",
        time_in_force=text("time_in_force", data.get("time_in_force")) or "day",
        quantity=quantity, notional=notional,
        limit_price=price_text("limit_price", data.get("limit_price")),
        stop_price=price_text("stop_price", data.get("stop_price")),
        trail_price=price_text("trail_price", data.get("trail_price")),
        trail_percent=decimal_text("trail_percent", data.get("trail_percent"), validation.percent),
        client_order_id=text("client_order_id", data.get("client_order_id"), 128),
        order_class=order_class or None, take_profit=take_profit.get("limit_price"),
        stop_loss=stop_loss.get("stop_price"), stop_loss_limit=stop_loss.get("limit_price"))


def exit_prices(name, value, keys):
    """A bracket's, OCO's or OTO's ``take_profit`` or ``stop_loss`` object as {its key: decimal text}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"{name} must be an object ({', '.join(sorted(keys))})")
    refuse_unknown(value, keys, name)
    return {key: price_text(f"{name}.{key}", value.get(key)) for key in keys if value.get(key) is not None}


REPLACE_KEYS = {"qty", "time_in_force", "limit_price", "stop_price", "trail", "client_order_id"}


def replace_request(data):
    """PATCH /v2/orders/{id}'s body as ReplaceOrder's arguments."""
    refuse_unknown(data, REPLACE_KEYS, "a replace")
    # (A replace that changes nothing is refused by the application layer, as from every client.)
    return dict(quantity=quantity_text("qty", data.get("qty")),
                time_in_force=text("time_in_force", data.get("time_in_force")),
                limit_price=price_text("limit_price", data.get("limit_price")),
                stop_price=price_text("stop_price", data.get("stop_price")),
                trail=price_text("trail", data.get("trail"), tick=False),  # dollars or percent: the command checks which
                client_order_id=text("client_order_id", data.get("client_order_id"), 128))


# --- market data ----------------------------------------------------------------------------------

#: Timeframes served, as alpaca-py writes them (and Alpaca's short aliases), and what the master calls them.
#: Alpaca's bar timeframes served (their short forms too): minutes that divide an hour, an hour, a day, a week,
#: and 1, 2, 3, 4, 6 or 12 months.
TIMEFRAMES = {**{f"{n}{unit}": f"{n}Min" for n in MINUTE_BUCKETS for unit in ("Min", "T")},
              "1Hour": "1Hour", "1H": "1Hour", "60Min": "1Hour", "60T": "1Hour", "1Day": "1Day", "1D": "1Day",
              "1Week": "1Week", "1W": "1Week", **{f"{n}{unit}": f"{n}Month" for n in MONTHS for unit in ("Month", "M")}}
TIMEFRAMES_SERVED = "1Min to 30Min (minutes that divide an hour), 1Hour, 1Day, 1Week, or 1, 2, 3, 4, 6 or 12Month"


def timeframe(query):
    value = query.text("timeframe", limit=16)
    if value is None:
        raise invalid(f"timeframe is required: {TIMEFRAMES_SERVED}")
    if value not in TIMEFRAMES:
        raise invalid(f"timeframe {shorten(value)!r} is not served here: use {TIMEFRAMES_SERVED}")
    return TIMEFRAMES[value]


def encode_token(token):
    """The master's page token as the opaque base64 text Alpaca's tokens look like."""
    return base64.urlsafe_b64encode(token.encode("utf-8")).decode("ascii") if token else None


def decode_token(text):
    if text is None:
        return None
    try:
        token = base64.urlsafe_b64decode(text.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise invalid("page_token: give the next_page_token of an earlier page")
    if "|" not in token or len(token) > 100:
        raise invalid("page_token: give the next_page_token of an earlier page")
    return token


# --- watchlists --------------------------------------------------------------------------------------

#: Most characters of a watchlist's name (Alpaca's), and most symbols of one list.
MAX_WATCHLIST_NAME = 64
MAX_WATCHLIST_SYMBOLS = 200


def _symbol_value(name, value):
    if not isinstance(value, str):
        raise invalid(f"{name} must be a symbol (a string)")
    symbol = value.strip().upper()
    if not SYMBOL_RE.fullmatch(symbol):
        raise invalid(f"invalid symbol {shorten(value)!r}")
    return symbol


def watchlist_request(data, name_required=False):
    """(name, symbols) of a watchlist's JSON body (``name``, ``symbols``): None for either left out."""
    unknown = sorted(set(data) - {"name", "symbols"})
    if unknown:
        raise invalid(f"unknown field {shorten(unknown[0])!r} (a watchlist has name and symbols)")
    name, symbols = data.get("name"), data.get("symbols")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_WATCHLIST_NAME * 4):
        raise invalid(f"name must be a string of at most {MAX_WATCHLIST_NAME} characters")
    if name_required and name is None:
        raise invalid("name is required")
    if symbols is not None:
        if not isinstance(symbols, list) or len(symbols) > MAX_WATCHLIST_SYMBOLS * 4:
            raise invalid(f"symbols must be a list of at most {MAX_WATCHLIST_SYMBOLS} symbols")
        symbols = [_symbol_value("each of symbols", s) for s in symbols]
    return name, symbols


#: What POST /v2/papertrader/market/{action} does (PaperTrader's own, for ``market_control`` accounts), and the
#: field each takes: a step's ``count`` of updates (1-260, default 1), a seek's ``date``.
MARKET_ACTIONS = {"pause": None, "resume": None, "step": "count", "seek": "date"}


def market_request(action, data, query):
    """The MarketControl ``when`` of a POST /v2/papertrader/market/{action}: its field from the JSON body, or
    else from the query (``?count=5``, for curl); None for pause and resume."""
    if action not in MARKET_ACTIONS:
        raise HttpError(404, 40410000, "no such market action: the actions are pause, resume, step and seek")
    field = MARKET_ACTIONS[action]
    unknown = sorted(set(data) - {field})
    if unknown:
        raise invalid(f"unknown field {shorten(unknown[0])!r} ({action} takes "
                      + (f"{field})" if field else "no fields)"))
    if field is None:
        return None
    value = data.get(field) if data else query.text(field, limit=32)
    if field == "count":
        if value is None:
            return "1"
        text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
        if not re.fullmatch(r"[0-9]{1,3}", text.strip()) or not 1 <= int(text) <= MAX_STEP:
            raise invalid(f"count must be a whole number of updates from 1 to {MAX_STEP}")
        return str(int(text))
    if value is None:
        raise invalid("date is required: the day to seek to, YYYY-MM-DD")
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.strip()):
        raise invalid("date must be a day, YYYY-MM-DD")
    return value.strip()


#: The account configurations a PATCH may change, and what each is on the wire (JSON).
CONFIGURATION_BOOLEANS = ("no_shorting", "suspend_trade", "fractional_trading", "ptp_no_exception_entry")
CONFIGURATION_TEXTS = ("dtbp_check", "pdt_check", "trade_confirm_email", "max_margin_multiplier")


def configuration_request(data):
    """The ConfigurePortfolio arguments of a PATCH /v2/account/configurations body: the fields it gives (null:
    unchanged).  Fields Alpaca may add later are left out (alpaca-py sends its whole model back)."""
    wanted = {}
    for name in CONFIGURATION_BOOLEANS:
        value = data.get(name)
        if value is not None:
            if not isinstance(value, bool):
                raise invalid(f"{name} must be true or false")
            wanted[name] = value
    for name in CONFIGURATION_TEXTS:
        value = data.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)) or len(str(value)) > 16:
                raise invalid(f"{name} must be a short string")
            wanted[name] = str(value)
    level = data.get("max_options_trading_level")
    if level is not None:
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < 2**31:
            raise invalid("max_options_trading_level must be a whole number")
        wanted["max_options_trading_level"] = level
    return wanted


def watchlist_symbol(data):
    """The ``symbol`` of a JSON body that adds one to a watchlist."""
    if "symbol" not in data:
        raise invalid("symbol is required")
    return _symbol_value("symbol", data["symbol"])
