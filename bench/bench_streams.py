#!/usr/bin/env python
"""Trade-update latency of the HTTP API's stream: from a fill to alpaca-py's TradingStream callback.

One account, three receivers of its order events on ONE worker of an in-process Cluster, all at once:

1. alpaca-py 0.44's ``TradingStream`` (url_override ``ws://127.0.0.1:PORT/stream``), running its own asyncio
   loop in a thread as a strategy would; the time is taken when its ``trade_updates`` handler is called (the
   update parsed into alpaca-py's ``TradeUpdate``);
2. a raw WebSocket client of the same ``/stream`` (autobahn, in the reactor thread): the stream's own cost
   without alpaca-py;
3. baseline: a TLS AMP client of the worker that sent ``WatchOrders`` (``ClientProtocol.on_order_event``),
   the platform's own push of the very same events.

Each round places ``--orders`` market orders of 1 share (buys, then sells the next round) through
``master.trading.place_order``, waits until every receiver has their ``new``/``accepted`` events, then awaits
``master.market.tick()`` (a simulated bar, the quote push, the market step that fills them, the events). A fill's
latency runs from ``time.perf_counter()`` when the master publishes it (``master.trading.publish`` is wrapped; it
is called after the step's commit and pushes ``OrderEvents`` to the worker) to each receiver; also from the call
of ``market.tick()`` (the step's whole time included). One warm-up round, then ``--rounds`` measured ones.

SQLite (in a temporary data dir) by default; ``--database postgresql://...`` runs against PostgreSQL in a fresh
schema dropped at the end.  Everything runs in one process (alpaca-py's loop in a second thread shares the
GIL): the ratio to the AMP baseline is the meaningful figure.
"""

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol  # noqa: E402
from twisted.internet import defer, task, threads  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402

from papertrader import commands, tls  # noqa: E402
from papertrader.app import Stamp  # noqa: E402
from papertrader.client.connection import connect  # noqa: E402
from papertrader.cluster import Cluster  # noqa: E402
from papertrader.config import Settings  # noqa: E402
from papertrader.market.setup import SIMULATED_ASSETS  # noqa: E402
from papertrader.times import utc  # noqa: E402
from bench.harness import bench_database, drop_schema, free_port, percentile, sleep, wait_for_cluster  # noqa: E402

READY_TIMEOUT = 30.0
DELIVERY_TIMEOUT = 30.0
PASSWORD = "benchmark-password"
RECEIVERS = ("alpaca-py", "raw", "amp")


class Receivers:
    """Which events each receiver has got this round, and when each fill arrived."""

    def __init__(self, reactor):
        self.reactor = reactor
        self.published = {}  # (order uuid, filled quantity) -> perf_counter() at publish
        self.tick_started = None
        self.from_publish = {name: [] for name in RECEIVERS}
        self.from_tick = {name: [] for name in RECEIVERS}
        self.measuring = False
        self.unmatched = 0
        self._want = {}
        self._waiter = None

    def expect(self, kind, n):
        self._want = {name: {kind: n} for name in RECEIVERS}

    def arrived(self, name, kind, key, when):
        """(reactor thread) ``name`` got an event of ``kind`` (new/fill) for ``key`` at ``when``."""
        if kind == "fill":
            started = self.published.get(key)
            if started is None:
                self.unmatched += 1
            elif self.measuring:
                self.from_publish[name].append(when - started)
                self.from_tick[name].append(when - self.tick_started)
        want = self._want.get(name, {})
        if kind in want:
            want[kind] -= 1
        self._check()

    def _check(self):
        if self._waiter is not None and all(n <= 0 for want in self._want.values() for n in want.values()):
            waiter, self._waiter = self._waiter, None
            waiter.callback(None)

    def wait(self, what):
        self._waiter = defer.Deferred()
        d = self._waiter
        self._check()

        def late(failure):
            failure.trap(defer.TimeoutError)
            missing = {name: want for name, want in self._want.items() if any(n > 0 for n in want.values())}
            raise RuntimeError(f"{what}: still missing after {DELIVERY_TIMEOUT:.0f} s: {missing}")

        return d.addTimeout(DELIVERY_TIMEOUT, self.reactor).addErrback(late)


class RawStream(WebSocketClientProtocol):
    """A plain WebSocket client of /stream: authenticates, listens, reports each trade update."""

    receivers = key = secret = None

    def onOpen(self):
        self.listening = defer.Deferred()
        self.sendMessage(json.dumps({"action": "auth", "key": self.key, "secret": self.secret}).encode())
        self.sendMessage(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}).encode())
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        now = time.perf_counter()
        message = json.loads(payload)
        if message.get("stream") == "listening":
            self.listening.callback(None)
        elif message.get("stream") == "trade_updates":
            data = message["data"]
            order = data["order"]
            self.receivers.arrived("raw", data["event"], (order["id"], order["filled_qty"]), now)


def figures(values):
    ms = sorted(x * 1000 for x in values)
    return dict(n=len(ms), p50=percentile(ms, 50), p99=percentile(ms, 99), max=ms[-1])


def line(label, f):
    return f"{label}: {f['n']} fills, p50 {f['p50']:.2f} ms, p99 {f['p99']:.2f} ms, max {f['max']:.2f} ms"


async def bench(reactor, cluster, worker_port, http_port, ca_pem, args):
    master, worker = cluster.master, cluster.workers[0]
    receivers = Receivers(reactor)
    await master.accounts.register("streamer", "streamer@example.com", PASSWORD)
    token, _name, _expires = await master.accounts.login("streamer", PASSWORD, False, "bench", "127.0.0.1")
    session = await master.accounts.authenticate(token)
    key = await master.api_keys.create(session, "bench")
    prices = master.board.prices()
    symbol = min(prices, key=prices.get)
    quantity_units = {}

    # 3. the AMP baseline
    amp_client = await connect(reactor, "localhost", worker_port, ca_pem, worker.name)

    def on_order_event(pushed):
        now = time.perf_counter()
        order = pushed["order"]
        kind = "new" if pushed["event"] == "accepted" else pushed["event"]
        receivers.arrived("amp", kind, (order["uuid"], quantity_units.setdefault(order["filled_quantity"],
                                                                                  _qty(order["filled_quantity"]))),
                          now)

    amp_client.on_order_event = on_order_event
    await amp_client.callRemote(commands.WatchOrders, token=token)

    # 2. a raw WebSocket client of /stream
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{http_port}/stream")
    factory.protocol = RawStream
    factory.opened = defer.Deferred()
    RawStream.receivers, RawStream.key, RawStream.secret = receivers, key["key_id"], key["secret"]
    await TCP4ClientEndpoint(reactor, "127.0.0.1", http_port).connect(factory)
    raw = await factory.opened.addTimeout(READY_TIMEOUT, reactor)
    await raw.listening.addTimeout(READY_TIMEOUT, reactor)

    # 1. alpaca-py's TradingStream, in its own thread (its warning when the run ends closing it is not news)
    from alpaca.trading.stream import TradingStream

    logging.getLogger("alpaca").setLevel(logging.ERROR)

    stream = TradingStream(key["key_id"], key["secret"], paper=True, url_override=f"ws://127.0.0.1:{http_port}/stream")

    async def on_update(update):
        now = time.perf_counter()
        reactor.callFromThread(receivers.arrived, "alpaca-py", update.event,
                               (str(update.order.id), update.order.filled_qty), now)

    stream.subscribe_trade_updates(on_update)
    running = threads.deferToThread(stream.run)
    deadline = time.monotonic() + READY_TIMEOUT
    while sum(1 for c in worker.streams.connections if getattr(c, "listening", False)) < 2:
        if time.monotonic() > deadline or running.called:
            raise RuntimeError("alpaca-py's TradingStream did not get to listen")
        await sleep(reactor, 0.01)

    original_publish = master.trading.publish

    def publish(events):
        now = time.perf_counter()
        for _username, event in events:
            if event["event"] in ("fill", "partial_fill"):
                order = event["order"]
                receivers.published[(order["uuid"], _qty(order["filled_quantity"]))] = now
        return original_publish(events)

    steps = []
    try:
        master.trading.publish = publish
        for r in range(args.rounds + 1):  # round 0 warms up
            receivers.measuring = r > 0
            side = "buy" if r % 2 == 0 else "sell"
            receivers.expect("new", args.orders)
            for i in range(args.orders):
                stamp = Stamp(utc(reactor.seconds()), "127.0.0.1", "bench")
                order = await master.trading.place_order(session, stamp, f"s{r}-{i}", side, symbol, "1")
                if order["status"] != "new":
                    raise RuntimeError(f"order {order} was not accepted")
            await receivers.wait(f"round {r}: new events")
            receivers.expect("fill", args.orders)
            receivers.tick_started = started = time.perf_counter()
            await master.market.tick()
            steps.append(time.perf_counter() - started)
            await receivers.wait(f"round {r}: fill events")
    finally:
        master.trading.publish = original_publish
        if getattr(stream, "_loop", None) is not None:
            await threads.deferToThread(stream.stop)
        worker.streams.close_all("the benchmark is over")
        await running.addTimeout(DELIVERY_TIMEOUT, reactor)
        amp_client.transport.loseConnection()

    out = {name: (figures(receivers.from_publish[name]), figures(receivers.from_tick[name])) for name in RECEIVERS}
    labels = {"alpaca-py": "fill -> alpaca-py TradingStream callback", "raw": "fill -> raw WebSocket client of"
              " /stream", "amp": "baseline fill -> AMP client (WatchOrders)"}
    for name in RECEIVERS:
        print(line(labels[name] + ", from publish", out[name][0]), flush=True)
        print(f"  from the start of market.tick(): p50 {out[name][1]['p50']:.2f} ms, p99 {out[name][1]['p99']:.2f} ms",
              flush=True)
    base = out["amp"][0]
    for name in ("alpaca-py", "raw"):
        f = out[name][0]
        print(f"ratio {name}/AMP: p50 {f['p50'] / base['p50']:.2f}x, p99 {f['p99'] / base['p99']:.2f}x;"
              f" difference of p50 {f['p50'] - base['p50']:.2f} ms", flush=True)
    print(f"each round: {args.orders} market orders of 1 {symbol} (buys, then sells), then master.market.tick():"
          f" {sum(steps[1:]) / args.rounds * 1000:.1f} ms on average; fill events that matched no publish"
          f" {receivers.unmatched}; stream clients cut off as slow {worker.streams.cut_off}", flush=True)


def _qty(value):
    """A quantity as the stream's order shows it (filled_qty), to match events across receivers."""
    from papertrader.worker.http import alpaca

    return alpaca.number(value, "quantity")


async def main(reactor, args):
    settings = replace(Settings(), provider="simulated", assets=SIMULATED_ASSETS, update_interval=3600,
                       heartbeat_interval=3600, bcrypt_rounds=4, workers=1)
    # Every client of a benchmark connects from one address: no per-address cap.
    settings = replace(settings, max_connections_per_address=1_000_000)
    database, schema, label = bench_database(args.database)
    data_dir = tempfile.mkdtemp(prefix="ptbench-")
    cluster = None
    total = time.perf_counter()
    try:
        print(f"database: {label}; 1 worker, update_interval {settings.update_interval:g} s, fill_model"
              f" {settings.fill_model}; {os.cpu_count()} CPUs; {args.rounds} rounds of {args.orders} orders",
              flush=True)
        cluster = Cluster(data_dir, settings, reactor, master_port=free_port(), worker_port=0, database=database,
                          interface="127.0.0.1", http_port=0)
        cluster.startService()
        worker_ports = await cluster.whenReady()
        await wait_for_cluster(reactor, cluster, settings.assets, READY_TIMEOUT)
        http_port = cluster.workers[0].http.port.getHost().port
        with open(os.path.join(data_dir, tls.CA_CERT), "rb") as f:
            ca_pem = f.read()
        await bench(reactor, cluster, worker_ports[0], http_port, ca_pem, args)
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
    parser.add_argument("--rounds", type=int, default=30, help="measured rounds (default 30)")
    parser.add_argument("--orders", type=int, default=10, help="market orders (fills) per round (default 10)")
    parser.add_argument("--database", default=None,
                        help="postgresql://... (a fresh schema is made and dropped) or sqlite:///PATH;"
                             " default: SQLite in a temporary data dir")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.orders < 1:
        parser.error("--rounds and --orders must be at least 1")
    return args


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
