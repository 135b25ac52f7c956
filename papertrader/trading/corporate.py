"""Corporate actions: what splits and cash dividends do to books and open orders.

A **split** of ``new`` shares for every ``old`` share (4 for 1; a 1-for-3 reverse split is 1 for
3, kept as two numbers so that 300 shares become exactly 100) takes effect on its date: every position's quantity is
multiplied by the ratio and its cost stays the same (so the average cost is
divided by it, and so is its average entry price); an open order's quantity (and what it has filled) is multiplied
by the ratio and its limit, stop and trail prices divided by it, as brokers
adjust them.  Quantities are rounded down to 6 decimals; a reverse split that
leaves a fraction of a share keeps it (shares here are fractional).

A **cash dividend** of ``amount`` per share is owed to whoever holds the shares
at the end of the session before its ex-date, and is paid on its pay date (the
ex-date when no pay date is known): cash += round(quantity held x amount).  A short position
(negative quantity, margin accounts) pays it instead, as a short seller pays the lender.
A split multiplies a short position the same way (rounded toward zero).
"""

from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Optional

from papertrader.money import PRICE_STEP, QUANTITY_STEP, round_money, round_price, round_to_tick, tick
from papertrader.trading.orders import Side


@dataclass(frozen=True)
class Split:
    symbol: str
    date: date
    new: Decimal
    old: Decimal = Decimal(1)

    @property
    def ratio(self):
        return self.new / self.old

    def shares(self, quantity):
        return _shares(quantity * self.new / self.old)

    def price(self, value):
        return round_price(value * self.old / self.new) if value is not None else None


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


def split_book(book, split, restore=None):
    """The book after ``split``: (new book, (quantity before, quantity after)) or (book, None) if not held.

    ``restore``: the exact shares the split gives back, when a seek back undid it on this position and nothing
    changed it since (the undoing division rounded to the millionth: 223 / 7 = 31.857142, and 7 x that is
    222.999994, not the 223 held before)."""
    held = book.positions.get(split.symbol)
    if held is None:
        return book, None
    quantity = split.shares(held.quantity)
    if restore is not None and abs(restore - quantity) <= QUANTITY_STEP * max(split.ratio, 1):
        quantity = restore
    positions = dict(book.positions)
    if quantity != 0:
        positions[split.symbol] = replace(held, quantity=quantity, entry_price=split.price(held.entry_price))
    else:
        del positions[split.symbol]
    return replace(book, positions=positions), (held.quantity, quantity)


def split_order(order, split):
    """An open or held order adjusted for ``split`` (an order of another symbol, or ended, comes back unchanged).

    Its limit, stop and trail prices are divided by the ratio and put on a valid tick (whole cents from $1) on
    the order's side of caution, so that the order can be replaced as it stands and never becomes more eager
    than it was: a buy's limit and a sale's stop round down, a sale's limit and a buy's stop up, a trail (a
    distance) to the nearer tick."""
    if order.symbol != split.symbol or not order.live:
        return order
    filled = split.shares(order.filled_quantity)
    buy = order.side is Side.BUY
    return order.but(
        quantity=split.shares(order.quantity) if order.quantity is not None else None,
        filled_quantity=filled, filled_adjustment=order.filled_adjustment + filled - order.filled_quantity,
        limit_price=_on_tick(split, order.limit_price, ROUND_FLOOR if buy else ROUND_CEILING),
        stop_price=_on_tick(split, order.stop_price, ROUND_CEILING if buy else ROUND_FLOOR),
        trail_price=_on_tick(split, order.trail_price, None), watermark=split.price(order.watermark))


def _on_tick(split, price, rounding):
    """``price`` divided by the split's ratio and put on a valid tick in one rounding (a rounding to 0.0001
    first could carry it across a tick: 42.85999 would become 42.8600, then 42.86 for a floor), toward a side as
    given (None: to the nearer tick, half to even), at least the smallest tick (None stays None)."""
    if price is None:
        return None
    exact = price * split.old / split.new
    on = exact.quantize(tick(exact), ROUND_HALF_EVEN) if rounding is None else round_to_tick(exact, rounding)
    return max(on, PRICE_STEP)


def dividend_amount(quantity, dividend):
    """What holding ``quantity`` shares at the ex-date earns."""
    return round_money(quantity * dividend.amount)


@dataclass(frozen=True)
class Entitlement:
    """A dividend owed to an account: the shares it held at the ex-date, and what they earn."""

    account_id: int
    symbol: str
    ex_date: date
    pay_date: date
    quantity: Decimal
    per_share: Decimal
    amount: Decimal
    id: Optional[int] = None


@dataclass(frozen=True)
class Record:
    """What a corporate action did to one account, for its history.

    ``kind`` is ``split`` (``quantity`` the shares after, ``before`` the shares before, ``ratio`` as
    (new, old)) or
    ``dividend`` (``quantity`` the shares that earned it, ``per_share``, ``amount`` the cash credited,
    ``cash_after``).
    """

    kind: str
    account_id: int
    symbol: str
    time: object
    quantity: Decimal
    before: Decimal = Decimal(0)
    ratio: tuple = (Decimal(1), Decimal(1))
    per_share: Decimal = Decimal(0)
    amount: Decimal = Decimal("0.00")
    cash_after: Decimal = Decimal("0.00")
    #: A split undone (market time moved back to before it): ``ratio`` is the undoing one's.
    undone: bool = False


def undoing(split):
    """The split that undoes ``split`` (its shares divided back, its prices multiplied back)."""
    return Split(split.symbol, split.date, split.old, split.new)


def apply(books, orders, actions, today, now, restores=None):
    """Apply the splits and dividends of ``actions`` (all dated on or before ``today``) in date order; a second
    split of a symbol on one day is the first one listed again, not applied, and so is a second dividend of a
    symbol with the same ex-date, pay date and amount per share.

    Returns (books, changed open orders, records, entitlements still to pay).  A dividend whose pay
    date is ``today`` or earlier (or unknown) is paid at once; a later one becomes an Entitlement.
    ``restores``: {(account id, symbol): shares} a split played again gives back exactly (``split_book``).
    """
    restores = restores or {}
    books = dict(books)
    orders = {o.id: o for o in orders}
    changed = {}
    records, owed = [], []

    def moment(action):
        return getattr(action, "date", None) or action.ex_date

    split_days, dividends = set(), set()
    for action in sorted(actions, key=lambda a: (moment(a), a.symbol, type(a).__name__)):
        if isinstance(action, Split):
            if (action.symbol, action.date) in split_days:
                continue  # a symbol splits once a day at most: a second record of it (a provider's) is the same one
            split_days.add((action.symbol, action.date))
            for account_id, book in list(books.items()):
                book, moved = split_book(book, action, restores.get((account_id, action.symbol)))
                if moved is not None:
                    books[account_id] = book
                    cash = book.cash
                    records.append(Record("split", account_id, action.symbol, now, moved[1], moved[0],
                                          ratio=(action.new, action.old), cash_after=cash))
            for order_id, order in list(orders.items()):
                adjusted = split_order(order, action)
                if adjusted is not order:  # (updated when the split took effect, as the positions' records)
                    orders[order_id] = changed[order_id] = adjusted.but(updated=now)
        else:
            key = (action.symbol, action.ex_date, action.paid_on, action.amount)
            if key in dividends:
                continue  # the same dividend listed again (a provider's two ids for one action): paid once
            dividends.add(key)
            for account_id, book in list(books.items()):
                held = book.quantity(action.symbol)
                if held == 0:
                    continue
                due = Entitlement(account_id, action.symbol, action.ex_date, action.paid_on, held, action.amount,
                                  dividend_amount(held, action))
                if due.amount == 0:
                    continue
                if due.pay_date <= today:
                    books[account_id], record = pay(books[account_id], due, now)
                    records.append(record)
                else:
                    owed.append(due)
    return books, list(changed.values()), records, owed


def pay(book, entitlement, now):
    """Credit an entitlement's cash: (new book, its Record)."""
    book = replace(book, cash=book.cash + entitlement.amount)
    return book, Record("dividend", entitlement.account_id, entitlement.symbol, now, entitlement.quantity,
                        per_share=entitlement.per_share, amount=entitlement.amount, cash_after=book.cash)


# --- adjusted price history ------------------------------------------------------------------------------


ADJUSTMENTS = ("raw", "split", "dividend", "all")


def adjustment_factors(day_of_bar, actions, closes_before, kinds, today):
    """How much a bar's prices are multiplied by (and its volume divided by) to adjust it, as Alpaca's market
    data adjusts history: ``kinds`` ``split`` (each split after the bar's day, up to ``today``, divides its
    prices by its ratio), ``dividend`` (each cash dividend whose ex-date is after the bar's day, up to
    ``today``, multiplies them by 1 - amount / the close of the session before the ex-date, the usual
    back-adjustment of total return; a dividend without that close is left out), ``all`` both.  An action listed
    twice counts once, as ``apply`` applies it once.  Returns (price factor, volume factor) as Decimals.
    ``closes_before``: {(symbol, ex_date): that close}."""
    price, volume = Decimal(1), Decimal(1)
    seen = set()
    for action in actions:
        key = ((action.symbol, action.date) if isinstance(action, Split)
               else (action.symbol, action.ex_date, action.paid_on, action.amount))
        if key in seen:
            continue
        seen.add(key)
        if isinstance(action, Split) and kinds in ("split", "all") and day_of_bar < action.date <= today:
            price /= action.ratio
            volume *= action.ratio
        elif isinstance(action, Dividend) and kinds in ("dividend", "all") and day_of_bar < action.ex_date <= today:
            close = closes_before.get((action.symbol, action.ex_date))
            if close and close > action.amount:
                price *= 1 - action.amount / close
    return price, volume


def adjust_bar(bar, factors):
    """``bar`` (a dict with open, high, low, close, volume) adjusted by ``factors`` (adjustment_factors):
    prices rounded to the price step, volume to a whole number."""
    price, volume = factors
    if price == 1 and volume == 1:
        return bar
    out = dict(bar)
    for key in ("open", "high", "low", "close"):
        out[key] = round_price(bar[key] * price)
    out["volume"] = int((Decimal(bar["volume"]) * volume).to_integral_value())
    return out
