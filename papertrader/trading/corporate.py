"""Corporate actions: what splits and cash dividends do to books and open orders.

A **split** of ``ratio`` new shares per old share (4 for a 4-for-1 split, 0.5 for a
1-for-2 reverse split) takes effect on its date: every position's quantity is
multiplied by the ratio and its cost stays the same (so the average cost is
divided by it); an open order's quantity (and what it has filled) is multiplied
by the ratio and its limit, stop and trail prices divided by it, as brokers
adjust them.  Quantities are rounded down to 6 decimals; a reverse split that
leaves a fraction of a share keeps it (shares here are fractional).

A **cash dividend** of ``amount`` per share is owed to whoever holds the shares
at the end of the session before its ex-date, and is paid on its pay date (the
ex-date when no pay date is known): cash += round(quantity held x amount).
"""

from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_DOWN, Decimal
from typing import Optional

from papertrader.money import QUANTITY_STEP, round_money, round_price


@dataclass(frozen=True)
class Split:
    symbol: str
    date: date
    ratio: Decimal


@dataclass(frozen=True)
class Dividend:
    symbol: str
    ex_date: date
    amount: Decimal
    pay_date: Optional[date] = None

    @property
    def paid_on(self):
        return self.pay_date or self.ex_date


def _shares(value):
    return value.quantize(QUANTITY_STEP, rounding=ROUND_DOWN)


def split_book(book, split):
    """The book after ``split``: (new book, (quantity before, quantity after)) or (book, None) if not held."""
    held = book.positions.get(split.symbol)
    if held is None:
        return book, None
    quantity = _shares(held.quantity * split.ratio)
    positions = dict(book.positions)
    if quantity > 0:
        positions[split.symbol] = replace(held, quantity=quantity)
    else:
        del positions[split.symbol]
    return replace(book, positions=positions), (held.quantity, quantity)


def split_order(order, split):
    """An open order adjusted for ``split`` (an order of another symbol, or closed, comes back unchanged)."""
    if order.symbol != split.symbol or not order.open:
        return order
    r = split.ratio

    def price(value):
        return round_price(value / r) if value is not None else None

    return order.but(
        quantity=_shares(order.quantity * r) if order.quantity is not None else None,
        filled_quantity=_shares(order.filled_quantity * r),
        limit_price=price(order.limit_price), stop_price=price(order.stop_price),
        trail_price=price(order.trail_price), watermark=price(order.watermark))


def dividend_amount(quantity, dividend):
    """What holding ``quantity`` shares at the ex-date earns."""
    return round_money(quantity * dividend.amount)
