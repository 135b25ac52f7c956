"""Live prices: the worker fans each new tick out to the clients watching its symbol.

Every Tick needs an answer from the client.  A client may have at most
``WINDOW`` ticks unanswered; one that falls further behind (it is not reading)
is sent a ``slow_consumer`` notice and disconnected, so it can never make the
worker buffer without bound or slow the other clients: sending is never
waited on, and a slow client's backlog is at most WINDOW small messages.
"""

from collections import defaultdict

from papertrader import commands

WINDOW = 64


class Fanout:
    def __init__(self, log, window=WINDOW):
        self.log = log
        self.window = window
        self._by_symbol = defaultdict(set)
        self._pending = {}
        self.sent = 0
        self.cut_off = 0

    def watch(self, protocol, symbols):
        for symbol in symbols:
            self._by_symbol[symbol].add(protocol)
        self._pending.setdefault(protocol, 0)

    def forget(self, protocol):
        for watchers in self._by_symbol.values():
            watchers.discard(protocol)
        self._pending.pop(protocol, None)

    def __len__(self):
        return len(self._pending)

    def watchers(self):
        return list(self._pending)

    def publish(self, quotes):
        for quote in quotes:
            for protocol in list(self._by_symbol.get(quote["symbol"], ())):
                self._send(protocol, quote)

    def _send(self, protocol, quote):
        if protocol not in self._pending:
            return
        if self._pending[protocol] >= self.window:
            self._cut(protocol)
            return
        self._pending[protocol] += 1
        self.sent += 1
        d = protocol.callRemote(commands.Tick, symbol=quote["symbol"], price=quote["price"], time=quote["time"])
        d.addCallbacks(lambda _: self._answered(protocol), lambda _: None)

    def _answered(self, protocol):
        if protocol in self._pending:
            self._pending[protocol] -= 1

    def _cut(self, protocol):
        self.cut_off += 1
        self.log.warn("disconnecting a slow watcher at {peer}: {n} ticks unanswered",
                      peer=protocol.client_ip(), n=self.window)
        self.forget(protocol)
        protocol.callRemote(commands.Notice, code="slow_consumer",
                            message=f"disconnected: {self.window} live prices were not read in time")
        protocol.transport.abortConnection()
