"""What happens to orders: the events the core returns and the stores save and publish."""

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Optional

from .orders import Order


class EventKind(str, enum.Enum):
    ACCEPTED = "accepted"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Fill:
    """One execution of an order: its price, quantity, cost, and which model priced it."""

    order_id: int
    account_id: int
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    gross: Decimal
    commission: Decimal
    amount: Decimal
    cash_after: Decimal
    position_after: Decimal
    realized: Decimal
    model: str
    time: datetime


@dataclass(frozen=True)
class Event:
    """``order`` is the order as it stands after the event; ``fill`` is set for fills."""

    kind: EventKind
    order: Order
    time: datetime
    fill: Optional[Fill] = None
    reason_code: Optional[str] = None
    reason: Optional[str] = None
