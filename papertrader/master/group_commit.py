"""Group commit: the units of work that arrive together share one transaction (one commit, one fsync).

``GroupCommit.run(unit, locks)`` queues ``unit(cursor)``.  A unit that finds no transaction running
starts one at once (a lone order waits for nothing); units that arrive while one is committing wait
and go together in the next.  Each unit runs inside its own savepoint: a unit that raises (a refused order)
is rolled back alone and its Deferred fails with its error; the others commit.  Every Deferred fires
only after the transaction committed, so an acknowledged order is on disk before anyone hears of it.

Reading ahead: what the units read first (an order: its portfolio's book and open orders; for an order placed,
whether its client order id is taken and the time of its portfolio's latest order) is read for the whole batch
in one query per table, after the locks and before the first unit; a unit gets its portfolio's part unless a
unit before it in the same transaction touched that portfolio, in which case it reads for itself.  On
PostgreSQL this turns several round trips per order into a few per transaction.  (The open orders come from
memory where they are known: master/open_orders.py; a unit rolled back to its savepoint is reported to
``rolled_back``, so what it handed over for after the commit is withdrawn.)

Deadlocks: before any unit runs, the batch locks every row named by its units' ``locks`` (account ids)
in ascending order, the order the market step locks them in, so two transactions never wait on each
other.  On PostgreSQL several batches may commit at once (``lanes``, at most the pool's size); an
account always goes to the same lane, so two lanes never touch the same account.  SQLite has one
writer: one lane.

If the whole transaction fails (the database is down, a deadlock detector fired), every unit of the
batch fails with that error; nothing of it was committed, and nothing was acknowledged.  If only the answer
to its COMMIT was lost (PostgreSQL: the connection dropped just then), the database is asked whether it was
done (``Database.verify_commit``): done, every unit answers as if nothing had happened; not known (the
database is still away), every unit fails with ``outcome_unknown`` ("it may have been done").

``settled()`` fires once every unit queued so far has ended (committed or failed): the market step waits for
it, so an order accepted before the step's bars (its time and checks taken then) is in the step, even if
its transaction waited behind another.
"""

from twisted.internet import defer
from twisted.python import failure
from twisted.logger import Logger

#: Largest number of units in one transaction (a bound on its time and on what one failure undoes).
MAX_BATCH = 256


class GroupCommit:
    def __init__(self, db, lock, lanes=None, max_batch=MAX_BATCH, log=None, rolled_back=None):
        """``lock(cursor, ids)`` locks the rows of these ids (sorted) until the transaction ends;
        ``rolled_back(ids)`` is told the ``locks`` of a unit that failed, once its savepoint is rolled back
        (whatever it handed over for after the commit must be withdrawn)."""
        self.db = db
        self.lock = lock
        self.rolled_back = rolled_back
        self.max_batch = max_batch
        self.log = log or Logger()
        if lanes is None:
            lanes = 1 if db.dialect == "sqlite" else 4
        self.lanes = [_Lane() for _ in range(max(1, lanes))]
        #: Transactions committed and units in them (for the console and benchmarks).
        self.transactions = 0
        self.units = 0

    def run(self, unit, locks=(), read_ahead=None, asking=None):
        """Run ``unit(cursor)`` in the next group transaction; fires with its result after the commit.

        ``read_ahead(cursor, ids, asked)``: what the units of a transaction that name it read first, for all of them
        at once (a dict by id: ``locks[0]`` of each; ``asked``: {id: the set of the ``asking`` values, hashable,
        that its units gave}); such a unit is called ``unit(cursor, ahead)`` with its value, or with None if a unit
        before it in the transaction touched the same id (what was read ahead may no longer be true: the unit
        reads for itself)."""
        d = defer.Deferred()
        locks = tuple(locks)
        lane = self.lanes[(locks[0] if locks else 0) % len(self.lanes)]
        lane.queue.append((unit, locks, read_ahead, asking, d))
        lane.queued += 1
        if not lane.busy:
            self._flush(lane)
        return d

    def settled(self):
        """A Deferred that fires (with None) once every unit queued until now has ended, committed or not."""
        waiting = []
        for lane in self.lanes:
            if lane.done < lane.queued:
                d = defer.Deferred()
                lane.waiters.append((lane.queued, d))
                waiting.append(d)
        return defer.gatherResults(waiting).addCallback(lambda _: None) if waiting else defer.succeed(None)

    def _flush(self, lane):
        batch, lane.queue = lane.queue[:self.max_batch], lane.queue[self.max_batch:]
        lane.busy = True
        done = self.db.run(self._transaction, [unit[:4] for unit in batch])  # (without their Deferreds)
        done.addBoth(self._finished, lane, batch)

    def _transaction(self, cursor, units):
        if self.db.dialect == "sqlite":
            # Take the write lock now; and without an explicit BEGIN, SQLite would treat the first
            # SAVEPOINT as the transaction itself and commit it at its RELEASE.
            cursor.execute("BEGIN IMMEDIATE")
        ids = sorted({i for _, locks, _, _ in units for i in locks})
        if ids:
            self.lock(cursor, ids)
        # Read ahead (after the locks, so nothing else changes these rows until the commit), once per kind.
        wanted = {}
        for _, locks, read_ahead, asking in units:
            if read_ahead is not None and locks:
                asked = wanted.setdefault(read_ahead, {}).setdefault(locks[0], set())
                if asking is not None:
                    asked.add(asking)
        read = {read_ahead: read_ahead(cursor, sorted(of), of) for read_ahead, of in wanted.items()}
        touched = set()
        results = []
        for unit, locks, read_ahead, _ in units:
            cursor.execute("SAVEPOINT unit")
            try:
                if read_ahead is None:
                    value = unit(cursor)
                else:
                    fresh = bool(locks) and not touched.intersection(locks)
                    value = unit(cursor, read[read_ahead].get(locks[0]) if fresh else None)
            except Exception:
                results.append((False, failure.Failure()))
                cursor.execute("ROLLBACK TO SAVEPOINT unit")
                if self.rolled_back is not None:
                    self.rolled_back(locks)
            else:
                results.append((True, value))
            cursor.execute("RELEASE SAVEPOINT unit")
            touched.update(locks)
        self.db.verify_commit(cursor)  # acknowledged orders: a COMMIT whose answer is lost is looked up
        return results

    def _finished(self, outcome, lane, batch):
        lane.busy = False
        lane.done += len(batch)
        if lane.queue:
            self._flush(lane)
        if isinstance(outcome, failure.Failure):
            for *_, d in batch:
                d.errback(outcome)
        else:
            self.transactions += 1
            self.units += len(batch)
            for (ok, value), (*_, d) in zip(outcome, batch):
                if ok:
                    d.callback(value)
                else:
                    d.errback(value)
        ready = [d for target, d in lane.waiters if target <= lane.done]
        lane.waiters = [(target, d) for target, d in lane.waiters if target > lane.done]
        for d in ready:
            d.callback(None)
        return None


class _Lane:
    def __init__(self):
        self.queue = []
        self.busy = False
        #: Units queued and ended so far (``settled`` waits for the ones queued before it was asked).
        self.queued = 0
        self.done = 0
        self.waiters = []
