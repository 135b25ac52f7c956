"""The client's end of a worker (or master) connection: TLS handshake, the worker's notices and live prices."""

from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener
from twisted.protocols import amp
from zope.interface import implementer

from papertrader import commands, tls


@implementer(IHandshakeListener)
class ClientProtocol(amp.AMP):
    """AMP plus:

    - ``handshake``: fires when the TLS handshake is done, fails with the reason if the connection is lost
      before (a certificate that does not check out, a server that does not speak TLS);
    - ``on_tick``: called with each live price;
    - ``order_events`` (a list, when set) collects each pushed order event; ``on_order_event`` is called with
      each; ``next_event()`` fires at the next one;
    - ``ended``: fires with ``(code, message)`` at the first notice from the worker or at the loss of the
      connection, whichever comes first.
    """

    def __init__(self):
        super().__init__()
        self.on_tick = None
        self.on_order_event = None
        self.order_events = None
        self._event_waiters = []
        self.notices = []
        self.handshake = defer.Deferred()
        self.ended = defer.Deferred()

    def connectionMade(self):
        super().connectionMade()
        tls.no_delay(self.transport)

    def handshakeCompleted(self):
        # A certificate whose host name does not check out aborts the connection from inside the handshake,
        # which still reports itself done: only a connection that stays up has completed it.
        if not self.handshake.called and self.transport is not None and not self.transport.disconnecting:
            self.handshake.callback(self)

    @commands.Tick.responder
    def tick(self, symbol, price, time, stale=None, name=None, **bar):
        if self.on_tick is not None:
            self.on_tick(dict(symbol=symbol, price=price, time=time, stale=bool(stale)))
        return {}

    @commands.OrderEvent.responder
    def order_event(self, event, time, order, price=None, quantity=None, position_quantity=None, portfolio=None,
                    portfolio_uuid=None):
        pushed = dict(event=event, time=time, order=order[0])
        if portfolio is not None:
            pushed["portfolio"] = portfolio
        if price is not None:
            pushed.update(price=price, quantity=quantity, position_quantity=position_quantity)
        if self.order_events is not None:
            self.order_events.append(pushed)
        if self.on_order_event is not None:
            self.on_order_event(pushed)
        waiters, self._event_waiters = self._event_waiters, []
        for d in waiters:
            d.callback(pushed)
        return {}

    def next_event(self):
        """A Deferred firing at the next pushed order event."""
        d = defer.Deferred()
        self._event_waiters.append(d)
        return d

    @commands.Notice.responder
    def notice(self, code, message):
        self.notices.append((code, message))
        if not self.ended.called:
            self.ended.callback((code, message))
        return {}

    def close(self):
        """Close the connection if it is still open (safe to call at any time, any number of times)."""
        if self.transport is not None:
            self.transport.loseConnection()

    def abort(self):
        if self.transport is not None:
            self.transport.abortConnection()

    def connectionLost(self, reason):
        super().connectionLost(reason)
        if not self.handshake.called:
            self.handshake.errback(reason)
        if not self.ended.called:
            self.ended.callback(("connection_lost", "the worker closed the connection"))
