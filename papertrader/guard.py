"""Limits on the connections a listener accepts, so that no one address or stalled peer holds its resources.

``guarded(factory, limits, log, what)`` wraps a listener's protocol factory (inside TLS: the guard is the
application protocol's transport).  For each connection it enforces:

- **a cap per address**: at most ``per_address`` open connections from one IP address; one more is closed at
  once, before any TLS handshake (one log line per address each time it reaches the cap);
- **a TLS handshake timeout**: a connection whose handshake has not finished ``handshake_timeout`` seconds
  after it opened is cut (a peer that connects and never speaks, or trickles its handshake);
- **an idle timeout**: a connection that sent nothing for ``idle_timeout`` seconds is cut, unless its protocol
  says it is kept alive (``keeps_alive()``: a client watching prices or order events waits for pushes, and
  answers each one, so it is never idle);
- **bounded unsent output**: once the socket's own buffers are full, at most ``max_unsent`` more bytes may
  wait for a peer that does not read; beyond that it is cut (a protocol may allow its peer more:
  ``unsent_allowed(max_unsent)``, the master's for a linked worker).

Cutting aborts the connection (no goodbye to a peer that is not listening) with one log line; nothing else is
affected.  ``None`` (or 0) for a limit turns it off.  Timers run on ``clock`` (the reactor; tests give a
``task.Clock``).
"""

from collections import Counter
from dataclasses import dataclass

from twisted.internet import protocol
from twisted.internet.interfaces import IHandshakeListener, IProtocolNegotiationFactory, IPushProducer, ISSLTransport
from twisted.protocols import policies
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import directlyProvides, implementer, providedBy


@dataclass(frozen=True)
class Limits:
    per_address: int = 64
    handshake_timeout: float = 10.0
    idle_timeout: float = 300.0
    max_unsent: int = 1_048_576

    @classmethod
    def from_settings(cls, settings, idle=True, unsent=True):
        return cls(per_address=settings.max_connections_per_address,
                   handshake_timeout=settings.handshake_timeout,
                   idle_timeout=settings.idle_timeout if idle else None,
                   max_unsent=settings.max_unsent_bytes if unsent else None)


class Refused(protocol.Protocol):
    """The protocol of a connection over the per-address cap: closed as soon as it opens."""

    def makeConnection(self, transport):
        transport.abortConnection()

    def dataReceived(self, data):
        pass

    def connectionLost(self, reason):
        pass


@implementer(IPushProducer)
class _Output:
    """The guard's producer on its transport: tells whether the socket's buffers are full (paused), counts what
    is written meanwhile, and passes pause and resume on to a producer of the protocol inside."""

    def __init__(self, guard):
        self.guard = guard
        self.paused = False
        self.unsent = 0
        self.inner = None

    def pauseProducing(self):
        self.paused = True
        if self.inner is not None:
            self.inner.pauseProducing()

    def resumeProducing(self):
        self.paused = False
        self.unsent = 0
        if self.inner is not None:
            self.inner.resumeProducing()

    def stopProducing(self):
        if self.inner is not None:
            self.inner.stopProducing()


@implementer(IHandshakeListener)
class Guard(policies.ProtocolWrapper):
    host = None
    _handshake = None
    _idle = None
    _output = None
    _cut_reason = None

    #: Whether the connection is TLS (the guard sits inside it).
    under_tls = False

    def makeConnection(self, transport):
        limits, clock = self.factory.limits, self.factory.clock
        self.host = getattr(transport.getPeer(), "host", None)
        self.under_tls = isinstance(transport, TLSMemoryBIOProtocol)
        self.factory.opened(self)
        if limits.handshake_timeout and self.under_tls:
            self._handshake = clock.callLater(limits.handshake_timeout, self.cut, "handshake",
                                              f"no TLS handshake within {limits.handshake_timeout:g} s")
        if limits.idle_timeout:
            self._last = clock.seconds()
            self._idle = clock.callLater(limits.idle_timeout, self._check_idle)
        if limits.max_unsent:
            self._output = _Output(self)
            transport.registerProducer(self._output, True)
        # As ProtocolWrapper.makeConnection, except that with ``hide_tls`` the guard does not claim to be an
        # ISSLTransport: autobahn, seeing one, insists on TLSMemoryBIOProtocol itself (the HTTP listener's
        # channel asks ``under_tls`` instead).
        hide = self.factory.hide_tls
        provided = [i for i in providedBy(transport) if not (hide and i.isOrExtends(ISSLTransport))]
        directlyProvides(self, *provided)
        protocol.Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self.wrappedProtocol.makeConnection(self)

    # --- the limits ------------------------------------------------------------------------------------

    def handshakeCompleted(self):
        if self._handshake is not None and self._handshake.active():
            self._handshake.cancel()
        self._handshake = None
        if IHandshakeListener.providedBy(self.wrappedProtocol):
            self.wrappedProtocol.handshakeCompleted()

    def _check_idle(self):
        limits, clock = self.factory.limits, self.factory.clock
        quiet = clock.seconds() - self._last
        if quiet < limits.idle_timeout:
            self._idle = clock.callLater(limits.idle_timeout - quiet, self._check_idle)
            return
        keeps_alive = getattr(self.wrappedProtocol, "keeps_alive", None)
        if keeps_alive is not None and keeps_alive():
            self._idle = clock.callLater(limits.idle_timeout, self._check_idle)
            return
        self._idle = None
        self.cut("idle", f"idle for {limits.idle_timeout:g} s")

    def cut(self, kind, reason):
        """Abort the connection (``kind``: handshake, idle or unsent), saying why in the log."""
        if self._cut_reason is not None or self.transport is None:
            return
        self._cut_reason = reason
        self.factory.cut[kind] += 1
        self.factory.log.info("{what}: closed the connection of {host}: {reason}", what=self.factory.what,
                              host=self.host, reason=reason)
        self.transport.abortConnection()

    # --- transport (for the protocol inside) -------------------------------------------------------------

    def write(self, data):
        if self._count(len(data)):
            self.transport.write(data)

    def writeSequence(self, data):
        if self._count(sum(len(chunk) for chunk in data)):
            self.transport.writeSequence(data)

    def _count(self, size):
        output = self._output
        if self._cut_reason is not None:
            return False
        if output is not None and output.paused:
            output.unsent += size
            limit = self.factory.limits.max_unsent
            allowed = getattr(self.wrappedProtocol, "unsent_allowed", None)
            if allowed is not None:
                limit = allowed(limit)
            if output.unsent > limit:
                self.cut("unsent", f"more than {limit} bytes of output unread")
                return False
        return True

    def registerProducer(self, producer, streaming):
        if self._output is None:
            return self.transport.registerProducer(producer, streaming)
        if not streaming:  # only a streaming producer can follow the guard's pauses: give the guard's place up
            self.transport.unregisterProducer()
            self._output = None
            return self.transport.registerProducer(producer, streaming)
        self._output.inner = producer
        if self._output.paused:
            producer.pauseProducing()

    def unregisterProducer(self):
        if self._output is None:
            return self.transport.unregisterProducer()
        self._output.inner = None

    def loseConnection(self):
        # TLS waits for a registered producer to go before it closes: the guard's must not hold it open.
        if self._output is not None and self.transport is not None:
            self._output = None
            self.transport.unregisterProducer()
        super().loseConnection()

    # --- protocol (from the transport) ---------------------------------------------------------------------

    def dataReceived(self, data):
        if self._idle is not None:
            self._last = self.factory.clock.seconds()
        self.wrappedProtocol.dataReceived(data)
        if self.factory.after_read is not None:
            self.factory.after_read()

    def connectionLost(self, reason):
        for call in (self._handshake, self._idle):
            if call is not None and call.active():
                call.cancel()
        self._handshake = self._idle = None
        if self._output is not None:
            self._output.inner = None
        self.factory.closed(self)
        super().connectionLost(reason)


class GuardedFactory(policies.WrappingFactory):
    protocol = Guard

    def __init__(self, wrapped, limits, log, what, clock=None, hide_tls=False, after_read=None):
        super().__init__(wrapped)
        self.hide_tls = hide_tls
        #: Called after each read of a connection has been handled (a worker serves its link to the master there).
        self.after_read = after_read
        if clock is None:
            from twisted.internet import reactor as clock
        self.limits = limits
        self.log = log
        self.what = what
        self.clock = clock
        self.per_address = Counter()
        #: Connections cut, by kind (handshake, idle, unsent), and refused over the cap.
        self.cut = Counter()
        self.refused = 0
        self._at_cap = set()

    def buildProtocol(self, addr):
        host = getattr(addr, "host", None)
        cap = self.limits.per_address
        if cap and host is not None and self.per_address[host] >= cap:
            self.refused += 1
            if host not in self._at_cap:
                self._at_cap.add(host)
                self.log.warn("{what}: {host} has {cap} connections open, the most one address may have: refusing"
                              " more", what=self.what, host=host, cap=cap)
            return Refused()
        return super().buildProtocol(addr)

    def opened(self, guard):
        if guard.host is not None:
            self.per_address[guard.host] += 1

    def closed(self, guard):
        if guard.host is None:
            return
        self.per_address[guard.host] -= 1
        if self.per_address[guard.host] <= 0:
            del self.per_address[guard.host]
        if not self.limits.per_address or self.per_address[guard.host] < self.limits.per_address:
            self._at_cap.discard(guard.host)

    def connections(self, host=None):
        """Open connections (of ``host``, or in all)."""
        return self.per_address[host] if host is not None else sum(self.per_address.values())


@implementer(IProtocolNegotiationFactory)
class NegotiatingGuardedFactory(GuardedFactory):
    """The guard of a factory that names its protocols for TLS's ALPN (twisted.web's Site: HTTP/1.1).  Twisted's
    TLS asks the factory it wraps, here the guard: a guard naming none would fail the handshake of every client
    that offers ALPN (browsers, curl, requests and so alpaca-py) with an internal-error alert."""

    def acceptableProtocols(self):
        # HTTP/1.1 only: HTTP/2 (offered when the h2 package is installed) would bypass the Site's channel, which
        # knows it is under TLS through the guard, and what it checks with that (origins, Secure cookies).
        return [p for p in self.wrappedFactory.acceptableProtocols() if p != b"h2"]


def is_tls(transport):
    """Whether a connection is over TLS, the guard's (which hides it from autobahn: ``hide_tls``) or not."""
    return ISSLTransport.providedBy(transport) or getattr(transport, "under_tls", False)


def guarded(factory, limits, log, what, clock=None, hide_tls=False, after_read=None):
    """``factory`` behind the connection limits (see the module's doc); ``after_read``: called after each read of
    a connection has been handled."""
    kind = NegotiatingGuardedFactory if IProtocolNegotiationFactory.providedBy(factory) else GuardedFactory
    return kind(factory, limits, log, what, clock, hide_tls, after_read)
