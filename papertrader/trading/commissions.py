"""Commission models: what an order's fills cost the trader.

A model answers one question: the total commission of an order that has
filled ``quantity`` shares worth ``value`` so far.  Each fill is charged the
increase of that total, so a minimum is paid once (at the first fill) and a
maximum is never exceeded however many partial fills an order has.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Optional

from papertrader.money import money_text, round_money

ZERO = Decimal("0.00")


class CommissionModel:
    name = "?"

    def total(self, quantity: Decimal, value: Decimal) -> Decimal:
        raise NotImplementedError

    def charge(self, paid: Decimal, quantity: Decimal, value: Decimal) -> Decimal:
        """The commission of a fill that brings the order to ``quantity``/``value``, ``paid`` so far."""
        return max(ZERO, self.total(quantity, value) - paid)

    def describe(self):
        return self.name


@dataclass(frozen=True)
class Zero(CommissionModel):
    name = "zero"

    def total(self, quantity, value):
        return ZERO


@dataclass(frozen=True)
class PerOrder(CommissionModel):
    """A fixed amount per order, charged at its first fill."""

    amount: Decimal
    name = "per_order"

    def total(self, quantity, value):
        return round_money(self.amount) if quantity > 0 else ZERO

    def describe(self):
        return f"per_order({money_text(self.amount)})"


@dataclass(frozen=True)
class PerShare(CommissionModel):
    """``rate`` per share, at least ``minimum`` and at most ``maximum`` per order."""

    rate: Decimal
    minimum: Decimal = ZERO
    maximum: Optional[Decimal] = None
    name = "per_share"

    def total(self, quantity, value):
        if quantity <= 0:
            return ZERO
        total = max(round_money(quantity * self.rate), self.minimum)
        if self.maximum is not None:
            total = min(total, self.maximum)
        return round_money(total)

    def describe(self):
        top = money_text(self.maximum) if self.maximum is not None else "none"
        return f"per_share({self.rate} min {money_text(self.minimum)} max {top})"


@dataclass(frozen=True)
class Percent(CommissionModel):
    """``percent`` of the value traded."""

    percent: Decimal
    name = "percent"

    def total(self, quantity, value):
        return round_money(value * self.percent / 100)

    def describe(self):
        return f"percent({self.percent}%)"
