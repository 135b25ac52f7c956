#!/usr/bin/env python
"""The baseline of bench_load.py: a bare AMP-over-TLS server, run as its own process, answering the worker's
client commands with canned answers.

    python bench/bare_amp.py --cert PEM --port PORT --interval SECONDS [--gc settled|python]

``Quote`` answers a fixed quote of the symbol asked (every field a worker's answer has); ``PlaceOrder`` a fixed
open limit order with the call's ``client_order_id``, and pushes an ``OrderEvent`` (accepted) to every
connection that sent ``WatchOrders`` with the same token; ``Watch`` and ``WatchOrders`` remember the
connection; every ``--interval`` seconds each watcher of a symbol is pushed a ``Tick`` of it (as a worker
pushes each update).  ``--gc`` (``settled``) sets the garbage collector as our twistd daemons do
(papertrader/collector.py), or leaves Python's defaults (``python``).  No database, no master, no checks: the floor of any server speaking these commands over
AMP and TLS with Twisted.  Prints ``listening PORT`` when it listens.
"""

import argparse
import os
import sys
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import protocol, task  # noqa: E402
from twisted.protocols import amp  # noqa: E402

from papertrader import collector, commands, tls  # noqa: E402

NOW = datetime(2026, 1, 2, 15, 30, tzinfo=timezone.utc)


def quote(symbol):
    return dict(symbol=symbol, price=Decimal("187.25"), time=NOW, stale=False, name=f"{symbol} Inc.",
                bid=Decimal("187.21"), ask=Decimal("187.29"), previous_close=Decimal("186.10"), bar_start=NOW,
                open=Decimal("187.00"), high=Decimal("187.40"), low=Decimal("186.95"), volume=120000)


def order(client_order_id, symbol, side, type, time_in_force, quantity, limit_price):
    return dict(id=1, uuid="0f8fad5b-d9cb-469f-a165-70867728950e", client_order_id=client_order_id,
                symbol=symbol, side=side, type=type or "market", time_in_force=time_in_force or "day", status="new",
                quantity=Decimal(quantity) if quantity else None, limit_price=Decimal(limit_price) if limit_price
                else None, filled_quantity=Decimal(0), commission=Decimal(0), created=NOW, updated=NOW)


class Bare(amp.AMP):
    def __init__(self, server):
        super().__init__()
        self.server = server

    def connectionMade(self):
        super().connectionMade()
        tls.no_delay(self.transport)

    def connectionLost(self, reason):
        super().connectionLost(reason)
        for watchers in list(self.server.symbols.values()) + list(self.server.tokens.values()):
            watchers.discard(self)

    @commands.Quote.responder
    def quote(self, symbol):
        return quote(symbol)

    @commands.Watch.responder
    def watch(self, symbols):
        for s in symbols:
            self.server.symbols[s].add(self)
        return {"symbols": symbols}

    @commands.WatchOrders.responder
    def watch_orders(self, token):
        self.server.tokens[token].add(self)
        return {"username": "bench"}

    @commands.PlaceOrder.responder
    def place_order(self, token, client_order_id, side, symbol, quantity=None, notional=None, type=None,
                    time_in_force=None, limit_price=None, stop_price=None, trail_price=None, trail_percent=None,
                    portfolio=None, **more):  # (the rest, such as order_class, absent: AMP passes them as None)
        answer = order(client_order_id, symbol, side, type, time_in_force, quantity, limit_price)
        event = dict(event="accepted", time=NOW, order=[answer])
        for watcher in list(self.server.tokens.get(token, ())):
            watcher.callRemote(commands.OrderEvent, **event).addErrback(lambda _: None)
        return answer


class Server(protocol.Factory):
    def __init__(self):
        self.symbols = defaultdict(set)
        self.tokens = defaultdict(set)

    def buildProtocol(self, addr):
        return Bare(self)

    def push(self):
        for symbol, watchers in list(self.symbols.items()):
            tick = quote(symbol)
            for watcher in list(watchers):
                watcher.callRemote(commands.Tick, **tick).addErrback(lambda _: None)


def main(reactor, args):
    from twisted.internet import defer

    server = Server()
    endpoint = tls.server_endpoint(reactor, tls.listen_description(args.port, "127.0.0.1", args.cert), args.cert)
    d = endpoint.listen(server)
    if args.gc == "settled":  # as a twistd daemon of ours sets its garbage collector (papertrader/collector.py)
        collector.settle()

    def listening(port):
        print(f"listening {port.getHost().port}", flush=True)
        task.LoopingCall(server.push).start(args.interval, now=False)

    d.addCallback(listening)
    return d.addCallback(lambda _: defer.Deferred())  # runs until killed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cert", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--gc", choices=("settled", "python"), default="settled",
                        help="the garbage collector as our daemons set it (settled), or Python's defaults")
    arguments = parser.parse_args()
    task.react(main, [arguments])
