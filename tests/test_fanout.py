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
