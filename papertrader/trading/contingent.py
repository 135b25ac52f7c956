"""Bracket, OCO and OTO orders: orders tied to each other.

- **Bracket**: an entry (market, limit, stop or stop-limit; ``day`` or ``gtc``) with two exits on the other
  side, a take-profit (a limit order) and a stop-loss (a stop, or a stop-limit with ``stop_loss_limit``).
- **OTO** (one triggers other): an entry with one of those exits.
- **OCO** (one cancels other): the two exits of a position already held, without an entry: the order
  placed is the take-profit (a limit order), the stop-loss hangs from it.

The parts are orders of their own (each with its id; the exits' ``parent_id`` is the first part's, which
``Order.group`` names) and trade like any other order, with these ties:

1. A bracket's or OTO's exits are ``held`` (not open: they trade nothing and reserve nothing) until the
   entry ends.  When it has filled, they open for the quantity it filled, from the next market step on
   (a bar cannot tell whether its high came before or after the entry's fill).  If it ends with part
   filled (canceled, expired, or refused at a fill for lack of cash) they open for that part; if it ends
   with nothing filled, they are canceled.
2. The two exits cover the same shares: what one fills is taken from the other's quantity, and when one
   ends (filled, canceled by you, expired, rejected) the other is canceled.  Together they never sell
   more than the entry bought (or buy back more than it sold short).
3. A bar that reaches both exits (its high above the take-profit, its low below the stop): the one a
   bar's open reached fills (a gap); otherwise the stop-loss, the worse of the two for the trader (a bar
   does not tell which came first; the honest assumption is the pessimistic one).

An entry must open or add to a position (a buy, or a short sale in a margin account) and the exits close
it; an OCO closes a position held.  These orders are given by quantity (not notional).  An exit's prices may
be replaced (``replace_exit``: its take-profit's limit, its stop-loss's stop or limit; it keeps its quantity
left, its time in force and its place in the group); an entry is not replaced (cancel it, and place a new one).
"""

from decimal import Decimal

from papertrader.errors import InvalidInput
from papertrader.money import price_text

from .events import Event, EventKind
from .orders import Leg, OrderClass, OrderType, Side, Status, TimeInForce

#: The entry types a bracket or OTO order takes.
ENTRY_TYPES = (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT)
TIMES_IN_FORCE = (TimeInForce.DAY, TimeInForce.GTC)
CENT = Decimal("0.01")


def check(request, last):
    """Raise InvalidInput unless the request's class, exits and prices go together.  Returns the request's
    limit price (an OCO's limit price is its take-profit's)."""
    kind = request.order_class
    exits = (request.take_profit, request.stop_loss, request.stop_loss_limit)
    if kind is OrderClass.SIMPLE:
        if any(p is not None for p in exits):
            raise InvalidInput("take_profit and stop_loss belong to bracket, oco and oto orders: give order_class")
        return request.limit_price
    name = kind.value
    article = "an" if kind is not OrderClass.BRACKET else "a"
    if request.quantity is None:
        raise InvalidInput(f"{article} {name} order is given by quantity, not notional")
    if request.quantity != request.quantity.to_integral_value():
        raise InvalidInput(f"{article} {name} order is for a whole number of shares (fractional orders are"
                           " simple orders)")
    if request.time_in_force not in TIMES_IN_FORCE:
        raise InvalidInput(f"{article} {name} order takes time in force day or gtc, not {request.time_in_force.value}")
    if request.stop_loss_limit is not None and request.stop_loss is None:
        raise InvalidInput("a stop-loss limit price needs a stop-loss stop price")
    if kind is OrderClass.BRACKET and (request.take_profit is None or request.stop_loss is None):
        raise InvalidInput("a bracket order needs a take-profit limit price and a stop-loss stop price")
    if kind is OrderClass.OTO and (request.take_profit is None) == (request.stop_loss is None):
        raise InvalidInput("an oto order needs one exit: a take-profit limit price or a stop-loss stop price")
    limit = request.limit_price
    if kind is OrderClass.OCO:
        if request.type is not OrderType.LIMIT:
            raise InvalidInput("an oco order is a limit order (its take-profit) with a stop-loss")
        if request.stop_loss is None or (request.take_profit is None and limit is None):
            raise InvalidInput("an oco order needs a take-profit limit price and a stop-loss stop price")
        if request.take_profit is not None and limit is not None and request.take_profit != limit:
            raise InvalidInput("an oco order's limit price is its take-profit's: give one of them, or the same")
        limit = request.take_profit if request.take_profit is not None else limit
    elif request.type not in ENTRY_TYPES:
        raise InvalidInput(f"a {name} order's entry is a market, limit, stop or stop-limit order,"
                           f" not {request.type.value}")
    # The exits sell above (take-profit) and below (stop-loss) a long position's price, or buy back a short
    # one below and above it.
    exit_sells = request.side is Side.SELL if kind is OrderClass.OCO else request.side is Side.BUY
    sign = 1 if exit_sells else -1
    take_profit = limit if kind is OrderClass.OCO else request.take_profit
    if take_profit is not None and request.stop_loss is not None and \
            sign * (take_profit - request.stop_loss) <= 0:
        raise InvalidInput(f"the take-profit ({price_text(take_profit)}) must be {'above' if exit_sells else 'below'}"
                           f" the stop-loss ({price_text(request.stop_loss)})")
    if kind is OrderClass.OCO:
        base, what = last, "the last price"
    else:
        base, what = _entry_base(request.type, request.limit_price, request.stop_price, last)
    _beyond(base, what, exit_sells, take_profit, request.stop_loss)
    return limit


def _entry_base(type, limit_price, stop_price, last):
    """(price an entry's exits are checked against, its name): its limit or stop price, or the last price."""
    if type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return limit_price, "the entry's limit price"
    if type is OrderType.STOP:
        return stop_price, "the entry's stop price"
    return last, "the last price"


def _beyond(base, what, exit_sells, take_profit, stop_loss):
    """Raise InvalidInput unless the take-profit and the stop-loss (each may be None) are at least a cent
    beyond ``base`` (named ``what``; None: not checked), on the side where each belongs: a stop-loss on the
    wrong side would trigger at once, a take-profit would fill at once."""
    if base is None:
        return
    sign = 1 if exit_sells else -1
    if take_profit is not None and sign * (take_profit - base) < CENT:
        raise InvalidInput(f"the take-profit ({price_text(take_profit)}) must be at least a cent"
                           f" {'above' if exit_sells else 'below'} {what} ({price_text(base)})")
    if stop_loss is not None and sign * (base - stop_loss) < CENT:
        raise InvalidInput(f"the stop-loss ({price_text(stop_loss)}) must be at least a cent"
                           f" {'below' if exit_sells else 'above'} {what} ({price_text(base)})")


def exits(first, request, client_order_ids):
    """The other parts of an accepted bracket, OCO or OTO order whose first part is ``first`` (the entry, or
    an OCO's take-profit), without ids; ``client_order_ids``: one for each (the store links them)."""
    kind = request.order_class
    ids = iter(client_order_ids)
    common = dict(id=None, uuid=None, account_id=first.account_id, symbol=first.symbol,
                  time_in_force=first.time_in_force, created=first.created, updated=first.created,
                  quantity=first.quantity, order_class=kind, expires=first.expires, filled_quantity=Decimal(0),
                  filled_value=Decimal(0), commission=Decimal("0.00"), session_open=None, session_close=None,
                  watermark=None, triggered=False, replaces=None, reason_code=None, reason=None, opens=False)
    if kind is OrderClass.OCO:
        return [first.__class__(client_order_id=next(ids), side=first.side, status=Status.NEW,
                                leg=Leg.STOP_LOSS, **_stop_loss(request), **common)]
    side = Side.SELL if first.side is Side.BUY else Side.BUY
    out = []
    if request.take_profit is not None:
        out.append(first.__class__(client_order_id=next(ids), side=side, status=Status.HELD, type=OrderType.LIMIT,
                                   limit_price=request.take_profit, leg=Leg.TAKE_PROFIT, **common))
    if request.stop_loss is not None:
        out.append(first.__class__(client_order_id=next(ids), side=side, status=Status.HELD,
                                   leg=Leg.STOP_LOSS, **_stop_loss(request), **common))
    return out


def _stop_loss(request):
    if request.stop_loss_limit is not None:
        return dict(type=OrderType.STOP_LIMIT, stop_price=request.stop_loss, limit_price=request.stop_loss_limit)
    return dict(type=OrderType.STOP, stop_price=request.stop_loss)


def is_entry(order):
    return order.order_class in (OrderClass.BRACKET, OrderClass.OTO) and order.leg is None


def react(before, after, members, now):
    """What ``after`` (an order of a bracket, OCO or OTO order, changed from ``before``) does to the other
    live parts of its group (``members``, as they are now): [(member changed, [its events])].  See the
    module's docstring."""
    out = []
    if is_entry(after):
        if after.live:
            return out
        for leg in members:
            if leg.status is not Status.HELD:
                continue
            if after.filled_quantity > 0:
                out.append(_opened(leg, after.filled_quantity, now))
            else:
                why = f"its entry ended unfilled ({after.status.value})"
                out.append(_canceled(leg, now, why))
        return out
    if after.leg is None:
        return out
    for other in members:
        if other.leg is None or other.id == after.id or not other.open:
            continue
        if not after.open:
            if after.status is Status.FILLED:
                why = "the other exit filled"
            else:
                why = ("the other exit expired" if after.status is Status.EXPIRED
                       else f"the other exit was {after.status.value}")
            out.append(_canceled(other, now, why))
            continue
        taken = after.filled_quantity - before.filled_quantity
        if taken > 0:
            quantity = other.quantity - taken
            if quantity <= other.filled_quantity:
                out.append(_canceled(other, now, "the other exit filled the rest"))
            else:
                out.append((other.but(quantity=quantity, updated=now), []))
    return out


def _opened(leg, quantity, now):
    """(a held exit opened for ``quantity``, [its events]).  A ``day`` exit whose session has closed by ``now``
    (its entry filled in the step that reached the close: a replay of whole sessions) expires at once: else it
    showed ``new`` past its ``expires``, holding the position's shares until the next step expired
    it unfilled (no later bar is of its session)."""
    opened = leg.but(status=Status.NEW, quantity=quantity, updated=now)
    events = [Event(EventKind.ACCEPTED, opened, now)]
    if leg.time_in_force is TimeInForce.DAY and leg.expires is not None and now >= leg.expires:
        why = "a day order expires at the close of its session (its entry filled in the bar that reached it)"
        opened = opened.but(status=Status.EXPIRED, reason_code="expired", reason=why, updated=now)
        events.append(Event(EventKind.EXPIRED, opened, now, reason_code="expired", reason=why))
    return opened, events


def replace_exit(old, changes, members, last, now):
    """(new exit, without an id) replacing the exit ``old`` (open or held) with ``changes`` (amend.Changes:
    prices only); ``members``: the other live parts of its group; ``last``: the last price.  The caller ends
    ``old`` as replaced, and if ``old`` was an OCO's first part, hangs the other exit from the new one.  A new
    price is checked as at placing: against the other exit's, and at least a cent beyond the entry's price (a
    held exit) or the last price (an open one).  Raises InvalidInput."""
    kind = ("a " if old.order_class is OrderClass.BRACKET else "an ") + old.order_class.value
    if old.leg is None:
        raise InvalidInput(f"order {old.id} is the entry of {kind} order: cancel it (its exits go with it) and"
                           " place a new one; an exit's prices can be replaced")
    if changes.quantity is not None or changes.time_in_force is not None or changes.trail_price is not None \
            or changes.trail_percent is not None:
        raise InvalidInput(f"order {old.id} is an exit of {kind} order: it keeps its quantity and time in force"
                           " (they are its entry's); replace its limit or stop price")
    if old.type is OrderType.LIMIT and changes.stop_price is not None:
        raise InvalidInput(f"order {old.id} is a take-profit (a limit order): it takes no stop price")
    if old.type is OrderType.STOP and changes.limit_price is not None:
        raise InvalidInput(f"order {old.id} is a stop-loss stop order: it takes no limit price")
    limit = changes.limit_price if changes.limit_price is not None else old.limit_price
    stop = changes.stop_price if changes.stop_price is not None else old.stop_price
    sells = old.side is Side.SELL
    for other in members:
        if other.leg is None or other.id == old.id or not other.live:
            continue
        take_profit, stop_loss = (limit, other.stop_price) if old.leg is Leg.TAKE_PROFIT else \
            (other.limit_price, stop)
        if (take_profit - stop_loss) * (1 if sells else -1) <= 0:
            raise InvalidInput(f"the take-profit ({price_text(take_profit)}) must be {'above' if sells else 'below'}"
                               f" the stop-loss ({price_text(stop_loss)})")
    held = old.status is Status.HELD
    entry = next((o for o in members if o.leg is None), None) if held else None
    base, what = _entry_base(entry.type, entry.limit_price, entry.stop_price, last) if entry is not None else \
        (last, "the last price")
    _beyond(base, what, sells, limit if old.leg is Leg.TAKE_PROFIT and changes.limit_price is not None else None,
            stop if changes.stop_price is not None else None)
    return old.but(
        id=None, uuid=None, client_order_id=changes.client_order_id, limit_price=limit, stop_price=stop,
        quantity=old.quantity if held else old.quantity - old.filled_quantity, status=Status.HELD if held
        else Status.NEW, created=now, updated=now, filled_quantity=Decimal(0), filled_value=Decimal(0),
        filled_adjustment=Decimal(0), commission=Decimal("0.00"), triggered=old.triggered and stop == old.stop_price,
        replaces=old.id, replaced_by=None, replaces_uuid=None, replaced_by_uuid=None, reason_code=None,
        reason=None)


def _canceled(order, now, why):
    order = order.but(status=Status.CANCELED, reason_code="canceled", reason=why, updated=now)
    return order, [Event(EventKind.CANCELED, order, now, reason_code="canceled", reason=why)]


def counted_once(orders):
    """Those of ``orders`` whose reservation counts: of two open exits of one group (they cover the same
    shares) only the take-profit."""
    paired = {o.group for o in orders if o.leg is Leg.TAKE_PROFIT and o.open}
    if not paired:
        return orders
    return [o for o in orders if not (o.leg is Leg.STOP_LOSS and o.group in paired)]


def contest(items):
    """Of two exits of one group that both would fill in the same step, keep the one that fills first (the
    one at the bar's open; else the stop-loss).  ``items``: [(fill time, order, match)]; returns the ids of
    the orders whose match is dropped for this step."""
    exits = {}
    for when, order, match in items:
        if order.leg is not None and match is not None and match.price is not None:
            exits.setdefault(order.group, []).append((when, order))
    dropped = set()
    for pair in exits.values():
        if len(pair) < 2:
            continue
        (when_a, a), (when_b, b) = pair[:2]
        if when_a == when_b:
            dropped.add(a.id if a.leg is Leg.TAKE_PROFIT else b.id)
        else:
            dropped.add(a.id if when_a > when_b else b.id)
    return dropped
