"""Cancel and replace: the trader changes their mind about an open order.

A cancel ends what is left of an open order; what already filled stays filled.
A replace ends the old order as ``replaced`` and accepts a new one in its place
(the same symbol, side and type; the changes given; by default the quantity the
old one had left), checked like any new order except that the old order's
reservation no longer counts.  The stores apply both in one transaction, so a
cancel or replace racing a market step either wins (nothing of the old order
fills afterwards) or finds the order as the step left it.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Optional

from papertrader.errors import OrderNotOpen
from papertrader.money import price_text, quantity_text

from . import contingent
from .events import Event, EventKind
from .orders import OrderClass, OrderRequest, Status, TimeInForce
from .pretrade import accept


@dataclass(frozen=True)
class Changes:
    """What a replace changes (None: keep the old order's value)."""

    quantity: Optional[Decimal] = None
    limit_price: Optional[Decimal] = None
    stop_price: Optional[Decimal] = None
    trail_price: Optional[Decimal] = None
    trail_percent: Optional[Decimal] = None
    time_in_force: Optional[TimeInForce] = None
    client_order_id: Optional[str] = None


def describe_end(order):
    """Why an order can no longer be changed, in a trader's words."""
    if order.status is Status.HELD:
        return (f"order {order.id} is held until its entry, order {order.parent_id}, fills: cancel the entry to"
                f" cancel the whole {order.order_class.value} order")
    filled = ""
    if order.filled_quantity:
        filled = (f"; {quantity_text(order.filled_quantity)} filled at an average"
                  f" {price_text(order.average_price)}")
    by = f" by order {order.replaced_by}" if order.status is Status.REPLACED and order.replaced_by else ""
    return f"order {order.id} is already {order.status.value}{by}{filled}"


def cancel(order, now, reason="canceled by you"):
    """The order canceled, and its event.  Raises OrderNotOpen if it is no longer open."""
    if not order.open:
        raise OrderNotOpen(describe_end(order))
    order = order.but(status=Status.CANCELED, reason_code="canceled", reason=reason, updated=now)
    return order, Event(EventKind.CANCELED, order, now, reason_code="canceled", reason=reason)


def cancel_all(orders, now, reason="canceled by you"):
    """[(order canceled, its event)] of every open or held order of ``orders`` (all parts of a bracket, OCO or
    OTO order go: nothing is left to open)."""
    out = []
    for order in orders:
        if order.live:
            order = order.but(status=Status.CANCELED, reason_code="canceled", reason=reason, updated=now)
            out.append((order, Event(EventKind.CANCELED, order, now, reason_code="canceled", reason=reason)))
    return out


#: Why an order placed after the time a replay was moved back to expires.
PLACED_LATER = "expired: market time was moved back to before it was placed"


def expire_placed_after(orders, moment):
    """[(order expired, its event)] of the open ``orders`` placed after ``moment``: a replay's market time was moved
    back to it (a seek, a loop), and an order must not trade on the bars of days before it was placed."""
    out = []
    for order in orders:
        if order.live and order.created > moment:
            expired = order.but(status=Status.EXPIRED, reason_code="expired", reason=PLACED_LATER, updated=moment)
            out.append((expired, Event(EventKind.EXPIRED, expired, moment, reason_code="expired",
                                       reason=PLACED_LATER)))
    return out


def replace(old, changes: Changes, book, open_orders, prices, now, sessions, rules, first=None):
    """(old order now replaced, the new order to store, [events]).

    The new order has no id yet; the store gives it one and links the two
    (``old.replaced_by``, ``new.replaces``).  Raises OrderNotOpen, or the typed
    errors of :func:`accept` if the new order would not be accepted.  An exit of a bracket, OCO or OTO order
    (open, or held) changes its prices only (contingent.replace_exit; ``open_orders`` holds its group).
    ``first``: called with the new order's request before :func:`accept` checks it (a game's rules, which a new
    order meets first too: its refusal says why before buying power does); not for an exit.
    """
    if not changes.client_order_id:
        raise ValueError("a replacement needs its own client_order_id")
    if old.order_class is not OrderClass.SIMPLE and old.live:
        new = contingent.replace_exit(old, changes, [o for o in open_orders if o.group == old.group],
                                       prices.get(old.symbol), now)
        ended = old.but(status=Status.REPLACED, reason_code="replaced", reason="replaced by a new order", updated=now)
        return ended, new, [Event(EventKind.REPLACED, ended, now, reason_code="replaced", reason="replaced")]
    if not old.open:
        raise OrderNotOpen(describe_end(old))
    quantity = changes.quantity
    notional = None
    if quantity is None:
        if old.quantity is None:
            notional = old.notional
        else:
            quantity = old.quantity - old.filled_quantity
    trail_price, trail_percent = old.trail_price, old.trail_percent
    if changes.trail_price is not None:
        trail_price, trail_percent = changes.trail_price, None
    elif changes.trail_percent is not None:
        trail_price, trail_percent = None, changes.trail_percent
    request = OrderRequest(
        account_id=old.account_id, client_order_id=changes.client_order_id,
        symbol=old.symbol, side=old.side, type=old.type,
        time_in_force=changes.time_in_force or old.time_in_force, quantity=quantity, notional=notional,
        limit_price=changes.limit_price if changes.limit_price is not None else old.limit_price,
        stop_price=changes.stop_price if changes.stop_price is not None else old.stop_price,
        trail_price=trail_price, trail_percent=trail_percent)
    if first is not None:
        first(request)
    new = accept(request, book, open_orders, prices, now, sessions, rules, replaces=old)
    if old.triggered and new.stop_price == old.stop_price:
        new = new.but(triggered=True)  # a triggered stop stays triggered unless its stop moved
    if new.watermark is not None and old.watermark is not None and changes.trail_price is None \
            and changes.trail_percent is None:
        new = new.but(watermark=old.watermark)
    ended = old.but(status=Status.REPLACED, reason_code="replaced", reason="replaced by a new order", updated=now)
    return ended, new, [Event(EventKind.REPLACED, ended, now, reason_code="replaced", reason="replaced")]
