"""Reading what a market data provider answered: strict, typed, and never a float.

A provider's body is checked field by field; anything that is not what the
provider documents (not JSON, a missing key, a wrong type, a price that is not
a positive finite number, a high below a low, a time that does not parse) raises
:class:`Malformed`, a :class:`SourceUnavailable` whose message says what was
wrong -- never a ``KeyError`` or a traceback.  JSON numbers are read as
``Decimal`` (``parse_float=Decimal``) so no price ever passes through a float.
"""

import json
import re
from datetime import date, timezone
from decimal import Decimal

from papertrader.market.sources import SourceUnavailable
from papertrader.money import round_price
from papertrader.times import read_time


class Malformed(SourceUnavailable):
    """The provider answered, but not something we can trust; nothing of the answer is used."""


def _no_constant(name):
    raise ValueError(f"{name} is not a number")


def load_json(body, what):
    """Parse ``body`` (bytes) as JSON, numbers with a fraction as Decimal, NaN and Infinity refused."""
    try:
        return json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        start = body[:40].decode("utf-8", "replace").strip().replace("\n", " ")
        raise Malformed(f"{what} is not JSON ({type(e).__name__}; it starts with {start!r})")


def field(mapping, key, types, what, optional=False):
    """``mapping[key]`` if it is of ``types`` (a bool is never a number); None if optional and absent/null."""
    if not isinstance(mapping, dict):
        raise Malformed(f"{what} is a {type(mapping).__name__}, not an object")
    value = mapping.get(key)
    if value is None:
        if optional:
            return None
        raise Malformed(f"{what} has no {key!r}")
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise Malformed(f"{what}: {key!r} is a {type(value).__name__}")
    return value


def number(mapping, key, what, optional=False):
    """A JSON number as a finite Decimal."""
    value = field(mapping, key, (int, Decimal), what, optional)
    if value is None:
        return None
    value = Decimal(value)
    if not value.is_finite():
        raise Malformed(f"{what}: {key!r} is not a finite number")
    return value


def positive(value, what):
    """``value`` if it is a positive Decimal, else Malformed."""
    if value <= 0:
        raise Malformed(f"{what} is not positive ({value})")
    return value


def price(value, what):
    """A positive price rounded to the 1e-4 step (money.round_price)."""
    rounded = round_price(positive(value, what))
    if rounded <= 0:
        raise Malformed(f"{what} rounds to zero ({value})")
    return rounded


def whole(value, what):
    """A non-negative whole number (a volume) as int; a Decimal like 12.0 is accepted."""
    if value < 0 or value != value.to_integral_value():
        raise Malformed(f"{what} is not a whole non-negative number ({value})")
    return int(value)


_DOLLARS = re.compile(r"\$?([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(\.[0-9]+)?")
_COUNT = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+")


def dollars(text, what):
    """A price written for people: '$1,012.40' -> Decimal('1012.4000'); None for 'N/A' or ''."""
    text = text.strip()
    if text.upper() in ("", "N/A", "NA", "-"):
        return None
    match = _DOLLARS.fullmatch(text)
    if not match:
        raise Malformed(f"{what} {text[:20]!r} is not a positive price")
    return price(Decimal(match.group(1).replace(",", "") + (match.group(2) or "")), what)


def count(text, what):
    """A count written for people: '41,208,337' -> 41208337; None for 'N/A' or ''."""
    text = text.strip()
    if text.upper() in ("", "N/A", "NA", "-"):
        return None
    if not _COUNT.fullmatch(text):
        raise Malformed(f"{what} {text[:20]!r} is not a whole number")
    return int(text.replace(",", ""))


def timestamp(text, what, naive_zone=timezone.utc):
    """An RFC 3339 / ISO-8601 time as an aware datetime (fractions past microseconds cut off).

    A time without an offset is in ``naive_zone``; a date alone is its midnight.
    """
    try:
        moment = read_time(text, naive_zone)
    except ValueError:
        raise Malformed(f"{what} {text[:40]!r} is not a valid time")
    if moment is None:
        raise Malformed(f"{what} {str(text)[:40]!r} is not a time")
    return moment


def day(text, what):
    """A 'YYYY-MM-DD' date."""
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise Malformed(f"{what} {str(text)[:20]!r} is not a date")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Malformed(f"{what} {text!r} is not a valid date")
