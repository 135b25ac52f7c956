"""Decimal rules for money, prices and quantities: the one place that rounds.

Money is a Decimal rounded to the cent with ROUND_HALF_EVEN (no upward bias over
many fills).  In the database every amount is an integer in its minor unit:
cents for money, 1e-4 for prices, 1e-6 for quantities, so no float and no
database-specific NUMERIC behaviour ever touches a value.
"""

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

CENT = Decimal("0.01")
PRICE_STEP = Decimal("0.0001")
QUANTITY_STEP = Decimal("0.000001")
ROUNDING = ROUND_HALF_EVEN

#: Largest quantity one order may ask for; keeps every product far inside int64.
MAX_QUANTITY = Decimal("1000000000")
#: Largest configured amount of money (starting cash, commission): cents stay far inside int64.
MAX_MONEY = Decimal("1000000000000")
#: A quantity as people write it: ASCII digits, one optional '.', an optional exponent (no '_', no other
#: scripts' digits, which Decimal would take).  NaN and infinity are let through to be refused by name.
QUANTITY_RE = re.compile(r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|s?nan|inf(?:inity)?)",
                         re.ASCII | re.IGNORECASE)


def round_money(value: Decimal) -> Decimal:
    """Round an amount of money to the cent: the single rounding rule."""
    return value.quantize(CENT, rounding=ROUNDING)


def round_price(value: Decimal) -> Decimal:
    """Round a market price to its 1e-4 step (prices are quoted, not computed)."""
    return value.quantize(PRICE_STEP, rounding=ROUNDING)


def tick(price: Decimal) -> Decimal:
    """The price increment orders are priced in at ``price``: a cent from $1 up, 0.0001 below (Rule 612)."""
    return CENT if price >= 1 else PRICE_STEP


def round_to_tick(price: Decimal, rounding) -> Decimal:
    """``price`` on a valid tick, rounded the way given (ROUND_FLOOR or ROUND_CEILING: toward a side).

    A price that rounds across $1 is taken on the coarser tick (0.99995 up is 1.00, never 1.0000 with a
    sub-cent step that would then be refused)."""
    fine = price.quantize(PRICE_STEP, rounding=rounding)
    return fine.quantize(tick(fine), rounding=rounding)


def parse_quantity(text) -> Decimal:
    """Parse a client's quantity: positive, at most 6 decimals, at most MAX_QUANTITY.

    Raises ValueError with a message a user can read.
    """
    text = str(text).strip()
    shown = text if len(text) <= 32 else text[:32] + "..."
    if len(text) > 64:
        raise ValueError(f"quantity {shown!r} is too long")
    if not QUANTITY_RE.fullmatch(text):
        raise ValueError(f"quantity {shown!r} is not a number")
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValueError(f"quantity {shown!r} is not a number")
    if not value.is_finite():
        raise ValueError("quantity must be a finite number")
    if value <= 0:
        raise ValueError("quantity must be positive")
    # Check the size before quantizing: quantizing a huge value raises InvalidOperation.
    if value > MAX_QUANTITY:
        raise ValueError(f"quantity is larger than {MAX_QUANTITY}")
    if value != value.quantize(QUANTITY_STEP, rounding=ROUNDING):
        raise ValueError("quantity has more than 6 decimals")
    return value.quantize(QUANTITY_STEP)


def parse_money(text) -> Decimal:
    """Parse an amount of money from configuration: exact to the cent, 0 to MAX_MONEY."""
    try:
        value = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{text!r} is not an amount of money")
    if not value.is_finite() or value < 0:
        raise ValueError(f"{text!r} is not a non-negative amount of money")
    if value > MAX_MONEY:
        raise ValueError(f"{text!r} is larger than {MAX_MONEY}")
    if value != round_money(value):
        raise ValueError(f"{text!r} has more than 2 decimals")
    return round_money(value)


def to_cents(value: Decimal) -> int:
    return int(round_money(value) * 100)


def from_cents(cents: int) -> Decimal:
    return (Decimal(int(cents)) / 100).quantize(CENT)


def to_price_units(value: Decimal) -> int:
    return int(round_price(value) / PRICE_STEP)


def from_price_units(units: int) -> Decimal:
    return (Decimal(int(units)) * PRICE_STEP).quantize(PRICE_STEP)


def to_quantity_units(value: Decimal) -> int:
    return int(value.quantize(QUANTITY_STEP, rounding=ROUNDING) / QUANTITY_STEP)


def from_quantity_units(units: int) -> Decimal:
    return (Decimal(int(units)) * QUANTITY_STEP).quantize(QUANTITY_STEP)


def money_text(value: Decimal) -> str:
    """Money as a string with exactly two decimals: '1234.50'."""
    return format(round_money(value), "f")


def quantity_text(value: Decimal) -> str:
    """A quantity without trailing zeros or exponent: '10', '0.5'."""
    text = format(value.quantize(QUANTITY_STEP), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def shares_text(quantity: Decimal, shown=None) -> str:
    """'1 share', '6 shares', '0.5 shares' ('-1 share' short): ``quantity`` as ``quantity_text`` (or ``shown``,
    its text as a page writes it) with the word."""
    return f"{quantity_text(quantity) if shown is None else shown} share{'' if abs(quantity) == 1 else 's'}"


def price_text(value: Decimal) -> str:
    """A price with two to four decimals: '101.25', '0.1234'."""
    text = format(round_price(value), "f")
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(2, '0')}"


def quote_text(value: Decimal) -> str:
    """A price as brokers quote it to people: to the cent from $1 up ('187.25' for 187.2551, by the one rounding
    rule), two to four decimals below ('0.1234').  What was paid keeps its 1e-4 step (``price_text``)."""
    shown = price_text(abs(value))  # to the 1e-4 step first: 0.99996 is 1.00, with 2 decimals
    if Decimal(shown) >= 1:
        shown = money_text(abs(value))
    return f"-{shown}" if value < 0 else shown
