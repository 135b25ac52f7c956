"""Orders: what a trader asks for (:class:`OrderRequest`) and what the platform keeps (:class:`Order`)."""

import enum
from dataclasses import MISSING, dataclass, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import Optional

ZERO = Decimal(0)


class Side(str, enum.Enum):
    BUY = "buy"
    SELL = "sell"


class OrderType(str, enum.Enum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(str, enum.Enum):
    #: Until the close of the session it is placed in (the next session if the market is closed).
    DAY = "day"
    #: Until filled or canceled.
    GTC = "gtc"
    #: Immediate or cancel: what fills in the first bar it meets is kept, the rest is canceled.
    IOC = "ioc"
    #: Fill or kill: the whole quantity in the first bar it meets, or nothing.
    FOK = "fok"
    #: At the opening price of the next session's open.
    OPG = "opg"
    #: At the closing price of the session's close.
    CLS = "cls"


class OrderClass(str, enum.Enum):
    """How an order is tied to others (papertrader/trading/contingent.py)."""

    #: On its own.
    SIMPLE = "simple"
    #: An entry with a take-profit and a stop-loss exit, held until the entry fills, one cancelling the other.
    BRACKET = "bracket"
    #: One cancels the other: a take-profit limit and a stop-loss exit of a position already held.
    OCO = "oco"
    #: One triggers the other: an entry with one exit (take-profit or stop-loss), held until the entry fills.
    OTO = "oto"


class Leg(str, enum.Enum):
    """The part an exit order plays in a bracket, OCO or OTO order."""

    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"


class Status(str, enum.Enum):
    #: An exit of a bracket or OTO order waiting for its entry to fill (not open: it trades nothing yet).
    HELD = "held"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    REJECTED = "rejected"

    @property
    def open(self):
        return self in OPEN


OPEN = frozenset({Status.NEW, Status.PARTIALLY_FILLED})
#: Orders not ended yet: the open ones and the held exits (the store keeps them together).
LIVE = OPEN | {Status.HELD}

def by_value(kind, value):
    """``kind(value)`` for one of these enums (the member whose value it is; ValueError if none), by a dict look-up:
    a fourth of the time (every order placed names four, every order read six)."""
    try:
        return _MEMBERS[kind][value]
    except (KeyError, TypeError):
        return kind(value)


_MEMBERS = {kind: {m.value: m for m in kind} for kind in (Side, OrderType, TimeInForce, OrderClass, Leg, Status)}

#: Which times in force each order type accepts (as US brokers do).
ALLOWED_TIF = {
    OrderType.MARKET: frozenset(TimeInForce),
    OrderType.LIMIT: frozenset(TimeInForce),
    OrderType.STOP: frozenset({TimeInForce.DAY, TimeInForce.GTC}),
    OrderType.STOP_LIMIT: frozenset({TimeInForce.DAY, TimeInForce.GTC}),
    OrderType.TRAILING_STOP: frozenset({TimeInForce.DAY, TimeInForce.GTC}),
}


@dataclass(frozen=True)
class OrderRequest:
    """A new order as the trader asked for it (already parsed: Decimals and enums, not text)."""

    account_id: int
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    quantity: Optional[Decimal] = None
    notional: Optional[Decimal] = None
    limit_price: Optional[Decimal] = None
    stop_price: Optional[Decimal] = None
    trail_price: Optional[Decimal] = None
    trail_percent: Optional[Decimal] = None
    #: A bracket, OCO or OTO order's exits (papertrader/trading/contingent.py): the take-profit's limit price,
    #: the stop-loss's stop price and (for a stop-limit exit) its limit price.
    order_class: "OrderClass" = OrderClass.SIMPLE
    take_profit: Optional[Decimal] = None
    stop_loss: Optional[Decimal] = None
    stop_loss_limit: Optional[Decimal] = None


@dataclass(frozen=True)
class Order:
    """An accepted order and everything that has happened to it so far.

    ``quantity`` is None only for a notional order that has not filled yet: its
    quantity is fixed at its first fill (``notional / price``, 6 decimals, down).
    ``filled_value`` is the exact sum of price x quantity of its fills (for the
    average price); ``commission`` what its fills have been charged so far.
    ``expires`` is when a ``day`` order expires; ``session_open``/``session_close``
    the session an ``opg``/``cls`` order trades at.  ``watermark`` is a trailing
    stop's high (sell) or low (buy) since it was placed.
    """

    id: Optional[int]
    account_id: int
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    status: Status
    created: datetime
    quantity: Optional[Decimal] = None
    notional: Optional[Decimal] = None
    limit_price: Optional[Decimal] = None
    stop_price: Optional[Decimal] = None
    trail_price: Optional[Decimal] = None
    trail_percent: Optional[Decimal] = None
    filled_quantity: Decimal = ZERO
    #: Shares splits added to (or took from) what the order's fills add up to (filled_quantity includes it).
    filled_adjustment: Decimal = ZERO
    filled_value: Decimal = ZERO
    commission: Decimal = Decimal("0.00")
    expires: Optional[datetime] = None
    session_open: Optional[datetime] = None
    session_close: Optional[datetime] = None
    watermark: Optional[Decimal] = None
    triggered: bool = False
    replaces: Optional[int] = None
    replaced_by: Optional[int] = None
    reason_code: Optional[str] = None
    reason: Optional[str] = None
    updated: Optional[datetime] = None
    #: The order's public id (a UUID, given by the store); ``id`` is its number.  The public ids of the
    #: orders it replaces and was replaced by (identity only: the rules never look at them).
    uuid: Optional[str] = None
    replaces_uuid: Optional[str] = None
    replaced_by_uuid: Optional[str] = None
    #: A bracket, OCO or OTO order's parts: its class, the part an exit plays (None: the entry, or a simple
    #: order) and the order its exits hang from (None for that order itself).
    order_class: OrderClass = OrderClass.SIMPLE
    leg: Optional[Leg] = None
    parent_id: Optional[int] = None
    parent_uuid: Optional[str] = None
    #: True if the order opens or adds to a position (a buy while not short, a short sale, a bracket's or
    #: OTO's entry), False if it closes one (a sale of shares held, a cover, an exit), as when it was
    #: accepted; None if that is not known (an order stored before schema version 16).
    opens: Optional[bool] = None
    #: When the order shows it was submitted (``created_at``, ``submitted_at``; what ``after`` and ``until``
    #: select by): ``created``, or, for an order placed at the same market time as the portfolio's previous one
    #: (a replay's time stands still between its updates), a microsecond after that one's, so that no two
    #: orders of a portfolio show the same time and paging by time skips none.  The rules use ``created``.
    #: Given by the store (None: not stored yet, or stored before schema version 19: ``created``).
    submitted: Optional[datetime] = None

    @property
    def shown_created(self):
        """The time the order shows it was submitted (see ``submitted``)."""
        return self.submitted or self.created

    @property
    def position_intent(self):
        """Alpaca's word for the above: buy_to_open, buy_to_close, sell_to_open or sell_to_close (None if
        not known)."""
        if self.opens is None:
            return None
        return f"{self.side.value}_to_{'open' if self.opens else 'close'}"

    @property
    def group(self):
        """The id every part of a bracket, OCO or OTO order shares (its first part's)."""
        return self.parent_id if self.parent_id is not None else self.id

    @property
    def live(self):
        return self.status in LIVE

    @property
    def open(self):
        return self.status in OPEN

    @property
    def remaining(self):
        """Shares still to fill (None while a notional order has no quantity yet)."""
        if self.quantity is None:
            return None
        return self.quantity - self.filled_quantity

    @property
    def average_price(self):
        """Average fill price, exact to the 1e-4 price step (None before the first fill)."""
        if not self.filled_quantity:
            return None
        from papertrader.money import round_price

        return round_price(self.filled_value / self.filled_quantity)

    def but(self, **changes):
        """The order with these fields changed: what ``dataclasses.replace`` makes (an Order has no
        ``__post_init__`` and every field is an ``__init__`` argument), without calling the frozen ``__init__``
        (36 ``object.__setattr__``: 8 us a copy, against 1 us; a placed order is copied twice, a market step
        copies every order it changes)."""
        if not _ORDER_FIELDS.issuperset(changes):
            return replace(self, **changes)  # (it says which name is not a field)
        new = object.__new__(self.__class__)
        values = new.__dict__
        values.update(self.__dict__)
        values.update(changes)
        return new


#: The names of an Order's fields (``Order.but``).
_ORDER_FIELDS = frozenset(f.name for f in fields(Order))


def _quick_init(cls):
    """An ``__init__`` for the frozen dataclass ``cls`` that does what the generated one does (the same
    parameters, defaults and field values), filling the new instance's ``__dict__`` at once instead of one
    ``object.__setattr__`` per field: an Order is made for every order accepted and every row read (4.2 us
    against 1.3 us).  For classes without ``__post_init__``, default factories or fields left out of ``__init__``."""
    assert not hasattr(cls, "__post_init__")
    parameters, defaults = [], {}
    for f in fields(cls):
        assert f.init and f.default_factory is MISSING
        if f.default is MISSING:
            parameters.append(f.name)
        else:
            defaults[f"_default_{f.name}"] = f.default
            parameters.append(f"{f.name}=_default_{f.name}")
    names = [f.name for f in fields(cls)]
    source = (f"def __init__(self, {', '.join(parameters)}):\n"
              f"    self.__dict__.update({', '.join(f'{n}={n}' for n in names)})\n")
    namespace = {}
    exec(source, defaults, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    return init


Order.__init__ = _quick_init(Order)
