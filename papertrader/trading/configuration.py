"""A portfolio's configuration: the switches its owner sets on it (Alpaca's account configurations).

Three act on the owner's orders:

- ``suspend_trade``: no new order and no replacement is taken (canceling still works; the platform's own
  orders still trade: a bracket's exits, a margin call's liquidation);
- ``no_shorting``: long only: no short sale (in a margin portfolio; a cash portfolio never sells short);
- ``fractional_trading`` off: whole shares only, and no notional (dollar amount) orders.

The others are kept and shown as set, for programs that set them, and change nothing here:
``dtbp_check`` and ``pdt_check`` (no pattern day trader rule is modelled), ``trade_confirm_email`` (no email
is sent), ``ptp_no_exception_entry`` (no publicly traded partnership is flagged), ``max_options_trading_level``
(no options are traded: 0).  ``max_margin_multiplier`` is the portfolio's own and cannot be changed: "2" for a
margin portfolio (Reg T's 50% initial margin), "1" for a cash one.

Stored as JSON text of the values that differ from the defaults (``stored``/``from_stored``).
"""

import json
from dataclasses import asdict, dataclass, fields, replace
from decimal import Decimal, InvalidOperation

from papertrader.errors import InsufficientPosition, InvalidInput, TradingSuspended
from papertrader.money import quantity_text

from .orders import Side

CHECKS = ("entry", "exit", "both")
EMAILS = ("all", "none")
MAX_OPTIONS_LEVEL = 3


@dataclass(frozen=True)
class Configuration:
    no_shorting: bool = False
    suspend_trade: bool = False
    fractional_trading: bool = True
    dtbp_check: str = "entry"
    pdt_check: str = "entry"
    trade_confirm_email: str = "all"
    ptp_no_exception_entry: bool = False
    max_options_trading_level: int = 0


DEFAULT = Configuration()
_BOOLEANS = ("no_shorting", "suspend_trade", "fractional_trading", "ptp_no_exception_entry")
_CHOICES = {"dtbp_check": CHECKS, "pdt_check": CHECKS, "trade_confirm_email": EMAILS}
NAMES = tuple(f.name for f in fields(Configuration))


def multiplier(margin):
    """The portfolio's margin multiplier as Alpaca writes it."""
    return "2" if margin else "1"


def view(configuration, margin):
    """The configuration as Alpaca's ``AccountConfiguration`` (``margin``: a margin portfolio)."""
    return dict(asdict(configuration), max_margin_multiplier=multiplier(margin))


def changed(configuration, changes, margin):
    """``configuration`` with ``changes`` (a dict of field names to values; None: unchanged), checked:
    InvalidInput names the first bad one."""
    for name, value in changes.items():
        if value is None:
            continue
        if name == "max_margin_multiplier":
            try:
                same = Decimal(str(value)) == Decimal(multiplier(margin))
            except (InvalidOperation, ValueError):
                same = False
            if not same:
                raise InvalidInput(
                    f"max_margin_multiplier is {multiplier(margin)} in a {'margin' if margin else 'cash'} portfolio"
                    " here and cannot be changed" + ("" if margin else " (make a margin portfolio for 2)"))
        elif name in _BOOLEANS:
            if not isinstance(value, bool):
                raise InvalidInput(f"{name} is true or false")
            configuration = replace(configuration, **{name: value})
        elif name in _CHOICES:
            if value not in _CHOICES[name]:
                raise InvalidInput(f"{name} is one of {', '.join(_CHOICES[name])}")
            configuration = replace(configuration, **{name: value})
        elif name == "max_options_trading_level":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_OPTIONS_LEVEL:
                raise InvalidInput(f"max_options_trading_level is a whole number from 0 to {MAX_OPTIONS_LEVEL}")
            configuration = replace(configuration, max_options_trading_level=value)
        else:
            raise InvalidInput(f"unknown configuration {name!r}: the configurations are"
                               f" {', '.join(NAMES + ('max_margin_multiplier',))}")
    return configuration


def stored(configuration):
    """JSON text of what differs from the defaults (None: nothing does)."""
    different = {name: value for name, value in asdict(configuration).items() if getattr(DEFAULT, name) != value}
    return json.dumps(different, sort_keys=True) if different else None


def from_stored(text):
    """The configuration ``stored`` wrote (None or empty: the defaults; names it does not know are left out)."""
    if not text:
        return DEFAULT
    values = json.loads(text)
    return replace(DEFAULT, **{name: value for name, value in values.items() if name in NAMES})


def check_trading(configuration):
    """Refuse a new order or a replacement while the owner has suspended trading."""
    if configuration is not None and configuration.suspend_trade:
        raise TradingSuspended("trading is suspended in this portfolio (its configuration's suspend_trade):"
                               " turn it off to place or replace orders")


def check_order(configuration, order, opens=None):
    """Refuse an order (an OrderRequest, before the core's checks, with ``opens``: whether it would open or add to
    a position, papertrader/trading/pretrade.py ``opens``; or an Order, a replacement) its portfolio's configuration does not allow: a short sale in long-only mode; with fractional
    trading off, an order that opens or adds to a position with a fraction of a share or a dollar amount (an
    order that closes one may sell or cover a fraction: a split leaves fractions, and shares bought before the
    setting changed must stay sellable)."""
    if configuration is None:
        return
    if opens is None:
        opens = order.opens
    if configuration.no_shorting and order.side is Side.SELL and opens:
        raise InsufficientPosition(f"short selling is turned off in this portfolio (its configuration's no_shorting):"
                                   f" selling {order.symbol} you do not hold is a short sale")
    if not configuration.fractional_trading and opens is not False:
        if order.notional is not None:
            raise InvalidInput("fractional trading is turned off in this portfolio (its configuration's"
                               " fractional_trading): give a quantity of whole shares, not a notional")
        if order.quantity is not None and order.quantity != order.quantity.to_integral_value():
            raise InvalidInput(f"fractional trading is turned off in this portfolio (its configuration's"
                               f" fractional_trading): {quantity_text(order.quantity)} is not a whole number of"
                               " shares")
