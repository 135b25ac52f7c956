"""One market step: every open order against the step's bars, in arrival order.

``step`` takes the books, the open orders and the market step, and returns the
books and orders it changed plus the events that explain every change.  It is
a pure function: the same inputs give the same outputs.

For each order, in the order its fill would happen (those trading at the open of
their bars first, then the others), and within that in id (arrival) order:

1. The fill model matches it against its symbol's bar (no bar: nothing happens;
   nor with a bar that starts after the order's time in force ended, as when
   time skipped ahead: a day order never fills in a later session).
   A stop may trigger; a trailing stop's watermark may move.
2. If the match has a price, the order fills as much as it can: what is left of
   it, no more than the liquidity the bar has left for this symbol (orders that
   arrived earlier took theirs first), no more than the cash or shares the
   account holds.  ``fok`` fills whole or not at all.  A notional order fixes its
   quantity at its first fill.  A fill at the bar's open is dated at the bar's
   start, any other at the step's time (FillModel.fill_time).
3. Then its time in force may end it: ``ioc``/``fok`` are canceled after the first
   bar they meet; ``day`` expires at its session's close; ``opg``/``cls`` expire once
   their open or close has passed.

Corporate actions and dividends paid come first, dated at the start of the
step's earliest bar (before the day's first trade).

A buy whose fill the cash cannot pay any more (prices moved since it was
accepted) fills what the cash pays; if that is nothing, it is rejected (or
canceled, if part of it filled before), with the reason.
"""

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Dict, List

from papertrader.money import CENT, QUANTITY_STEP, money_text, price_text, quantity_text

from . import contingent, corporate, margin
from .books import apply_fill, gross_value
from .events import Event, EventKind, Fill
from .orders import OrderClass, OrderType, Side, Status, TimeInForce

ZERO = Decimal(0)


@dataclass
class StepResult:
    books: Dict[int, object] = field(default_factory=dict)
    orders: List[object] = field(default_factory=list)
    events: List[Event] = field(default_factory=list)
    #: What corporate actions did to accounts (history rows), the dividends now owed, and those paid.
    records: List[object] = field(default_factory=list)
    owed: List[object] = field(default_factory=list)
    paid: List[object] = field(default_factory=list)

    @property
    def fills(self):
        return [e.fill for e in self.events if e.fill is not None]


def _floor_quantity(value):
    return value.quantize(QUANTITY_STEP, rounding=ROUND_DOWN)


def _affordable(cash, price, order, wanted, commission_model):
    """The most shares (<= wanted) whose cost plus commission ``cash`` pays."""

    def cost(q):
        c = commission_model.charge(order.commission, order.filled_quantity + q, order.filled_value + price * q)
        return gross_value(q, price) + c

    if cost(wanted) <= cash:
        return wanted
    low, high = 0, int(wanted / QUANTITY_STEP)
    while low < high:  # the largest n with cost(n steps) <= cash
        mid = (low + high + 1) // 2
        if cost(mid * QUANTITY_STEP) <= cash:
            low = mid
        else:
            high = mid - 1
    return low * QUANTITY_STEP


def _session_bar(order, bar):
    if order.time_in_force is TimeInForce.OPG and order.session_open and bar.contains(order.session_open):
        return "open"
    if order.time_in_force is TimeInForce.CLS and order.session_close and bar.start < order.session_close <= bar.end:
        return "close"
    return None


_OPG_MISSED = (Status.EXPIRED, "expired", "an opg order trades only at its session's open")


def _ended_by_time(order, now):
    """(status, reason_code, reason) if the order's time in force ends it at ``now``, else None."""
    tif = order.time_in_force
    if tif is TimeInForce.DAY and order.expires is not None and now >= order.expires:
        return Status.EXPIRED, "expired", "a day order expires at the close of its session"
    if tif is TimeInForce.OPG and order.session_open is not None and (
            now >= order.session_close if order.session_close is not None else now > order.session_open):
        # At its session's close at the latest (an order placed before this rule: just after the open); a bar
        # that reaches past the open ends it at once (_missed_the_open).
        return _OPG_MISSED
    if tif is TimeInForce.CLS and order.session_close is not None and now >= order.session_close:
        return Status.EXPIRED, "expired", "a cls order trades only at its session's close"
    return None


def _missed_the_close(order, bar):
    """Why a cls order still open when its session's close has passed expires, in words that say what happened at
    the close (``bar``: the order's bar of this step, None if it had none of its session): its limit not reached
    there, the rest of it not filled there, or no price of its symbol at that close."""
    if bar is None or _session_bar(order, bar) != "close":
        return (f"no price of {order.symbol} came at its session's close, and a cls order trades only at the"
                " close")
    if order.filled_quantity:
        return (f"{quantity_text(order.filled_quantity)} of {quantity_text(order.quantity)} filled at its session's"
                " close, and a cls order trades only at the close: the rest expired unfilled")
    buy = order.side is Side.BUY
    if order.type is OrderType.LIMIT and ((buy and bar.close > order.limit_price) or
                                          (not buy and bar.close < order.limit_price)):
        return (f"its limit was not reached at its session's close: {order.symbol} closed at {price_text(bar.close)},"
                f" {'above' if buy else 'below'} its limit of {price_text(order.limit_price)} (a cls order trades"
                " only at the close)")
    return "it did not fill at its session's close, and a cls order trades only at the close"


def _missed_the_open(order, bar):
    """An opg order still open after a bar that reaches past its session's open: the open has traded without it.
    (A step with no bar yet does not end it: a live source's first minute of the session comes a little after
    the open; no bar at all by the session's close does, in _ended_by_time.)"""
    return order.time_in_force is TimeInForce.OPG and order.session_open is not None and bar is not None and \
        bar.end > order.session_open


#: The times in force of orders that may rest through a step untouched (_rests).
_RESTING_TIF = frozenset((TimeInForce.DAY, TimeInForce.GTC))


def _rests(order, bar, fill_model, now):
    """Whether a step leaves ``order`` exactly as it is: a simple limit order, ``day`` or ``gtc``, whose time in force
    does not end by ``now``, that finds no price on its ``bar`` (most open orders, most steps).  The step skips the
    rest of its work for it; everything it would have done for it comes to nothing (no Match with a price, no
    liquidity taken, no event, no change)."""
    return (order.type is OrderType.LIMIT and order.order_class is OrderClass.SIMPLE and
            order.time_in_force in _RESTING_TIF and not order.triggered and order.watermark is None and
            _ended_by_time(order, bar.start) is None and _ended_by_time(order, now) is None and
            fill_model.limit_rests(order, bar))


def moving(orders, market, rules, account_rules=None):
    """The orders of ``orders`` a step over ``market`` may change: all but those it leaves exactly as they are
    (_rests), unless a corporate action of their symbol comes in the step (a split adjusts them).  ``step`` given
    these alone does what it does given all of them; the books it needs are their accounts' (a master with
    thousands of resting orders need not read those accounts' books at every update)."""
    account_rules = account_rules or {}
    acted = {action.symbol for action in market.actions}
    now = market.time
    out = []
    for order in orders:
        bar = market.bars.get(order.symbol)
        if bar is None or order.symbol in acted or not order.open or not _rests(
                order, bar, account_rules.get(order.account_id, rules).fill_model, now):
            out.append(order)
    return out


def step(books, orders, market, rules, account_rules=None):
    """Run one market step; see the module's docstring.  ``books`` maps account ids to Books.

    ``account_rules`` maps some account ids to rules of their own (a game's commission and fill model,
    papertrader/trading/games.py); every other account trades by ``rules``.  All orders still share
    a bar's liquidity."""
    account_rules = account_rules or {}
    now = market.time
    result = StepResult()
    books = dict(books)
    adjusted = {}
    if market.actions or market.due:
        today = market.today or now.date()
        # Before the day's first trade: at the open of its bars (a split takes effect before the session opens).
        opened = min([bar.start for bar in market.bars.values() if bar.start <= now], default=now)
        books, changed, result.records, result.owed = corporate.apply(books, orders, market.actions, today, opened,
                                                                      market.restores)
        for due in market.due:
            if due.account_id in books:
                books[due.account_id], record = corporate.pay(books[due.account_id], due, opened)
                result.records.append(record)
                result.paid.append(due)
        adjusted = {o.id: o for o in changed}
        orders = [adjusted.get(o.id, o) for o in orders]
    liquidity_left = {}
    marks = {symbol: bar.open for symbol, bar in market.bars.items()}
    marks.update(market.prices)
    # Each order against its bar first (a match depends on the order and the bar alone), then the orders in the
    # order their fills happen: those that trade at the bars' open before those that trade later in them, each
    # group in arrival order (which takes a bar's liquidity first), so that the books change in time order.
    work = []
    for order in sorted(orders, key=lambda o: o.id):
        if not order.open or order.account_id not in books:
            continue
        bar = market.bars.get(order.symbol)
        mine = account_rules.get(order.account_id, rules)
        if bar is not None and order.id not in adjusted and _rests(order, bar, mine.fill_model, now):
            continue
        if bar is not None and _ended_by_time(order, bar.start) is not None:
            bar = None  # a bar of a later session than the order's (time skipped ahead): it expires, unfilled
        match = mine.fill_model.match(order, bar, _session_bar(order, bar)) if bar is not None else None
        when = mine.fill_model.fill_time(order, match, bar, now) if match is not None and match.price is not None \
            else now
        work.append((when, order.id, order, bar, mine, match))
    # The parts of bracket, OCO and OTO orders (contingent.py): of two exits that both would fill, the first.
    groups = {}
    for order in orders:
        if order.order_class is not OrderClass.SIMPLE and order.live:
            groups.setdefault(order.group, []).append(order.id)
    if groups:
        dropped = contingent.contest([(when, order, match) for when, _, order, _, _, match in work])
        work = [item if item[1] not in dropped else (*item[:5], None) for item in work]
    work.sort(key=lambda item: item[:2])
    latest = {o.id: o for o in orders} if groups else {}
    changed = {}
    for when, _, order, bar, mine, match in work:
        if groups:
            order = latest[order.id]
            if not order.open:  # ended by the other exit of its group earlier in this step
                continue
        start = order
        events = []
        if match is not None:
            watermark = match.watermark if order.type is OrderType.TRAILING_STOP else None
            if match.triggered != order.triggered or watermark != order.watermark:
                order = order.but(triggered=match.triggered, watermark=watermark)
            if match.price is not None:
                order, happened, books = _fill(order, match, bar, books, liquidity_left, mine,
                                               mine.fill_model.describe(), when, marks)
                events.extend(happened)
            if order.open and order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
                why = ("fok: the whole quantity could not fill in one bar"
                       if order.time_in_force is TimeInForce.FOK else "ioc: the rest could not fill at once")
                order = order.but(status=Status.CANCELED, reason_code="canceled", reason=why, updated=now)
                events.append(Event(EventKind.CANCELED, order, now, reason_code="canceled", reason=why))
        if order.open:
            ended = _ended_by_time(order, now) or (_OPG_MISSED if _missed_the_open(order, bar) else None)
            if ended is not None:
                status, code, why = ended
                if order.time_in_force is TimeInForce.CLS:
                    why = _missed_the_close(order, bar)
                order = order.but(status=status, reason_code=code, reason=why, updated=now)
                events.append(Event(EventKind.EXPIRED, order, now, reason_code=code, reason=why))
        if order is not start or order.id in adjusted:  # (a stop's state or a split may change it without an event)
            changed[order.id] = order
            result.events.extend(events)
            if order is not start and order.group in groups:
                latest[order.id] = order
                members = [latest[i] for i in groups[order.group] if i != order.id]
                for member, happened in contingent.react(start, order, members, now):
                    latest[member.id] = changed[member.id] = member
                    result.events.extend(happened)
    for order in adjusted.values():  # (held exits and orders not traded: a split changed them all the same)
        changed.setdefault(order.id, latest.get(order.id, order))
    result.orders = list(changed.values())
    result.books = {a: b for a, b in books.items()}
    return result


def _fill(order, match, bar, books, liquidity_left, rules, model_name, now, marks=None):
    """Fill what the bar, the cash and the position allow; returns (order, events, books).
    ``marks`` are the prices a margin account is valued at."""
    model, commissions = rules.fill_model, rules.commission_model
    book = books[order.account_id]
    buy = order.side is Side.BUY
    total_liquidity = model.liquidity(bar)
    if order.quantity is None:  # notional: the quantity is fixed now, at this fill's price (slippage included)
        quantity = _floor_quantity(order.notional / match.price)
        if quantity > 0:
            taken = min(quantity, liquidity_left.get(order.symbol, total_liquidity)) if total_liquidity is not None \
                else quantity
            quantity = _floor_quantity(order.notional / model.price(order, match, taken, total_liquidity, bar))
        if quantity <= 0:
            return *_refuse(order, "order_too_small",
                            f"{money_text(order.notional)} buys less than {QUANTITY_STEP} share at"
                            f" {price_text(match.price)}", now), books
        order = order.but(quantity=quantity)
    wanted = order.remaining
    if total_liquidity is not None:
        left = liquidity_left.setdefault(order.symbol, total_liquidity)
        quantity = min(wanted, left)
    else:
        left, quantity = None, wanted
    if order.time_in_force is TimeInForce.FOK and quantity < wanted:
        return order, [], books
    if quantity <= 0:
        return order, [], books
    price = model.price(order, match, quantity, total_liquidity, bar)
    if quantity < wanted and gross_value(wanted - quantity, price) < CENT:
        quantity = wanted  # never leave a remainder worth less than a cent
    if book.margin is not None:
        quantity, refusal = _margin_quantity(book, order, price, quantity, wanted, marks or {}, commissions)
        if refusal is not None:
            return *_refuse(order, refusal[0], refusal[1], now), books
    elif buy:
        quantity = _affordable(book.cash, price, order, quantity, commissions)
        if quantity <= 0 or gross_value(quantity, price) < CENT:
            return *_refuse(order, "insufficient_funds",
                           f"insufficient funds at the fill: {quantity_text(wanted)} {order.symbol} at"
                           f" {price_text(price)}; cash is {money_text(book.cash)}", now), books
    else:
        held = book.quantity(order.symbol)
        quantity = min(quantity, held)
        if quantity <= 0 or gross_value(quantity, price) < CENT:
            return *_refuse(order, "insufficient_position",
                           f"insufficient position at the fill: selling {quantity_text(wanted)} {order.symbol},"
                           f" holding {quantity_text(held)}", now), books
    commission = commissions.charge(order.commission, order.filled_quantity + quantity,
                                    order.filled_value + price * quantity)
    if not buy and book.margin is None and book.cash + gross_value(quantity, price) - commission < 0:
        return *_refuse(order, "insufficient_funds", "insufficient funds to pay the commission", now), books
    book, execution = apply_fill(book, order.side, order.symbol, quantity, price, commission)
    books[order.account_id] = book
    if left is not None:
        liquidity_left[order.symbol] = max(ZERO, left - quantity)
    filled = order.filled_quantity + quantity
    status = Status.FILLED if filled >= order.quantity else Status.PARTIALLY_FILLED
    order = order.but(filled_quantity=filled, filled_value=order.filled_value + price * quantity,
                      commission=order.commission + commission, status=status, updated=now)
    fill = Fill(order.id, order.account_id, order.symbol, order.side.value, quantity, price, execution.gross,
                commission, execution.amount, execution.cash_after, execution.position_after, execution.realized,
                model_name, now)
    kind = EventKind.FILL if status is Status.FILLED else EventKind.PARTIAL_FILL
    return order, [Event(kind, order, now, fill=fill)], books


def _margin_quantity(book, order, price, quantity, wanted, marks, commissions):
    """How much of a margin account's order may fill now: (quantity, None) or (0, (code, reason)).

    A sale of shares held fills up to the position, a cover up to the short; an order that opens or adds
    to a position fills what the buying power at this moment pays (margin.py)."""
    held = book.quantity(order.symbol)
    buy = order.side is Side.BUY
    if not margin.opens(buy, held):
        quantity = min(quantity, abs(held))
    else:
        power = margin.buying_power(book, marks, book.margin)
        quantity = _affordable(power, price, order, quantity, commissions)
        if not buy:
            quantity = quantity.to_integral_value(rounding=ROUND_DOWN)  # short sales are whole shares
    if quantity <= 0 or gross_value(quantity, price) < CENT:
        what = "buying" if buy else "selling"
        return ZERO, ("insufficient_funds", f"insufficient margin buying power at the fill: {what}"
                      f" {quantity_text(wanted)} {order.symbol} at {price_text(price)}")
    return quantity, None


def _refuse(order, code, why, now):
    """End an order the account can no longer pay for: rejected, or canceled if part of it filled.
    Returns (order, [event])."""
    status = Status.CANCELED if order.filled_quantity else Status.REJECTED
    order = order.but(status=status, reason_code=code, reason=why, updated=now)
    kind = EventKind.CANCELED if status is Status.CANCELED else EventKind.REJECTED
    return order, [Event(kind, order, now, reason_code=code, reason=why)]
