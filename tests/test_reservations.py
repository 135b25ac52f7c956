"""Buying power remembers what a portfolio's open orders reserve (trading/pretrade.py ``_ReservedSums``):
whatever sequence of open orders it is asked about, in whatever order, it answers what adding up every
order's reservation answers (hypothesis drives the sequences: orders placed, cancelled, filled in part,
equal copies, another account's orders, other rules, new prices, a full memo)."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from papertrader.trading import pretrade
from papertrader.trading.commissions import PerShare, Zero
from papertrader.trading.orders import Order, OrderType, Side, Status, TimeInForce
from papertrader.trading.pretrade import Rules, buying_power, reservation
from tests.trading_helpers import T0, book

D = Decimal
SYMBOLS = ("AAPL", "MSFT")
RULES = (Rules(), Rules(commission_model=PerShare(D("0.01"), D("1.00"))), Rules(market_buy_buffer=D("0.10")))


def _by_hand(account, orders, prices, rules):
    return account.cash - sum((reservation(o, prices.get(o.symbol), rules, remember=False) for o in orders
                               if o.account_id == account.account_id), D("0.00"))


@st.composite
def orders(draw, ids):
    kind = draw(st.sampled_from(list(OrderType)))
    notional = kind is OrderType.MARKET and draw(st.booleans())
    quantity = None if notional else D(draw(st.integers(1, 50_000))).scaleb(-2)
    filled = D(0)
    if quantity is not None and draw(st.booleans()):
        filled = D(draw(st.integers(0, int(quantity * 100)))).scaleb(-2)
    price = lambda: D(draw(st.integers(100, 90_000))).scaleb(-2)  # noqa: E731
    return Order(
        id=next(ids), account_id=draw(st.sampled_from([1, 1, 1, 2])), client_order_id="c",
        symbol=draw(st.sampled_from(SYMBOLS)), side=draw(st.sampled_from(list(Side))), type=kind,
        time_in_force=TimeInForce.GTC, created=T0,
        status=draw(st.sampled_from([Status.NEW, Status.NEW, Status.PARTIALLY_FILLED, Status.FILLED])),
        quantity=quantity, notional=D(draw(st.integers(100, 900_000))).scaleb(-2) if notional else None,
        limit_price=price() if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
        stop_price=price() if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
        trail_price=price() if kind is OrderType.TRAILING_STOP else None,
        filled_quantity=filled, filled_value=filled * D("10.00"), commission=D("0.00"))


@pytest.fixture
def small_memo(monkeypatch):
    memo = pretrade._ReservedSums(max_orders=30)
    monkeypatch.setattr(pretrade, "_reserved_sums", memo)
    return memo


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_buying_power_with_the_memo_is_what_adding_up_every_reservation_gives(data):
    memo = pretrade._ReservedSums(max_orders=data.draw(st.sampled_from([5, 30, 20_000])))
    saved, pretrade._reserved_sums = pretrade._reserved_sums, memo
    try:
        ids = iter(range(1, 10_000))
        account = book(data.draw(st.sampled_from(["0.00", "1000.00", "100000.00"])))
        sequence = []
        for _ in range(data.draw(st.integers(1, 40))):
            step = data.draw(st.sampled_from(["place", "place", "place", "cancel", "fill", "copy", "same"]))
            if step == "place":
                sequence.append(data.draw(orders(ids)))
            elif step == "cancel" and sequence:
                del sequence[data.draw(st.integers(0, len(sequence) - 1))]
            elif step == "fill" and sequence:
                i = data.draw(st.integers(0, len(sequence) - 1))
                sequence[i] = sequence[i].but(status=Status.FILLED)
            elif step == "copy" and sequence:
                i = data.draw(st.integers(0, len(sequence) - 1))
                sequence[i] = sequence[i].but()  # an equal order, another object
            prices = {s: D(data.draw(st.integers(100, 90_000))).scaleb(-2) for s in SYMBOLS
                      if data.draw(st.booleans())}
            rules = data.draw(st.sampled_from(RULES))
            shown = data.draw(st.sampled_from([tuple, list]))(sequence)
            assert buying_power(account, shown, prices, rules) == _by_hand(account, sequence, prices, rules)
            assert memo._held <= max(memo.max_orders, 0)
    finally:
        pretrade._reserved_sums = saved


def test_a_portfolios_next_order_adds_one_reservation_to_what_is_remembered(small_memo):
    ids = iter(range(1, 100))
    rules = Rules(commission_model=Zero())
    placed = []
    for i in range(20):
        placed.append(Order(id=next(ids), account_id=1, client_order_id=f"c{i}", symbol="AAPL", side=Side.BUY,
                            type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, status=Status.NEW, created=T0,
                            quantity=D("2"), limit_price=D("10.00")))
        assert buying_power(book("1000.00"), tuple(placed), {}, rules) == D("1000.00") - 20 * len(placed)
    # one entry for the portfolio (each order replaced the last), holding its 20 orders
    assert len(small_memo._entries) == 1 and small_memo._held == 20
    # a market buy is priced at every check, at the last price plus the buffer
    placed.append(Order(id=next(ids), account_id=1, client_order_id="m", symbol="AAPL", side=Side.BUY,
                        type=OrderType.MARKET, time_in_force=TimeInForce.DAY, status=Status.NEW, created=T0,
                        quantity=D("1")))
    assert buying_power(book("1000.00"), placed, {"AAPL": D("100.00")}, rules) == D("495.00")
    assert buying_power(book("1000.00"), placed, {"AAPL": D("200.00")}, rules) == D("390.00")
