"""Bounded pools for CPU-heavy work that must not crowd out acknowledging orders.

Password hashing (bcrypt) runs in a pool of separate processes (Python running ``papertrader.passwords.main``), GPG
(worker keys, handshake signatures) in a pool of threads; each pool has a fixed size, so however many
people log in at once, at most ``size`` hashes run at a time, and a job waits in the pool's queue for a
free process or thread.

Both run at a lower CPU priority (the hashing processes at the lowest, nice 19; the gpg threads at +10, on
Linux, where a thread has its own): when the CPU is short, the scheduler serves acknowledging orders (the
reactor, the database threads, and PostgreSQL's own processes on the same machine) first and a login waits a
little longer; it still gets its share, so logins never stop.  Hashing is in processes, not threads,
because a low-priority thread that the scheduler puts aside while it holds the GIL (as each hash starts and
ends) stalls every other thread of the master: ``bench/bench_logins.py`` measured 20 people logging in
costing order acknowledgements +61% to +91% at p99 on PostgreSQL with nice-19 hashing threads, whatever
their priority; a separate process shares no GIL (and, in a session of its own whose autogroup is nice 19
too, it yields to PostgreSQL's processes as well): +8% and -21% in two runs; see bench/README.md).

A hashing process stops when its stdin ends: when the pool stops, and when the master dies however it
dies (on Linux it is also sent SIGTERM then).  One that dies during a job is replaced, and the job is run
again once; one that uses no CPU for ``JOB_TIMEOUT`` seconds of a job is stuck: it is killed and the job runs again
once elsewhere (a job is never cut short for being slow: a costly hash at the lowest priority on a busy
machine takes its time, and then answers).

The pools are per process, started on first use and stopped when the reactor shuts down.
"""

import collections
import itertools
import json
import os
import sys
import threading

from twisted.internet import defer, error, protocol, threads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from papertrader.errors import ServerError

log = Logger()


#: How much nicer than the rest of the process a pool's threads run by default (Linux: per thread; at most 19).
NICENESS = 10

_local = threading.local()


def _lower_priority(niceness):
    """Make the calling thread nicer, once (Linux lets a thread change its own priority; elsewhere: no-op)."""
    if getattr(_local, "lowered", False):
        return
    _local.lowered = True
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + niceness))
    except (AttributeError, OSError):
        pass


def _nicely(niceness, function, *args, **kwargs):
    _lower_priority(niceness)
    return function(*args, **kwargs)


def default_size():
    """Half the CPU cores, at least one."""
    return max(1, (os.cpu_count() or 2) // 2)


class WorkPool:
    def __init__(self, name, size=None, niceness=NICENESS):
        self.name = name
        self.size = size or default_size()
        self.niceness = niceness
        self._pool = None

    def resize(self, size):
        """Use at most ``size`` threads (0: half the CPU cores)."""
        self.size = size or default_size()
        if self._pool is not None:
            self._pool.adjustPoolsize(0, self.size)

    def run(self, function, *args, **kwargs):
        """``function(*args, **kwargs)`` in one of this pool's threads; a Deferred of its result."""
        from twisted.internet import reactor

        if self._pool is None:
            self._pool = ThreadPool(0, self.size, name=f"papertrader-{self.name}")
            self._pool.start()
            reactor.addSystemEventTrigger("during", "shutdown", self._stop)
        return threads.deferToThreadPool(reactor, self._pool, _nicely, self.niceness, function, *args,
                                         **kwargs)

    def _stop(self):
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()


class JobFailed(ServerError):
    """A job of a process pool failed: its function raised or its process died.  The pool logs why (one line,
    ``why``: ``ErrorType: message``); the client is told no more than ``server_error``."""

    def __init__(self, why):
        super().__init__()
        self.why = why


#: Seconds a process pool's job may go without its process using any CPU before the process is killed (stuck)
#: and the job run again, once, on another one.
JOB_TIMEOUT = 60.0
#: Longest answer line a pool reads from one of its processes.
MAX_ANSWER = 1 << 16
#: Seconds the pool waits for its processes to exit when it stops, before killing them.
STOP_TIMEOUT = 5.0


def _cpu_seconds(pid):
    """CPU time process ``pid`` has used (Linux: /proc), in clock ticks; None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


class _Child(protocol.ProcessProtocol):
    """One process of a ProcessPool: sends it one job at a time and reads its answer line."""

    def __init__(self, pool):
        self.pool = pool
        self.job = None
        self.buffer = b""
        self.ended = defer.Deferred()
        self.gone = False
        self.timer = None
        self.cpu = None

    def send(self, job):
        """Give the process ``job``; False (the job failed) if its arguments cannot travel as JSON."""
        ident, name, args, _, _ = job
        try:
            line = json.dumps([ident, name, list(args)]).encode("ascii") + b"\n"
        except (TypeError, ValueError) as e:
            self.pool._failed(job, f"BadArguments: {e}")
            return False
        self.job = job
        self.transport.write(line)
        self.cpu = _cpu_seconds(self.transport.pid)
        self.timer = self.pool.clock.callLater(JOB_TIMEOUT, self._check)
        return True

    def _check(self):
        """Every JOB_TIMEOUT seconds of a job: a process that used some CPU since is working (slowly, at its low
        priority, or on a costly hash): it goes on; one that used none is stuck: killed, and its job runs again
        once elsewhere."""
        self.timer = None
        cpu = _cpu_seconds(self.transport.pid)
        if cpu is not None and self.cpu is not None and cpu > self.cpu:
            self.cpu = cpu
            self.timer = self.pool.clock.callLater(JOB_TIMEOUT, self._check)
            return
        log.warn("a {pool} process did nothing for {timeout} s of a job; killing it", pool=self.pool.name,
                 timeout=JOB_TIMEOUT)
        self.pool._lost(self, retry=True)
        self._kill()

    def _kill(self):
        try:
            self.transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass

    def outReceived(self, data):
        self.buffer += data
        while b"\n" in self.buffer and not self.gone:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self._answer(line)
        if len(self.buffer) > MAX_ANSWER:
            log.error("a {pool} process sent an answer too long; killing it", pool=self.pool.name)
            self.pool._lost(self, retry=True)
            self._kill()

    def _answer(self, line):
        job, self.job = self.job, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        try:
            ident, ok, result = json.loads(line)
        except ValueError:
            ident, ok, result = None, False, "BadAnswer: not JSON"
        if job is None or ident != job[0]:
            log.error("a {pool} process answered a job it was not given; killing it", pool=self.pool.name)
            if job is not None:
                self.job = job
            self.pool._lost(self, retry=True)
            self._kill()
            return
        self.pool._idle_again(self)  # first: whatever the answer's callbacks ask of the pool may go here
        if ok:
            job[3].callback(result)
        else:
            self.pool._failed(job, result)

    def errReceived(self, data):
        log.warn("a {pool} process says: {text}", pool=self.pool.name,
                 text=data[:2000].decode("utf-8", "replace").rstrip())

    def outConnectionLost(self):
        self.pool._lost(self, retry=True)

    def processEnded(self, reason):
        self.pool._lost(self, retry=True)
        if not self.ended.called:
            self.ended.callback(None)


class ProcessPool:
    """At most ``size`` processes of Python running ``<module>.main([niceness, our pid])`` answering jobs (a function
    of the module's ``FUNCTIONS``, by name, with JSON arguments) one at a time each; jobs beyond wait."""

    def __init__(self, name, module, size=None, niceness=19, reactor=None, clock=None):
        """``clock``: what times the jobs (default: the reactor)."""
        self.name = name
        self.module = module
        self.size = size or default_size()
        self.niceness = niceness
        self.reactor = reactor
        self.clock = clock
        self._children = set()
        self._idle = []
        self._queue = collections.deque()
        self._ids = itertools.count(1)
        self._trigger = None
        self._stopped = False

    def resize(self, size):
        """Use at most ``size`` processes (0: half the CPU cores)."""
        self.size = size or default_size()
        while len(self._children) > self.size and self._idle:
            self._retire(self._idle.pop())
        self._dispatch()

    def _retire(self, child):
        """An idle process is no longer needed: its stdin ends, so it exits."""
        child.gone = True
        self._children.discard(child)
        child.transport.closeStdin()

    def run(self, function, *args):
        """``function(*args)`` in one of the pool's processes (``function`` is one of the module's FUNCTIONS;
        its arguments and result travel as JSON); a Deferred of its result, or of a JobFailed."""
        if self.reactor is None:
            from twisted.internet import reactor

            self.reactor = reactor
        if self.clock is None:
            self.clock = self.reactor
        if self._stopped:
            return defer.fail(JobFailed("Stopped: the pool stopped"))
        if self._trigger is None:
            self._trigger = self.reactor.addSystemEventTrigger("during", "shutdown", self.stop)
        d = defer.Deferred()
        self._queue.append((next(self._ids), function.__name__, args, d, 0))
        self._dispatch()
        return d

    def _dispatch(self):
        while self._queue:
            if self._idle:
                child = self._idle.pop()
            elif len(self._children) < self.size:
                try:
                    child = self._spawn()
                except OSError as e:
                    self._failed(self._queue.popleft(), f"ProcessLost: cannot start a {self.name} process: {e}")
                    continue
            else:
                return
            if not child.send(self._queue.popleft()):
                self._idle.append(child)

    def _spawn(self):
        """A new process: Python in isolated mode (no PYTHON* variables, no user site, not the working
        directory on its path) with this package's directory after the rest of its path, and an environment
        of PATH only (the master's secrets stay in the master).

        Started by posix_spawn, never fork(): the master has threads (the database's, gpg's, the reactor's
        pool), and a forked child of a threaded process runs Python code until its exec with every other
        thread's locks frozen as they were (Python 3.12 and later warn: "This process is multi-threaded, use
        of fork() may lead to deadlocks in the child").  Twisted spawns only when it has no directory to
        change to (``path`` unset), so the process changes to this package's directory itself, first thing."""
        child = _Child(self)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        code = (f"import os, sys; os.chdir({package_root!r}); sys.path.append({package_root!r});"
                f" import {self.module} as m; m.main(sys.argv[1:])")
        self.reactor.spawnProcess(child, sys.executable,
                                  [sys.executable, "-I", "-c", code, str(self.niceness), str(os.getpid())],
                                  env={"PATH": os.environ.get("PATH", os.defpath)},
                                  childFDs={0: "w", 1: "r", 2: "r"})
        self._children.add(child)
        return child

    def _idle_again(self, child):
        if child.gone:
            return
        if len(self._children) > self.size:
            self._retire(child)
        else:
            self._idle.append(child)
        self._dispatch()

    def _lost(self, child, retry):
        """``child`` is of no more use: its job (if any) runs again once, on another process, or fails."""
        if child.gone:
            return
        child.gone = True
        self._children.discard(child)
        if child in self._idle:
            self._idle.remove(child)
        if child.timer is not None:
            child.timer.cancel()
            child.timer = None
        job, child.job = child.job, None
        if job is not None:
            ident, name, args, d, attempts = job
            if retry and attempts == 0:
                self._queue.appendleft((ident, name, args, d, 1))
            else:
                self._failed(job, f"ProcessLost: the {self.name} process ended during the job")
        self._dispatch()

    def _failed(self, job, why):
        log.error("a {pool} job ({function}) failed: {why}", pool=self.name, function=job[1], why=why)
        job[3].errback(JobFailed(why))

    def stop(self):
        """Close every process's stdin (they exit); kill those still running after STOP_TIMEOUT.  Waiting and
        running jobs fail (JobFailed), and so does every job asked for later.  A Deferred that fires when all
        are gone."""
        self._stopped = True
        queue, self._queue = self._queue, collections.deque()
        running = [c.job for c in self._children if c.job is not None]
        for child in self._children:
            child.job = None  # failed here, quietly: stopping is no failure of theirs
        for _, _, _, d, _ in [*queue, *running]:
            d.errback(JobFailed("Stopped: the pool stopped"))
        children = list(self._children)
        ended = [c.ended for c in children]
        for child in children:
            self._lost(child, retry=False)
            try:
                child.transport.closeStdin()
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._idle = []
        if not ended:
            return defer.succeed(None)
        finished = defer.Deferred()

        def done(_=None):
            if not finished.called:
                finished.callback(None)

        def kill():
            for child in children:
                child._kill()
            # Their exit is awaited no longer than this: a reactor that does not reap children (no SIGCHLD
            # handler) never reports it.
            self.reactor.callLater(1.0, done)

        timer = self.reactor.callLater(STOP_TIMEOUT, kill)
        defer.DeferredList(ended).addCallback(lambda _: timer.cancel() if timer.active() else None).addCallback(done)
        return finished


#: bcrypt: hashing new passwords and checking logins; separate processes at the lowest priority (logins are
#: the crowd).
HASHING = ProcessPool("hashing", "papertrader.passwords", niceness=19)
#: gpg: importing worker keys, checking and making handshake signatures; at nice +10 (rare, and a worker's
#: handshake has a deadline: ``handshake_timeout``).
GPG = WorkPool("gpg", 2)
