"""Shared fixtures: settings, databases (SQLite and PostgreSQL), a live cluster on loopback."""

import inspect
import io
import os
import uuid
from dataclasses import replace

import psycopg
import pytest
import pytest_twisted
from hypothesis import Phase, settings
from twisted.internet import defer, protocol, task

from papertrader.client import cli
from papertrader.cluster import Cluster
from papertrader.config import Settings
from papertrader.logs import LogSystem
from papertrader.master.db import Database
from papertrader.services import Outcome

POSTGRES = os.environ.get("PAPERTRADER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
START = 1_790_000_000  # a fixed "now" for task.Clock-driven tests (2026-09-21)
#: Seconds any one wait of a test may take (a bound, never a sleep): a regression fails instead of hanging.
WAIT = 30
#: Seconds an asynchronous test may run in all before it is cancelled (its own finally blocks still run).
#: pytest-timeout (setup.cfg) is the last resort above it for everything else, fixtures included.
CEILING = 90

# Hypothesis in the suite reports a failing example as it found it, with the line that replays it
# (@reproduce_failure), without shrinking it: shrinking (and explaining) a stateful test's example took
# minutes, past pytest-timeout's ceiling, which then ended the whole run instead of failing that test.
# HYPOTHESIS_PROFILE=shrink shrinks it, for a run of that one test.
settings.register_profile("suite", phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target),
                          print_blob=True)
settings.register_profile("shrink", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    """Give every asynchronous test a ceiling: cancel it after CEILING seconds, so the test fails with a
    TimeoutError, its cleanup runs, and the reactor (shared by the whole run) goes on with the next test."""
    original = pyfuncitem.obj
    if inspect.iscoroutinefunction(original):
        marker = pyfuncitem.get_closest_marker("timeout")
        ceiling = max(1, marker.args[0] - 5) if marker and marker.args else CEILING

        def bounded(**kwargs):
            return defer.ensureDeferred(original(**kwargs)).addTimeout(ceiling, _reactor())

        pyfuncitem.obj = bounded
        try:
            yield
        finally:
            pyfuncitem.obj = original
    else:
        yield


@pytest.fixture(autouse=True)
def _times_in_utc():
    """The website shows times in the market's zone, learnt from the master's clock (one market per process):
    each test starts from UTC, as a worker does before its first clock answer, whatever the test before ran."""
    from papertrader.worker.web import formatting

    formatting.show_times_in("UTC")


@pytest.fixture
def settings():
    # Abuse limits high enough that only the tests about them (test_throttle.py) ever meet them.  The
    # simulated market (always open, seeded): tests of the replay and the live providers choose theirs.
    return replace(Settings(), bcrypt_rounds=4, update_interval=5.0, assets=("AAPL", "MSFT", "TSLA"),
                   provider="simulated", login_free_attempts=1000, login_ceiling=10_000,
                   registrations_per_address=10_000)


@pytest.fixture
def clock():
    c = task.Clock()
    c.advance(START)
    return c


@pytest.fixture
def logs():
    system = LogSystem("test", 500, forward=False)
    yield system
    system.close()


@pytest.fixture
def log(logs):
    return logs.logger("papertrader.test")


def _postgres_schema():
    schema = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema, f"{POSTGRES}?options=-csearch_path%3D{schema}"


def _drop_schema(schema):
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield Database.default_url(str(tmp_path))
    else:
        schema, url = _postgres_schema()
        yield url
        _drop_schema(schema)


@pytest_twisted.async_yield_fixture
async def db(database_url, tmp_path):
    database = Database(database_url, str(tmp_path))
    await database.migrate()
    yield database
    database.close()


class Client:
    """Runs the real command-line client in-process against a master on loopback."""

    def __init__(self, data_dir, home, master_port):
        self.data_dir = data_dir
        self.home = home
        self._master_port = master_port

    @property
    def master_port(self):
        return self._master_port() if callable(self._master_port) else self._master_port

    def env(self, user="default"):
        return {
            "PAPERTRADER_MASTER": f"localhost:{self.master_port}",
            "PAPERTRADER_CA": os.path.join(self.data_dir, "ca.pem"),
            "XDG_CONFIG_HOME": os.path.join(self.home, user),
        }

    async def cli(self, *argv, user="default", stdin="", json=True):
        """Run ``papertrader [--json] ARGV``; return (status, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        args = (["--json"] if json else []) + list(argv)
        status = await cli.run(_reactor(), args, environ=self.env(user), stdin=io.StringIO(stdin), stdout=out,
                               stderr=err)
        return status, out.getvalue(), err.getvalue()


class Deployment(Client):
    """A running cluster (master + workers on loopback ports) and its clients."""

    def __init__(self, cluster, data_dir, home, clock):
        super().__init__(data_dir, home, lambda: cluster.master.listener.port.getHost().port)
        self.cluster = cluster
        self.master = cluster.master
        self.clock = clock

    async def tick(self):
        """One update interval: a market update, then a market step over the open orders (driven by task.Clock)."""
        self.clock.advance(self.master.settings.update_interval)
        await bounded(self.master.market.busy, "a market update and queue pass")


async def start_cluster(tmp_path, settings, database_url, clock, http_port=None):
    data_dir = str(tmp_path / "data")
    cluster = Cluster(data_dir, settings, _reactor(), master_port=0, worker_port=0, database=database_url,
                      clock=clock, http_port=http_port)
    cluster.startService()
    await bounded(cluster.whenReady(), "the cluster to start")
    await cluster_linked(cluster)
    await bounded(cluster.master.market.started, "the first market update")
    await bounded(cluster.master.market.busy, "the first market update")
    return Deployment(cluster, data_dir, str(tmp_path / "home"), clock)


async def cluster_linked(cluster):
    """Wait until every worker's link is proven on both sides: the master linked it, and the worker got the
    master's answer (before that the worker has no link: its watchdog, its calls, see nothing)."""
    await bounded(defer.gatherResults([w.link.whenProven() for w in cluster.workers]), "every worker to link")
    names = {w.name for w in cluster.workers}
    while not names <= set(cluster.master.workers.linked):
        await wait_for_log(cluster.master.logs, "linked")
    # Each worker's first call on its link (whose order events it watches, sent as it is proven) answered: a
    # test that counts the calls waiting on a link starts from none.  (The last worker proven resumes this
    # coroutine at once, while an earlier one's answer may still be on its way, under load.)
    await until(lambda: not any(w.link.waiting() for w in cluster.workers), "the workers' first calls to be answered")


async def until(condition, what, timeout=WAIT):
    """Turn the reactor until ``condition()`` holds (each turn handles what is ready; no sleeping), or fail
    after ``timeout`` seconds."""
    reactor = _reactor()
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        await task.deferLater(reactor, 0, lambda: None)


def _reactor():
    from twisted.internet import reactor

    return reactor


def bounded(d, what, timeout=WAIT):
    """``d``, failing with an AssertionError naming ``what`` if it has not fired within ``timeout`` seconds."""

    def timed_out(failure):
        failure.trap(defer.TimeoutError)
        raise AssertionError(f"waited {timeout} s for {what}")

    return d.addTimeout(timeout, _reactor()).addErrback(timed_out)


def wait_for_log(logs, text, timeout=WAIT):
    """A Deferred firing with the first entry of ``logs`` whose message contains ``text`` (no sleeping);
    it fails after ``timeout`` seconds, naming the text and showing the newest entries."""
    from papertrader.logs import LogEntry

    d = defer.Deferred(lambda _: logs.publisher.removeObserver(observer))

    def observer(event):
        entry = LogEntry.from_event(event)
        if text in entry.message:
            logs.publisher.removeObserver(observer)
            _reactor().callLater(0, lambda: None if d.called else d.callback(entry))

    logs.publisher.addObserver(observer)

    def timed_out(failure):
        failure.trap(defer.TimeoutError)
        newest = "\n".join(e.format() for e in logs.newest(15))
        raise AssertionError(f"{text!r} not logged by {logs.name} within {timeout} s; newest entries:\n{newest}")

    return d.addTimeout(timeout, _reactor()).addErrback(timed_out)


@pytest_twisted.async_yield_fixture
async def deployment(tmp_path, settings, database_url, clock):
    deployment = await start_cluster(tmp_path, settings, database_url, clock)
    yield deployment
    await deployment.cluster.stopService()


class WatchedProcess(protocol.ProcessProtocol):
    """A subprocess whose output the test waits on (no sleeping): ``wait_for(text)``, ``ended``."""

    def __init__(self):
        self.output = b""
        self.waiting = []
        self._end = Outcome()

    def outReceived(self, data):
        self.output += data
        for text, d in list(self.waiting):
            if text in self.output:
                self.waiting.remove((text, d))
                d.callback(self.output)

    errReceived = outReceived

    def wait_for(self, text, timeout=60):
        """Fires when ``text`` (bytes or str) has appeared; fails after ``timeout`` s (a bound, not a sleep)."""
        text = text.encode() if isinstance(text, str) else text
        d = defer.Deferred()
        self.waiting.append((text, d))
        self.outReceived(b"")

        def timed_out(failure):
            failure.trap(defer.TimeoutError)
            raise AssertionError(f"{text!r} not seen; output:\n{self.output.decode(errors='replace')}")

        return d.addTimeout(timeout, _reactor()).addErrback(timed_out)

    def processEnded(self, reason):
        self._end.settle(reason.value)  # ProcessDone or ProcessTerminated (exitCode, signal)

    @property
    def ended(self):
        """A new Deferred firing with how the process ended (ProcessDone or ProcessTerminated, with
        exitCode and signal); it fails if the process has not ended within WAIT seconds."""
        return self.wait_end()

    def wait_end(self, timeout=WAIT):
        def timed_out(failure):
            failure.trap(defer.TimeoutError)
            raise AssertionError(f"the process did not end within {timeout} s; output:\n"
                                 f"{self.output.decode(errors='replace')[-3000:]}")

        return self._end.wait().addTimeout(timeout, _reactor()).addErrback(timed_out)


class SeparatedProcess(WatchedProcess):
    """A WatchedProcess whose stdout and stderr are also kept apart (``stdout``, ``stderr``); ``stdin``, if
    given, is written to it and its standard input then closed."""

    def __init__(self, stdin=None):
        super().__init__()
        self.stdin = stdin
        self.stdout = b""
        self.stderr = b""

    def connectionMade(self):
        if self.stdin is not None:
            self.transport.write(self.stdin.encode() if isinstance(self.stdin, str) else self.stdin)
            self.transport.closeStdin()

    def outReceived(self, data):
        self.stdout += data
        WatchedProcess.outReceived(self, data)

    def errReceived(self, data):
        self.stderr += data
        WatchedProcess.outReceived(self, data)
