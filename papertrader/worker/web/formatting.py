"""Numbers and times as the website shows them: money with its currency, prices, quantities, percents.

Every value arrives as a Decimal (never a float) and leaves as text; the page right-aligns it.
Money is rounded by the one rule (papertrader/money.py), then grouped by thousands.
"""

from datetime import timezone
from decimal import Decimal

from papertrader.money import price_text, quantity_text, round_money

#: The currency of every account (Alpaca's paper accounts are in US dollars too).
CURRENCY = "USD"
SYMBOLS = {"USD": "$"}
ZERO = Decimal(0)


def _group(text):
    whole, dot, frac = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    whole = whole.lstrip("-")
    return f"{sign}{int(whole):,}{dot}{frac}"


def money(value, currency=CURRENCY, signed=False):
    """'$1,234.50', '-$12.00'; with ``signed``, '+$3.10' for a gain."""
    if value is None:
        return "—"
    value = round_money(Decimal(value))
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    return f"{sign}{SYMBOLS.get(currency, currency + ' ')}{_group(format(abs(value), 'f'))}"


def price(value, currency=CURRENCY):
    """'$187.25', '$0.1234' (2 to 4 decimals, as quoted)."""
    if value is None:
        return "—"
    value = Decimal(value)
    sign = "-" if value < 0 else ""
    return f"{sign}{SYMBOLS.get(currency, currency + ' ')}{_group(price_text(abs(value)))}"


def quantity(value):
    """'1,000', '2.5' (up to 6 decimals, no trailing zeros)."""
    if value is None:
        return "—"
    return _group(quantity_text(Decimal(value)))


def percent(value, signed=True):
    """'+1.25%' from 1.25 (a value already in percent)."""
    if value is None:
        return "—"
    value = Decimal(value).quantize(Decimal("0.01"))
    sign = "+" if signed and value > 0 else ""
    return f"{sign}{value}%"


def change_percent(now, before):
    """The change from ``before`` to ``now`` in percent (None without a base)."""
    if now is None or not before:
        return None
    return (100 * (Decimal(now) - Decimal(before)) / Decimal(before)).quantize(Decimal("0.01"))


def sign(value):
    """'up', 'down' or 'flat': the colour a change is shown in (with its sign, never by colour alone)."""
    if value is None or value == 0:
        return "flat"
    return "up" if value > 0 else "down"


def when(moment, seconds=False):
    """Market time as '2010-03-04 15:30 UTC'."""
    if moment is None:
        return "—"
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def day(moment):
    return "—" if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%d")


def number_text(value):
    """A Decimal as plain decimal text for the page's scripts (charts): never a float in Python."""
    if value is None:
        return None
    text = format(Decimal(value), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


STATUS = {
    "new": "open", "partially_filled": "partly filled", "filled": "filled", "canceled": "canceled",
    "expired": "expired", "replaced": "replaced", "rejected": "rejected",
}
TYPES = {"market": "Market", "limit": "Limit", "stop": "Stop", "stop_limit": "Stop limit",
         "trailing_stop": "Trailing stop"}
TIFS = {"day": "Day", "gtc": "Good till canceled", "ioc": "Immediate or cancel", "fok": "Fill or kill",
        "opg": "At the open", "cls": "At the close"}
