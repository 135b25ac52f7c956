#!/usr/bin/env python
"""Throughput benchmark of a PaperTrader deployment on loopback, in one process.

Three figures, all in one run:

1. ``Quote`` requests per second (and p50/p99 latency) through a worker of an
   in-process Cluster (master + 1 worker), C clients each on its own TLS AMP
   connection, each sending its requests one after another.
2. The same load against a bare AMP echo server over TLS (certificate from
   the deployment's CA), as a floor; the worker/baseline ratios follow.
3. Orders: sequential durable acknowledgements per second through
   ``master.trading.place_order`` (market buys), then ONE
   ``master.trading.market_step`` over all of them (one bar that fills them
   all), timed, with its fill count.

SQLite (in a temporary data dir) by default; ``--database postgresql://...``
runs against PostgreSQL in a fresh schema that is dropped at the end.

    .venv/bin/python bench/bench_throughput.py        # from the repository root
    .venv/bin/python bench/bench_throughput.py --database postgresql://postgres@127.0.0.1:5432/test

Clients and servers share one process and one reactor thread, so every figure
includes the client's own cost; the ratio to the baseline is the meaningful
number.  Nothing sleeps inside a measured loop: every loop is bounded in count.
"""

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, protocol, task  # noqa: E402
from twisted.protocols import amp  # noqa: E402

from papertrader import commands, tls  # noqa: E402
from papertrader.app import Stamp  # noqa: E402
from papertrader.client.connection import connect  # noqa: E402
from papertrader.cluster import Cluster  # noqa: E402
from papertrader.times import utc  # noqa: E402
from papertrader.trading.market import Bar, MarketStep  # noqa: E402
from bench.harness import (  # noqa: E402
    _closed, bench_database, bench_settings, drop_schema, free_port, percentile, wait_for_cluster,
)

READY_TIMEOUT = 30.0
PASSWORD = "benchmark-password"


# --- the baseline server --------------------------------------------------------


class Echo(amp.Command):
    arguments = [(b"value", amp.Unicode())]
    response = [(b"value", amp.Unicode())]


class EchoServer(amp.AMP):
    @Echo.responder
    def echo(self, value):
        return {"value": value}


@defer.inlineCallbacks
def start_echo_server(reactor, data_dir):
    """An AMP echo server on 127.0.0.1 (free port), with a certificate issued by the deployment's CA."""
    ca = tls.CertificateAuthority.ensure(data_dir)
    cert = os.path.join(data_dir, "echo.pem")
    ca.issue("PaperTrader bench echo", tls.default_hostnames(), cert)
    endpoint = tls.server_endpoint(reactor, tls.listen_description(0, "127.0.0.1", cert), cert)
    port = yield endpoint.listen(protocol.Factory.forProtocol(EchoServer))
    return port


# --- load generation ---------------------------------------------------------


async def run_load(reactor, port, ca_pem, clients, requests, make_call, what):
    """``requests`` calls in total over ``clients`` connections, each connection sequential.

    Connections are made (and one warm-up call per connection finishes the TLS
    handshake) before the clock starts.  Returns a dict of figures.
    """
    protos = await defer.gatherResults(
        [connect(reactor, "localhost", port, ca_pem, what) for _ in range(clients)], consumeErrors=True)
    closed = [_closed(p) for p in protos]
    try:
        await defer.gatherResults([make_call(p, 0) for p in protos], consumeErrors=True)
        shares = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
        latencies = []

        async def one_client(proto, count):
            for i in range(count):
                start = time.perf_counter()
                await make_call(proto, i)
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await defer.gatherResults(
            [defer.Deferred.fromCoroutine(one_client(p, n)) for p, n in zip(protos, shares)], consumeErrors=True)
        elapsed = time.perf_counter() - started
    finally:
        for p in protos:
            p.transport.loseConnection()
        await defer.gatherResults(closed).addTimeout(5, reactor).addErrback(lambda _: None)
    latencies.sort()
    return dict(clients=clients, requests=len(latencies), seconds=elapsed, rate=len(latencies) / elapsed,
                p50=percentile(latencies, 50) * 1000, p99=percentile(latencies, 99) * 1000)


def load_line(label, r):
    return (f"{label}: {r['clients']} clients, {r['requests']} requests, {r['rate']:.0f} req/s,"
            f" p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms ({r['seconds']:.2f} s)")


# --- the cluster ---------------------------------------------------------------




# --- orders ----------------------------------------------------------------------


async def bench_orders(reactor, master, settings, n_orders, n_accounts):
    out = []
    started = time.perf_counter()
    sessions = []
    tag = uuid.uuid4().hex[:6]
    for i in range(n_accounts):
        name = f"bench{tag}{i}"
        await master.accounts.register(name, f"{name}@example.com", PASSWORD)
    registered = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(n_accounts):
        name = f"bench{tag}{i}"
        token, _name, _expires = await master.accounts.login(name, PASSWORD, False, "bench", "127.0.0.1")
        sessions.append(await master.accounts.authenticate(token))
    logged_in = time.perf_counter() - started
    out.append(f"accounts: {n_accounts} registered in {registered:.2f} s, logged in in {logged_in:.2f} s"
               f" (bcrypt_rounds {settings.bcrypt_rounds})")

    # The cheapest asset, and a quantity every account can afford for all its orders (half its cash).
    prices = master.board.prices()
    symbol = min(prices, key=prices.get)
    price = prices[symbol]
    per_account = math.ceil(n_orders / n_accounts)
    quantity = min(Decimal(1), (settings.starting_cash / 2 / (per_account * price)).quantize(
        Decimal("0.000001"), rounding=ROUND_DOWN))
    if quantity <= 0:
        raise RuntimeError("too many orders per account to fill: use more --accounts")
    quantity_text = str(quantity.normalize())

    started = time.perf_counter()
    for i in range(n_orders):
        session = sessions[i % n_accounts]
        stamp = Stamp(utc(reactor.seconds()), "127.0.0.1", "bench")
        order = await master.trading.place_order(session, stamp, f"o{i}", "buy", symbol, quantity_text)
        if order["status"] != "new":
            raise RuntimeError(f"order {i} was not accepted: {order}")
    placed = time.perf_counter() - started
    out.append(f"orders placed: {n_orders} in {placed:.2f} s, {n_orders / placed:.0f} orders/s acknowledged"
               f" (sequential place_order calls, each one durable transaction; market buy {quantity_text} {symbol}"
               f" at {price}, {per_account} per account)")

    # One bar that fills every order whole at the last price: open = high = low = close (so no slippage
    # moves the price), after every order arrived, with volume enough for all of them under the volume cap.
    begin = utc(reactor.seconds())
    end = utc(reactor.seconds() + 1)
    volume = math.ceil(quantity * n_orders / settings.volume_share) + 1
    bar = Bar(symbol, begin, end, price, price, price, price, volume).check()
    before = master.trading.filled
    started = time.perf_counter()
    filled = await master.trading.market_step(MarketStep(end, {symbol: bar}))
    stepped = time.perf_counter() - started
    out.append(f"market step: {filled} fills of {n_orders} open orders in {stepped:.3f} s,"
               f" {filled / stepped:.0f} orders/s filled (one TradingCommands.market_step call; one {symbol} bar"
               f" at {price}, volume {volume})")
    rows = await master.db.query("SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY status")
    out.append("orders table after the step: " + ", ".join(f"{s} {n}" for s, n in rows))
    if filled != n_orders or master.trading.filled - before != n_orders:
        out.append(f"WARNING: expected {n_orders} fills, got {filled}")
    return out


# --- PostgreSQL schema -------------------------------------------------------


# --- main ------------------------------------------------------------------------


async def main(reactor, args):
    settings = bench_settings(bcrypt_rounds=4, workers=1)
    # Every client of a benchmark connects from one address: no per-address cap.
    settings = replace(settings, max_connections_per_address=1_000_000)
    database, schema, label = bench_database(args.database)
    data_dir = tempfile.mkdtemp(prefix="ptbench-")
    cluster = None
    echo_port = None
    try:
        print(f"database: {label}; {settings.workers} worker, update_interval {settings.update_interval:g} s,"
              f" assets {','.join(settings.assets)}", flush=True)
        started = time.perf_counter()
        master_port = free_port()
        cluster = Cluster(data_dir, settings, reactor, master_port=master_port, worker_port=0,
                          database=database, interface="127.0.0.1")
        cluster.startService()
        worker_ports = await cluster.whenReady()
        master = cluster.master
        await wait_for_cluster(reactor, cluster, settings.assets, READY_TIMEOUT)
        worker = cluster.workers[0]
        worker_port = worker_ports[0]
        print(f"cluster ready in {time.perf_counter() - started:.2f} s: master port {master_port},"
              f" worker port {worker_port}; market ticks so far {master.market.ticks},"
              f" worker has {len(worker.quotes.all())}/{len(settings.assets)} quotes", flush=True)

        with open(os.path.join(data_dir, tls.CA_CERT), "rb") as f:
            ca_pem = f.read()
        symbols = settings.assets

        def quote(proto, i):
            return proto.callRemote(commands.Quote, symbol=symbols[i % len(symbols)])

        def echo(proto, i):
            return proto.callRemote(Echo, value=symbols[i % len(symbols)])

        via_worker = await run_load(reactor, worker_port, ca_pem, args.clients, args.requests, quote,
                                    "worker1")
        print(load_line("quotes via worker", via_worker), flush=True)

        echo_port = await start_echo_server(reactor, data_dir)
        baseline = await run_load(reactor, echo_port.getHost().port, ca_pem, args.clients, args.requests, echo,
                                  "echo server")
        print(load_line("baseline AMP echo", baseline), flush=True)
        print(f"ratio worker/baseline: throughput {via_worker['rate'] / baseline['rate']:.2f}x,"
              f" p50 {via_worker['p50'] / baseline['p50']:.2f}x, p99 {via_worker['p99'] / baseline['p99']:.2f}x",
              flush=True)

        for line in await bench_orders(reactor, master, settings, args.orders, args.accounts):
            print(line, flush=True)
        print(f"market ticks during the run: {master.market.ticks} (a tick at start only, as expected:"
              f" {master.market.ticks == 1})", flush=True)
    finally:
        if echo_port is not None:
            await echo_port.stopListening()
        if cluster is not None and cluster.running:
            await cluster.stopService()
        shutil.rmtree(data_dir, ignore_errors=True)
        if schema is not None:
            drop_schema(args.database, schema)
            print(f"dropped schema {schema}", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent client connections (default 8)")
    parser.add_argument("--requests", type=int, default=20000, help="requests in total per load run (default 20000)")
    parser.add_argument("--orders", type=int, default=2000, help="orders to submit and fill (default 2000)")
    parser.add_argument("--accounts", type=int, default=20, help="accounts the orders are spread over (default 20)")
    parser.add_argument("--database", default=None,
                        help="postgresql://... (a fresh schema is made and dropped) or sqlite:///PATH;"
                             " default: SQLite in a temporary data dir")
    args = parser.parse_args(argv)
    for name in ("clients", "requests", "orders", "accounts"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.requests < args.clients:
        parser.error("--requests must be at least --clients")
    return args


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, arguments)))
