#!/usr/bin/env python
"""Order benchmarks of a PaperTrader master on loopback, in one process: the market step and fill events.

Two parts, in one run, against an in-process Cluster (master + 1 worker,
``update_interval`` 3600 s so its LoopingCall stays out of the way):

1. The market step.  ``--accounts`` accounts (1,000) with ``--orders`` open
   limit, stop and stop-limit orders (10,000) between them, written as fast as
   honestly possible: per batch of accounts ONE transaction inserts the accounts
   (as ``register`` does, one bcrypt hash shared), their starting positions, and
   their orders, each made by the core's ``accept`` against the account's book
   and its open orders, stored with the order store's ``insert`` and
   ``accepted`` event.  Then ONE ``master.trading.market_step`` is timed (i) on
   a bar where nothing fills (every limit and stop is at least 1% away, the bar
   moves 0.5%: the common case), and (ii) on a bar that reaches about 10% of the
   orders, whose volume cap lets only part of their quantity through (partial
   fills; later orders wait).  The time is split into the pieces of the step
   (account locks, loading orders and books, the core's ``step``, saving, the
   commit), measured by wrapping those calls from this script; the product code
   is unchanged.  ``--profile N`` profiles the step's database thread.
2. Fill-to-event latency.  ``--watchers`` accounts (100), each with its own TLS
   AMP client connection to the worker that sent ``WatchOrders``; each round
   places one market order per account, waits until every client has its
   ``accepted`` event, then calls ``master.market.tick()`` (a simulated bar, the
   market step, the events).  Latency runs from the moment the master publishes
   a fill event (``master.trading.publish`` is wrapped to stamp
   ``time.perf_counter()`` per order and filled quantity) to the client's
   ``on_order_event``.  Baselines in the same run, with the same messages: a
   bare AMP server pushing ``OrderEvent`` over TLS to as many clients (1 hop),
   and a bare AMP server sending the ``OrderEvents`` batch to a bare AMP relay
   that pushes ``OrderEvent`` to each client (2 hops, like master -> worker ->
   client).  Certificates from the deployment's CA.

SQLite (in a temporary data dir) by default; ``--database postgresql://...``
runs against PostgreSQL in a fresh schema that is dropped at the end.

    .venv/bin/python bench/bench_orders.py
    .venv/bin/python bench/bench_orders.py --database postgresql://postgres@127.0.0.1:5432/test

Everything shares one process and one reactor thread (the database runs in
the pool's threads).  Nothing sleeps inside a measured loop: every loop is
bounded in count, and every wait has a timeout.
"""

import argparse
import cProfile
import io
import math
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, protocol, task, threads  # noqa: E402
from twisted.protocols import amp  # noqa: E402

import papertrader.app.trading as app_trading  # noqa: E402
from papertrader import commands, tls  # noqa: E402
from papertrader.app import Stamp  # noqa: E402
from papertrader.client.connection import connect  # noqa: E402
from papertrader.cluster import Cluster  # noqa: E402
from papertrader.passwords import hash_password  # noqa: E402
from papertrader.master.portfolios import PortfolioStore  # noqa: E402
from papertrader.money import CENT, to_cents, to_quantity_units  # noqa: E402
from papertrader.times import iso, parse_iso, utc  # noqa: E402
from papertrader.trading import amend  # noqa: E402
from papertrader.trading.events import Event, EventKind  # noqa: E402
from papertrader.trading.market import Bar, MarketStep  # noqa: E402
from papertrader.trading.orders import OrderRequest, OrderType, Side, TimeInForce  # noqa: E402
from papertrader.trading.pretrade import accept  # noqa: E402
from bench.harness import (  # noqa: E402
    _closed, bench_database, bench_settings, drop_schema, free_port, percentile, sleep, wait_for_cluster,
)

READY_TIMEOUT = 30.0
#: Longest wait for the events of one round (or one baseline round) to reach every client.
DELIVERY_TIMEOUT = 30.0
PASSWORD = "benchmark-password"

#: An account's orders, in turn: (side, type, where its price is: below or above the last price).
MIX = (
    (Side.BUY, OrderType.LIMIT, "below"),
    (Side.BUY, OrderType.LIMIT, "below"),
    (Side.BUY, OrderType.LIMIT, "below"),
    (Side.BUY, OrderType.LIMIT, "below"),
    (Side.SELL, OrderType.LIMIT, "above"),
    (Side.SELL, OrderType.LIMIT, "above"),
    (Side.SELL, OrderType.STOP, "below"),
    (Side.SELL, OrderType.STOP, "below"),
    (Side.BUY, OrderType.STOP, "above"),
    (Side.SELL, OrderType.STOP_LIMIT, "below"),
)
#: An order's price is 1% + 0.2% x k away from the last price, k = 0..99 in equal shares (1%-20.8%), dealt
#: out in a seeded random order so that every type, side and symbol gets each k about as often.
DISTANCE_BPS, STEP_BPS, SPREAD = 100, 20, 100
#: The quiet bar moves 0.5% each way (nothing is within 1%); the fill bar 2.9% (k <= 9: 10% of the orders).
QUIET_BPS, REACH_BPS = 50, 290
#: Each order is worth about this much (whole shares, at least one).
ORDER_VALUE = Decimal(1000)


def bps(value, points):
    return (value * (1 + Decimal(points) / 10_000)).quantize(CENT)


def distances(n):
    ks = [i % SPREAD for i in range(n)]
    random.Random(9).shuffle(ks)
    return [DISTANCE_BPS + STEP_BPS * k for k in ks]


# --- part 1: the market step ---------------------------------------------------------------


def shares_of(price):
    return max(Decimal(1), (ORDER_VALUE / price).quantize(Decimal(1), rounding=ROUND_DOWN))


def request_for(i, d, account_id, symbol, price):
    """The i-th order of the run, ``d`` basis points from ``price`` (an OrderRequest, gtc)."""
    side, kind, where = MIX[i % len(MIX)]
    level = bps(price, -d if where == "below" else d)
    limit = stop = None
    if kind is OrderType.LIMIT:
        limit = level
    elif kind is OrderType.STOP:
        stop = level
    else:  # a stop-limit sell: once triggered, sells down to 1% under its stop
        stop, limit = level, bps(level, -100)
    return OrderRequest(account_id=account_id, client_order_id=f"s{i}", symbol=symbol, side=side, type=kind,
                        time_in_force=TimeInForce.GTC, quantity=shares_of(price), limit_price=limit,
                        stop_price=stop)


async def make_book(reactor, master, n_accounts, n_orders, batch):
    """Accounts with cash and positions, and their open orders.

    Returns (the setup line, shares the fill bar reaches per symbol, orders it reaches, the prices used).
    """
    settings = master.settings
    trading, store, db = master.trading, master.orders, master.db
    prices = master.board.prices()
    symbols = list(master.board.assets)
    if len(prices) != len(symbols):
        raise RuntimeError(f"the board has prices of {sorted(prices)} only")
    per_account = math.ceil(n_orders / n_accounts)
    hashed = await threads.deferToThread(hash_password, PASSWORD, settings.bcrypt_rounds)
    tag = uuid.uuid4().hex[:6]
    reached = defaultdict(Decimal)  # symbol -> shares of the orders the fill bar reaches
    within = [0]  # orders the fill bar reaches
    away = distances(n_orders)
    created = iso(master.market_clock.now())
    stamp_time = utc(reactor.seconds())

    def write(cursor, first, last):
        now = master.market_clock.now()
        info = master.market_clock.info(now)
        ids = []
        for a in range(first, last):
            name = f"step{tag}{a}"
            cursor.execute(db.sql(
                "INSERT INTO accounts (username, username_key, email, password_hash, cash_cents, created)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id"),
                (name, name, f"{name}@example.com", hashed, to_cents(settings.starting_cash), created))
            account_id = cursor.fetchone()[0]
            ids.append(PortfolioStore(db).create(cursor, account_id, "default", "cash", settings.starting_cash,
                                                 parse_iso(created), is_default=True).id)
        # Enough of every asset for the account's sells (they reserve shares: no short selling).
        cursor.executemany(db.sql(
            "INSERT INTO positions (portfolio_id, symbol, quantity_units, cost_cents) VALUES (?, ?, ?, ?)"),
            [(account_id, s, to_quantity_units(shares_of(prices[s]) * per_account),
              to_cents(shares_of(prices[s]) * per_account * prices[s])) for account_id in ids for s in symbols])
        books = store.books(cursor, ids)
        events, placed = [], 0
        for a, account_id in zip(range(first, last), ids):
            mine = []
            for j in range(per_account):
                i = a * per_account + j
                if i >= n_orders:
                    break
                symbol = symbols[(a + j) % len(symbols)]
                order = accept(request_for(i, away[i], account_id, symbol, prices[symbol]), books[account_id], mine,
                               prices, now, info, trading.rules)
                order = store.insert(cursor, order, stamp_time, "127.0.0.1", "bench")
                mine.append(order)
                events.append(Event(EventKind.ACCEPTED, order, order.created))
                if away[i] < REACH_BPS:
                    reached[symbol] += order.quantity
                    within[0] += 1
                placed += 1
        store.save(cursor, [], {}, events, utc(reactor.seconds()))
        return placed

    started = time.perf_counter()
    placed = 0
    transactions = 0
    for first in range(0, n_accounts, batch):
        placed += await db.run(write, first, min(n_accounts, first + batch))
        transactions += 1
    elapsed = time.perf_counter() - started
    rows = await db.query("SELECT COUNT(*) FROM orders WHERE status IN ('new', 'partially_filled')")
    line = (f"setup: {n_accounts} accounts, {placed} open orders ({per_account} per account: limit buys and sells,"
            f" stops, stop-limits, gtc; 1%-20.8% from the last price) in {elapsed:.2f} s, {transactions}"
            f" transactions ({placed / elapsed:.0f} orders/s); open orders in the database: {rows[0][0]}")
    if placed != n_orders or rows[0][0] != n_orders:
        raise RuntimeError(f"{line}: expected {n_orders} open orders")
    return line, dict(reached), within[0], prices


class StepPieces:
    """Times the pieces of ONE ``TradingCommands.market_step`` by wrapping what it calls, from the outside.

    Wrapped while the step runs (and restored after): the trading object's store (``open_portfolio_ids`` and
    ``lock_accounts``, ``open_orders``, ``books``, ``save``, ``set_state``) and database (``run``: when the unit of work starts,
    ends, and when the commit has come back to the reactor), and the trading module's ``step`` (the core) and
    ``_usernames``.  With ``profile`` the unit of work runs under cProfile in its database thread.
    """

    def __init__(self, trading, profile=False):
        self.trading = trading
        self.profiler = cProfile.Profile() if profile else None
        self.pieces = defaultdict(float)
        self.marks = {}
        self.result = None

    def _timed(self, name, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.pieces[name] += time.perf_counter() - started
        return timed

    async def run(self, market_step):
        trading = self.trading
        store, db = trading.store, trading.db
        core, usernames, publish = app_trading.step, app_trading._usernames, trading.publish
        pieces = self

        class Store:
            def __getattr__(self, name):
                return getattr(store, name)

        timed_store = Store()
        for method, piece in (("open_portfolio_ids", "lock"), ("lock_accounts", "lock"), ("open_orders", "load orders"),
                              ("books", "load books"), ("save", "save"), ("set_state", "save")):
            setattr(timed_store, method, self._timed(piece, getattr(store, method)))

        class Db:
            def __getattr__(self, name):
                return getattr(db, name)

            def run(self, function, *args, **kwargs):
                def unit_of_work(cursor, *a, **kw):
                    pieces.marks["in"] = time.perf_counter()
                    if pieces.profiler is not None:
                        pieces.profiler.enable()
                    try:
                        return function(cursor, *a, **kw)
                    finally:
                        if pieces.profiler is not None:
                            pieces.profiler.disable()
                        pieces.marks["out"] = time.perf_counter()

                def committed(result):
                    pieces.marks["committed"] = time.perf_counter()
                    return result

                return db.run(unit_of_work, *args, **kwargs).addBoth(committed)

        def core_step(*args, **kwargs):
            self.result = core(*args, **kwargs)
            return self.result

        trading.store, trading.db = timed_store, Db()
        trading.publish = self._timed("publish", publish)
        app_trading.step = self._timed("core step", core_step)
        app_trading._usernames = self._timed("usernames", usernames)
        try:
            started = time.perf_counter()
            fills = await trading.market_step(market_step)
            self.elapsed = time.perf_counter() - started
        finally:
            trading.store, trading.db, trading.publish = store, db, publish
            app_trading.step, app_trading._usernames = core, usernames
        self.marks["started"] = started
        return fills

    def split(self):
        p, m = self.pieces, self.marks
        inside = m["out"] - m["in"]
        timed_inside = sum(p[k] for k in ("lock", "load orders", "load books", "core step", "save", "usernames"))
        commit = m["committed"] - m["out"]
        other = self.elapsed - inside - commit
        return (f"lock {p['lock']:.3f} s, load {p['load orders'] + p['load books']:.3f} s (orders"
                f" {p['load orders']:.3f}, books {p['load books']:.3f}), core step {p['core step']:.3f} s, save"
                f" {p['save']:.3f} s, usernames {p['usernames']:.3f} s, rest of the unit of work"
                f" {inside - timed_inside:.3f} s, commit {commit:.3f} s, outside the transaction {other:.3f} s"
                f" (thread hand-off, event views, log, publish {p['publish']:.3f} s)")

    def profile_lines(self, top):
        if self.profiler is None:
            return []
        out = []
        for order in ("tottime", "cumulative"):
            stream = io.StringIO()
            pstats.Stats(self.profiler, stream=stream).strip_dirs().sort_stats(order).print_stats(top)
            text = stream.getvalue()
            body = text[text.index("   ncalls"):] if "   ncalls" in text else text
            out.append(f"  profile of the unit of work (database thread), top {top} by {order}:")
            out += ["    " + line for line in body.rstrip().splitlines()]
        return out


def step_line(label, n_orders, n_accounts, fills, pieces, goal=1.0):
    result = pieces.result
    kinds = Counter(e.kind.value for e in result.events) if result is not None else Counter()
    changed = len(result.orders) if result is not None else 0
    quiet = changed - len({e.order.id for e in result.events}) if result is not None else 0
    events = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
    verdict = "met" if pieces.elapsed < goal else "NOT met"
    return (f"{label}: {n_orders} open orders of {n_accounts} accounts, {fills} fills (events: {events};"
            f" {changed} orders written, {quiet} of them without an event: stops triggered but not filled) in"
            f" {pieces.elapsed:.3f} s, {n_orders / pieces.elapsed:.0f} orders/s (goal < {goal:g} s: {verdict})")


async def bench_step(reactor, master, args):
    line, reached, within, prices = await make_book(reactor, master, args.accounts, args.orders, args.batch)
    print(line, flush=True)
    share = master.settings.volume_share
    start = master.market_clock.now()
    second = timedelta(seconds=1)

    # (i) A quiet bar: every order is at least 1% away, the bar moves 0.5% each way.
    bars = {s: Bar(s, start, start + second, p, bps(p, QUIET_BPS), bps(p, -QUIET_BPS), p, 1_000_000).check()
            for s, p in prices.items()}
    pieces = StepPieces(master.trading, profile=args.profile > 0)
    fills = await pieces.run(MarketStep(start + second, bars))
    print(step_line("step, nothing fills", args.orders, args.accounts, fills, pieces), flush=True)
    print("  split: " + pieces.split(), flush=True)
    if pieces.result is None or pieces.result.orders:
        print("WARNING: the quiet bar changed orders (or the step saw none)", flush=True)
    for line in pieces.profile_lines(args.profile):
        print(line, flush=True)

    # (ii) A bar that reaches the orders within 2.9% (10% of them); its volume cap lets through only --cap of
    # their quantity, so the earlier ones fill, one per symbol fills in part, and the later ones wait.
    volumes = {s: max(1, int(reached.get(s, 0) * Decimal(str(args.cap)) / share)) for s in prices}
    begin = start + second
    bars = {s: Bar(s, begin, begin + second, p, bps(p, REACH_BPS), bps(p, -REACH_BPS), p, volumes[s]).check()
            for s, p in prices.items()}
    pieces = StepPieces(master.trading, profile=args.profile > 0)
    fills = await pieces.run(MarketStep(begin + second, bars))
    print(step_line("step, ~10% reached", args.orders, args.accounts, fills, pieces), flush=True)
    print("  split: " + pieces.split(), flush=True)
    if not fills:
        print("WARNING: the fill bar filled nothing", flush=True)
    print(f"  the bar reaches {within} orders ({sum(reached.values())} shares, {len(reached)} symbols); its volume"
          f" cap lets {args.cap:g} of their quantity through (volume_share {share}, volumes"
          f" {', '.join(f'{s} {v}' for s, v in sorted(volumes.items()))})", flush=True)
    for line in pieces.profile_lines(args.profile):
        print(line, flush=True)
    rows = await master.db.query("SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY status")
    print("  orders table after the steps: " + ", ".join(f"{s} {n}" for s, n in rows), flush=True)

    # Out of the way of part 2: the orders still open are canceled (one transaction, the core's cancel).
    started = time.perf_counter()
    now = master.market_clock.now()

    def cancel_all(cursor):
        done = [amend.cancel(o, now, "benchmark over") for o in master.orders.open_orders(cursor)]
        master.orders.save(cursor, [o for o, _ in done], {}, [e for _, e in done], now)
        return len(done)

    canceled = await master.db.run(cancel_all)
    print(f"  then {canceled} open orders canceled in one transaction in {time.perf_counter() - started:.2f} s",
          flush=True)


# --- part 2: fill-to-event latency ---------------------------------------------------------


class Arrivals:
    """Events a round expects, and a Deferred firing when they have all arrived."""

    def __init__(self):
        self.expected = 0
        self.count = 0
        self.waiter = None
        self.unexpected = 0

    def expect(self, n):
        self.expected += n

    def arrived(self):
        self.count += 1
        self._check()

    def _check(self):
        if self.waiter is not None and self.count >= self.expected:
            waiter, self.waiter = self.waiter, None
            waiter.callback(None)

    def wait(self, reactor, what):
        self.waiter = defer.Deferred()
        self._check()
        d = self.waiter if self.waiter is not None else defer.succeed(None)

        def late(failure):
            failure.trap(defer.TimeoutError)
            raise RuntimeError(f"{what}: {self.count} of {self.expected} arrived within {DELIVERY_TIMEOUT:.0f} s")

        return d.addTimeout(DELIVERY_TIMEOUT, reactor).addErrback(late)

    def reset(self):
        self.expected = self.count = 0


def latency_figures(latencies):
    ms = sorted(x * 1000 for x in latencies)
    return dict(n=len(ms), p50=percentile(ms, 50), p99=percentile(ms, 99), max=ms[-1])


def latency_line(label, f, what):
    return (f"{label}: {f['n']} {what}, p50 {f['p50']:.2f} ms, p99 {f['p99']:.2f} ms, max {f['max']:.2f} ms")


async def wait_watching(reactor, master, worker, usernames):
    """Until the master knows the worker's clients watch every one of ``usernames`` (OrderWatchers)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        linked = master.workers.linked.get(worker.name)
        if linked is not None and set(usernames) <= linked.watching:
            return
        if time.monotonic() > deadline:
            have = len(linked.watching & set(usernames)) if linked is not None else 0
            raise RuntimeError(f"the master knows {have} of {len(usernames)} watched accounts after"
                               f" {READY_TIMEOUT:.0f} s")
        await sleep(reactor, 0.01)


async def bench_latency(reactor, cluster, worker_port, ca_pem, n_accounts, rounds):
    master, worker = cluster.master, cluster.workers[0]
    out = []
    tag = uuid.uuid4().hex[:6]
    usernames, tokens, sessions = [], [], []
    for i in range(n_accounts):
        name = f"lat{tag}{i}"
        await master.accounts.register(name, f"{name}@example.com", PASSWORD)
        token, _name, _expires = await master.accounts.login(name, PASSWORD, False, "bench", "127.0.0.1")
        usernames.append(name)
        tokens.append(token)
        sessions.append(await master.accounts.authenticate(token))
    prices = master.board.prices()
    symbol = min(prices, key=prices.get)

    protos = await defer.gatherResults(
        [connect(reactor, "localhost", worker_port, ca_pem, worker.name) for _ in range(n_accounts)],
        consumeErrors=True)
    closed = [_closed(p) for p in protos]
    published = {}  # (order id, filled quantity) -> perf_counter() when the master published the fill
    latencies, accepted, fills = [], Arrivals(), Arrivals()
    measuring = [False]
    last_round = []
    original_publish = master.trading.publish

    def publish(events):
        now = time.perf_counter()
        mine = [(u, e) for u, e in events if e["event"] in ("fill", "partial_fill")]
        for _username, event in mine:
            published[(event["order"]["id"], event["order"]["filled_quantity"])] = now
        if mine:
            fills.expect(len(mine))
            last_round[:] = mine
        return original_publish(events)

    def on_order_event(pushed):
        now = time.perf_counter()
        if pushed["event"] == "accepted":
            accepted.arrived()
            return
        if pushed["event"] not in ("fill", "partial_fill"):
            return
        started = published.pop((pushed["order"]["id"], pushed["order"]["filled_quantity"]), None)
        if started is None:
            fills.unexpected += 1
            return
        if measuring[0]:
            latencies.append(now - started)
        fills.arrived()

    try:
        for p in protos:
            p.on_order_event = on_order_event
        answers = await defer.gatherResults(
            [p.callRemote(commands.WatchOrders, token=t) for p, t in zip(protos, tokens)], consumeErrors=True)
        if [a["username"] for a in answers] != usernames:
            raise RuntimeError("WatchOrders answered other accounts than the clients' own")
        await wait_watching(reactor, master, worker, usernames)
        master.trading.publish = publish
        steps = []
        for r in range(rounds + 1):  # round 0 warms up
            measuring[0] = r > 0
            accepted.reset()
            fills.reset()
            for i, session in enumerate(sessions):
                stamp = Stamp(utc(reactor.seconds()), "127.0.0.1", "bench")
                order = await master.trading.place_order(session, stamp, f"l{r}-{i}", "buy", symbol, "1")
                if order["status"] != "new":
                    raise RuntimeError(f"order {order} was not accepted")
            accepted.expect(n_accounts)
            await accepted.wait(reactor, f"round {r}: accepted events")
            started = time.perf_counter()
            await master.market.tick()
            steps.append(time.perf_counter() - started)
            if not fills.expected:
                lines = [e.format() for e in master.logs.newest(10)]
                raise RuntimeError(f"round {r}: the market step published no fill; newest log entries:\n"
                                   + "\n".join(lines))
            await fills.wait(reactor, f"round {r}: fill events")
        figures = latency_figures(latencies)
        out.append(latency_line(f"fill -> client ({n_accounts} watching clients on {worker.name}, {rounds} rounds)",
                                figures, "fill events from master.trading.publish to on_order_event"))
        out.append(f"  each round: {n_accounts} market buys of 1 {symbol} placed and their accepted events"
                   f" delivered, then master.market.tick() (simulated bar, market step, events):"
                   f" {sum(steps[1:]) / rounds * 1000:.1f} ms on average; unexpected fill events"
                   f" {fills.unexpected}, worker order_fanout.cut_off {worker.order_fanout.cut_off}")
    finally:
        master.trading.publish = original_publish
        for p in protos:
            p.close()
        await defer.gatherResults(closed).addTimeout(5, reactor).addErrback(lambda _: None)
    return out, figures, list(last_round)


# --- the baselines: a bare AMP push (1 hop) and relay (2 hops) over TLS --------------------------


class Downstream(amp.AMP):
    """The server end of a baseline client's connection."""

    def connectionMade(self):
        super().connectionMade()
        tls.no_delay(self.transport)
        self.factory.clients.append(self)

    def connectionLost(self, reason):
        super().connectionLost(reason)
        if self in self.factory.clients:
            self.factory.clients.remove(self)


class DownstreamFactory(protocol.Factory):
    protocol = Downstream

    def __init__(self):
        self.clients = []
        self.next = 0

    def push(self, events):
        """Each event to the next client, without waiting for the answer (as the worker's Fanout does)."""
        for event in events:
            proto = self.clients[self.next % len(self.clients)]
            self.next += 1
            proto.callRemote(commands.OrderEvent, **event).addErrback(lambda _: None)


class Relay(amp.AMP):
    """The worker's stand-in: takes the master's OrderEvents batch and pushes each event to a client."""

    def __init__(self, downstream):
        super().__init__()
        self.downstream = downstream

    def connectionMade(self):
        super().connectionMade()
        tls.no_delay(self.transport)

    @commands.OrderEvents.responder
    def order_events(self, events):
        for event in events:
            event.pop("username")
        self.downstream.push(events)
        return {}


class Hub(amp.AMP):
    """The master's stand-in: the relay connects to it."""

    def connectionMade(self):
        super().connectionMade()
        tls.no_delay(self.transport)
        self.factory.relays.append(self)


async def listen(reactor, data_dir, name, factory):
    ca = tls.CertificateAuthority.ensure(data_dir)
    cert = os.path.join(data_dir, f"{name}.pem")
    ca.issue(f"PaperTrader bench {name}", tls.default_hostnames(), cert)
    endpoint = tls.server_endpoint(reactor, tls.listen_description(0, "127.0.0.1", cert), cert)
    return await endpoint.listen(factory)


async def bench_baselines(reactor, data_dir, ca_pem, sample, rounds):
    """The same events (``sample``: [(username, event view)] of one round) over bare AMP: 1 hop, then 2 hops."""
    events = [dict(event, order=[event["order"]]) for _username, event in sample]
    batches = list(commands.chunks(commands.OrderEvents, "events",
                                   [dict(e, username=u) for e, (u, _) in zip(events, sample)]))
    downstream = DownstreamFactory()
    hub = protocol.Factory.forProtocol(Hub)
    hub.relays = []
    ports = [await listen(reactor, data_dir, "push", downstream), await listen(reactor, data_dir, "hub", hub)]
    protos, closed, relay = [], [], None
    arrivals = Arrivals()
    latencies = []
    round_start = [0.0]

    def on_order_event(_pushed):
        latencies.append(time.perf_counter() - round_start[0])
        arrivals.arrived()

    try:
        protos = await defer.gatherResults(
            [connect(reactor, "localhost", ports[0].getHost().port, ca_pem, "push") for _ in events],
            consumeErrors=True)
        closed = [_closed(p) for p in protos]
        for p in protos:
            p.on_order_event = on_order_event
        endpoint = tls.client_endpoint(reactor, "localhost", ports[1].getHost().port, ca_pem)
        relay = await endpoint.connect(protocol.Factory.forProtocol(lambda: Relay(downstream)))
        closed.append(_closed(relay))
        deadline = time.monotonic() + READY_TIMEOUT
        while len(downstream.clients) < len(events) or not hub.relays:  # the servers see TLS-complete connections
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(downstream.clients)} of {len(events)} baseline clients connected")
            await sleep(reactor, 0.01)

        async def measure(send):
            latencies.clear()
            for r in range(rounds + 1):  # round 0 warms up
                arrivals.reset()
                arrivals.expect(len(events))
                round_start[0] = time.perf_counter()
                send()
                await arrivals.wait(reactor, f"baseline round {r}")
                if r == 0:
                    latencies.clear()
            return latency_figures(latencies)

        one_hop = await measure(lambda: downstream.push(events))

        def through_relay():
            for batch in batches:
                hub.relays[0].callRemote(commands.OrderEvents, events=batch)

        two_hops = await measure(through_relay)
    finally:
        for p in protos:
            p.close()
        if relay is not None:
            relay.transport.loseConnection()
        await defer.gatherResults(closed).addTimeout(5, reactor).addErrback(lambda _: None)
        for port in ports:
            await port.stopListening()
    return one_hop, two_hops, len(batches)


# --- main ------------------------------------------------------------------------------------


async def main(reactor, args):
    settings = bench_settings(heartbeat_interval=3600, bcrypt_rounds=4, workers=1)
    # Every client of a benchmark connects from one address: no per-address cap.
    settings = replace(settings, max_connections_per_address=1_000_000)
    database, schema, label = bench_database(args.database)
    data_dir = tempfile.mkdtemp(prefix="ptbench-")
    cluster = None
    total = time.perf_counter()
    try:
        print(f"database: {label}; {settings.workers} worker, update_interval {settings.update_interval:g} s,"
              f" assets {','.join(settings.assets)}, fill_model {settings.fill_model}, volume_share"
              f" {settings.volume_share}; {os.cpu_count()} CPUs", flush=True)
        started = time.perf_counter()
        master_port = free_port()
        cluster = Cluster(data_dir, settings, reactor, master_port=master_port, worker_port=0,
                          database=database, interface="127.0.0.1")
        cluster.startService()
        worker_ports = await cluster.whenReady()
        master = cluster.master
        await wait_for_cluster(reactor, cluster, settings.assets, READY_TIMEOUT)
        print(f"cluster ready in {time.perf_counter() - started:.2f} s", flush=True)
        with open(os.path.join(data_dir, tls.CA_CERT), "rb") as f:
            ca_pem = f.read()

        if "step" in args.parts:
            await bench_step(reactor, master, args)
        if "latency" in args.parts:
            lines, platform, sample = await bench_latency(reactor, cluster, worker_ports[0], ca_pem, args.watchers,
                                                          args.rounds)
            for line in lines:
                print(line, flush=True)
            one_hop, two_hops, batches = await bench_baselines(reactor, data_dir, ca_pem, sample, args.rounds)
            what = "OrderEvent pushes"
            print(latency_line(f"baseline AMP push, 1 hop ({len(sample)} clients, {args.rounds} rounds)", one_hop,
                               what + " from a bare AMP server"), flush=True)
            print(latency_line(f"baseline AMP relay, 2 hops ({len(sample)} clients, {args.rounds} rounds)",
                               two_hops, what + f" via a bare relay ({batches} OrderEvents batch(es) per round)"),
                  flush=True)
            for name, base in (("2-hop relay", two_hops), ("1-hop push", one_hop)):
                print(f"ratio platform/{name}: p50 {platform['p50'] / base['p50']:.2f}x,"
                      f" p99 {platform['p99'] / base['p99']:.2f}x, max {platform['max'] / base['max']:.2f}x",
                      flush=True)
        print(f"market ticks during the run: {master.market.ticks} (1 at start"
              f"{f' + {args.rounds + 1} driven' if 'latency' in args.parts else ''})", flush=True)
    finally:
        if cluster is not None and cluster.running:
            await cluster.stopService()
        shutil.rmtree(data_dir, ignore_errors=True)
        if schema is not None:
            drop_schema(args.database, schema)
            print(f"dropped schema {schema}", flush=True)
        print(f"total run time {time.perf_counter() - total:.1f} s", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000, help="accounts holding the open orders (default 1000)")
    parser.add_argument("--orders", type=int, default=10000, help="open orders in the step (default 10000)")
    parser.add_argument("--batch", type=int, default=100, help="accounts (with their orders) per setup transaction"
                                                                 " (default 100)")
    parser.add_argument("--cap", type=float, default=0.8,
                        help="in the fill bar, the volume cap lets this fraction of the reached orders' quantity"
                             " through (default 0.8)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="profile each step's unit of work (cProfile) and print the top N functions")
    parser.add_argument("--watchers", type=int, default=100, help="watching clients (one account each) for the"
                                                                   " latency part (default 100)")
    parser.add_argument("--rounds", type=int, default=20, help="measured rounds of the latency part (default 20)")
    parser.add_argument("--parts", default="step,latency", help="step, latency or both (default step,latency)")
    parser.add_argument("--database", default=None,
                        help="postgresql://... (a fresh schema is made and dropped) or sqlite:///PATH;"
                             " default: SQLite in a temporary data dir")
    args = parser.parse_args(argv)
    for name in ("accounts", "orders", "batch", "watchers", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not 0 < args.cap <= 1:
        parser.error("--cap must be in (0, 1]")
    if args.profile < 0:
        parser.error("--profile must be 0 or more")
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not args.parts or not args.parts <= {"step", "latency"}:
        parser.error("--parts takes step, latency or step,latency")
    return args


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, arguments)))
