"""Property tests of the trading core (hypothesis): random accounts, orders, bars and cancels.

Whatever happens, the books balance: cash changes by exactly the signed amounts
of the fills; cash plus the cost of the positions changes by exactly the
realized profit and loss; no cash and no position goes negative; no order fills
more than it asked; every fill is priced inside its bar (and within its limit);
and the same inputs give the same events.
"""

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from papertrader.errors import PaperTraderError
from papertrader.trading import amend
from papertrader.trading.commissions import Percent, PerOrder, PerShare, Zero
from papertrader.trading.fill_models import BarFillModel, IdealFillModel
from papertrader.trading.market import Bar, MarketStep
from papertrader.trading.orders import OrderRequest, OrderType, Side, TimeInForce
from papertrader.trading.pretrade import Rules, accept
from papertrader.trading.step import moving, step
from tests.trading_helpers import MINUTE, T0, book, sessions_at

D = Decimal
SYMBOLS = ("AAPL", "MSFT")

prices = st.integers(min_value=50, max_value=50_000).map(lambda cents: D(cents).scaleb(-2))


@st.composite
def bars(draw, start):
    out = {}
    for symbol in draw(st.lists(st.sampled_from(SYMBOLS), unique=True)):
        points = sorted(draw(st.lists(prices, min_size=4, max_size=4)))
        low, high = points[0], points[-1]
        o, c = draw(st.sampled_from(points)), draw(st.sampled_from(points))
        out[symbol] = Bar(symbol, start, start + MINUTE, o, high, low, c,
                          draw(st.integers(min_value=0, max_value=5000))).check()
    return out


@st.composite
def requests(draw, account_id):
    kind = draw(st.sampled_from(list(OrderType)))
    allowed = {OrderType.STOP: ["day", "gtc"], OrderType.STOP_LIMIT: ["day", "gtc"],
               OrderType.TRAILING_STOP: ["day", "gtc"]}.get(kind, [t.value for t in TimeInForce])
    tif = TimeInForce(draw(st.sampled_from(allowed)))
    notional = None
    quantity = D(draw(st.integers(min_value=1, max_value=300_000))).scaleb(-3)
    if kind is OrderType.MARKET and tif is TimeInForce.DAY and draw(st.booleans()):
        quantity, notional = None, D(draw(st.integers(min_value=100, max_value=500_000))).scaleb(-2)
    whole_cents = prices.map(lambda p: p.quantize(D("0.01")))
    return OrderRequest(
        account_id=account_id, client_order_id=f"c{draw(st.integers(0, 10**9))}",
        symbol=draw(st.sampled_from(SYMBOLS)), side=draw(st.sampled_from(list(Side))), type=kind,
        time_in_force=tif, quantity=quantity, notional=notional,
        limit_price=draw(whole_cents) if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        stop_price=draw(whole_cents) if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        trail_price=D(draw(st.integers(1, 2000))).scaleb(-2) if kind is OrderType.TRAILING_STOP else None,
    )


rules_strategy = st.builds(
    Rules,
    fill_model=st.sampled_from([IdealFillModel(), BarFillModel(),
                                BarFillModel(half_spread_bps=D(50), impact_bps=D(100), volume_share=D("0.5"))]),
    commission_model=st.sampled_from([Zero(), PerOrder(D("1.00")), PerShare(D("0.005"), D("1.00"), D("5.00")),
                                      Percent(D("0.25"))]),
)


@st.composite
def scenarios(draw):
    rules = draw(rules_strategy)
    books = {}
    for account in (1, 2):
        cash = str(D(draw(st.integers(0, 20_000_000))).scaleb(-2))
        shares = draw(st.integers(0, 50))
        books[account] = book(cash, account=account, AAPL=(str(shares), str(shares * 100))) if shares else \
            book(cash, account=account)
    rounds = []
    for i in range(draw(st.integers(1, 6))):
        start = T0 + i * MINUTE
        rounds.append((draw(st.lists(st.tuples(st.sampled_from([1, 2]), st.data()), max_size=4)),
                       draw(st.lists(st.integers(0, 30), max_size=2)), draw(bars(start)), start + MINUTE))
    return rules, books, rounds


def play(rules, books, rounds, only_moving=False):
    """Place, cancel and step as scripted; returns (books, orders, events, bars of each fill's step).
    ``only_moving``: each step is given only the orders it may change and their accounts' books, as the master
    gives it (``moving``)."""
    books = dict(books)
    orders = {}
    events = []
    prices = {"AAPL": D("100.00"), "MSFT": D("100.00")}
    next_id = 1
    for placements, cancels, step_bars, time in rounds:
        now = time - MINUTE
        for account, data in placements:
            request = data.draw(requests(account))
            try:
                order = accept(request, books[account], [o for o in orders.values() if o.open and
                                                          o.account_id == account], prices, now, sessions_at(now),
                               rules)
            except PaperTraderError:
                continue
            orders[next_id] = order.but(id=next_id)
            next_id += 1
        for index in cancels:
            if index in orders and orders[index].open:
                orders[index], event = amend.cancel(orders[index], now)
                events.append((event, None))
        market = MarketStep(time, step_bars)
        stepped = [o for o in orders.values() if o.open]
        given = books
        if only_moving:
            stepped = moving(stepped, market, rules)
            given = {a: b for a, b in books.items() if a in {o.account_id for o in stepped}}
        result = step(given, stepped, market, rules)
        books.update(result.books)
        orders.update({o.id: o for o in result.orders})
        events += [(e, step_bars.get(e.order.symbol)) for e in result.events]
        prices.update({s: b.close for s, b in step_bars.items()})
    return books, orders, events


def total_cost(b):
    return sum((p.cost for p in b.positions.values()), D("0.00"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.data())
def test_the_books_always_balance(scenario, data):
    rules, start_books, rounds = scenario
    books, orders, events = play(rules, start_books, rounds)
    for account, start in start_books.items():
        fills = [e.fill for e, _ in events if e.fill is not None and e.fill.account_id == account]
        end = books[account]
        assert end.cash == start.cash + sum((f.amount for f in fills), D("0.00"))
        assert end.cash + total_cost(end) == start.cash + total_cost(start) + sum((f.realized for f in fills),
                                                                                D("0.00"))
        assert end.cash >= 0
        assert all(p.quantity > 0 for p in end.positions.values())
        for f in fills:
            assert f.cash_after >= 0 and f.position_after >= 0
    for order in orders.values():
        if order.quantity is not None:
            assert 0 <= order.filled_quantity <= order.quantity
        assert order.open or order.status.value in ("filled", "canceled", "expired", "rejected")
    for event, bar in events:
        fill = event.fill
        if fill is None:
            continue
        assert bar.low <= fill.price <= bar.high
        limit = event.order.limit_price
        if limit is not None:
            assert fill.price <= limit if fill.side == "buy" else fill.price >= limit


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_same_inputs_give_the_same_events(scenario):
    rules, books, rounds = scenario
    # st.data() draws replay identically only within one example, so fix the orders first.
    fixed = []
    for placements, cancels, step_bars, time in rounds:
        fixed.append(([(a, _Frozen(d)) for a, d in placements], cancels, step_bars, time))
    first = play(rules, books, fixed)
    second = play(rules, books, [([(a, f.again()) for a, f in p], c, b, t) for p, c, b, t in fixed])
    assert first == second


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_a_step_given_only_the_orders_it_may_change_does_the_same(scenario):
    """The master steps only the orders a step may change (``moving``: resting limit orders left out), with only
    their accounts' books: the books, orders and events must be those of stepping them all."""
    rules, books, rounds = scenario
    fixed = []
    for placements, cancels, step_bars, time in rounds:
        fixed.append(([(a, _Frozen(d)) for a, d in placements], cancels, step_bars, time))
    everything = play(rules, books, fixed)
    assert play(rules, books, [([(a, f.again()) for a, f in p], c, b, t) for p, c, b, t in fixed],
                only_moving=True) == everything


class _Frozen:
    """A data source that answers the same draws the same way (to run a scenario twice)."""

    def __init__(self, data):
        self.data = data
        self.drawn = []
        self.replaying = None

    def draw(self, strategy):
        if self.replaying is not None:
            return self.replaying.pop(0)
        value = self.data.draw(strategy)
        self.drawn.append(value)
        return value

    def again(self):
        copy = _Frozen(None)
        copy.replaying = list(self.drawn)
        return copy


@settings(max_examples=300)
@given(prices, st.sampled_from(list(Side)), st.sampled_from([BarFillModel(), IdealFillModel()]),
       st.integers(min_value=-2, max_value=2), st.data())
def test_a_limit_order_said_to_rest_is_one_its_bar_gives_no_price(limit, side, model, arrived, data):
    """A market step skips the work of a resting limit order (most open orders) on its fill model's word
    (``limit_rests``): the word must be what matching it says, for either model, either side, and an order that
    arrived before, inside or after its bar."""
    start = T0 + MINUTE
    bar = next(iter(data.draw(bars(start).filter(bool)).values()))
    held = book(**{symbol: ("10", "1000.00") for symbol in SYMBOLS})
    order = accept(OrderRequest(account_id=held.account_id, client_order_id="c1", symbol=bar.symbol, side=side,
                                type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, quantity=D(1),
                                limit_price=limit), held, [], {bar.symbol: bar.open}, T0, sessions_at(T0),
                   Rules(fill_model=model))
    order = order.but(id=1, created=start + arrived * MINUTE / 2)
    match = model.match(order, bar, None)
    assert model.limit_rests(order, bar) == (match is None or match.price is None), (order, bar, match)
