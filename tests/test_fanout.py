"""The worker's fanout of pushes: a new watcher of a key nobody watched is told it watches only once the
master has been told to push that key's events (``on_first``), never before."""

from twisted.internet import defer
from twisted.logger import Logger

from papertrader import commands
from papertrader.worker.fanout import Fanout


class Watcher:
    def __init__(self):
        self.pushed = []

    def callRemote(self, command, **arguments):
        self.pushed.append(arguments)
        return defer.succeed({})


class SlowWatcher:
    """A client whose answers come when the test says (``answer``); cut off: ``aborted``."""

    def __init__(self):
        self.waiting = []
        self.notices = []
        self.aborted = False
        self.transport = self

    def callRemote(self, command, **arguments):
        if command is commands.Notice:
            self.notices.append(arguments["code"])
            return defer.succeed({})
        d = defer.Deferred()
        self.waiting.append(d)
        return d

    def answer(self):
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback({})

    def abortConnection(self):
        self.aborted = True

    def client_ip(self):
        return "192.0.2.7"


def test_a_first_watcher_is_answered_once_the_master_knows_and_later_ones_at_once():
    fanout = Fanout(Logger(), commands.OrderEvent, what="order events")
    told = {}

    def on_first(key):
        told[key] = defer.Deferred()  # the master's answer to OrderWatchers, not come yet
        return told[key]

    fanout.on_first = on_first
    first, second = Watcher(), Watcher()
    answered = []
    fanout.watch(first, ["alice"]).addCallback(answered.append)
    assert list(told) == ["alice"] and answered == []  # not before the master has it
    fanout.watch(second, ["alice"]).addCallback(lambda _: answered.append("second"))
    assert answered == ["second"]  # alice's events already come here: at once
    told["alice"].errback(RuntimeError("the link dropped"))  # a failure is on_first's to report: still answered
    assert len(answered) == 2
    fanout.publish([("alice", {"event": "new"})])
    assert first.pushed == second.pushed == [{"event": "new"}]


def test_without_on_first_a_watch_is_answered_at_once():
    fanout = Fanout(Logger())
    answered = []
    fanout.watch(Watcher(), ["AAPL"]).addCallback(answered.append)
    assert answered == [None]


def test_a_watcher_of_many_symbols_is_slow_only_after_many_updates_not_many_pushes():
    """A client watching 100 symbols got 100 pushes at one update and was cut as a slow consumer at the 65th,
    though it answers every update; so was a bot watching its orders when one step made 100 events.  The window
    counts updates not answered in full."""
    fanout = Fanout(Logger())
    client = SlowWatcher()
    symbols = [f"S{i}" for i in range(100)]
    fanout.watch(client, symbols)
    fanout.publish([(s, {"symbol": s}) for s in symbols])
    assert len(client.waiting) == 100 and not client.aborted
    client.answer()
    for update in range(fanout.window):  # then it stops reading: 64 updates unanswered are allowed
        fanout.publish([(s, {"symbol": s}) for s in symbols])
    assert not client.aborted
    fanout.publish([("S0", {"symbol": "S0"})])  # the 65th: slow
    assert client.aborted and client.notices == ["slow_consumer"]


def test_an_update_answered_in_part_is_still_unanswered():
    fanout = Fanout(Logger())
    client = SlowWatcher()
    fanout.watch(client, ["A", "B"])
    for _ in range(fanout.window):
        fanout.publish([("A", {}), ("B", {})])
        client.waiting.pop().callback({})  # B's answered, A's not: the update is not answered in full
    fanout.publish([("A", {})])
    assert client.aborted


class SwitchingWatcher(SlowWatcher):
    """A client that answers at once (as a website's page or a stream's connection does: its push is queued) until
    ``stop_reading``."""

    def __init__(self):
        super().__init__()
        self.reading = True

    def callRemote(self, command, **arguments):
        if self.reading and command is not commands.Notice:
            return defer.succeed({})
        return super().callRemote(command, **arguments)


def test_a_watcher_answering_at_once_is_judged_like_any_other_once_it_stops_reading():
    """Updates of several pushes answered at once counted one update in and each push out: the count went below
    zero (-400 after 100 updates of 5 symbols), and a watcher that then stopped reading was cut only after
    hundreds of updates instead of 64."""
    fanout = Fanout(Logger())
    client = SwitchingWatcher()
    symbols = ["A", "B", "C", "D", "E"]
    fanout.watch(client, symbols)
    for _ in range(100):
        fanout.publish([(s, {}) for s in symbols])
    client.reading = False
    for _ in range(fanout.window):
        fanout.publish([(s, {}) for s in symbols])
    assert not client.aborted
    fanout.publish([("A", {})])
    assert client.aborted
