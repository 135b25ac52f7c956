"""An account's book (cash and positions) and what one fill does to it.

``amount`` is the signed change in cash (negative for a buy), commission
included, so ``cash_after == cash_before + amount`` always holds.  A position's
cost includes the commissions paid to build it; selling part of a position
removes the same fraction of its cost, and the difference between what the sale
brought and the cost it removed is its realized profit or loss.

Books are values: :func:`apply_fill` returns a new book and never changes the old one.
"""

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Mapping

from papertrader.money import PRICE_STEP, ROUNDING, round_money

from .orders import Side

ZERO_MONEY = Decimal("0.00")


@dataclass(frozen=True)
class Position:
    symbol: str
    quantity: Decimal
    cost: Decimal

    @property
    def average_price(self) -> Decimal:
        if not self.quantity:
            return Decimal("0.0000")
        return (self.cost / self.quantity).quantize(PRICE_STEP, rounding=ROUNDING)


@dataclass(frozen=True)
class Book:
    """One account's cash and positions (symbol -> Position, only non-zero ones)."""

    account_id: int
    cash: Decimal
    positions: Mapping[str, Position] = field(default_factory=dict)

    def quantity(self, symbol):
        position = self.positions.get(symbol)
        return position.quantity if position is not None else Decimal(0)


@dataclass(frozen=True)
class Execution:
    """What one fill did to a book: the numbers the history shows."""

    side: Side
    symbol: str
    quantity: Decimal
    price: Decimal
    gross: Decimal
    commission: Decimal
    amount: Decimal
    cash_after: Decimal
    position_after: Decimal
    realized: Decimal


def gross_value(quantity, price):
    """Price times quantity, rounded to the cent: the single rounding of a fill."""
    return round_money(price * quantity)


def apply_fill(book: Book, side: Side, symbol, quantity: Decimal, price: Decimal, commission: Decimal):
    """The book after filling ``quantity`` at ``price`` (paying ``commission``), and the Execution.

    The caller has checked that the book can afford it (cash for a buy, shares
    for a sell); this raises ValueError if it cannot, rather than going negative.
    """
    gross = gross_value(quantity, price)
    held = book.positions.get(symbol)
    positions = dict(book.positions)
    if side is Side.BUY:
        amount = -(gross + commission)
        cash = book.cash + amount
        if cash < 0:
            raise ValueError("a buy may not take cash below zero")
        before_quantity = held.quantity if held else Decimal(0)
        before_cost = held.cost if held else ZERO_MONEY
        positions[symbol] = Position(symbol, before_quantity + quantity, before_cost - amount)
        realized = ZERO_MONEY
    else:
        if held is None or quantity > held.quantity:
            raise ValueError("a sell may not exceed the position")
        amount = gross - commission
        cash = book.cash + amount
        if cash < 0:
            raise ValueError("the commission may not take cash below zero")
        removed = held.cost if quantity == held.quantity else round_money(held.cost * quantity / held.quantity)
        realized = amount - removed
        if quantity == held.quantity:
            del positions[symbol]
        else:
            positions[symbol] = Position(symbol, held.quantity - quantity, held.cost - removed)
    after = positions.get(symbol)
    execution = Execution(side, symbol, quantity, price, gross, commission, amount, cash,
                          after.quantity if after else Decimal(0), realized)
    return replace(book, cash=cash, positions=positions), execution
