"""Validation of what clients send, before anything touches the database.  No I/O.

Each check raises a typed error (see papertrader.errors) with a message the
client can show.  Every size a client controls has a limit here.
"""

import functools
import importlib.resources
import re
import unicodedata
from decimal import Decimal

from papertrader.errors import InvalidInput, NotLoggedIn, UnknownOrder, UnknownSymbol, WeakPassword
from papertrader.money import parse_quantity
from papertrader.passwords import normalize as normalize_password

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{3,24}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
CLIENT_ORDER_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_EMAIL = 254
WORKER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{20,128}$")


def username(value):
    if not USERNAME_RE.fullmatch(value or ""):
        raise InvalidInput("username must be 3-24 characters: letters, digits, '_', '.', '-'")
    return value


def email(value):
    value = (value or "").strip()
    if len(value) > MAX_EMAIL or not EMAIL_RE.fullmatch(value):
        raise InvalidInput("email address is not valid")
    return value


@functools.lru_cache(maxsize=1)
def common_passwords():
    """The shipped list of commonly used passwords, lower-cased."""
    text = (importlib.resources.files("papertrader.master.data") / "common-passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def password(value):
    """A new password, by NIST SP 800-63B: 8 to 1024 characters, any printable Unicode, no composition
    rules, not a commonly used one.  Returns it normalized."""
    value = normalize_password(value)
    if len(value) < MIN_PASSWORD:
        raise WeakPassword(f"password must be at least {MIN_PASSWORD} characters")
    if len(value) > MAX_PASSWORD:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Cn", "Co") for ch in value):
        raise InvalidInput("password may contain only printable characters")
    if value.lower() in common_passwords():
        raise WeakPassword("that password is too common; choose another (a few unrelated words work well)")
    return value


def token(value):
    """Shape check only; whether it is a live session is the session store's business."""
    if not TOKEN_RE.fullmatch(value or ""):
        raise NotLoggedIn()
    return value


def symbol(value, assets, traded=None):
    """``value`` as one of ``assets``, or UnknownSymbol naming those ``traded`` now (default: all of them; those
    with a price, as a worker's quote says, so both name the same)."""
    value = (value or "").strip().upper()
    if value not in assets:
        shown = value if len(value) <= 16 else value[:16] + "..."
        named = [s for s in assets if traded is None or traded(s)] or list(assets)
        raise UnknownSymbol(f"unknown symbol {shown!r}: traded symbols are {', '.join(named)}")
    return value


def side(value):
    if value not in ("buy", "sell"):
        raise InvalidInput("side must be 'buy' or 'sell'")
    return value


#: A decimal number as a client may write it: ASCII digits, at most one point, no sign, no exponent.
DECIMAL_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,12})?$")
#: The same shape of any length (a quantity's size and length are parse_quantity's to refuse, by name).
PLAIN_NUMBER_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def quantity(value):
    """A quantity of shares, written as prices are (digits with at most one point and digits after it;
    surrounding spaces are ignored, no sign, no exponent: ``1e3`` is not 1000 shares), then
    positive, at most 6 decimals and at most MAX_QUANTITY (:func:`papertrader.money.parse_quantity`)."""
    text = "" if value is None else str(value).strip()
    if not PLAIN_NUMBER_RE.fullmatch(text):
        shown = text if len(text) <= 24 else text[:24] + "..."
        raise InvalidInput(f"quantity {shown!r} is not a plain positive number (digits and one point)")
    try:
        return parse_quantity(text)
    except ValueError as e:
        raise InvalidInput(str(e))


def decimal(name, value, places):
    """Parse an optional positive decimal field (None or '' -> None) with at most ``places`` decimals."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if not DECIMAL_RE.fullmatch(text):
        shown = text if len(text) <= 24 else text[:24] + "..."
        raise InvalidInput(f"{name} {shown!r} is not a plain positive number (digits and one point)")
    number = Decimal(text)
    if number <= 0:
        raise InvalidInput(f"{name} must be positive")
    if number != number.quantize(Decimal(1).scaleb(-places)):
        raise InvalidInput(f"{name} has more than {places} decimals")
    return number


def price(name, value):
    """A limit, stop or trail price (tick sizes are the trading core's rule)."""
    return decimal(name, value, 4)


def money_amount(name, value):
    return decimal(name, value, 2)


def percent(name, value):
    return decimal(name, value, 2)


def order_id(value):
    if not isinstance(value, int) or not 0 < value < 2**62:
        raise UnknownOrder(f"no order {value} on your account")
    return value


def client_order_id(value):
    if not CLIENT_ORDER_ID_RE.fullmatch(value or ""):
        raise InvalidInput("client_order_id must be 1-128 characters: letters, digits, '_', '-'")
    return value


def limit(value, maximum):
    if not 1 <= value <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}")
    return value
