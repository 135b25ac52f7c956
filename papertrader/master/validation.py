"""Validation of what clients send, before anything touches the database.  No I/O.

Each check raises a typed error (see papertrader.errors) with a message the
client can show.  Every size a client controls has a limit here.
"""

import difflib
import functools
import importlib.resources
import re
import unicodedata
from decimal import Decimal

from papertrader.errors import InvalidInput, NotLoggedIn, UnknownOrder, UnknownSymbol, WeakPassword
from papertrader.money import CENT, MAX_MONEY, MAX_QUANTITY, parse_quantity
from papertrader.passwords import normalize as normalize_password
from papertrader.trading.pretrade import MAX_PRICE

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{3,24}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MAX_CLIENT_ORDER_ID = 128
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_EMAIL = 254
WORKER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{20,128}$")


#: Characters of a session's device label kept (what the client says it is: shown in the sessions list only).
MAX_DEVICE = 100


def device(value):
    """What a client says it is ('Chrome on Linux', 'papertrader CLI on Linux'), as the sessions list shows it:
    printable characters only, runs of spaces as one, at most MAX_DEVICE characters; None if nothing is left.
    Never refused (it is the client's word, for the person to tell their sessions apart: no check relies on it)."""
    if not isinstance(value, str):
        return None
    text = " ".join("".join(c if c.isprintable() else " " for c in value[:4 * MAX_DEVICE]).split())
    return text[:MAX_DEVICE] or None


def username_skeleton(value):
    """A username with the letters that look alike made one, lowercased (what migration 0020 computes in SQL,
    in the same order): capital I and the digit 1 as l, the digit 0 as o, rn as m, vv as w.  Two usernames
    with one skeleton look alike on a leaderboard: 'aIice' and 'alice', 'b0b' and 'bob'."""
    return (value.replace("I", "l").lower().replace("1", "l").replace("0", "o").replace("rn", "m")
            .replace("vv", "w"))


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
        raise unknown_symbol(value, [s for s in assets if traded is None or traded(s)] or list(assets))
    return value


def unknown_symbol(value, named, why=""):
    """The UnknownSymbol of ``value`` (shown cut at 16 characters), naming the one meant first if it looks like a
    typo of one of ``named`` (APPL: did you mean AAPL?), then all of them; ``why``: said after it, in brackets."""
    value = str(value).strip().upper()
    shown = value if len(value) <= 16 else value[:16] + "..."
    near = difflib.get_close_matches(value, named, n=3, cutoff=0.6) if len(value) <= 16 else []
    meant = f"did you mean {' or '.join(near)}? " if near else ""
    return UnknownSymbol(f"unknown symbol {shown!r}{f' ({why})' if why else ''}: {meant}traded symbols are"
                         f" {', '.join(named) or 'none yet'}")


def side(value):
    if value not in ("buy", "sell"):
        raise InvalidInput("side must be 'buy' or 'sell'")
    return value


#: A decimal number as a client may write it: ASCII digits, at most one point, no sign, no exponent (its size
#: and decimals are then checked by name).
PLAIN_NUMBER_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
#: An amount as people write one ($180.50, 1,000, $25,000.00): a dollar sign and commas between thousands only, so
#: that a refusal can show the number to type (a comma anywhere else, 180,50, is not guessed at).
WRITTEN_AMOUNT_RE = re.compile(r"\$? *([0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?)")


def _plain(name, value):
    """``value`` as a Decimal, if it is written as a plain positive number; else InvalidInput naming ``name``."""
    text = "" if value is None else str(value).strip()
    if not PLAIN_NUMBER_RE.fullmatch(text):
        shown = text if len(text) <= 24 else text[:24] + "..."
        written = WRITTEN_AMOUNT_RE.fullmatch(text)
        advice = f": write it as {written.group(1).replace(',', '')}" if written else ""
        raise InvalidInput(f"{name} {shown!r} is not a plain positive number (digits and one point){advice}")
    return text, Decimal(text)


def _in_range(name, number, most):
    """The same words for every number from every client (the HTTP API's too): positive, at most ``most``."""
    if number <= 0:
        raise InvalidInput(f"{name} must be positive")
    if number > most:  # (before quantizing: quantizing a huge number raises InvalidOperation)
        raise InvalidInput(f"{name} must be at most {most}")


def quantity(value, name="quantity"):
    """A quantity of shares, written as prices are (digits with at most one point and digits after it;
    surrounding spaces are ignored, no sign, no exponent: ``1e3`` is not 1000 shares), then
    positive, at most MAX_QUANTITY and at most 6 decimals (:func:`papertrader.money.parse_quantity`).
    ``name``: the field as the client named it (the HTTP API's ``qty``), which each refusal names."""
    text, number = _plain(name, value)
    _in_range(name, number, MAX_QUANTITY)
    try:
        return parse_quantity(text)
    except ValueError as e:
        message = str(e)  # "quantity has more than 6 decimals": named as the client named it
        raise InvalidInput(name + message[len("quantity"):] if message.startswith("quantity") else message)


def decimal(name, value, places, most=MAX_MONEY):
    """Parse an optional positive decimal field (None or '' -> None) with at most ``places`` decimals, at
    most ``most``."""
    if value is None or value == "":
        return None
    _, number = _plain(name, value)
    _in_range(name, number, most)
    if number != number.quantize(Decimal(1).scaleb(-places)):
        raise InvalidInput(f"{name} has more than {places} decimals")
    return number


def price(name, value):
    """A limit, stop or trail price, at most the core's MAX_PRICE (tick sizes are the trading core's rule)."""
    return decimal(name, value, 4, MAX_PRICE)


def money_amount(name, value, most=MAX_MONEY):
    return decimal(name, value, 2, most)


def percent(name, value):
    """A trail percent: positive, less than 100 (the trading core's rule), at most 2 decimals; with its two
    decimals, as the order is read back ('5' placed answered 5, and the order then said 5.00)."""
    number = decimal(name, value, 2, Decimal(100))
    if number is not None and number >= 100:
        raise InvalidInput(f"{name} must be less than 100")
    return None if number is None else number.quantize(CENT)


def order_id(value):
    if not isinstance(value, int) or not 0 < value < 2**62:
        raise UnknownOrder(f"no order {value} on your account")
    return value


def client_order_id(value):
    """A client's id of an order, as Alpaca takes it: any text of 1-128 characters (``sma:MSFT:2024-01-02T09:30``,
    ``entry MSFT 1``), printable (no newline, tab or other control character), not beginning or ending with a
    space."""
    if (not isinstance(value, str) or not 1 <= len(value) <= MAX_CLIENT_ORDER_ID or not value.isprintable()
            or value != value.strip()):
        raise InvalidInput(f"client_order_id must be 1-{MAX_CLIENT_ORDER_ID} printable characters, not beginning"
                           " or ending with a space")
    return value


def limit(value, maximum):
    if not 1 <= value <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}")
    return value
