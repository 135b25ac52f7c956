#!/usr/bin/env python
"""Fan-out and failover benchmark of a PaperTrader fleet on loopback, in one process.

Two parts, in one run, against an in-process Cluster (master + ``--workers``):

1. Live prices.  ``--watchers`` clients, each on its own TLS AMP connection to
   ONE worker, all watching every asset of the cluster.  ``--ticks`` market
   updates are driven through ``master.market.tick()`` (the LoopingCall is kept
   out of the way by a huge update interval), and the clock runs until every
   watcher has received every price.  Figures: prices delivered per second
   (watchers x assets x ticks / elapsed) and the p50/p99 latency from the call
   of ``market.tick()`` to a client's ``on_tick``.  Baseline in the same run:
   the same messages pushed by a bare AMP server (a Tick-like command that
   needs an answer) to as many plain AMP clients over TLS, certificate from
   the deployment's CA; the ratios follow.  Updates go back to back, but an
   update waits for every watcher to have the previous one if a watcher lags
   half of ``fanout.WINDOW`` (``--pace``), so none is cut off as slow; the
   worker's ``fanout.cut_off`` is printed and must stay 0.
2. Failover.  A logged-in client (registered and logged in through
   ``client.connection.Connection``) uses worker A; A is kicked with
   ``master.workers.kick()`` and the time until the client's next ``Whoami``
   succeeds through another worker (``Connection.call`` moves it) is measured,
   ``--failovers`` times (A allowed back and linked again between rounds).
   For reference, the first Whoami of a fresh Connection (no failover) is
   timed too.  Then once more with a worker that dies abruptly (listener
   stopped, client connections aborted), printed separately.

SQLite (in a temporary data dir) by default; ``--database postgresql://...``
runs against PostgreSQL in a fresh schema that is dropped at the end.

    .venv/bin/python bench/bench_fleet.py              # from the repository root
    .venv/bin/python bench/bench_fleet.py --database postgresql://postgres@127.0.0.1:5432/test

Clients and servers share one process and one reactor thread, so every figure
includes the clients' own cost; the ratio to the baseline is the meaningful
number.  Nothing sleeps inside a measured loop: every loop is bounded in count.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, protocol, task  # noqa: E402
from twisted.internet.endpoints import connectProtocol  # noqa: E402
from twisted.protocols import amp  # noqa: E402

from papertrader import commands, tls  # noqa: E402
from papertrader.client.connection import Connection, connect  # noqa: E402
from papertrader.cluster import Cluster  # noqa: E402
from bench.harness import (  # noqa: E402
    _closed, bench_database, bench_settings, drop_schema, free_port, percentile, sleep, wait_for_cluster,
)

READY_TIMEOUT = 30.0
#: Longest wait for all prices of a fan-out run once the last update is made.
DELIVERY_TIMEOUT = 60.0
#: Client commands tried in one failover before giving up (each is a full Connection.call).
MAX_ATTEMPTS = 20
PASSWORD = "benchmark-password"


# --- small helpers -----------------------------------------------------------


async def close_all(reactor, protos, closed):
    for p in protos:
        if p.transport is not None:  # None once the connection is gone
            p.transport.loseConnection()
    await defer.gatherResults(closed).addTimeout(5, reactor).addErrback(lambda _: None)


# --- counting deliveries ---------------------------------------------------------


class Deliveries:
    """Prices arriving at ``receivers`` clients, ``per_update`` of them per update, in order.

    A connection delivers in order, so the n-th price a receiver gets belongs to
    update n // per_update; its latency is measured from that update's start.
    """

    def __init__(self, receivers, per_update, on_first=None):
        self.receivers = receivers
        self.per_update = per_update
        self.on_first = on_first
        self.counts = [0] * receivers
        self.starts = []
        self.completed = []
        self.seen = []
        self.latencies = []
        self.unexpected = 0
        self._waiting = {}
        self._failure = None

    def start_update(self):
        """Call right before an update is made; returns its index."""
        self.starts.append(time.perf_counter())
        self.completed.append(0)
        self.seen.append(False)
        return len(self.starts) - 1

    def arrived(self, receiver):
        now = time.perf_counter()
        n = self.counts[receiver]
        k = n // self.per_update
        if k >= len(self.starts):
            self.unexpected += 1
            return
        self.latencies.append(now - self.starts[k])
        n += 1
        self.counts[receiver] = n
        if not self.seen[k]:
            self.seen[k] = True
            if self.on_first is not None:
                self.on_first(k)
        if n % self.per_update == 0:
            self.completed[k] += 1
            if self.completed[k] == self.receivers:
                for d in self._waiting.pop(k, ()):
                    d.callback(None)

    def is_delivered(self, k):
        return k < len(self.completed) and self.completed[k] == self.receivers

    def delivered(self, k):
        """A Deferred firing once every receiver has every price of update ``k``."""
        if self._failure is not None:
            return defer.fail(self._failure)
        if self.is_delivered(k):
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiting.setdefault(k, []).append(d)
        return d

    def fail(self, reason):
        """A receiver is gone: every wait fails (the run cannot complete)."""
        if self._failure is None:
            self._failure = RuntimeError(reason)
        waiting, self._waiting = self._waiting, {}
        for ds in waiting.values():
            for d in ds:
                d.errback(self._failure)


def fanout_figures(tracker, receivers, per_update, updates, elapsed, paced):
    latencies = sorted(tracker.latencies)
    messages = receivers * per_update * updates
    return dict(receivers=receivers, per_update=per_update, updates=updates, messages=messages,
                got=len(latencies), seconds=elapsed, paced=paced, rate=len(latencies) / elapsed,
                p50=percentile(latencies, 50) * 1000, p99=percentile(latencies, 99) * 1000,
                max=latencies[-1] * 1000)


def fanout_line(label, r):
    return (f"{label}: {r['receivers']} clients x {r['per_update']} prices x {r['updates']} updates ="
            f" {r['got']}/{r['messages']} delivered in {r['seconds']:.2f} s, {r['rate']:.0f} prices/s;"
            f" update->client latency p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, max {r['max']:.2f} ms"
            + (f"; {r['paced']} updates paced" if r["paced"] else ""))


async def drive(reactor, tracker, updates, update, pace, depth):
    """Make ``updates`` updates one after another (``update()`` returns a Deferred), then wait for every delivery.

    ``pace`` "none": back to back.  "ack": before update k, every receiver has
    every price of update k-1.  "auto": back to back, except that when some
    receiver has not yet got all of update k-depth (it would come near the
    WINDOW), update k waits as in "ack"; such updates are counted.
    Returns (elapsed seconds from just before the first update to the last delivery, paced updates).
    """
    paced = 0
    started = time.perf_counter()
    for k in range(updates):
        if pace == "ack" and k > 0:
            await tracker.delivered(k - 1)
        elif pace == "auto" and k >= depth and not tracker.is_delivered(k - depth):
            paced += 1
            await tracker.delivered(k - 1)
        tracker.start_update()
        await update()
    await tracker.delivered(updates - 1).addTimeout(DELIVERY_TIMEOUT, reactor)
    return time.perf_counter() - started, paced


# --- part 1a: watchers of a worker ---------------------------------------------------


async def bench_watchers(reactor, master, worker, port, ca_pem, watchers, ticks, pace, depth):
    symbols = list(master.board.assets)
    per_update = len(symbols)
    protos = await defer.gatherResults(
        [connect(reactor, "localhost", port, ca_pem, worker.name) for _ in range(watchers)], consumeErrors=True)
    closed = [_closed(p) for p in protos]
    current = [None]
    peak = [0]

    def sample_pending(_k):
        # Prices the worker has sent but not yet had answered, per watcher: at most WINDOW.
        pending = worker.fanout._pending.values()
        if pending:
            peak[0] = max(peak[0], max(pending))

    def ended(result, i):
        if current[0] is not None:
            current[0].fail(f"watcher {i} ended during the run: {result}")
        return result

    def on_tick(i):
        if current[0] is not None:
            current[0].arrived(i)

    for i, p in enumerate(protos):
        p.on_tick = lambda quote, i=i: on_tick(i)
        p.ended.addCallback(ended, i)
    try:
        answers = await defer.gatherResults([p.callRemote(commands.Watch, symbols=symbols) for p in protos],
                                            consumeErrors=True)
        if any(a["symbols"] != symbols for a in answers) or len(worker.fanout) != watchers:
            raise RuntimeError(f"the worker has {len(worker.fanout)} watchers, expected {watchers}")
        # Warm-up: one update delivered to every watcher before the clock starts.
        current[0] = Deliveries(watchers, per_update)
        await drive(reactor, current[0], 1, master.market.tick, "ack", 1)
        cut_before, sent_before = worker.fanout.cut_off, worker.fanout.sent
        current[0] = tracker = Deliveries(watchers, per_update, on_first=sample_pending)
        elapsed, paced = await drive(reactor, tracker, ticks, master.market.tick, pace, depth)
        figures = fanout_figures(tracker, watchers, per_update, ticks, elapsed, paced)
        figures.update(cut_off=worker.fanout.cut_off - cut_before, sent=worker.fanout.sent - sent_before,
                       peak_pending=peak[0], unexpected=tracker.unexpected)
        current[0] = None
    finally:
        current[0] = None
        await close_all(reactor, protos, closed)
    return figures


# --- part 1b: the baseline, a bare AMP push server ------------------------------------


class PushTick(amp.Command):
    """Like commands.Tick: one price, and the client must answer."""

    arguments = [(b"symbol", amp.Unicode()), (b"price", amp.Decimal()), (b"time", amp.DateTime())]
    response = []


class PushClient(amp.AMP):
    def __init__(self, arrived):
        super().__init__()
        self.arrived = arrived

    @PushTick.responder
    def push(self, symbol, price, time):
        self.arrived()
        return {}


class PushServer(amp.AMP):
    def connectionMade(self):
        super().connectionMade()
        self.factory.clients.append(self)

    def connectionLost(self, reason):
        super().connectionLost(reason)
        if self in self.factory.clients:
            self.factory.clients.remove(self)


class PushFactory(protocol.Factory):
    protocol = PushServer

    def __init__(self):
        self.clients = []

    def publish(self, quotes):
        """Every price to every client, without waiting (as the worker's Fanout does)."""
        for quote in quotes:
            for proto in list(self.clients):
                proto.callRemote(PushTick, **quote).addErrback(lambda _: None)


async def bench_baseline(reactor, data_dir, ca_pem, quotes, receivers, updates, pace, depth):
    ca = tls.CertificateAuthority.ensure(data_dir)
    cert = os.path.join(data_dir, "push.pem")
    ca.issue("PaperTrader bench push", tls.default_hostnames(), cert)
    endpoint = tls.server_endpoint(reactor, tls.listen_description(0, "127.0.0.1", cert), cert)
    factory = PushFactory()
    port = await endpoint.listen(factory)
    current = [None]
    protos = []

    def arrived(i):
        if current[0] is not None:
            current[0].arrived(i)

    try:
        for i in range(receivers):
            client = tls.client_endpoint(reactor, "localhost", port.getHost().port, ca_pem)
            protos.append(connectProtocol(client, PushClient(lambda i=i: arrived(i))))
        protos = await defer.gatherResults(protos, consumeErrors=True)
        closed = [_closed(p) for p in protos]
        try:
            # The server sees a connection only once its TLS handshake is done: warm up until all are in.
            current[0] = Deliveries(receivers, len(quotes))
            deadline = time.monotonic() + READY_TIMEOUT
            while len(factory.clients) < receivers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(factory.clients)} of {receivers} push clients connected")
                await sleep(reactor, 0.01)

            def update():
                factory.publish(quotes)
                return task.deferLater(reactor, 0, lambda: None)  # one reactor turn, as a market update yields

            await drive(reactor, current[0], 1, update, "ack", 1)
            current[0] = tracker = Deliveries(receivers, len(quotes))
            elapsed, paced = await drive(reactor, tracker, updates, update, pace, depth)
            figures = fanout_figures(tracker, receivers, len(quotes), updates, elapsed, paced)
            figures.update(unexpected=tracker.unexpected)
        finally:
            current[0] = None
            await close_all(reactor, protos, closed)
    finally:
        await port.stopListening()
    return figures


# --- part 2: failover -----------------------------------------------------------------


def worker_named(cluster, name):
    return next(w for w in cluster.workers if w.name == name)


def is_linked(master, worker):
    return (worker.name in master.workers.linked and worker.link.proven is not None
            and worker.name in [w["name"] for w in master.workers.listing()])


async def wait_linked(reactor, master, worker):
    """Until ``worker`` is linked and listed again; a refused connection held by its MasterLink is let go.

    After a refusal the MasterLink holds the refused connection for 2**refusals
    seconds before its ClientService reconnects (with its own backoff): as the
    tests do, the refusal count is reset and the hold ended now.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    released = 0
    while not is_linked(master, worker):
        hold = worker.link._hold
        if hold is not None and hold.active():
            worker.link.refusals = 0
            hold.reset(0)
            released += 1
        if time.monotonic() > deadline:
            lines = [e.format() for e in master.logs.newest(10)] + [e.format() for e in worker.logs.newest(10)]
            raise RuntimeError(f"{worker.name} is not linked again after {READY_TIMEOUT:.0f} s; newest log"
                               " entries:\n" + "\n".join(lines))
        await sleep(reactor, 0.01)
    return released


async def fail_over(conn, token, victim):
    """Whoami until one succeeds through a worker other than ``victim``; returns (attempts, worker, errors)."""
    errors = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            await conn.call(commands.Whoami, token=token)
        except Exception as e:  # noqa: BLE001 - counted and shown, the next attempt goes on
            errors.append(f"{type(e).__name__}: {e}")
            continue
        if conn.worker["name"] != victim:
            return attempt, conn.worker["name"], errors
    raise RuntimeError(f"no command succeeded through another worker than {victim} in {MAX_ATTEMPTS} attempts:"
                       f" {errors}")


async def bench_failover(reactor, cluster, master_port, ca_pem, rounds):
    master = cluster.master
    out = []
    name = "fleet" + uuid.uuid4().hex[:8]
    conn = Connection(reactor, ("localhost", master_port), ca_pem)
    await conn.call(commands.Register, username=name, email=f"{name}@example.com", password=PASSWORD)
    token = (await conn.call(commands.Login, username=name, password=PASSWORD, remember=False))["token"]
    conn.close()
    out.append(f"failover: user {name} registered and logged in through Connection; client command Whoami")

    names = [w.name for w in cluster.workers]
    times, firsts, relinks, notes = [], [], [], []
    for r in range(rounds):
        victim = names[r % len(names)]
        conn = Connection(reactor, ("localhost", master_port), ca_pem, remembered=victim)
        try:
            started = time.perf_counter()
            await conn.call(commands.Whoami, token=token)  # connected to the victim, its session cached
            firsts.append(time.perf_counter() - started)
            if conn.worker["name"] != victim:
                raise RuntimeError(f"round {r + 1}: the client went to {conn.worker['name']}, not {victim}")
            started = time.perf_counter()
            dropped = await master.workers.kick(victim)
            attempts, moved_to, errors = await fail_over(conn, token, victim)
            times.append(time.perf_counter() - started)
        finally:
            conn.close()
        if not dropped:
            notes.append(f"round {r + 1}: kick() says {victim} was not connected")
        if attempts > 1 or errors:
            notes.append(f"round {r + 1}: {attempts} attempts to reach {moved_to}; errors {errors}")
        relinked = time.perf_counter()
        await master.workers.allow(victim)
        released = await wait_linked(reactor, master, worker_named(cluster, victim))
        relinks.append(time.perf_counter() - relinked)
        if released:
            notes.append(f"round {r + 1}: {victim}'s held refused link was released")
    ms = sorted(t * 1000 for t in times)
    out.append(f"failover after kick: {len(ms)} rounds, min {ms[0]:.1f} ms, p50 {percentile(ms, 50):.1f} ms,"
               f" max {ms[-1]:.1f} ms (kick() to the first Whoami answered by another worker)")
    ms = sorted(t * 1000 for t in firsts)
    out.append(f"reference, no failover: a fresh Connection's first Whoami (ListWorkers, TLS connect, call):"
               f" min {ms[0]:.1f} ms, p50 {percentile(ms, 50):.1f} ms, max {ms[-1]:.1f} ms")
    out.append(f"between rounds: allow() to linked and listed again, mean {sum(relinks) / len(relinks):.2f} s,"
               f" max {max(relinks):.2f} s (the worker's reconnection backoff; not part of the figure)")
    out += ["  note: " + n for n in notes]

    # An abrupt death: the worker stops answering clients, the master still lists it (its link is up).
    victim = worker_named(cluster, names[-1])
    conn = Connection(reactor, ("localhost", master_port), ca_pem, remembered=victim.name)
    try:
        await conn.call(commands.Whoami, token=token)
        if conn.worker["name"] != victim.name:
            raise RuntimeError(f"the client went to {conn.worker['name']}, not {victim.name}")
        started = time.perf_counter()
        await victim.listener.stopService()
        for client in list(victim.clients):
            client.transport.abortConnection()
        attempts, moved_to, errors = await fail_over(conn, token, victim.name)
        died = time.perf_counter() - started
    finally:
        conn.close()
    out.append(f"failover after abrupt death of {victim.name}: {died * 1000:.1f} ms to the first Whoami answered"
               f" by {moved_to} (listener stopped + connections aborted -> answer; {attempts} attempt(s),"
               f" {victim.name} still listed: {victim.name in [w['name'] for w in master.workers.listing()]})")
    if errors:
        out.append(f"  note: errors on the way: {errors}")
    return out


# --- PostgreSQL schema -------------------------------------------------------


# --- main ------------------------------------------------------------------------




def pace_depth(window, per_update):
    """Updates a watcher may lag behind under "auto" before pacing starts: half the window of prices."""
    return max(1, window // 2 // per_update)


async def main(reactor, args):
    # Neither LoopingCall (market updates, heartbeats) runs again after the start: updates are driven below.
    settings = bench_settings(heartbeat_interval=3600, bcrypt_rounds=4, workers=args.workers)
    # Every client of a benchmark connects from one address: no per-address cap.
    settings = replace(settings, max_connections_per_address=1_000_000)
    database, schema, label = bench_database(args.database)
    data_dir = tempfile.mkdtemp(prefix="ptbench-")
    cluster = None
    total = time.perf_counter()
    try:
        print(f"database: {label}; {settings.workers} workers, update_interval {settings.update_interval:g} s,"
              f" heartbeat_interval {settings.heartbeat_interval:g} s, assets {','.join(settings.assets)}",
              flush=True)
        started = time.perf_counter()
        master_port = free_port()
        cluster = Cluster(data_dir, settings, reactor, master_port=master_port, worker_port=0,
                          database=database, interface="127.0.0.1")
        cluster.startService()
        worker_ports = await cluster.whenReady()
        master = cluster.master
        await wait_for_cluster(reactor, cluster, settings.assets, READY_TIMEOUT)
        print(f"cluster ready in {time.perf_counter() - started:.2f} s: master port {master_port}, worker ports"
              f" {', '.join(map(str, worker_ports))}; all {len(cluster.workers)} workers linked with"
              f" {len(settings.assets)} quotes", flush=True)

        with open(os.path.join(data_dir, tls.CA_CERT), "rb") as f:
            ca_pem = f.read()
        per_update = len(settings.assets)
        worker = cluster.workers[0]
        window = worker.fanout.window  # fanout.WINDOW
        depth = pace_depth(window, per_update)
        if args.pace == "ack":
            how = "paced: every update waits until every watcher has received (and answered) the previous one"
        elif args.pace == "auto":
            how = (f"back to back (each market.tick() awaited), paced only if a watcher lags {depth} update(s)"
                   f" ({depth * per_update} prices, WINDOW {window}): then the update waits until every watcher"
                   f" has received (and answered) the previous one")
        else:
            how = "not paced: updates back to back (each market.tick() awaited); watchers may be cut off"
        print(f"fan-out: {how}", flush=True)

        ticks_before = master.market.ticks
        watched = await bench_watchers(reactor, master, worker, worker_ports[0], ca_pem, args.watchers,
                                       args.ticks, args.pace, depth)
        print(fanout_line(f"prices via {worker.name}", watched), flush=True)
        print(f"  {worker.name}: fanout.cut_off {watched['cut_off']} (WINDOW {window}), Tick messages sent"
              f" {watched['sent']}, peak unanswered per watcher {watched['peak_pending']} (sampled per update),"
              f" market ticks made {master.market.ticks - ticks_before} (1 warm-up)", flush=True)
        if watched["paced"]:
            print(f"  PACED: {watched['paced']} of {args.ticks} updates waited for every watcher to answer the"
                  f" previous one (a watcher lagged {depth} update(s))", flush=True)
        if watched["cut_off"] or watched["unexpected"] or watched["got"] != watched["messages"]:
            print(f"WARNING: cut off {watched['cut_off']}, unexpected prices {watched['unexpected']},"
                  f" delivered {watched['got']} of {watched['messages']}", flush=True)

        now = datetime.now(timezone.utc)
        quotes = [dict(symbol=q.symbol, price=q.price, time=now) for q in master.board.all()]
        baseline = await bench_baseline(reactor, data_dir, ca_pem, quotes, args.watchers, args.ticks,
                                        args.pace, depth)
        print(fanout_line("baseline AMP push", baseline), flush=True)
        print(f"ratio worker/baseline: throughput {watched['rate'] / baseline['rate']:.2f}x,"
              f" p50 {watched['p50'] / baseline['p50']:.2f}x, p99 {watched['p99'] / baseline['p99']:.2f}x",
              flush=True)

        for line in await bench_failover(reactor, cluster, master_port, ca_pem, args.failovers):
            print(line, flush=True)
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
    parser.add_argument("--watchers", type=int, default=50, help="watching clients on one worker (default 50)")
    parser.add_argument("--ticks", type=int, default=200, help="market updates driven (default 200)")
    parser.add_argument("--pace", choices=("auto", "ack", "none"), default="auto",
                        help="auto: updates back to back, but one waits for every watcher to have the previous"
                             " update if a watcher lags half the fan-out WINDOW; ack: every update waits so;"
                             " none: back to back, watchers may be cut off (default auto)")
    parser.add_argument("--failovers", type=int, default=10, help="kick-and-fail-over rounds (default 10)")
    parser.add_argument("--workers", type=int, default=3, help="workers in the cluster, at least 2 (default 3)")
    parser.add_argument("--database", default=None,
                        help="postgresql://... (a fresh schema is made and dropped) or sqlite:///PATH;"
                             " default: SQLite in a temporary data dir")
    args = parser.parse_args(argv)
    for name in ("watchers", "ticks", "failovers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.workers < 2:
        parser.error("--workers must be at least 2 (a client needs another worker to move to)")
    return args


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, arguments)))
