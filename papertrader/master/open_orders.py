"""Each portfolio's open orders, kept in memory between transactions.

Every order placed or replaced is checked against its portfolio's open orders (buying power, the most
open orders one may have, a game's rules): a portfolio with hundreds of open GTC orders would otherwise
be read and parsed from the database on every order; and every market step trades every open order (with
10,000 of them, an update took 0.35 s reading them from the database, 0.08 s from memory).  The master is its database's only writer, so it
can keep them, on these terms:

- what is kept of a portfolio was read, or written, while its row was locked (every writer of orders
  locks the portfolios it writes: see order_store.py; SQLite has a single writer);
- every write of a portfolio's orders or fills (``OrderStore.insert``/``save``) calls ``changed`` before
  it is made, which makes what is kept of that portfolio stale (``stamp``);
- a unit of work that knows the portfolio's open orders after its writes (an order placed or replaced)
  hands them over (``OrderStore.open_after_commit``); they are stamped just before the commit, the locks
  still held, and kept only once the transaction has committed and if nothing changed the portfolio
  since; a later write of the same portfolio in the same transaction withdraws them.

So what is served is what the database holds (tests/test_open_orders_memory.py compares the two after
every kind of write, on both databases).  At most ``MAX_ORDERS`` orders are kept, over all portfolios (one
with none counts as one), and the last change of at most ``MAX_CHANGES`` portfolios.
"""

import itertools
import threading


class OpenOrders:
    #: Orders kept at most, over all portfolios (those kept longest ago go first): some tens of MB.
    MAX_ORDERS = 20_000

    #: Portfolios whose last change is remembered at most; beyond, every change is forgotten at once and a new
    #: epoch begins (what is kept, and every stamp taken, is then stale).
    MAX_CHANGES = 200_000

    def __init__(self, max_orders=MAX_ORDERS, max_changes=MAX_CHANGES):
        self.max_orders = max_orders
        self.max_changes = max_changes
        self._counter = itertools.count(1)  # next() is atomic: changes in two pool threads both count
        self._epoch = 0
        self._changes = {}  # portfolio id -> the number of its last change
        self._kept = {}  # portfolio id -> (stamp, tuple of its open orders)
        self._size = 0
        self._lock = threading.Lock()
        #: Answers from memory and from the database (for the console and benchmarks).
        self.hits = 0
        self.misses = 0

    def stamp(self, portfolio_id):
        """What is true of the portfolio's open orders now (its last change), to compare with later."""
        return self._epoch, self._changes.get(portfolio_id, 0)

    def changed(self, portfolio_ids):
        """These portfolios' orders are being written: what is kept of them is stale."""
        for portfolio_id in portfolio_ids:
            self._changes[portfolio_id] = next(self._counter)
        if len(self._changes) > self.max_changes:
            with self._lock:
                self._epoch = next(self._counter)  # first: no stamp of the old epoch matches from here on
                self._changes = {}
                self._kept = {}
                self._size = 0

    def get(self, portfolio_id):
        """The portfolio's open orders (a new list, in id order), or None if they are not known."""
        found = self._kept.get(portfolio_id)
        if found is not None and found[0] == self.stamp(portfolio_id):
            self.hits += 1
            return list(found[1])
        self.misses += 1
        return None

    def keep(self, portfolio_id, stamp, orders):
        """Keep ``orders`` as the portfolio's open orders, if nothing changed it since ``stamp`` was taken."""
        orders = tuple(orders)
        with self._lock:
            if stamp != self.stamp(portfolio_id):
                return
            old = self._kept.pop(portfolio_id, None)
            if old is not None:
                self._size -= _weight(old[1])
            if len(orders) > self.max_orders:
                return
            self._kept[portfolio_id] = (stamp, orders)
            self._size += _weight(orders)
            while self._size > self.max_orders:
                _, (_, dropped) = _oldest(self._kept)
                self._size -= _weight(dropped)

    @property
    def size(self):
        """Orders kept now (a portfolio kept with none counts as one)."""
        return self._size


def _weight(orders):
    return max(1, len(orders))


def _oldest(kept):
    portfolio_id = next(iter(kept))
    return portfolio_id, kept.pop(portfolio_id)

