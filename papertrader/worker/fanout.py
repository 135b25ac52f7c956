"""Pushes to watching clients: live prices (by symbol) and order events (by account).

Every push (a Tick, an OrderEvent) needs an answer from the client.  A client
may have at most ``WINDOW`` updates (``publish`` calls: one market update's
prices, one step's order events) not yet answered in full; one that falls
further behind (it is not reading) is sent a ``slow_consumer`` notice and
disconnected, so it can never make the worker buffer without bound or slow
the other clients: sending is never waited on, and a slow client's backlog is
at most WINDOW updates (and the guard's ``max_unsent_bytes``).  Counting
updates, not pushes: a client watching 100 symbols gets 100 pushes at each
update, a bot placing 100 orders 100 events in one step, and neither is slow.
A connection the worker itself has stopped reading (papertrader/worker/
protocol.py: a client with many requests waiting) is not judged meanwhile:
its answers are in the part not read.

A watcher of ``ALL`` ("*": the HTTP API's market-data streams) gets every key's pushes.

At most ``BURST`` pushes are sent in one turn of the reactor: a market update for 3,000 clients goes out in
turns of 256, and the reactor reads and answers the clients' requests between them (with the bench's 3,000
clients, quote p99 0.98x the bare server's, mean of four runs, against 1.30x sending all at once).  Each
client gets every update's pushes in order.

A push's arguments are serialized once for all the AMP clients it goes to (``Prepared``): with thousands of
clients watching, converting the same quote to AMP values for each of them was most of a worker's work.
Other watchers (the website's and the HTTP API's connections) have their own ``callRemote``.
"""

from collections import defaultdict, deque
from struct import pack

from twisted.internet import defer
from twisted.protocols import amp

from papertrader import commands

WINDOW = 64
#: Pushes sent in one reactor turn.  A market update goes to every watcher of its symbols: 3,000 clients' pushes
#: at once held the worker's reactor, and every request in flight waited for all of them to be written and
#: their answers read (an order, whose answer comes back through the master, twice).
BURST = 256
#: The key of a watcher of every key.
ALL = "*"


class Prepared(amp.AmpBox):
    """A command's box whose arguments were serialized once (``body``, an AmpBox's bytes): sending it to a
    connection adds only what differs per connection, the command's name and the request's tag (``_command``
    and ``_ask``, which sort before every argument name, as AmpBox.serialize orders the keys)."""

    __slots__ = ("body",)

    def __init__(self, body):
        dict.__init__(self)  # (AmpBox's own only converts text keys: there are none)
        self.body = body

    @staticmethod
    def of(command, arguments):
        """The arguments' bytes, or None if an argument's name would not sort after ``_command``."""
        return Prepared.bytes_of(command.makeArguments(arguments, None))

    @staticmethod
    def bytes_of(box):
        """An AmpBox's bytes, or None if a key would not sort after ``_command`` (and ``_answer``)."""
        if any(key <= b"_command" for key in box):
            return None
        return box.serialize()

    def serialize(self):
        """The keys added per send (short bytes), in AmpBox.serialize's order and format, then the body."""
        parts = []
        for key, value in sorted(self.items()):
            parts += (pack("!H", len(key)), key, pack("!H", len(value)), value)
        parts.append(self.body)
        return b"".join(parts)


class Fanout:
    """Clients watching keys (symbols, or usernames); ``publish`` sends ``command`` to each watcher of a key."""

    def __init__(self, log, command=commands.Tick, window=WINDOW, what="live prices", clock=None, burst=BURST):
        """``clock``: the reactor that sends an update's pushes beyond the first ``burst`` in its next turns (None:
        every push at once)."""
        self.log = log
        self.clock = clock
        self.burst = burst
        self._queue = deque()  # pushes not sent yet: (protocol, arguments, body, update)
        self._later = None  # the next turn's _drain
        self.command = command
        self.window = window
        self.what = what
        self._by_key = defaultdict(set)
        #: The keys each watcher watches (so a leaving watcher costs its own keys, not every key).
        self._keys_of = {}
        self._pending = {}
        self.sent = 0
        self.cut_off = 0
        #: Called with a key when its first watcher arrives / its last one leaves.
        self.on_first = self.on_last = None

    def watch(self, protocol, keys):
        """Add ``protocol`` as a watcher of ``keys``.  Returns a Deferred that fires once ``on_first`` has done
        what it does for the keys nobody watched before (the master told to push their events: a client told
        it is watching before then could miss the events of orders it places at once through another worker);
        at once if there were none.  It never fails (on_first's failures are its own to report)."""
        waiting = []
        for key in keys:
            watchers = self._by_key[key]
            first = not watchers
            watchers.add(protocol)
            self._keys_of.setdefault(protocol, set()).add(key)
            if first and self.on_first is not None:
                told = self.on_first(key)
                if isinstance(told, defer.Deferred):
                    waiting.append(told)
        self._pending.setdefault(protocol, 0)
        return defer.DeferredList(waiting, consumeErrors=True) if waiting else defer.succeed(None)

    def forget(self, protocol):
        for key in self._keys_of.pop(protocol, ()):
            watchers = self._by_key.get(key)
            if watchers is not None and protocol in watchers:
                watchers.discard(protocol)
                if not watchers:
                    del self._by_key[key]
                    if self.on_last is not None:
                        self.on_last(key)
        self._pending.pop(protocol, None)

    def is_watching(self, protocol):
        return protocol in self._pending

    def __len__(self):
        return len(self._pending)

    def keys(self):
        return list(self._by_key)

    def watchers(self):
        return list(self._pending)

    def publish(self, items):
        """Send each (key, arguments) to the clients watching ``key`` (and to those watching ALL): one update.

        At most ``burst`` pushes go out at once; an update to more watchers sends the rest in the reactor's next
        turns, in order (every update's pushes after those of the updates before it)."""
        everyone = self._by_key.get(ALL)
        update = {}  # each client's pushes of this update not yet answered: [count]
        queue = self._queue
        for key, arguments in items:
            watchers = self._by_key.get(key, ())
            body = []  # serialized at the first AMP client
            for protocol in list(watchers):
                queue.append((protocol, arguments, body, update))
            if everyone and key != ALL:
                for protocol in list(everyone):
                    if protocol not in watchers:
                        queue.append((protocol, arguments, body, update))
        if self._later is None:
            self._drain()

    def _drain(self):
        self._later = None
        queue, sent = self._queue, 0
        while queue and (self.clock is None or sent < self.burst):
            try:
                self._send(*queue.popleft())
            except Exception:  # (one watcher's failure is not the others': they still get theirs)
                self.log.failure("a push of {what} failed", what=self.what)
            sent += 1
        if queue:
            self._later = self.clock.callLater(0, self._drain)

    def stop(self):
        """The pushes not sent yet are dropped (the worker is stopping: its clients are being disconnected)."""
        if self._later is not None and self._later.active():
            self._later.cancel()
        self._later = None
        self._queue.clear()

    def _send(self, protocol, arguments, body, update):
        if protocol not in self._pending:
            return
        unanswered = update.get(protocol)
        if unanswered is None:  # its first push of this update
            if self._pending[protocol] >= self.window and not _not_read(protocol):
                self._cut(protocol)
                return
            unanswered = update[protocol] = [0]
        if unanswered[0] == 0:  # (again, if a watcher answered this update's pushes so far at once)
            self._pending[protocol] += 1
        unanswered[0] += 1
        self.sent += 1
        if isinstance(protocol, amp.BoxDispatcher):
            if not body:
                body.append(Prepared.of(self.command, arguments))
            if body[0] is not None:
                d = protocol._sendBoxCommand(self.command.commandName, Prepared(body[0]))
            else:
                d = protocol.callRemote(self.command, **arguments)
        else:
            d = protocol.callRemote(self.command, **arguments)
        d.addCallbacks(lambda _: self._answered(protocol, unanswered), lambda _: None)

    def _answered(self, protocol, unanswered):
        unanswered[0] -= 1
        if unanswered[0] == 0 and protocol in self._pending:  # the whole update answered
            self._pending[protocol] -= 1

    def _cut(self, protocol):
        self.cut_off += 1
        self.log.warn("disconnecting a slow watcher at {peer}: {n} updates unanswered",
                      peer=protocol.client_ip(), n=self.window)
        self.forget(protocol)
        protocol.callRemote(commands.Notice, code="slow_consumer",
                            message=f"disconnected: {self.window} updates of {self.what} were not read in time")
        protocol.transport.abortConnection()


def _not_read(protocol):
    """Whether the worker has stopped reading this client's connection itself (its answers wait unread)."""
    paused = getattr(protocol, "not_read", None)
    return paused is not None and paused()
