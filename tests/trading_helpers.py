"""Small builders for the trading core's tests: books, bars, orders, steps (no reactor, no database)."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from papertrader.trading.books import Book, Position
from papertrader.trading.market import Bar, MarketStep, Session, SessionInfo
from papertrader.trading.orders import OrderRequest, OrderType, Side, TimeInForce
from papertrader.trading.fill_models import BarFillModel
from papertrader.trading.pretrade import Rules, accept
from papertrader.trading.step import moving, step

D = Decimal
T0 = datetime(2024, 3, 4, 14, 30, tzinfo=timezone.utc)  # a Monday, 09:30 New York
MINUTE = timedelta(minutes=1)
SESSION = Session(T0, T0 + timedelta(hours=6, minutes=30))
NEXT_SESSION = Session(T0 + timedelta(days=1), T0 + timedelta(days=1, hours=6, minutes=30))


def book(cash="100000.00", account=1, **positions):
    return Book(account, D(cash), {s: Position(s, D(q), D(c)) for s, (q, c) in positions.items()})


def bar(o, h, l, c, volume=1_000_000, start=T0, symbol="AAPL", length=MINUTE):
    return Bar(symbol, start, start + length, D(str(o)), D(str(h)), D(str(l)), D(str(c)), volume).check()


def at(minutes):
    return T0 + minutes * MINUTE


def sessions_at(now):
    """Where ``now`` stands in a calendar of two sessions (SESSION, then NEXT_SESSION)."""
    if SESSION.contains(now):
        return SessionInfo(SESSION, NEXT_SESSION)
    if now < SESSION.open:
        return SessionInfo(None, SESSION)
    if NEXT_SESSION.contains(now):
        return SessionInfo(NEXT_SESSION, Session(NEXT_SESSION.open + timedelta(days=1),
                                                 NEXT_SESSION.close + timedelta(days=1)))
    return SessionInfo(None, NEXT_SESSION)


_ids = iter(range(1, 10**9))


def place(b, side="buy", quantity="10", symbol="AAPL", kind="market", tif="day", open_orders=(), prices=None,
          now=T0, rules=None, **prices_and_more):
    """Accept an order (raising what accept raises) and give it an id, as the store would."""
    request = OrderRequest(
        account_id=b.account_id, client_order_id=f"c{next(_ids)}", symbol=symbol, side=Side(side),
        type=OrderType(kind), time_in_force=TimeInForce(tif),
        quantity=D(quantity) if quantity is not None else None,
        notional=D(prices_and_more["notional"]) if "notional" in prices_and_more else None,
        limit_price=D(prices_and_more["limit"]) if "limit" in prices_and_more else None,
        stop_price=D(prices_and_more["stop"]) if "stop" in prices_and_more else None,
        trail_price=D(prices_and_more["trail_price"]) if "trail_price" in prices_and_more else None,
        trail_percent=D(prices_and_more["trail_percent"]) if "trail_percent" in prices_and_more else None,
    )
    prices = {symbol: D("100.00")} if prices is None else prices
    order = accept(request, b, list(open_orders), prices, now, sessions_at(now), rules or Rules())
    return order.but(id=next(_ids))


def market(time, *bars):
    return MarketStep(time, {b.symbol: b for b in bars})


#: Fills at the bar's prices, without slippage (the figures in tests are then exact).
NO_SLIP = Rules(fill_model=BarFillModel(half_spread_bps=D(0), impact_bps=D(0)))


def run(b, orders, *steps, rules=NO_SLIP):
    """Run steps (time, bars...) in turn over the open (and held) orders, as the master does (each step given the
    orders it may change, ``moving``, and their accounts' books); return (book, {order id: order}, [events])."""
    books = {b.account_id: b}
    current = {o.id: o for o in orders}
    events = []
    for time, *bars in steps:
        stepping = market(time, *bars)
        live = moving([o for o in current.values() if o.live], stepping, rules)
        result = step({a: b for a, b in books.items() if a in {o.account_id for o in live}}, live, stepping, rules)
        books.update(result.books)
        current.update({o.id: o for o in result.orders})
        events += result.events
    return books[b.account_id], current, events
