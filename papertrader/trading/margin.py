"""Margin accounts: borrowing, short selling, margin calls and forced liquidation.

A cash account spends only its cash and sells only shares it holds.  A margin account may borrow
(its cash goes below zero) and sell short (a position below zero), within these rules, all
computed at the last prices:

    long value   = sum of quantity x price over long positions
    short value  = sum of |quantity| x price over short positions
    equity       = cash + long value - short value
    initial requirement     = initial x (long value + short value)               (Reg T: initial = 50%)
    maintenance requirement = maintenance_long x long value + maintenance_short x short value
    buying power = max(0, equity - initial requirement) / initial                (rounded down to the cent)

An order that opens or adds to a position (a buy while long or flat, a short sale while short or
flat) uses buying power equal to its value; an order that reduces a position (a sale of shares held,
a buy to cover) needs none.  One order never turns a long position short or a short one long: close
first, then open (as Alpaca does).

When equity falls below the maintenance requirement the account gets a **margin call** for the
difference.  It is met when equity is back at or above the requirement (a deposit is not possible in
paper trading: by selling, covering, or prices moving).  If it is still not met ``call_deadline``
after it was made, the positions are **liquidated** in this documented order until the requirement
is met at the last prices: the position with the largest maintenance requirement first (ties: short
before long, then by symbol); the last one only in part, rounded up to a whole share (or the whole
position).  Liquidation orders are market orders, day, placed by the platform.

Short positions may pay a **borrow fee**: short value x annual rate / 360 per calendar day, charged
once a day, rounded to the cent, on the shorts held overnight (before the day's first step).
"""

from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import List, Mapping, Optional

from papertrader.money import CENT, ROUNDING, round_money
from papertrader.trading.corporate import Split

ZERO_MONEY = Decimal("0.00")


@dataclass(frozen=True)
class MarginRules:
    """The margin terms of an account (a deployment's or a game's choice)."""

    initial: Decimal = Decimal("0.50")
    maintenance_long: Decimal = Decimal("0.25")
    maintenance_short: Decimal = Decimal("0.30")
    #: How long a margin call may stay unmet before the platform liquidates.
    call_deadline: timedelta = timedelta(days=2)
    #: Annual borrow fee on short positions, as a fraction (0.03 = 3% a year); 0 for none.
    borrow_rate: Decimal = Decimal("0")

    def __post_init__(self):
        for name in ("initial", "maintenance_long", "maintenance_short"):
            value = getattr(self, name)
            if not Decimal("0") < value <= Decimal("1"):
                raise ValueError(f"margin {name} must be above 0 and at most 1 (a fraction), not {value}")
        if self.maintenance_long > self.initial or self.maintenance_short > self.initial:
            raise ValueError("maintenance margin may not exceed the initial margin")
        if not Decimal("0") <= self.borrow_rate <= Decimal("1"):
            raise ValueError("the borrow rate is a yearly fraction from 0 to 1")
        if self.call_deadline < timedelta(0):
            raise ValueError("the margin call deadline may not be negative")


@dataclass(frozen=True)
class Valuation:
    """An account marked to the last prices."""

    cash: Decimal
    long_value: Decimal
    short_value: Decimal
    #: Symbols held without a known price (valued at their cost; see ``value``).
    unpriced: tuple = ()

    @property
    def equity(self):
        return self.cash + self.long_value - self.short_value

    @property
    def gross(self):
        return self.long_value + self.short_value


def position_value(position, prices):
    """|quantity| x last price, rounded to the cent; the cost basis when no price is known."""
    price = prices.get(position.symbol)
    if price is None:
        return abs(position.cost)
    return round_money(abs(position.quantity) * price)


def value(book, prices: Mapping[str, Decimal]) -> Valuation:
    long_value = short_value = ZERO_MONEY
    unpriced = []
    for position in book.positions.values():
        if position.symbol not in prices:
            unpriced.append(position.symbol)
        worth = position_value(position, prices)
        if position.quantity > 0:
            long_value += worth
        else:
            short_value += worth
    return Valuation(book.cash, long_value, short_value, tuple(sorted(unpriced)))


def initial_requirement(valuation: Valuation, rules: MarginRules):
    return round_money(rules.initial * valuation.gross)


def maintenance_requirement(valuation: Valuation, rules: MarginRules):
    return round_money(rules.maintenance_long * valuation.long_value + rules.maintenance_short * valuation.short_value)


def buying_power(book, prices, rules: MarginRules):
    """Reg T buying power: the excess of equity over the initial requirement, divided by the initial rate."""
    valuation = value(book, prices)
    excess = valuation.equity - initial_requirement(valuation, rules)
    if excess <= 0:
        return ZERO_MONEY
    return (excess / rules.initial).quantize(CENT, rounding=ROUND_DOWN)


def opens(side_is_buy: bool, held: Decimal):
    """Does an order of this side open or add to a position (True), or reduce one (False)?"""
    return held >= 0 if side_is_buy else held <= 0


@dataclass(frozen=True)
class Status:
    """Where a margin account stands: its equity, requirements and the call (0 if none is due)."""

    equity: Decimal
    initial: Decimal
    maintenance: Decimal
    buying_power: Decimal
    deficit: Decimal

    @property
    def called(self):
        return self.deficit > 0


def status(book, prices, rules: MarginRules) -> Status:
    valuation = value(book, prices)
    maintenance = maintenance_requirement(valuation, rules)
    deficit = max(ZERO_MONEY, maintenance - valuation.equity)
    return Status(valuation.equity, initial_requirement(valuation, rules), maintenance,
                  buying_power(book, prices, rules), deficit)


@dataclass(frozen=True)
class Liquidation:
    """One order the platform places to meet a margin call."""

    symbol: str
    side: str  # "sell" (a long) or "buy" (a cover)
    quantity: Decimal


def _rate(position, rules):
    return rules.maintenance_long if position.quantity > 0 else rules.maintenance_short


def liquidation(book, prices, rules: MarginRules) -> List[Liquidation]:
    """The orders that bring equity back to the maintenance requirement at the last prices (see the
    module's docstring for the order).  Empty if no call is due.

    Closing a position at its last price leaves equity unchanged and lowers the requirement by
    rate x its value, so a deficit D needs positions worth D / rate closed.  (Closing costs a spread
    and commissions at the fill; the next review catches what that leaves.)
    """
    deficit = status(book, prices, rules).deficit
    if deficit <= 0:
        return []
    priced = [p for p in book.positions.values() if prices.get(p.symbol)]
    priced.sort(key=lambda p: (-_rate(p, rules) * position_value(p, prices), p.quantity > 0, p.symbol))
    orders = []
    for position in priced:
        if deficit <= 0:
            break
        price, rate = prices[position.symbol], _rate(position, rules)
        held = abs(position.quantity)
        quantity = min(held, max(Decimal(1), (deficit / (rate * price)).to_integral_value(rounding=ROUND_CEILING)))
        # The requirement is rounded once, on the sum, so the estimate can fall a share short: check it
        # on the book as the close leaves it.
        after = _closed(book, position, quantity, price)
        while status(after, prices, rules).deficit > 0 and quantity < held:
            quantity += 1
            after = _closed(book, position, quantity, price)
        orders.append(Liquidation(position.symbol, "sell" if position.quantity > 0 else "buy", quantity))
        book = after
        deficit = status(book, prices, rules).deficit
    if deficit > 0:  # positions without a price: close them whole too
        for position in sorted(book.positions.values(), key=lambda p: p.symbol):
            if not prices.get(position.symbol):
                orders.append(Liquidation(position.symbol, "sell" if position.quantity > 0 else "buy",
                                          abs(position.quantity)))
    return orders


def _closed(book, position, quantity, price):
    """The book after closing `quantity` of `position` at `price` (no commission)."""
    sign = 1 if position.quantity > 0 else -1
    left = position.quantity - sign * quantity
    positions = dict(book.positions)
    if left:
        positions[position.symbol] = replace(position, quantity=left,
                                             cost=round_money(position.cost * left / position.quantity))
    else:
        del positions[position.symbol]
    return replace(book, cash=book.cash + sign * round_money(quantity * price), positions=positions)


@dataclass(frozen=True)
class Review:
    """What the platform does about one margin account after a market step."""

    status: Status
    #: When the current call was made (None: no call open).
    called_since: Optional[object]
    #: Orders to place now (the deadline passed with the call unmet).
    liquidate: tuple = ()
    #: True when a call was made at this review; False when an open call was met.
    new_call: bool = False
    met: bool = False


def review(book, prices, rules: MarginRules, called_since, now, liquidating=False) -> Review:
    """Make, keep, meet or enforce a margin call.  ``called_since`` is when the account's open call
    was made (None if none); ``liquidating`` is True while earlier liquidation orders are still open
    (then no more are placed)."""
    current = status(book, prices, rules)
    if not current.called:
        return Review(current, None, met=called_since is not None)
    if called_since is None:
        return Review(current, now, new_call=True)
    if now - called_since >= rules.call_deadline and not liquidating:
        return Review(current, called_since, tuple(liquidation(book, prices, rules)))
    return Review(current, called_since)


def overnight_shorts(book, actions=()):
    """The short positions a book held overnight, before a market day's first step, in the shares of after that
    step's splits (``actions``: its corporate actions): what the day's borrow fee counts (a short covered at the
    open was held overnight; one opened today was not)."""
    splits = {a.symbol: a for a in actions if isinstance(a, Split)}
    return [replace(p, quantity=splits[p.symbol].shares(p.quantity)) if p.symbol in splits else p
            for p in book.positions.values() if p.quantity < 0]


def borrow_fee(book, prices, rules: MarginRules, days=1):
    """What ``days`` calendar days of borrowing the account's short positions cost (to the cent)."""
    if not rules.borrow_rate or days <= 0:
        return ZERO_MONEY
    short_value = value(book, prices).short_value
    return (short_value * rules.borrow_rate * days / 360).quantize(CENT, rounding=ROUNDING)
