"""The ledger's pure logic: what a fill does to cash and positions.  No I/O.

``amount`` is the signed change in cash (negative for a buy), commission
included, so ``cash_after == cash_before + amount`` always holds.  A
position's cost includes the commissions paid to build it; selling part of a
position removes the same fraction of its cost.
"""

import copy
from dataclasses import dataclass, field
from decimal import Decimal

from papertrader.money import PRICE_STEP, ROUNDING, money_text, price_text, quantity_text, round_money


@dataclass
class Holding:
    quantity: Decimal
    cost: Decimal

    @property
    def average_price(self) -> Decimal:
        if not self.quantity:
            return Decimal("0.0000")
        return (self.cost / self.quantity).quantize(PRICE_STEP, rounding=ROUNDING)


@dataclass
class Book:
    """One account's cash and holdings, as far as a queue pass needs them."""

    cash: Decimal
    holdings: dict = field(default_factory=dict)

    def copy(self):
        return copy.deepcopy(self)


@dataclass(frozen=True)
class Fill:
    side: str
    symbol: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    amount: Decimal
    cash_after: Decimal


@dataclass(frozen=True)
class Rejection:
    code: str
    reason: str


def execute(book: Book, side, symbol, quantity: Decimal, price: Decimal, commission: Decimal):
    """Apply one market order to ``book`` at ``price``; return a Fill or a Rejection.

    The book is changed only when the order fills.
    """
    gross = round_money(price * quantity)
    if gross <= 0:
        return Rejection("order_too_small",
                         f"order value below one cent: {quantity_text(quantity)} {symbol} at {price_text(price)}")
    held = book.holdings.get(symbol)
    if side == "buy":
        cost = gross + commission
        if cost > book.cash:
            return Rejection(
                "insufficient_funds",
                f"insufficient funds: buying {quantity_text(quantity)} {symbol} at {price_text(price)}"
                f" costs {money_text(cost)} with commission; cash is {money_text(book.cash)}",
            )
        book.cash -= cost
        if held is None:
            held = book.holdings[symbol] = Holding(Decimal(0), Decimal("0.00"))
        held.quantity += quantity
        held.cost += cost
        amount = -cost
    elif side == "sell":
        have = held.quantity if held is not None else Decimal(0)
        if quantity > have:
            return Rejection(
                "insufficient_position",
                f"insufficient position: selling {quantity_text(quantity)} {symbol}"
                f" but holding {quantity_text(have)}"
                " (short selling is not allowed)",
            )
        proceeds = gross - commission
        if book.cash + proceeds < 0:
            return Rejection("insufficient_funds", "insufficient funds to pay the commission")
        if quantity == held.quantity:
            removed = held.cost
        else:
            removed = round_money(held.cost * quantity / held.quantity)
        held.quantity -= quantity
        held.cost -= removed
        if not held.quantity:
            del book.holdings[symbol]
        book.cash += proceeds
        amount = proceeds
    else:
        raise ValueError(f"unknown side {side!r}")
    return Fill(side, symbol, quantity, price, commission, amount, book.cash)
