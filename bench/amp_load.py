#!/usr/bin/env python
"""AMP-over-TLS load for bench_load.py, run as its own process (its own interpreter and GIL, so the load does not
share the server's reactor thread): many client connections to one server, each watching prices and its
account's order events, sending ``Quote`` and ``PlaceOrder`` calls at a fixed offered rate.

Reads one JSON object on its first stdin line, then follows the orchestrator's lines on stdin:

- the object: ``mode`` ("load" or "accounts"), ``port``, ``ca`` (the CA file), and for ``load``: ``clients`` (a
  list of {"token", "symbol"}), ``rate`` (calls per second from this process, in all), ``warmup`` and
  ``seconds`` (how long to send before and while measuring), ``orders`` (the share of calls that are
  ``PlaceOrder``, the rest ``Quote``), ``order`` (the order's fixed arguments), ``watch`` (whether each client
  sends ``Watch`` of its symbol and ``WatchOrders`` of its token first), ``tag`` (makes client order ids
  unique), ``seed``;  for ``accounts``: ``count``, ``prefix``, ``password``.
- ``load``: connects every client (at most CONNECTING at once: a listener's backlog is short), has each
  watch, prints ``{"state": "connected", ...}``; at the line ``go`` sends for ``warmup`` + ``seconds`` seconds
  (a LoopingCall every TICK seconds sends the calls due by then, round robin over the clients: an open loop,
  so a slow server meets the same offered rate; no garbage collection meanwhile, so the generator's own
  pauses do not count against the server), waits for the answers (each call times out after TIMEOUT s)
  and prints the figures of the measured part: per command the latencies in ms (from just before the call
  is sent to its answer, sorted), errors, how late the sends were behind the schedule; pushes received.  At
  the line ``close`` closes every connection and prints ``{"state": "closed"}``.
- ``accounts``: waits (at most READY s) until the server has a quote of every asset, registers and logs in
  ``count`` accounts (CONNECTING calls at once, over a few connections), prints their tokens and the quotes.
"""

import gc
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, stdio, task  # noqa: E402
from twisted.protocols import amp, basic  # noqa: E402

from papertrader import commands  # noqa: E402
from papertrader.client.connection import connect  # noqa: E402
from papertrader.client.protocol import ClientProtocol  # noqa: E402
from papertrader.worker.fanout import Prepared  # noqa: E402
from bench.harness import _closed, percentile  # noqa: E402

#: Connections being set up at once.
CONNECTING = 16
#: Attempts to connect one client (the handshake times out after 5 s on a busy machine).
ATTEMPTS = 5
#: Seconds between two passes of the sending loop.
TICK = 0.002
#: Seconds a call may take before it counts as an error.
TIMEOUT = 30.0
#: Seconds the server has to come up with quotes (accounts mode).
READY = 60.0


def debug(text):
    if os.environ.get("BENCH_VERBOSE"):
        print(f"[{time.strftime('%H:%M:%S')}] generator {os.getpid()}: {text}", file=sys.stderr, flush=True)


def emit(obj, transport=None):
    """One JSON line on stdout (through ``transport``, StandardIO's, once it owns stdout: it made it
    non-blocking)."""
    line = json.dumps(obj) + "\n"
    if transport is not None:
        transport.write(line.encode())
    else:
        sys.stdout.write(line)
        sys.stdout.flush()


class Lines(basic.LineReceiver):
    delimiter = b"\n"

    def __init__(self, on_line):
        self.on_line = on_line

    def lineReceived(self, line):
        self.on_line(line.decode().strip())


async def bounded(reactor, items, make, at_once=CONNECTING):
    """``make(item)`` for each item, at most ``at_once`` running; the results in order."""
    results = [None] * len(items)
    queue = list(enumerate(items))[::-1]

    async def runner():
        while queue:
            i, item = queue.pop()
            results[i] = await make(item)

    await defer.gatherResults([defer.Deferred.fromCoroutine(runner()) for _ in range(at_once)], consumeErrors=True)
    return results


class LeanClient(ClientProtocol):
    """The client of a load: it sends what ClientProtocol sends, byte for byte, but reads only an answer's tag
    and, of an error, its code.  A client on another machine costs the server's machine nothing; one here takes
    its CPUs from the server measured, and parsing every answer and push (Decimals, times, an order's every
    field) cost the generators more CPU than the server under test.  Pushes (``Tick``, ``OrderEvent``) are
    counted and answered without being parsed; a ``Notice`` is handled as ClientProtocol does."""

    counted = {b"Tick": "ticks", b"OrderEvent": "events"}

    def __init__(self):
        super().__init__()
        self.count = None

    def locateResponder(self, name):
        what = self.counted.get(name)
        if what is None:
            return super().locateResponder(name)

        def answer(box):
            self.count(what)
            return defer.succeed(amp.AmpBox())

        return answer

    def send(self, name, box):
        """Send a command's box (its arguments as bytes, ``Prepared`` or an AmpBox); fires with the answer's box
        unparsed, or fails with the error's code (amp.RemoteAmpError)."""
        return self._sendBoxCommand(name, box)


class Load:
    def __init__(self, reactor, spec):
        self.reactor = reactor
        self.spec = spec
        self.lines = {}
        self.pushes = {"ticks": 0, "events": 0, "notices": 0}
        self.latencies = {"quote": [], "order": []}
        self.errors = {}
        self.lag = []
        self.sent = 0
        self.retries = 0
        self.measuring = False

    def emit(self, obj):
        emit(obj, self.stdio.transport)

    def waiter(self, word):
        d = defer.Deferred()
        self.lines[word] = d
        return d

    def on_line(self, line):
        d = self.lines.pop(line, None)
        if d is not None:
            d.callback(None)

    async def connect_one(self, client):
        with open(self.spec["ca"], "rb") as f:
            ca = f.read()
        for attempt in range(ATTEMPTS):
            try:
                proto = await connect(self.reactor, "localhost", self.spec["port"], ca, "the server",
                                      kind=LeanClient)
                break
            except Exception:
                if attempt == ATTEMPTS - 1:
                    raise
                self.retries += 1
        proto.count = self._count
        proto.ended.addCallback(lambda _: self._count("notices"))
        if self.spec.get("watch", True):
            await proto.callRemote(commands.Watch, symbols=[client["symbol"]])
            await proto.callRemote(commands.WatchOrders, token=client["token"])
        self.prepare(client)
        return proto

    def prepare(self, client):
        """What this client sends, serialized once (as commands.Quote and commands.PlaceOrder make it): a quote's
        whole box, an order's but for its client order id, which differs per call."""
        client["quote"] = Prepared.of(commands.Quote, dict(symbol=client["symbol"]))
        order = commands.PlaceOrder.makeArguments(
            dict(token=client["token"], client_order_id="-", symbol=client["symbol"],
                 limit_price=client["limit_price"], **self.spec["order"]), None)
        del order[b"client_order_id"]
        client["order"] = dict(order)

    def _count(self, what):
        self.pushes[what] += 1

    def call(self, proto, client, n):
        return self.call_one(proto, client, n, "order" if self.random.random() < self.spec["orders"] else "quote")

    def call_one(self, proto, client, n, what):
        """Send one ``what`` ("order" or "quote", the n-th call of the load); (what, its Deferred)."""
        if what == "order":
            box = amp.AmpBox(client["order"])
            box[b"client_order_id"] = f"{self.spec['tag']}-{n}".encode()
            return what, proto.send(commands.PlaceOrder.commandName, box)
        return what, proto.send(commands.Quote.commandName, Prepared(client["quote"]))

    async def run(self):
        spec, reactor = self.spec, self.reactor
        self.random = random.Random(spec.get("seed", 1))
        clients = spec["clients"]
        started = time.perf_counter()
        protos = await bounded(reactor, clients, self.connect_one)
        self.emit({"state": "connected", "clients": len(protos), "seconds": time.perf_counter() - started,
                   "retries": self.retries})
        await self.waiter("go")
        # No garbage collection while sending: with thousands of connections a full collection paused a generator
        # for up to 177 ms, and the pause landed in the p99 of whichever server it was measuring.  What the
        # connections hold is frozen out of the collector's sight; the rest waits until the answers are in.
        gc.collect()
        gc.freeze()
        gc.disable()
        rate, warmup, seconds = spec["rate"], spec["warmup"], spec["seconds"]
        total = int(rate * (warmup + seconds))
        first_measured = int(rate * warmup)
        pending = []
        begin = time.perf_counter()
        state = {"n": 0}

        def send_due():
            now = time.perf_counter()
            due = min(total, int((now - begin) * rate) + 1)
            while state["n"] < due:
                n = state["n"]
                state["n"] += 1
                index = n % len(protos)
                sent_at = time.perf_counter()
                what, d = self.call(protos[index], clients[index], n)
                self.sent += 1
                measured = n >= first_measured
                if measured:
                    self.lag.append(sent_at - (begin + n / rate))
                d.addTimeout(TIMEOUT, reactor)
                d.addCallbacks(self.answered, self.failed, callbackArgs=(what, sent_at, measured),
                               errbackArgs=(what, measured))
                pending.append(d)
            if state["n"] >= total:
                loop.stop()

        loop = task.LoopingCall(send_due)
        loop.clock = reactor
        await loop.start(TICK, now=True)
        sending = time.perf_counter() - begin
        debug(f"sent {self.sent} in {sending:.1f} s")
        await defer.DeferredList(pending)
        drained = time.perf_counter() - begin
        gc.enable()
        gc.unfreeze()
        debug(f"answered in {drained:.1f} s")
        result = {"state": "done", "sent": self.sent, "sending_seconds": sending, "drained_seconds": drained,
                  "measured_seconds": seconds, "errors": self.errors, "pushes": dict(self.pushes),
                  "lag_p50": percentile(sorted(self.lag), 50) if self.lag else None,
                  "lag_p99": percentile(sorted(self.lag), 99) if self.lag else None}
        result["latencies"] = {k: sorted(v) for k, v in self.latencies.items()}
        self.emit(result)
        await self.waiter("close")
        closed = [_closed(p) for p in protos]
        for p in protos:
            p.close()
        await defer.DeferredList(closed).addTimeout(30, reactor)
        self.emit({"state": "closed"})
        await task.deferLater(self.reactor, 0.5, lambda: None)  # StandardIO writes it out

    def answered(self, _answer, what, sent_at, measured):
        if measured:
            self.latencies[what].append((time.perf_counter() - sent_at) * 1000)

    def failed(self, failure, what, measured):
        error = failure.value
        code = error.errorCode.decode("utf-8", "replace") if isinstance(error, amp.RemoteAmpError) else None
        key = f"{what}: {code or failure.type.__name__}"
        self.errors[key] = self.errors.get(key, 0) + 1


async def accounts(reactor, spec):
    with open(spec["ca"], "rb") as f:
        ca = f.read()
    deadline = time.monotonic() + READY
    while True:
        try:
            proto = await connect(reactor, "localhost", spec["port"], ca, "the server")
            quotes = (await proto.callRemote(commands.Assets))["quotes"]
            proto.close()
            if len(quotes) >= spec.get("assets", 1):
                break
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError("the server has no quotes")
        await task.deferLater(reactor, 0.2, lambda: None)
    protos = await bounded(reactor, list(range(8)), lambda _: connect(reactor, "localhost", spec["port"], ca,
                                                                     "the server"), 8)

    async def one(i):
        proto = protos[i % len(protos)]
        name = f"{spec['prefix']}{i}"
        try:
            await proto.callRemote(commands.Register, username=name, email=f"{name}@example.com",
                                   password=spec["password"])
        except Exception as e:
            if type(e).__name__ != "UsernameTaken":
                raise
        answer = await proto.callRemote(commands.Login, username=name, password=spec["password"], remember=False)
        return answer["token"]

    tokens = await bounded(reactor, list(range(spec["count"])), one, 16)
    for p in protos:
        p.close()
    emit({"state": "accounts", "tokens": tokens,
          "prices": {q["symbol"]: str(q["price"]) for q in quotes}})


def main(reactor):
    spec = json.loads(sys.stdin.readline())
    if spec["mode"] == "accounts":
        return defer.Deferred.fromCoroutine(accounts(reactor, spec))
    load = Load(reactor, spec)
    load.stdio = Lines(load.on_line)
    stdio.StandardIO(load.stdio, reactor=reactor)
    return defer.Deferred.fromCoroutine(load.run())


if __name__ == "__main__":
    task.react(main)
