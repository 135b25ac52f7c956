"""An account's book (cash and positions) and what one fill does to it.

``amount`` is the signed change in cash (negative for a buy), commission
included, so ``cash_after == cash_before + amount`` always holds.  A position's
cost includes the commissions paid to build it; selling part of a position
removes the same fraction of its cost, and the difference between what the sale
brought and the cost it removed is its realized profit or loss.  Covering a short works the same way from the other side.

A position's average entry price is what its fills paid per share (commissions not included, as brokers show
it): each fill that adds to the position averages its price in, on the 1e-4 price step; a fill that reduces it
leaves it as it was.

Books are values: :func:`apply_fill` returns a new book and never changes the old one.
"""

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Mapping, Optional

from papertrader.money import PRICE_STEP, ROUNDING, round_money, round_price

from .orders import Side

ZERO_MONEY = Decimal("0.00")


@dataclass(frozen=True)
class Position:
    symbol: str
    quantity: Decimal
    cost: Decimal
    #: The average price its fills paid per share (None: a position stored before it was kept).
    entry_price: Optional[Decimal] = None

    @property
    def average_cost(self) -> Decimal:
        """Cost per share, commissions included."""
        if not self.quantity:
            return Decimal("0.0000")
        return (self.cost / self.quantity).quantize(PRICE_STEP, rounding=ROUNDING)

    @property
    def average_price(self) -> Decimal:
        """The average entry price (the average cost for a position stored before entry prices were kept)."""
        return self.entry_price if self.entry_price is not None else self.average_cost


@dataclass(frozen=True)
class Book:
    """One account's cash and positions (symbol -> Position, only non-zero ones).

    ``margin`` holds the account's margin terms (papertrader.trading.margin.MarginRules) when it is a
    margin account, None for a cash account.  A short position has a negative quantity and a negative
    cost (minus what the short sales brought).  ``configuration``: what its owner set on it
    (papertrader.trading.configuration.Configuration; None: the defaults).
    """

    account_id: int
    cash: Decimal
    positions: Mapping[str, Position] = field(default_factory=dict)
    margin: Optional[object] = None
    configuration: Optional[object] = None

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

    The caller has checked that the book can afford it.  A cash account (``book.margin`` None) never
    goes below zero cash or shares; a margin account may borrow (negative cash) and sell short (a
    negative position, whose cost is minus the proceeds).  No fill turns a position from long to short
    or back.  This raises ValueError rather than break those rules.
    """
    buy = side is Side.BUY
    gross = gross_value(quantity, price)
    held = book.positions.get(symbol)
    held_quantity = held.quantity if held else Decimal(0)
    held_cost = held.cost if held else ZERO_MONEY
    amount = -(gross + commission) if buy else gross - commission
    cash = book.cash + amount
    if cash < 0 and book.margin is None:
        raise ValueError("a buy may not take cash below zero" if buy else
                         "the commission may not take cash below zero")
    positions = dict(book.positions)
    reducing = held_quantity != 0 and (held_quantity > 0) != buy
    if reducing:
        if quantity > abs(held_quantity):
            raise ValueError("a fill may not turn a position from long to short or back; close it first")
        whole = quantity == abs(held_quantity)
        removed = held_cost if whole else round_money(held_cost * quantity / abs(held_quantity))
        realized = amount - removed
        if whole:
            del positions[symbol]
        else:
            left = held_quantity - quantity if held_quantity > 0 else held_quantity + quantity
            positions[symbol] = Position(symbol, left, held_cost - removed, held.entry_price)
    else:
        if not buy and book.margin is None:
            raise ValueError("a sell may not exceed the position (a cash account cannot sell short)")
        after = held_quantity + quantity if buy else held_quantity - quantity
        if held_quantity:
            shares = abs(held_quantity)
            entry = round_price((held.average_price * shares + price * quantity) / (shares + quantity))
        else:
            entry = round_price(price)
        positions[symbol] = Position(symbol, after, held_cost - amount, entry)
        realized = ZERO_MONEY
    after = positions.get(symbol)
    execution = Execution(side, symbol, quantity, price, gross, commission, amount, cash,
                          after.quantity if after else Decimal(0), realized)
    return replace(book, cash=cash, positions=positions), execution
