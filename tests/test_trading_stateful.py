"""A stateful test (hypothesis RuleBasedStateMachine) of the trading core against a reference ledger.

The machine places, cancels and replaces orders of two cash accounts, runs market steps with random bars,
and now and then moves to the next session (day orders expire).  Beside the core it keeps its own small
ledger, written independently of papertrader/trading/: cash and shares per account, changed only by the
fills the core reports (gross = price x quantity rounded half-even to the cent, plus or minus the commission),
what each order has filled, and which orders are open (placed or replacing, until an event ends them).
After every step: each book's cash and positions equal the reference exactly; no cash or position is
negative; no order fills more than it asked or differs from its fills; the open orders are the reference's;
and a refused place, cancel or replace changed nothing.  test_trading_properties.py checks other laws
(fill prices inside the bar, same inputs same events) over scripted scenarios.
"""

import dataclasses
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from papertrader.errors import OrderNotOpen, PaperTraderError
from papertrader.trading import amend
from papertrader.trading.events import EventKind
from papertrader.trading.market import MarketStep
from papertrader.trading.orders import OrderType, Side, TimeInForce
from papertrader.trading.pretrade import accept
from papertrader.trading.step import step
from tests.test_trading_properties import bars, prices, requests, rules_strategy
from tests.trading_helpers import MINUTE, NEXT_SESSION, T0, book, sessions_at

D = Decimal
ACCOUNTS = (1, 2)
#: Quantities whose value at a price of whole cents can end in half a cent (the rounding rule decides).
HALVES = st.sampled_from([D("0.5"), D("1.5"), D("2.5"), D("0.125"), D("0.375")])
ENDING = {EventKind.FILL, EventKind.CANCELED, EventKind.EXPIRED, EventKind.REJECTED, EventKind.REPLACED}


def cents(value):
    return value.quantize(D("0.01"), rounding=ROUND_HALF_EVEN)


class Ledger(RuleBasedStateMachine):
    """The core (books, orders) beside a reference ledger (cash, shares, filled, open)."""

    @initialize(rules=rules_strategy, cash=st.lists(st.integers(0, 5_000_000), min_size=2, max_size=2),
                shares=st.lists(st.integers(0, 40), min_size=2, max_size=2))
    def start(self, rules, cash, shares):
        self.rules = rules
        self.now = T0
        self.prices = {"AAPL": D("100.00"), "MSFT": D("100.00")}
        self.books, self.orders, self.next_id, self.cid = {}, {}, 1, 0
        self.ref_cash, self.ref_shares, self.ref_filled, self.ref_open = {}, {}, {}, set()
        for account, c, s in zip(ACCOUNTS, cash, shares):
            money = D(c).scaleb(-2)
            self.books[account] = book(str(money), account=account, AAPL=(str(s), str(s * 100))) if s else \
                book(str(money), account=account)
            self.ref_cash[account] = money
            self.ref_shares[account] = {"AAPL": D(s)} if s else {}

    # --- the reference ---------------------------------------------------------------------------------

    def record(self, events):
        for event in events:
            order = event.order
            fill = event.fill
            if fill is not None:
                assert fill.commission >= 0 and fill.quantity > 0
                gross = cents(fill.price * fill.quantity)
                buy = fill.side == Side.BUY.value
                self.ref_cash[fill.account_id] += -(gross + fill.commission) if buy else gross - fill.commission
                held = self.ref_shares[fill.account_id].get(fill.symbol, D(0))
                held += fill.quantity if buy else -fill.quantity
                if held:
                    self.ref_shares[fill.account_id][fill.symbol] = held
                else:
                    self.ref_shares[fill.account_id].pop(fill.symbol, None)
                self.ref_filled[order.id] = self.ref_filled.get(order.id, D(0)) + fill.quantity
            if event.kind in ENDING:
                self.ref_open.discard(order.id)

    def snapshot(self):
        return dict(self.books), dict(self.orders)

    def open_of(self, account):
        return [o for o in self.orders.values() if o.open and o.account_id == account]

    def client_order_id(self):
        self.cid += 1
        return f"m{self.cid}"

    # --- what traders and the market do -------------------------------------------------------------------

    @rule(account=st.sampled_from(ACCOUNTS), data=st.data())
    def place(self, account, data):
        request = data.draw(requests(account))
        if request.quantity is not None and data.draw(st.booleans()):
            request = dataclasses.replace(request, quantity=data.draw(HALVES))  # gross values of half a cent
        before = self.snapshot()
        try:
            order = accept(request, self.books[account], self.open_of(account), self.prices, self.now,
                           sessions_at(self.now), self.rules)
        except PaperTraderError:
            assert self.snapshot() == before
            return
        order = order.but(id=self.next_id)
        self.next_id += 1
        self.orders[order.id] = order
        self.ref_open.add(order.id)

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def cancel(self, data):
        order = self.orders[data.draw(st.sampled_from(sorted(self.orders)))]
        try:
            ended, event = amend.cancel(order, self.now)
        except OrderNotOpen:
            assert not order.open
            return
        assert order.open and not ended.open and ended.filled_quantity == order.filled_quantity
        self.orders[ended.id] = ended
        self.record([event])

    def replaceable(self):
        """The ids of the orders ``replace`` may pick."""
        return sorted(i for i, o in self.orders.items() if o.open)

    @precondition(lambda self: self.replaceable())
    @rule(data=st.data())
    def replace(self, data):
        old = self.orders[data.draw(st.sampled_from(self.replaceable()))]
        quantity = data.draw(st.none() | HALVES | st.integers(1, 300_000).map(lambda n: D(n).scaleb(-3)))
        limit = data.draw(st.none() | prices) if old.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
        tif = data.draw(st.none() | st.sampled_from([TimeInForce.DAY, TimeInForce.GTC]))
        changes = amend.Changes(quantity=quantity, limit_price=limit and limit.quantize(D("0.01")),
                                time_in_force=tif, client_order_id=self.client_order_id())
        self.apply_replace(old, changes)

    def apply_replace(self, old, changes):
        """Replace ``old`` with ``changes`` as the store would (ids, links); a refusal changes nothing.  Returns
        the new order, or None if it was refused."""
        before = self.snapshot()
        try:
            ended, new, events = amend.replace(old, changes, self.books[old.account_id],
                                               self.open_of(old.account_id), self.prices, self.now,
                                               sessions_at(self.now), self.rules)
        except PaperTraderError:
            assert self.snapshot() == before
            return None
        new = new.but(id=self.next_id)
        self.next_id += 1
        self.orders[ended.id] = ended.but(replaced_by=new.id)
        self.orders[new.id] = new
        self.record(events)
        if new.open:
            self.ref_open.add(new.id)
        return new

    @rule(data=st.data())
    def market_step(self, data):
        self.run_step(data.draw(bars(self.now)))

    def run_step(self, step_bars):
        """A market step one minute on with these bars, over the live orders."""
        time = self.now + MINUTE
        result = step(self.books, [o for o in self.orders.values() if o.live], MarketStep(time, step_bars),
                      self.rules)
        self.books.update(result.books)
        self.orders.update({o.id: o for o in result.orders})
        self.record(result.events)
        self.prices.update({s: b.close for s, b in step_bars.items()})
        self.now = time

    @precondition(lambda self: self.now < NEXT_SESSION.open)
    @rule()
    def next_session(self):
        """Overnight: the next step is in the next session (day orders of the last one expire)."""
        self.now = NEXT_SESSION.open + timedelta(minutes=1)

    # --- the laws ------------------------------------------------------------------------------------------

    @invariant()
    def books_match_the_reference(self):
        if not hasattr(self, "books"):
            return
        for account in ACCOUNTS:
            b = self.books[account]
            assert b.cash == self.ref_cash[account], (account, b.cash, self.ref_cash[account])
            assert b.cash >= 0
            assert {s: p.quantity for s, p in b.positions.items()} == self.ref_shares[account]
            assert all(p.quantity > 0 for p in b.positions.values())

    @invariant()
    def orders_match_the_reference(self):
        if not hasattr(self, "orders"):
            return
        for order in self.orders.values():
            filled = self.ref_filled.get(order.id, D(0))
            assert order.filled_quantity == filled, (order.id, order.filled_quantity, filled)
            if order.quantity is not None:
                assert 0 <= order.filled_quantity <= order.quantity
        assert {i for i, o in self.orders.items() if o.open} == self.ref_open


Ledger.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TestLedger = Ledger.TestCase
