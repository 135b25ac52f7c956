"""The worker's fanout of pushes: a new watcher of a key nobody watched is told it watches only once the
master has been told to push that key's events (``on_first``), never before."""

from twisted.internet import defer, task
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


class Recorder(Watcher):
    """A watcher that answers at once and notes what it got, in order, in a shared list."""

    def __init__(self, name, log):
        super().__init__()
        self.name = name
        self.log = log

    def callRemote(self, command, **arguments):
        self.log.append((self.name, arguments["n"]))
        return super().callRemote(command, **arguments)


def test_an_update_to_many_watchers_goes_out_in_turns_and_each_watcher_gets_the_updates_in_order():
    """With 3,000 watchers, one update's pushes held the worker's reactor until all were written; every request
    in flight waited.  Now at most ``burst`` go at once, the rest in the reactor's next turns; an update published
    meanwhile goes after the one before it."""
    clock = task.Clock()
    fanout = Fanout(Logger(), clock=clock, burst=4)
    got = []
    watchers = [Recorder(i, got) for i in range(10)]
    for w in watchers:
        fanout.watch(w, ["AAPL"])
    fanout.publish([("AAPL", {"n": 1})])
    assert len(got) == 4 and len(clock.getDelayedCalls()) == 1  # the first burst at once, the rest at the next turn
    fanout.publish([("AAPL", {"n": 2})])  # the next update, while the first is still going out
    assert len(got) == 4 and len(clock.getDelayedCalls()) == 1
    clock.advance(0)  # (task.Clock runs the turns one after the other)
    assert len(got) == 20 and not clock.getDelayedCalls()
    for w in watchers:
        assert [n for name, n in got if name == w.name] == [1, 2]
    assert [n for _, n in got] == [1] * 10 + [2] * 10


def test_a_watcher_that_leaves_before_its_turn_gets_nothing_and_a_slow_one_is_still_cut():
    clock = task.Clock()
    fanout = Fanout(Logger(), clock=clock, burst=2)
    got = []
    recorders = [Recorder(i, got) for i in range(5)]
    slow = SlowWatcher()
    for w in recorders + [slow]:
        fanout.watch(w, ["AAPL"])
    for _ in range(fanout.window):
        fanout.publish([("AAPL", {"n": 1})])
        clock.advance(0)
    assert not slow.aborted and len(slow.waiting) == fanout.window
    fanout.publish([("AAPL", {"n": 2})])  # two now, the others at the next turns
    served = {name for name, n in got if n == 2}
    waiting = [w for w in recorders if w.name not in served]
    assert len(served) <= 2 and len(waiting) >= 3
    leaving = waiting[0]
    fanout.forget(leaving)
    clock.advance(0)
    assert {name for name, n in got if n == 2} == {w.name for w in recorders} - {leaving.name}
    assert slow.aborted and slow.notices == ["slow_consumer"]


def test_a_stopped_fanout_sends_nothing_more():
    clock = task.Clock()
    fanout = Fanout(Logger(), clock=clock, burst=1)
    got = []
    for i in range(3):
        fanout.watch(Recorder(i, got), ["AAPL"])
    fanout.publish([("AAPL", {"n": 1})])
    fanout.stop()
    assert not clock.getDelayedCalls()
    clock.advance(0)
    assert len(got) == 1


class BrokenWatcher(Watcher):
    def callRemote(self, command, **arguments):
        raise RuntimeError("a watcher's own bug")


def test_a_push_that_fails_is_logged_and_the_other_watchers_still_get_theirs():
    from twisted.logger import LogLevel, globalLogPublisher

    clock = task.Clock()
    fanout = Fanout(Logger(), clock=clock, burst=1)
    got = []
    fanout.watch(BrokenWatcher(), ["AAPL"])
    for i in range(3):
        fanout.watch(Recorder(i, got), ["AAPL"])
    logged = []
    globalLogPublisher.addObserver(logged.append)
    try:
        fanout.publish([("AAPL", {"n": 1})])
        clock.advance(0)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert sorted(name for name, _ in got) == [0, 1, 2]
    assert [e for e in logged if e.get("log_level") == LogLevel.critical and "log_failure" in e]
