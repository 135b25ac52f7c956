"""The client's end of a worker connection: answers the worker's notices and live prices."""

from twisted.internet import defer
from twisted.protocols import amp

from papertrader import commands, tls


class ClientProtocol(amp.AMP):
    """AMP plus ``on_tick``/``on_notice`` hooks and ``ended`` (fires with the first notice or the loss)."""

    def __init__(self):
        super().__init__()
        self.on_tick = None
        self.notices = []
        self.ended = defer.Deferred()

    def connectionMade(self):
        super().connectionMade()
        tls.no_delay(self.transport)

    @commands.Tick.responder
    def tick(self, symbol, price, time):
        if self.on_tick is not None:
            self.on_tick(dict(symbol=symbol, price=price, time=time))
        return {}

    @commands.Notice.responder
    def notice(self, code, message):
        self.notices.append((code, message))
        if not self.ended.called:
            self.ended.callback((code, message))
        return {}

    def connectionLost(self, reason):
        super().connectionLost(reason)
        if not self.ended.called:
            self.ended.callback(("connection_lost", "the worker closed the connection"))
