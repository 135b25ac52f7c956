"""Bounded thread pools for CPU-heavy work that must not crowd out the rest.

Password hashing (bcrypt) and GPG (worker keys, handshake signatures) each run in a pool of their
own, of a fixed size, instead of the reactor's shared thread pool: however many people log in at
once, at most ``size`` hashes run at a time, so the database threads and the reactor keep CPU time
for acknowledging orders.  A job waits in the pool's queue for a free thread.

Their threads also run at a lower CPU priority (on Linux, where a thread has its own; the hashing
pool at the lowest, nice 19, the gpg pool at +10): when the CPU is short, the scheduler serves
acknowledging orders (the reactor, the database threads, and PostgreSQL's own processes on the same
machine) first and a login waits a little longer; it still gets its share, so logins never stop.
(``bench/bench_logins.py`` on 2 cores: 20 logins cost order acknowledgements nothing on SQLite, but +61% to
+91% at p99 on PostgreSQL whatever the thread's priority, while the same hashing in a separate nice-19
process costs nothing: a low-priority thread descheduled while it holds the GIL stalls the others.  A
process pool is the next step.)

The pools are per process, started on first use and stopped when the reactor shuts down.
"""

import os
import threading

from twisted.internet import threads
from twisted.python.threadpool import ThreadPool


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


#: bcrypt: hashing new passwords and checking logins; at the lowest priority (logins are the crowd).
HASHING = WorkPool("hashing", niceness=19)
#: gpg: importing worker keys, checking and making handshake signatures; at nice +10 (rare, and a worker's
#: handshake has a deadline: ``handshake_timeout``).
GPG = WorkPool("gpg", 2)
