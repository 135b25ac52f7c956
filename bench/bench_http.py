#!/usr/bin/env python
"""Orders through the HTTP API (Alpaca's POST /v2/orders) against a bare twisted.web answer, in one run.

An in-process Cluster (master + 1 worker with its HTTP API on 127.0.0.1, ``update_interval`` and
``heartbeat_interval`` 3600 s so no LoopingCall runs during the load) and ``--accounts`` accounts, each with
an API key.  Load: ``bench/http_load.py`` in a child process (its own interpreter), ``--clients``
keep-alive HTTP/1.1 connections, each POSTing its market orders one after another (``--orders`` in all,
each with its own ``client_order_id``, spread over the accounts so none holds many open orders).  Each
request is authenticated, rate-limited, parsed, stamped by the worker, passed over TLS AMP to the master,
accepted there in one durable transaction, and answered as Alpaca's Order JSON.  Baseline, same run, same
load generator: a bare twisted.web resource on 127.0.0.1 that reads the body, parses its JSON and answers
an order body of the same size.  Reference, same run: the same orders placed through
``master.trading.place_order`` directly (the durable acknowledgement alone, no HTTP, worker or AMP).

SQLite (in a temporary data dir) by default; ``--database postgresql://...`` runs against PostgreSQL in a
fresh schema that is dropped at the end.

    .venv/bin/python bench/bench_http.py        # from the repository root
    .venv/bin/python bench/bench_http.py --database postgresql://postgres@127.0.0.1:5432/test

Nothing sleeps inside a measured loop; the load generator bounds every read.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, protocol, task  # noqa: E402
from twisted.web import resource, server  # noqa: E402

from papertrader.app import Stamp  # noqa: E402
from papertrader.cluster import Cluster  # noqa: E402
from papertrader.times import utc  # noqa: E402
from bench.harness import (  # noqa: E402
    bench_database, bench_settings, drop_schema, free_port, percentile, wait_for_cluster,
)

READY_TIMEOUT = 30.0
PASSWORD = "benchmark-password"
LOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "http_load.py")


class Baseline(resource.Resource):
    """What any JSON API must do at least: read the body, parse it, answer a JSON object of the same size."""

    isLeaf = True

    def __init__(self, answer):
        super().__init__()
        self.answer = answer

    def render_POST(self, request):
        order = json.loads(request.content.read())
        body = json.dumps(dict(self.answer, client_order_id=order["client_order_id"]), separators=(",", ":"))
        data = body.encode()
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        request.setHeader(b"Content-Length", b"%d" % len(data))
        return data


class Collect(protocol.ProcessProtocol):
    def __init__(self, stdin):
        self.stdin = stdin
        self.out, self.err = b"", b""
        self.done = defer.Deferred()

    def connectionMade(self):
        self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data):
        self.out += data

    def errReceived(self, data):
        self.err += data

    def processEnded(self, reason):
        code = getattr(reason.value, "exitCode", 0)
        if code:
            self.done.errback(RuntimeError(f"http_load.py failed ({code}):\n{self.err.decode(errors='replace')}"))
        else:
            self.done.callback(json.loads(self.out))


def run_load(reactor, spec, timeout):
    """Run bench/http_load.py with ``spec``; fires with its figures."""
    collect = Collect(json.dumps(spec).encode())
    reactor.spawnProcess(collect, sys.executable, [sys.executable, LOAD], env=os.environ.copy())
    return collect.done.addTimeout(timeout, reactor)


def load_line(label, r, over="connections", answers="HTTP"):
    lat = r["latencies"]
    statuses = ", ".join(f"{n} x {s}" for s, n in sorted(r["statuses"].items()))
    return (f"{label}: {r['requests']} requests over {r['clients']} {over} in {r['seconds']:.2f} s,"
            f" {r['requests'] / r['seconds']:.0f} req/s, p50 {percentile(lat, 50):.2f} ms,"
            f" p99 {percentile(lat, 99):.2f} ms, max {lat[-1]:.2f} ms ({answers} {statuses})")


async def accounts_with_keys(master, count):
    """``count`` accounts, each with an API key: [(key id, secret)], [session]."""
    keys, sessions = [], []
    for i in range(count):
        name = f"bench{i}"
        await master.accounts.register(name, f"{name}@example.com", PASSWORD)
        token, _, _ = await master.accounts.login(name, PASSWORD, False, "bench", "127.0.0.1")
        session = await master.accounts.authenticate(token)
        key = await master.accounts.api_keys.create(session, "bench")
        keys.append((key["key_id"], key["secret"]))
        sessions.append(session)
    return keys, sessions


async def direct(reactor, master, sessions, symbol, clients, orders):
    """The same orders through ``master.trading.place_order`` (no HTTP, no worker, no AMP), ``clients`` callers at
    once, each one after another: what the durable acknowledgement itself costs."""
    latencies = []

    async def caller(index, share):
        for n in range(share):
            stamp = Stamp(utc(reactor.seconds()), "127.0.0.1", "bench")
            session = sessions[(index + n * clients) % len(sessions)]
            began = time.perf_counter()
            await master.trading.place_order(session, stamp, f"direct-{index}-{n}", "buy", symbol, "0.01")
            latencies.append((time.perf_counter() - began) * 1000)

    shares = [orders // clients + (1 if i < orders % clients else 0) for i in range(clients)]
    began = time.perf_counter()
    await defer.gatherResults([defer.Deferred.fromCoroutine(caller(i, n)) for i, n in enumerate(shares)],
                              consumeErrors=True)
    return dict(requests=len(latencies), seconds=time.perf_counter() - began, statuses={"new": len(latencies)},
                latencies=sorted(latencies), clients=clients)


async def main(reactor, args):
    settings = bench_settings(heartbeat_interval=3600, bcrypt_rounds=4, workers=1, api_rate_limit=1_000_000,
                              max_open_orders=100_000)
    # Every client of a benchmark connects from one address: no per-address cap.
    settings = replace(settings, max_connections_per_address=1_000_000)
    database, schema, label = bench_database(args.database)
    data_dir = tempfile.mkdtemp(prefix="ptbench-")
    cluster = baseline_port = None
    try:
        print(f"database: {label}; 1 worker, its HTTP API on 127.0.0.1, update_interval {settings.update_interval:g}"
              f" s", flush=True)
        cluster = Cluster(data_dir, settings, reactor, master_port=free_port(), worker_port=0, database=database,
                          interface="127.0.0.1", http_port=free_port())
        cluster.startService()
        await cluster.whenReady()
        await wait_for_cluster(reactor, cluster, settings.assets, READY_TIMEOUT)
        master, worker = cluster.master, cluster.workers[0]
        http_port = worker.http.port.getHost().port
        keys, sessions = await accounts_with_keys(master, args.accounts)
        prices = master.board.prices()
        symbol = min(prices, key=prices.get)
        # Every account can afford all its orders: 0.01 share of the cheapest asset each.
        body = json.dumps({"symbol": symbol, "qty": 0.01, "side": "buy", "type": "market", "time_in_force": "day",
                           "client_order_id": "c{client}-{n}"})
        print(f"orders: {args.orders} market buys of 0.01 {symbol} (at {prices[symbol]}) over {args.accounts}"
              f" accounts, each with an API key; {args.clients} keep-alive connections, connection i using the"
              f" keys i, i + {args.clients}, ... in turn", flush=True)
        headers = [{"APCA-API-KEY-ID": k, "APCA-API-SECRET-KEY": s} for k, s in keys]
        spec = dict(port=http_port, path="/v2/orders", requests=args.orders, body=body,
                    clients=[{"headers": headers[i::args.clients]} for i in range(args.clients)])
        api = await run_load(reactor, spec, 30 + args.orders / 10)
        api["clients"] = args.clients
        print(load_line("POST /v2/orders via the worker's HTTP API", api), flush=True)
        rows = await master.db.query("SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY status")
        print("orders table: " + ", ".join(f"{s} {n}" for s, n in rows)
              + f" (the run's {args.orders} and {args.clients} warm-up orders; none fills: no market step runs)",
              flush=True)
        if api["statuses"] != {"200": args.orders}:
            print(f"WARNING: not every order was answered 200: {api['statuses']}", flush=True)

        floor = await direct(reactor, master, sessions, symbol, args.clients, args.orders)
        print(load_line("reference: the same orders through master.trading.place_order", floor,
                        "concurrent callers", "orders"), flush=True)

        answer = json.loads(api["first"]["body"])
        site = server.Site(Baseline(answer))
        site.noisy = False
        baseline_port = reactor.listenTCP(0, site, interface="127.0.0.1")
        spec = dict(spec, port=baseline_port.getHost().port)
        base = await run_load(reactor, spec, 30 + args.orders / 10)
        base["clients"] = args.clients
        print(load_line("baseline: bare twisted.web resource (read, json.loads, json.dumps)", base), flush=True)
        p50 = percentile(api["latencies"], 50) / percentile(base["latencies"], 50)
        p99 = percentile(api["latencies"], 99) / percentile(base["latencies"], 99)
        rate = (api["requests"] / api["seconds"]) / (base["requests"] / base["seconds"])
        print(f"ratio API/baseline: throughput {rate:.3f}x, p50 {p50:.1f}x, p99 {p99:.1f}x"
              f" (answer body {len(api['first']['body'])} bytes)", flush=True)
        rate = (api["requests"] / api["seconds"]) / (floor["requests"] / floor["seconds"])
        print(f"ratio API/place_order: throughput {rate:.2f}x, p50"
              f" {percentile(api['latencies'], 50) / percentile(floor['latencies'], 50):.2f}x", flush=True)
    finally:
        if baseline_port is not None:
            await baseline_port.stopListening()
        if cluster is not None and cluster.running:
            await cluster.stopService()
        shutil.rmtree(data_dir, ignore_errors=True)
        if schema is not None:
            drop_schema(args.database, schema)
            print(f"dropped schema {schema}", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument("--accounts", type=int, default=100, help="accounts, each with an API key, the orders are"
                                                                  " spread over (default 100)")
    parser.add_argument("--orders", type=int, default=2000, help="orders in all (default 2000)")
    parser.add_argument("--database", default=None,
                        help="postgresql://... (a fresh schema is made and dropped) or sqlite:///PATH;"
                             " default: SQLite in a temporary data dir")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.orders < args.clients or args.accounts < args.clients:
        parser.error("--clients must be at least 1, --orders and --accounts at least --clients")
    return args


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, arguments)))
