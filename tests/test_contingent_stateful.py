"""A stateful test of bracket, OCO and OTO orders in the trading core, against the reference ledger of
test_trading_stateful.py and the ties of papertrader/trading/contingent.py.

The machine is test_trading_stateful's (simple orders of two cash accounts, fills checked against its own
ledger of cash and shares) with more to do, and runs again with two margin accounts (short entries, OCOs
buying back a short position): place bracket and OTO orders (buy entries of every type they
take, exits a little above and below the price) and OCO orders on shares held; cancel any part, the other
parts following as the application does; move an exit's price (an OCO's stop-loss hangs from its new
take-profit); and bars that move a few percent at a time, so that entries fill and exits trigger.
After every rule, beside the ledger's laws:
- a held exit's entry is still live; an open exit's entry has ended (having filled something);
- a group's exits never close more than its entry filled, and two open exits have the same quantity left;
- once one exit has ended (not by being replaced), no other exit of its group is live;
- a cash account's open sells (two exits of a group counted once) never want more shares than it holds.
"""

import dataclasses
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from papertrader.errors import OrderNotOpen, PaperTraderError
from papertrader.trading import amend, contingent
from papertrader.trading.events import EventKind
from papertrader.trading.books import Book, Position
from papertrader.trading.margin import MarginRules
from papertrader.trading.market import Bar
from papertrader.trading.orders import Leg, OrderClass, OrderRequest, OrderType, Side, Status, TimeInForce
from papertrader.trading.pretrade import accept, reserved_shares
from tests.test_trading_properties import rules_strategy
from tests.test_trading_stateful import ACCOUNTS, Ledger
from tests.trading_helpers import MINUTE, sessions_at

D = Decimal
CENT = D("0.01")
#: How far (in basis points) a bracket's exits lie from its entry's price, and a bar moves from the last price.
OFFSETS = st.integers(min_value=20, max_value=400)
MOVES = st.integers(min_value=-500, max_value=500)


def cents(value):
    return value.quantize(CENT)


class Groups(Ledger):
    """test_trading_stateful's Ledger with bracket, OCO and OTO orders."""

    margin = False

    def open_of(self, account):
        # What the application reads for a new order: the open orders and the held exits.
        return [o for o in self.orders.values() if o.live and o.account_id == account]

    def replaceable(self):
        # Simple orders (an exit's price is moved by move_exit, as the application does it).
        return sorted(i for i, o in self.orders.items() if o.open and o.order_class is OrderClass.SIMPLE)

    def record(self, events):
        # In the order they came: a day exit whose entry filled in a session's last bar opens and expires in one
        # step (accepted, then expired), and is not open after it.
        for event in events:
            super().record([event])
            if event.kind is EventKind.ACCEPTED:  # a held exit opened (its entry filled)
                self.ref_open.add(event.order.id)

    def store(self, first, request):
        """Ids for an accepted group's parts, as the store gives them."""
        first = first.but(id=self.next_id)
        self.next_id += 1
        self.orders[first.id] = first
        if first.open:
            self.ref_open.add(first.id)
        ids = [self.client_order_id(), self.client_order_id()]
        for leg in contingent.exits(first, request, ids):
            leg = leg.but(id=self.next_id, parent_id=first.id)
            self.next_id += 1
            self.orders[leg.id] = leg
            if leg.open:
                self.ref_open.add(leg.id)

    @rule(account=st.sampled_from(ACCOUNTS), data=st.data())
    def place_group(self, account, data):
        symbol = data.draw(st.sampled_from(sorted(self.prices)))
        last = self.prices[symbol]
        held = self.books[account].quantity(symbol)
        oco = abs(held) >= 1 and data.draw(st.booleans())
        kind = OrderClass.OCO if oco else data.draw(st.sampled_from([OrderClass.BRACKET, OrderClass.OTO]))
        quantity = D(data.draw(st.integers(1, int(abs(held)) if oco else 30)))
        # An OCO sells a long position or buys back a short one; an entry buys, or in a margin account may
        # sell short (its exits buy back).
        if oco:
            side = Side.SELL if held > 0 else Side.BUY
        else:
            side = Side.SELL if self.margin and data.draw(st.booleans()) else Side.BUY
        sign = 1 if (side is Side.BUY) != oco else -1  # +1: the exits sell above and below a long entry
        tif = data.draw(st.sampled_from([TimeInForce.DAY, TimeInForce.GTC]))
        up, down = data.draw(OFFSETS), data.draw(OFFSETS)
        limit = stop = None
        if oco:
            entry, base = OrderType.LIMIT, last
        else:
            entry = data.draw(st.sampled_from(contingent.ENTRY_TYPES))
            base = last
            if entry in (OrderType.STOP, OrderType.STOP_LIMIT):  # a buy stop above the price, a sell stop below
                stop = cents(last * (1 + sign * D(data.draw(st.integers(1, 200))).scaleb(-4)))
                base = stop
            if entry in (OrderType.LIMIT, OrderType.STOP_LIMIT):
                limit = cents(base * (1 + sign * D(data.draw(st.integers(-200, 100))).scaleb(-4)))
                base = limit
        take_profit = cents(base * (1 + sign * D(up).scaleb(-4)))
        stop_loss = cents(base * (1 - sign * D(down).scaleb(-4)))
        stop_loss_limit = cents(stop_loss * (1 - sign * D("0.01"))) if data.draw(st.booleans()) else None
        if kind is OrderClass.OTO:
            if data.draw(st.booleans()):
                stop_loss = stop_loss_limit = None
            else:
                take_profit = None
        request = OrderRequest(
            account_id=account, client_order_id=self.client_order_id(), symbol=symbol,
            side=side, type=entry, time_in_force=tif, quantity=quantity,
            limit_price=limit, stop_price=stop, order_class=kind, take_profit=take_profit, stop_loss=stop_loss,
            stop_loss_limit=stop_loss_limit)
        before = self.snapshot()
        try:
            first = accept(request, self.books[account], self.open_of(account), self.prices, self.now,
                           sessions_at(self.now), self.rules)
        except PaperTraderError:
            assert self.snapshot() == before
            return
        self.store(first, dataclasses.replace(request, limit_price=first.limit_price))

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def cancel(self, data):
        """Cancel any order; the other parts of its group follow (papertrader/app/trading.py cancel_order)."""
        before = self.orders[data.draw(st.sampled_from(sorted(self.orders)))]
        try:
            order, event = amend.cancel(before, self.now)
        except OrderNotOpen:
            assert not before.open
            return
        changed, events = [order], [event]
        if order.order_class is not OrderClass.SIMPLE:
            members = [o for o in self.orders.values() if o.group == order.group and o.id != order.id]
            for member, happened in contingent.react(before, order, members, self.now):
                changed.append(member)
                events.extend(happened)
        self.orders.update({o.id: o for o in changed})
        self.record(events)

    @precondition(lambda self: any(o.live and o.leg is not None for o in self.orders.values()))
    @rule(data=st.data())
    def move_exit(self, data):
        """An exit's price moved (papertrader/app/trading.py replace_order)."""
        old = self.orders[data.draw(st.sampled_from(sorted(
            i for i, o in self.orders.items() if o.live and o.leg is not None)))]
        factor = 1 + D(data.draw(MOVES)).scaleb(-4)
        if old.leg is Leg.TAKE_PROFIT:
            changes = amend.Changes(limit_price=cents(old.limit_price * factor), client_order_id=self.client_order_id())
        else:
            changes = amend.Changes(stop_price=cents(old.stop_price * factor), client_order_id=self.client_order_id())
        new = self.apply_replace(old, changes)
        if new is not None:  # an OCO's take-profit replaced: its stop-loss hangs from the new one
            for o in list(self.orders.values()):
                if o.parent_id == old.id and o.live:
                    self.orders[o.id] = o.but(parent_id=new.id)

    @rule(data=st.data())
    def market_step(self, data):
        """Bars a few percent from the last price (entries fill, exits trigger), over the live orders."""
        bars = {}
        for symbol in data.draw(st.lists(st.sampled_from(sorted(self.prices)), unique=True, min_size=1)):
            last = self.prices[symbol]
            points = sorted(max(cents(last * (1 + D(data.draw(MOVES)).scaleb(-4))), D("0.50")) for _ in range(4))
            o, c = data.draw(st.sampled_from(points)), data.draw(st.sampled_from(points))
            # Thin bars as often as not: orders (exits too) fill in parts.
            volume = data.draw(st.integers(0, 300) | st.integers(0, 5000))
            bars[symbol] = Bar(symbol, self.now, self.now + MINUTE, o, points[-1], points[0], c, volume).check()
        self.run_step(bars)

    # --- the ties ------------------------------------------------------------------------------------------

    def groups(self):
        out = {}
        for order in self.orders.values():
            if order.order_class is not OrderClass.SIMPLE:
                out.setdefault(order.group, []).append(order)
        return out

    @invariant()
    def ties_hold(self):
        if not hasattr(self, "orders"):
            return
        for group, parts in self.groups().items():
            entry = next((o for o in parts if o.leg is None), None)
            exits = [o for o in parts if o.leg is not None]
            if entry is not None:
                for leg in exits:
                    if leg.status is Status.HELD:
                        assert entry.live, (group, entry.status, leg.id)
                    elif leg.open:
                        assert not entry.live and entry.filled_quantity > 0, (group, entry.status, leg.id)
                # The exits (every replaced one's fills too) close at most what the entry filled.
                closed = sum((o.filled_quantity for o in exits), D(0))
                assert closed <= entry.filled_quantity, (group, closed, entry.filled_quantity)
            live = [o for o in exits if o.open]
            if len(live) == 2:
                assert live[0].remaining == live[1].remaining, (group, [(o.id, o.remaining) for o in live])
            ended = [o for o in exits if not o.live and o.status is not Status.REPLACED]
            if ended:
                assert not any(o.live for o in exits), (group, [(o.id, o.status) for o in exits])
        for account in ACCOUNTS if not self.margin else ():  # (margin: buys may open, cover or both)
            for symbol in self.prices:
                wanted = sum((reserved_shares(o, self.prices[symbol]) for o in contingent.counted_once(
                    [o for o in self.orders.values() if o.open and o.account_id == account and o.symbol == symbol
                     and o.quantity is not None])), D(0))
                assert wanted <= self.books[account].quantity(symbol), (account, symbol, wanted)


class MarginGroups(Groups):
    """The same in two margin accounts: short brackets and OTOs (a short sale, bought back by the exits), and
    OCOs buying back a short position.  Cash and positions may be negative here (borrowed money, shares sold
    short); they still equal the reference ledger exactly."""

    margin = True

    @initialize(rules=rules_strategy, cash=st.lists(st.integers(0, 5_000_000), min_size=2, max_size=2),
                shares=st.lists(st.integers(-40, 40), min_size=2, max_size=2))
    def start(self, rules, cash, shares):
        super().start(rules, cash, [0, 0])
        for account, c, s in zip(ACCOUNTS, cash, shares):
            held = {"AAPL": Position("AAPL", D(s), D(s * 100))} if s else {}
            self.books[account] = Book(account, D(c).scaleb(-2), held, margin=MarginRules())
            self.ref_shares[account] = {"AAPL": D(s)} if s else {}

    @invariant()
    def books_match_the_reference(self):
        if not hasattr(self, "books"):
            return
        for account in ACCOUNTS:
            b = self.books[account]
            assert b.cash == self.ref_cash[account], (account, b.cash, self.ref_cash[account])
            assert {s: p.quantity for s, p in b.positions.items()} == self.ref_shares[account]


Groups.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TestGroups = Groups.TestCase
MarginGroups.TestCase.settings = settings(Groups.TestCase.settings, max_examples=200)
TestMarginGroups = MarginGroups.TestCase
