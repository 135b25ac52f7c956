"""Group commit: the units of work that arrive together share one transaction (one commit, one fsync).

``GroupCommit.run(unit, locks)`` queues ``unit(cursor)``.  A unit that finds no transaction running
starts one at once (a lone order waits for nothing); units that arrive while one is committing wait
and go together in the next.  Each unit runs inside its own savepoint: a unit that raises (a refused order)
is rolled back alone and its Deferred fails with its error; the others commit.  Every Deferred fires
only after the transaction committed, so an acknowledged order is on disk before anyone hears of it.

Deadlocks: before any unit runs, the batch locks every row named by its units' ``locks`` (account ids)
in ascending order, the order the market step locks them in, so two transactions never wait on each
other.  On PostgreSQL several batches may commit at once (``lanes``, at most the pool's size); an
account always goes to the same lane, so two lanes never touch the same account.  SQLite has one
writer: one lane.

If the whole transaction fails (the database is down, a deadlock detector fired), every unit of the
batch fails with that error; nothing of it was committed, and nothing was acknowledged.
"""

from twisted.internet import defer
from twisted.python import failure
from twisted.logger import Logger

#: Largest number of units in one transaction (a bound on its time and on what one failure undoes).
MAX_BATCH = 256


class GroupCommit:
    def __init__(self, db, lock, lanes=None, max_batch=MAX_BATCH, log=None):
        """``lock(cursor, ids)`` locks the rows of these ids (sorted) until the transaction ends."""
        self.db = db
        self.lock = lock
        self.max_batch = max_batch
        self.log = log or Logger()
        if lanes is None:
            lanes = 1 if db.dialect == "sqlite" else 4
        self.lanes = [_Lane() for _ in range(max(1, lanes))]
        #: Transactions committed and units in them (for the console and benchmarks).
        self.transactions = 0
        self.units = 0

    def run(self, unit, locks=()):
        """Run ``unit(cursor)`` in the next group transaction; fires with its result after the commit."""
        d = defer.Deferred()
        locks = tuple(locks)
        lane = self.lanes[(locks[0] if locks else 0) % len(self.lanes)]
        lane.queue.append((unit, locks, d))
        if not lane.busy:
            self._flush(lane)
        return d

    def _flush(self, lane):
        batch, lane.queue = lane.queue[:self.max_batch], lane.queue[self.max_batch:]
        lane.busy = True
        done = self.db.run(self._transaction, [(unit, locks) for unit, locks, _ in batch])
        done.addBoth(self._finished, lane, batch)

    def _transaction(self, cursor, units):
        if self.db.dialect == "sqlite":
            # Take the write lock now; and without an explicit BEGIN, SQLite would treat the first
            # SAVEPOINT as the transaction itself and commit it at its RELEASE.
            cursor.execute("BEGIN IMMEDIATE")
        ids = sorted({i for _, locks in units for i in locks})
        if ids:
            self.lock(cursor, ids)
        results = []
        for unit, _ in units:
            cursor.execute("SAVEPOINT unit")
            try:
                value = unit(cursor)
            except Exception:
                results.append((False, failure.Failure()))
                cursor.execute("ROLLBACK TO SAVEPOINT unit")
            else:
                results.append((True, value))
            cursor.execute("RELEASE SAVEPOINT unit")
        return results

    def _finished(self, outcome, lane, batch):
        lane.busy = False
        if lane.queue:
            self._flush(lane)
        if isinstance(outcome, failure.Failure):
            for _, _, d in batch:
                d.errback(outcome)
            return None
        self.transactions += 1
        self.units += len(batch)
        for (ok, value), (_, _, d) in zip(outcome, batch):
            if ok:
                d.callback(value)
            else:
                d.errback(value)
        return None


class _Lane:
    def __init__(self):
        self.queue = []
        self.busy = False
