"""Pre-trade checks: is a new order well formed, and can the account afford it with its open orders?

Buying power counts open orders.  A buy reserves cash for what is left of it:
at its limit price (limit and stop-limit orders), else at the last price (the
stop price if higher, or the trailing level) plus ``market_buy_buffer``, plus the
commission it would pay; a notional buy reserves its notional.  A sell
reserves the shares it may still sell.  A new order is accepted only if its
own reservation fits in what is left:

    buying power = cash - reservations of the account's open buys
    available shares = position - shares reserved by open sells

In a cash account short selling is not allowed: a sell needs the shares.  In a margin account
(``book.margin``; see papertrader/trading/margin.py) buying power is the Reg T figure of margin.py
less the reservations of the open orders that open or add to positions (buys while long or flat,
short sales while short or flat); a short sale reserves its value at the highest of its limit, stop
and last price (plus ``market_buy_buffer`` unless it is a limit order).  A sell of a long position or
a buy that covers a short needs no buying power, but no order may turn a position from long to short
or back: close it first.
"""

import threading
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, Decimal
from typing import Optional

from papertrader.errors import InsufficientFunds, InsufficientPosition, InvalidInput, QuoteUnavailable
from papertrader.money import (
    CENT,
    MAX_QUANTITY,
    QUANTITY_STEP,
    money_text,
    tick,
    price_text,
    quantity_text,
    round_money,
)

from . import contingent, margin
from .commissions import CommissionModel, Zero
from .fill_models import BarFillModel, FillModel
from .market import SessionInfo
from .orders import ALLOWED_TIF, Leg, Order, OrderClass, OrderRequest, OrderType, Side, Status, TimeInForce

MAX_PRICE = Decimal("1000000")
MAX_NOTIONAL = Decimal("1000000000")
MIN_NOTIONAL = Decimal("1.00")


@dataclass(frozen=True)
class Rules:
    """The trading rules a deployment chose (config), passed to every core function."""

    fill_model: FillModel = BarFillModel()
    commission_model: CommissionModel = Zero()
    #: A market-like buy reserves its reference price times (1 + this).
    market_buy_buffer: Decimal = Decimal("0.05")
    #: Open orders one account may have at once.
    max_open_orders: int = 500


def check_price(name, value):
    """Limit and stop prices: positive, at most MAX_PRICE, in cents from $1 up, 4 decimals below (tick sizes)."""
    if value is None:
        return None
    if not value.is_finite() or value <= 0:
        raise InvalidInput(f"{name} must be a positive price")
    if value > MAX_PRICE:
        raise InvalidInput(f"{name} must be at most {MAX_PRICE}")
    if value != value.quantize(tick(value)):
        raise InvalidInput(f"{name} {value} is not a valid tick: prices from $1 are in whole cents, below $1 in"
                           " steps of 0.0001")
    return value


def check_shape(request: OrderRequest, kept=False):
    """Raise InvalidInput unless the order's type, time in force and prices go together.  ``kept``: the quantity
    is what a replaced order had left (a split may have made it fractional: the order may still be replaced)."""
    kind, tif = request.type, request.time_in_force
    if (request.quantity is None) == (request.notional is None):
        raise InvalidInput("give either a quantity or a notional amount, not both")
    if request.quantity is not None:
        q = request.quantity
        if not q.is_finite() or q <= 0 or q > MAX_QUANTITY or q != q.quantize(QUANTITY_STEP):
            raise InvalidInput(f"quantity must be positive, at most {MAX_QUANTITY}, with at most 6 decimals")
        if q != q.to_integral_value() and not kept and (tif is not TimeInForce.DAY or kind is OrderType.TRAILING_STOP):
            # As Alpaca: a strategy that runs here runs there (its fractional orders are day orders only).
            whole = q.to_integral_value(rounding="ROUND_DOWN")
            split = (f": for a lasting order, place it for the {whole:f} whole share{'s' if whole != 1 else ''} and"
                     f" the {(q - whole).normalize():f} left with time in force 'day'"
                     if whole >= 1 and tif is TimeInForce.GTC and kind is not OrderType.TRAILING_STOP else "")
            raise InvalidInput("a fractional quantity takes time in force 'day' and a market, limit, stop or stop"
                               f" limit order, as at Alpaca (whole shares for the others){split}")
    if request.notional is not None:
        n = request.notional
        if not n.is_finite() or n < MIN_NOTIONAL or n > MAX_NOTIONAL or n != n.quantize(CENT):
            raise InvalidInput(f"notional must be an amount of money from {MIN_NOTIONAL} to {MAX_NOTIONAL}")
        if kind is not OrderType.MARKET or tif is not TimeInForce.DAY:
            raise InvalidInput("a notional order must be a market order with time in force 'day'")
    if tif not in ALLOWED_TIF[kind]:
        allowed = ", ".join(sorted(t.value for t in ALLOWED_TIF[kind]))
        raise InvalidInput(f"a {kind.value} order takes time in force {allowed}, not {tif.value}")
    needs_limit = kind in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
    if needs_limit != (request.limit_price is not None):
        raise InvalidInput(f"a {kind.value} order {'needs' if needs_limit else 'takes no'} limit price")
    if needs_stop != (request.stop_price is not None):
        raise InvalidInput(f"a {kind.value} order {'needs' if needs_stop else 'takes no'} stop price")
    check_price("limit price", request.limit_price)
    check_price("stop price", request.stop_price)
    trails = (request.trail_price is not None) + (request.trail_percent is not None)
    if kind is OrderType.TRAILING_STOP:
        if trails != 1:
            raise InvalidInput("a trailing stop needs a trail price or a trail percent (one of them)")
        check_price("trail price", request.trail_price)
        p = request.trail_percent
        if p is not None and (not p.is_finite() or not 0 < p < 100 or p != p.quantize(Decimal("0.01"))):
            raise InvalidInput("trail percent must be between 0 and 100, with at most 2 decimals")
    elif trails:
        raise InvalidInput(f"a {kind.value} order takes no trail")


def check_request(request: OrderRequest, last, kept=False):
    """``check_shape``, and a bracket's, OCO's or OTO's exits against each other and ``last`` (the last price);
    returns the request with an OCO's limit price (its take-profit's).  Raises InvalidInput."""
    for name, value in (("take-profit limit price", request.take_profit), ("stop-loss stop price",
                        request.stop_loss), ("stop-loss limit price", request.stop_loss_limit)):
        check_price(name, value)
    limit = contingent.check(request, last)
    if limit != request.limit_price:
        request = replace(request, limit_price=limit)
    check_shape(request, kept)
    return request


def check_stop_side(request: OrderRequest, last):
    """A stop (or stop-limit) order's stop must be beyond the last price on the side it waits for, as Alpaca
    and brokers require: a sale's below, a buy's above.  At or past it the stop would trigger at once, which is
    almost always a side mixed up (a sale above the market is a limit order).  Not checked without a last
    price.  ``accept`` checks new orders, and replacements whose stop moved (a stop that has triggered, or that
    the price has passed since, may still be resized as it stands)."""
    if request.type not in (OrderType.STOP, OrderType.STOP_LIMIT) or last is None or request.stop_price is None:
        return
    if request.side is Side.SELL and request.stop_price >= last:
        raise InvalidInput(f"a sell stop's stop price ({price_text(request.stop_price)}) must be below the last"
                           f" price ({price_text(last)}): at or above it, it would trigger at once (to sell at a"
                           " price above the market, use a limit order)")
    if request.side is Side.BUY and request.stop_price <= last:
        raise InvalidInput(f"a buy stop's stop price ({price_text(request.stop_price)}) must be above the last"
                           f" price ({price_text(last)}): at or below it, it would trigger at once (to buy at a"
                           " price below the market, use a limit order)")


def reference_price(order, last):
    """The price a buy's reservation is counted at (None if it needs a last price that is unknown)."""
    if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return order.limit_price, False
    if last is None:
        return None, True
    if order.type is OrderType.STOP:
        return max(order.stop_price, last), True
    if order.type is OrderType.TRAILING_STOP:
        if order.trail_price is not None:
            return last + order.trail_price, True
        return last * (1 + order.trail_percent / 100), True
    return last, True


#: Reservations that do not depend on the price (those of sells, of orders no longer open, of limit,
#: stop-limit and notional buys), by order: an order is checked against every open order of its account, and
#: those are mostly the same objects from one order to the next (the master keeps each portfolio's open
#: orders in memory).  Orders are immutable, so an entry (order, rules, value) answers for as long as it
#: holds that very order, under the same rules (a game's rules are equal, not always the same object); at
#: most this many.
FIXED_RESERVATIONS = 20_000
_fixed = {}
_NONE = Decimal("0.00")
_PRICED_AT_LIMIT = (OrderType.LIMIT, OrderType.STOP_LIMIT)


def reservation(order, last, rules: Rules, remember=True):
    """Cash an open buy keeps from the account's buying power (0 for a sell).  ``remember``: False for an order
    that is only looked at once (a preview)."""
    found = _fixed.get(id(order))
    if found is not None and found[0] is order and (found[1] is rules or found[1] == rules):
        return found[2]
    if order.side is not Side.BUY or not order.open:
        value = _NONE
    else:
        value = _reservation(order, last, rules)
        if not remember or (order.quantity is not None and order.type not in _PRICED_AT_LIMIT):
            return value  # counted at the last price: not remembered
    if len(_fixed) >= FIXED_RESERVATIONS:
        _fixed.clear()
    _fixed[id(order)] = (order, rules, value)
    return value


def _reservation(order, last, rules):
    if order.quantity is None:  # notional, not filled yet
        return order.notional + rules.commission_model.total(Decimal(1), order.notional)
    remaining = order.quantity - order.filled_quantity
    price, buffered = reference_price(order, last)
    if price is None:
        price, buffered = (order.stop_price or order.limit_price or Decimal(0)), True
    if buffered:
        price = price * (1 + rules.market_buy_buffer)
    value = round_money(remaining * price)
    commission = rules.commission_model.charge(order.commission, order.quantity, order.filled_value + value)
    return value + commission


def reserved_shares(order, last):
    """Shares an open sell keeps from the position."""
    if order.side is not Side.SELL or not order.open:
        return Decimal(0)
    if order.quantity is None:
        if not last:
            return Decimal(0)
        return (order.notional / last).quantize(QUANTITY_STEP, rounding=ROUND_CEILING)
    return order.quantity - order.filled_quantity


def short_reservation(order, last, rules: Rules):
    """Buying power an open short sale keeps (margin accounts)."""
    if order.side is not Side.SELL or not order.open:
        return Decimal("0.00")
    known = [p for p in (order.limit_price, order.stop_price, last) if p is not None]
    if order.quantity is None or not known:
        return order.notional or Decimal("0.00")
    price = max(known)
    if order.type is not OrderType.LIMIT:
        price = price * (1 + rules.market_buy_buffer)
    remaining = order.quantity - order.filled_quantity
    value = round_money(remaining * price)
    return value + rules.commission_model.charge(order.commission, order.quantity, order.filled_value + value)


def margin_reservation(order, book, last, rules: Rules):
    """Buying power an open order of a margin account keeps: its value if it opens or adds to a position."""
    if not order.open or not margin.opens(order.side is Side.BUY, book.quantity(order.symbol)):
        return Decimal("0.00")
    if order.side is Side.BUY:
        return reservation(order, last, rules)
    return short_reservation(order, last, rules)


def buying_power(book, open_orders, prices, rules, excluding=None):
    """Cash (or, in a margin account, Reg T buying power) left for new orders after the open orders'
    reservations."""
    if book.margin is None and excluding is None:
        return book.cash - _reserved_sums.reserved(open_orders, book.account_id, prices, rules)
    mine = [o for o in open_orders if o.id != excluding and o.account_id == book.account_id]
    if book.margin is not None:
        reserved = sum((margin_reservation(o, book, prices.get(o.symbol), rules) for o in mine), Decimal("0.00"))
        return margin.buying_power(book, prices, book.margin) - reserved
    reserved = sum((reservation(o, prices.get(o.symbol), rules) for o in mine), Decimal("0.00"))
    return book.cash - reserved


def _priced(order):
    """Whether an order's reservation depends on the last price (an open market, stop or trailing stop buy
    by quantity)."""
    return order.side is Side.BUY and order.open and order.quantity is not None and \
        order.type not in _PRICED_AT_LIMIT


class _ReservedSums:
    """What a cash account's open orders reserve, remembered by the last of them.

    A portfolio's next order is checked against the same open orders, or the same plus the order placed
    last (the master keeps them in memory, in id order).  So the part of their reservations that does not
    depend on prices is summed once and then grows by one order, instead of being added up again from
    orders scattered in memory (reading them is what costs, not the arithmetic); the orders counted at the
    last price are listed and priced at every check.  An entry holds the very orders it was made from (they
    are immutable), so it answers only for a sequence equal to them, under equal rules.  At most
    ``max_orders`` orders are held over all entries (then all are forgotten).
    """

    def __init__(self, max_orders=20_000):
        self.max_orders = max_orders
        self._entries = {}  # id(last order) -> (orders tuple, account id, rules, fixed sum, priced orders)
        self._held = 0
        self._lock = threading.Lock()

    def reserved(self, orders, account_id, prices, rules):
        """The sum of ``reservation`` over those of ``orders`` that are ``account_id``'s."""
        entry = self._entry(tuple(orders), account_id, rules)
        total = entry[3]
        for order in entry[4]:
            total += reservation(order, prices.get(order.symbol), rules)
        return total

    def _entry(self, orders, account_id, rules):
        if not orders:
            return ((), account_id, rules, _NONE, ())
        entries = self._entries
        same = entries.get(id(orders[-1]))
        if same is not None and self._matches(same, orders, account_id, rules):
            return same
        before = entries.get(id(orders[-2])) if len(orders) > 1 else None
        if before is not None and self._matches(before, orders[:-1], account_id, rules):
            fixed, priced = before[3], before[4]
            added = orders[-1]
            if added.account_id == account_id:
                if _priced(added):
                    priced += (added,)
                else:
                    fixed += reservation(added, None, rules)
            entry = (orders, account_id, rules, fixed, priced)
            self._replace(before, entry)
            return entry
        fixed, priced = _NONE, []
        for order in orders:
            if order.account_id != account_id:
                continue
            if _priced(order):
                priced.append(order)
            else:
                fixed += reservation(order, None, rules)
        entry = (orders, account_id, rules, fixed, tuple(priced))
        self._replace(None, entry)
        return entry

    @staticmethod
    def _matches(entry, orders, account_id, rules):
        # Tuples compare item by item, by identity first: the same orders cost a pointer comparison each.
        return entry[1] == account_id and (entry[2] is rules or entry[2] == rules) and entry[0] == orders

    def _replace(self, old, entry):
        orders = entry[0]
        with self._lock:
            if old is not None and self._entries.get(id(old[0][-1])) is old:
                del self._entries[id(old[0][-1])]
                self._held -= len(old[0])
            if self._held + len(orders) > self.max_orders:
                self._entries.clear()
                self._held = 0
                if len(orders) > self.max_orders:
                    return
            previous = self._entries.get(id(orders[-1]))
            if previous is not None:
                self._held -= len(previous[0])
            self._entries[id(orders[-1])] = entry
            self._held += len(orders)


_reserved_sums = _ReservedSums()


def covering(book, open_orders, symbol, excluding=None):
    """Shares of a short position in ``symbol`` left to cover after the open buys, and what short entries
    part filled keep for their exits (0 if not short)."""
    held = book.quantity(symbol)
    if held >= 0:
        return Decimal(0)
    reserved = sum((o.remaining for o in contingent.counted_once(open_orders) if o.id != excluding
                    and o.symbol == symbol and o.side is Side.BUY and o.open and o.quantity is not None
                    and o.account_id == book.account_id), Decimal(0))
    return -held - reserved - _kept_for_exits(book, open_orders, symbol, Side.SELL, excluding)


def available_shares(book, open_orders, symbol, prices, excluding=None):
    """Shares of ``symbol`` left for new sells after the open sells, and what entries part filled keep for
    their exits."""
    reserved = sum((reserved_shares(o, prices.get(o.symbol)) for o in contingent.counted_once(open_orders)
                    if o.id != excluding and o.symbol == symbol and o.account_id == book.account_id), Decimal(0))
    return book.quantity(symbol) - reserved - _kept_for_exits(book, open_orders, symbol, Side.BUY, excluding)


def _kept_for_exits(book, open_orders, symbol, side, excluding):
    """Shares the live entries (on ``side``) of bracket and OTO orders in ``symbol`` have filled: their held
    exits will open for them when the entry ends, so no other order may take them meanwhile."""
    return sum((o.filled_quantity for o in open_orders if o.filled_quantity and o.side is side
                and o.symbol == symbol and o.id != excluding and o.account_id == book.account_id
                and o.live and contingent.is_entry(o)), Decimal(0))


def _sessions_of(tif, now, sessions: SessionInfo):
    """(expires, session_open, session_close) for an order placed at ``now``."""
    if tif is TimeInForce.DAY:
        return sessions.upcoming.close, None, None
    if tif is TimeInForce.OPG:  # at the very open (where a replay's time waits) still in time for it
        at_open = sessions.current is not None and now == sessions.current.open
        session = sessions.current if at_open else sessions.next
        return None, session.open, session.close  # (its close: the latest it may wait for its first bar)
    if tif is TimeInForce.CLS:
        return None, None, sessions.upcoming.close
    return None, None, None


def accept(request: OrderRequest, book, open_orders, prices, now, sessions: SessionInfo, rules: Rules,
           replaces: Optional[Order] = None):
    """Check a new order against the account's book and open orders; return it as an Order (status new).

    ``prices`` maps symbols to their last price; ``open_orders`` are the account's open orders.
    With ``replaces``, that order's reservation is left out (it is being replaced).
    Raises a typed error (InvalidInput, QuoteUnavailable, InsufficientFunds, InsufficientPosition).

    A bracket or OTO request is checked as its entry, an OCO request as its take-profit (the order returned);
    their other parts are ``contingent.exits`` (papertrader/trading/contingent.py).
    """
    kept = replaces is not None and replaces.quantity is not None and \
        request.quantity == replaces.quantity - replaces.filled_quantity and \
        request.time_in_force is replaces.time_in_force
    request = check_request(request, prices.get(request.symbol), kept)
    if replaces is None or request.stop_price != replaces.stop_price:
        check_stop_side(request, prices.get(request.symbol))
    if request.order_class is not OrderClass.SIMPLE:
        _check_sides(request, book)
    others = open_orders if replaces is None else [o for o in open_orders if o.id != replaces.id]
    if len(others) >= rules.max_open_orders:
        raise InvalidInput(f"you already have {rules.max_open_orders} open orders; cancel some first")
    last = prices.get(request.symbol)
    expires, session_open, session_close = _sessions_of(request.time_in_force, now, sessions)
    order = Order(
        id=None, account_id=request.account_id, client_order_id=request.client_order_id, symbol=request.symbol,
        side=request.side, type=request.type, time_in_force=request.time_in_force, status=Status.NEW,
        created=now, quantity=request.quantity, notional=request.notional, limit_price=request.limit_price,
        stop_price=request.stop_price, trail_price=request.trail_price, trail_percent=request.trail_percent,
        expires=expires, session_open=session_open, session_close=session_close,
        watermark=last if request.type is OrderType.TRAILING_STOP else None,
        replaces=replaces.id if replaces is not None else None, updated=now, order_class=request.order_class,
        leg=Leg.TAKE_PROFIT if request.order_class is OrderClass.OCO else None,
        opens=_opens(request, book),
    )
    if request.type is OrderType.TRAILING_STOP and last is None:
        raise QuoteUnavailable(f"no price is known yet for {request.symbol}; a trailing stop starts from it")
    if book.margin is not None:
        return _accept_margin(order, book, others, prices, last, rules)
    if order.side is Side.BUY:
        price, needs_last = reference_price(order, last)
        if price is None:
            raise QuoteUnavailable(f"no price is known yet for {request.symbol}; try again after the next update")
        if order.quantity is not None and round_money(order.quantity * price) < CENT:
            raise InvalidInput(f"order value below one cent: {_what(order)} at {price_text(price)}")
        needed = reservation(order, last, rules)
        power = buying_power(book, others, prices, rules)
        if needed > power:
            after = " after your open orders" if power != book.cash else ""
            raise InsufficientFunds(f"insufficient buying power: buying {_what(order)} needs up to"
                                    f" {money_text(needed)}; buying power is {money_text(power)}{after}")
    else:
        reference = order.limit_price or order.stop_price or last
        if order.quantity is not None and reference is not None and round_money(order.quantity * reference) < CENT:
            raise InvalidInput(f"order value below one cent: {_what(order)} at {price_text(reference)}")
        if order.quantity is None and last is None:
            raise QuoteUnavailable(f"no price is known yet for {request.symbol}; try again after the next update")
        wanted = reserved_shares(order, last)
        have = available_shares(book, others, order.symbol, prices)
        if wanted > have:
            held = book.quantity(order.symbol)
            notes = [_held_words(held - have, "held for your open sell orders")] if held > have else []
            notes += _buying(book, others, order.symbol)
            after = f" ({'; '.join(notes)})" if notes else ""
            raise InsufficientPosition(f"insufficient position: selling {_selling(order, wanted, last)} but"
                                       f" {_shares(have)} available{after}; short selling is not allowed")
    return order


def _what(order):
    """An order's size, as its refusals name it: '10 AAPL', '250.00 of AAPL' (made only when one is refused)."""
    return f"{quantity_text(order.quantity)} {order.symbol}" if order.quantity is not None else \
        f"{money_text(order.notional)} of {order.symbol}"


def _selling(order, wanted, last):
    """What a refused sale sells: '10 AAPL'; a notional one with the shares it comes to at ``last``, which the
    shares available are compared with: '5000.00 of AAPL (about 26.7 shares at 187.25)'."""
    if order.quantity is not None or last is None:
        return _what(order)
    return f"{_what(order)} (about {quantity_text(wanted)} shares at {price_text(last)})"


def _shares(n):
    """'1 share is', '0 shares are', '2.5 shares are'."""
    return f"{quantity_text(n)} {'share is' if n == 1 else 'shares are'}"


def _buying(book, open_orders, symbol):
    """['your open buy of 10 AAPL has not filled yet'] (what a sale just after a buy is told: the shares are not
    held until the buy fills), or [] if the account has no open buy of ``symbol``."""
    buys = [o for o in open_orders if o.open and o.side is Side.BUY and o.symbol == symbol
            and o.account_id == book.account_id]
    if not buys:
        return []
    remaining = [o.remaining for o in buys]
    what = f"{quantity_text(sum(remaining))} {symbol}" if None not in remaining else symbol
    many = len(buys) > 1
    return [f"your open buy{'s' if many else ''} of {what} {'have' if many else 'has'} not filled yet"]


def _held_words(shares, what):
    """'N are WHAT' ('1 is WHAT')."""
    return f"{quantity_text(shares)} {'is' if shares == 1 else 'are'} {what}"


def _held_for(shares, what):
    """' (N are WHAT)' if ``shares``, else nothing."""
    return f" ({_held_words(shares, what)})" if shares > 0 else ""


def opens(request, book):
    """Whether a request would open or add to a position (see ``_opens``): what an order's ``opens`` will be."""
    return _opens(request, book)


def _opens(request, book):
    """Whether the order opens or adds to a position (see Order.opens): an OCO closes one; a bracket's or
    OTO's entry opens one; a buy opens unless it covers a short position; a sale closes unless it is a short
    sale (in a margin portfolio, holding none or short already)."""
    if request.order_class is OrderClass.OCO:
        return False
    if request.order_class is not OrderClass.SIMPLE:
        return True
    held = book.quantity(request.symbol)
    if request.side is Side.BUY:
        return held >= 0
    return book.margin is not None and held <= 0


def _check_sides(request, book):
    """A bracket's or OTO's entry opens or adds to a position (its exits close it); an OCO closes one held."""
    held = book.quantity(request.symbol)
    buy = request.side is Side.BUY
    if request.order_class is OrderClass.OCO:
        if held == 0:
            raise InsufficientPosition(f"an oco order closes a position you hold, and you hold no {request.symbol}")
        if buy != (held < 0):
            raise InvalidInput(
                f"a {request.side.value} oco order {'buys back a short' if buy else 'sells a long'} position, and you"
                f" are {'long' if held > 0 else 'short'} {quantity_text(abs(held))} {request.symbol}: a"
                f" {'sell' if buy else 'buy'} oco order closes it")
        return
    if not buy and book.margin is None:
        raise InsufficientPosition(f"a {request.order_class.value} order's sell entry is a short sale: short selling"
                                   " is allowed in margin portfolios only")
    if (buy and held < 0) or (not buy and held > 0):
        raise InvalidInput(f"a {request.order_class.value} order's entry opens or adds to a position: you are"
                           f" {'short' if held < 0 else 'long'} {quantity_text(abs(held))} {request.symbol}"
                           f" (its exits would reverse it)")


def _accept_margin(order, book, others, prices, last, rules):
    """The buying-power and position checks of a margin account (see the module's docstring)."""
    buy = order.side is Side.BUY
    held = book.quantity(order.symbol)
    known = order.limit_price or order.stop_price or last
    if order.quantity is not None and known is not None and round_money(order.quantity * known) < CENT:
        raise InvalidInput(f"order value below one cent: {_what(order)} at {price_text(known)}")
    if last is None and (order.quantity is None or order.type is not OrderType.LIMIT):
        raise QuoteUnavailable(f"no price is known yet for {order.symbol}; try again after the next update")
    if buy and held < 0:
        if order.quantity is None:
            raise InsufficientPosition(f"you are short {order.symbol}: a buy covers it, given as a quantity (not a"
                                       " notional)")
        left = covering(book, others, order.symbol)
        if order.quantity > left:
            raise InsufficientPosition(
                f"a buy may cover at most the {quantity_text(left)} {order.symbol} you are short"
                f"{_held_for(-held - left, 'covered by your open buys')}; "
                + ("cancel an open buy to cover more" if order.quantity <= -held else
                   "it may not turn a short position long: cover it first, then buy again"))
        return order
    if not buy and held > 0:
        have = available_shares(book, others, order.symbol, prices)
        wanted = reserved_shares(order, last)
        if wanted > have:
            raise InsufficientPosition(
                f"insufficient position: selling {_selling(order, wanted, last)} but {_shares(have)} available"
                f"{_held_for(held - have, 'held for your open sell orders')}; "
                + ("cancel an open sale to sell more" if wanted <= held else
                   "a sell may not turn a long position short: sell what you hold first, then sell short"))
        return order
    if not buy and (order.quantity is None or order.quantity != order.quantity.to_integral_value()):
        raise InvalidInput("a short sale is a whole number of shares, given as a quantity (not a notional)")
    needed = reservation(order, last, rules) if buy else short_reservation(order, last, rules)
    power = buying_power(book, others, prices, rules)
    if needed > power:
        doing = "buying" if buy else "selling short"
        raise InsufficientFunds(f"insufficient buying power: {doing} {_what(order)} needs up to {money_text(needed)};"
                                f" margin buying power is {money_text(power)} after your open orders")
    return order
