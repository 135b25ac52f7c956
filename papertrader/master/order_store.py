"""The order store: orders, books, fills and order events in the database, as the trading core's values.

Every function takes a database cursor and runs inside the caller's
transaction (``Database.run``), so the application writes an accepted order
and its event, or a whole market step (orders, cash, positions, fills,
events, the step's market time) in one commit: after any crash either all of
it is there or none of it.

What an order has filled (quantity, exact value, commission) is not stored on
the order: it is the sum of its fills in ``transactions``.

Locks: the account rows an operation reads are locked first (PostgreSQL:
``SELECT ... FOR UPDATE``, in account id order; SQLite has one writer), so a
market step, a cancel and two concurrent orders of one account never
interleave.  Every writer of a portfolio's orders holds its lock: each
portfolio's open orders are kept in memory on that condition
(master/open_orders.py; ``open_orders_kept``).
"""

import uuid
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from papertrader.money import (
    quantity_text,
    shares_text,
    round_price,
    from_cents,
    from_price_units,
    from_quantity_units,
    to_cents,
    to_price_units,
    to_quantity_units,
)
from papertrader.master.open_orders import OpenOrders
from papertrader.times import iso, parse_iso
from papertrader.trading import configuration
from papertrader.trading.books import Book, Position
from papertrader.trading.corporate import Entitlement
from papertrader.trading.orders import (LIVE, OPEN, Leg, Order, OrderClass, OrderType, Side, Status, TimeInForce,
                                        by_value)

COLUMNS = (
    "id, uuid, portfolio_id, client_order_id, side, symbol, type, time_in_force, quantity_units, notional_cents,"
    " limit_units, stop_units, trail_units, trail_percent_bp, status, created, updated, expires, session_open,"
    " session_close, watermark_units, triggered, replaces, replaced_by, reason_code, reason, filled_adjustment_units,"
    " (SELECT r.uuid FROM orders r WHERE r.id = o.replaces), (SELECT r.uuid FROM orders r WHERE r.id = o.replaced_by),"
    " o.order_class, o.leg, o.parent_id, (SELECT r.uuid FROM orders r WHERE r.id = o.parent_id), o.opens,"
    " o.submitted"
)
#: The time an order shows it was submitted (Order.submitted): what after and until select by.
SHOWN_CREATED = "COALESCE(o.submitted, o.created)"
#: Orders placed at one market time are shown a microsecond apart: at most this far from it (then they share it).
MOST_APART = timedelta(seconds=1)
MICROSECOND = timedelta(microseconds=1)
#: An order of its portfolio's current generation (made since the portfolio's last reset).
CURRENT = "o.generation = (SELECT p.generation FROM portfolios p WHERE p.id = o.portfolio_id)"
OPEN_STATUSES = tuple(sorted(s.value for s in OPEN))
#: The orders a portfolio's "open orders" are read from: the open ones and the held exits of bracket and OTO
#: orders (trading/orders.py LIVE), spelt out as the partial index orders_open has them (migration 0015).
LIVE_STATUSES = tuple(sorted(s.value for s in LIVE))
LIVE_LITERAL = "(" + ", ".join(f"'{s}'" for s in LIVE_STATUSES) + ")"
HUNDRED = Decimal(100)
#: How many parsed orders the store remembers (a few MB at most).
PARSED_ORDERS = 4096


def _maybe(convert, value):
    return convert(value) if value is not None else None


def _time(text):
    return parse_iso(text) if text else None


def _percent_bp(value):
    return int(value * HUNDRED) if value is not None else None


def _details(record):
    if record.kind == "split":
        new, old = record.ratio
        if record.undone:
            return (f"{old.normalize():f}-for-{new.normalize():f} split undone (market time moved back to before"
                    f" it): {quantity_text(record.before)} -> {shares_text(record.quantity)}")
        return (f"{new.normalize():f}-for-{old.normalize():f} split: {quantity_text(record.before)} ->"
                f" {shares_text(record.quantity)}")
    return f"{record.per_share.normalize():f} per share on {shares_text(record.quantity)}"


def _in(values):
    return "(" + ", ".join("?" for _ in values) + ")"


class Placing:
    """What ``OrderStore.placing`` read of a portfolio for the orders about to be placed in it: the client order
    ids it was ``asked`` about and those of them ``taken`` (by an order of the portfolio's current generation), and
    the time its latest order shows (``latest``; None: it has none) and the market's time when it was made or
    last reset (``began``; None: not known)."""

    __slots__ = ("asked", "taken", "latest", "began")

    def __init__(self, asked, taken, latest, began=None):
        self.asked = asked
        self.taken = taken
        self.latest = latest
        self.began = began


class Filled:
    """What an order's fills add up to (exact)."""

    __slots__ = ("quantity", "value", "commission")

    def __init__(self):
        self.quantity = Decimal("0.000000")
        self.value = Decimal(0)
        self.commission = Decimal("0.00")


#: What an order without fills has filled (``_parse`` reads it, never changes it), and the shares splits added to
#: it (none): as they are made for every order read.
_NOTHING_FILLED = Filled()
_NO_ADJUSTMENT = from_quantity_units(0)


class OrderStore:
    def __init__(self, db, margin_rules=None):
        self.db = db
        self.sql = db.sql
        #: The MarginRules a margin portfolio's book is loaded with (the deployment's terms; the setting
        #: ``margin_accounts`` decides only whether new margin portfolios may be made).
        self.margin_rules = margin_rules
        #: Orders already made from these exact rows (an order with no fills; Orders are immutable): every
        #: order reads its account's open orders, and most of them have not changed since the last one.
        self._parsed = {}
        #: Configurations by their stored text (``_configuration``).
        self._configurations = {}
        #: Each portfolio's open orders, kept between transactions (master/open_orders.py).
        self.open_memory = db.shared(OpenOrders)

    # --- reading -----------------------------------------------------------------

    def _order(self, row, filled=None):
        if filled is not None:
            return self._parse(row, filled)
        row = tuple(row)
        try:
            order = self._parsed.get(row)
        except TypeError:  # a value that cannot be a key: parse it every time
            return self._parse(row, None)
        if order is None:
            order = self._parsed[row] = self._parse(row, None)
            if len(self._parsed) > PARSED_ORDERS:
                try:
                    del self._parsed[next(iter(self._parsed))]
                except (KeyError, RuntimeError, StopIteration):  # another database thread got there first
                    pass
        return order

    def _parse(self, row, filled):
        filled = filled or _NOTHING_FILLED
        adjustment = from_quantity_units(row[26]) if row[26] else _NO_ADJUSTMENT
        return Order(
            id=row[0], uuid=row[1], account_id=row[2], client_order_id=row[3], side=by_value(Side, row[4]),
            symbol=row[5], type=by_value(OrderType, row[6]), time_in_force=by_value(TimeInForce, row[7]),
            quantity=from_quantity_units(row[8]) if row[8] is not None else None,
            notional=from_cents(row[9]) if row[9] is not None else None,
            limit_price=from_price_units(row[10]) if row[10] is not None else None,
            stop_price=from_price_units(row[11]) if row[11] is not None else None,
            trail_price=from_price_units(row[12]) if row[12] is not None else None,
            trail_percent=(Decimal(row[13]) / HUNDRED).quantize(Decimal("0.01")) if row[13] is not None else None,
            status=by_value(Status, row[14]), created=parse_iso(row[15]), updated=parse_iso(row[16]),
            expires=_time(row[17]), session_open=_time(row[18]), session_close=_time(row[19]),
            watermark=from_price_units(row[20]) if row[20] is not None else None, triggered=bool(row[21]),
            replaces=row[22], replaced_by=row[23], reason_code=row[24], reason=row[25],
            filled_quantity=filled.quantity + adjustment, filled_adjustment=adjustment, filled_value=filled.value,
            commission=filled.commission, replaces_uuid=row[27], replaced_by_uuid=row[28],
            order_class=by_value(OrderClass, row[29] or "simple"), leg=by_value(Leg, row[30]) if row[30] is not None
            else None, parent_id=row[31], parent_uuid=row[32], opens=bool(row[33]) if row[33] is not None else None,
            submitted=_time(row[34]),
        )

    def _filled(self, cursor, where, params):
        """Fill totals per order id for the orders selected by ``where`` (a condition on ``o``)."""
        cursor.execute(self.sql(
            "SELECT t.order_id, t.quantity_units, t.price_units, t.commission_cents FROM transactions t"
            f" JOIN orders o ON o.id = t.order_id WHERE t.kind = 'fill' AND {where}"), params)
        totals = defaultdict(Filled)
        for order_id, quantity, price, commission in cursor.fetchall():
            total = totals[order_id]
            q, p = from_quantity_units(quantity), from_price_units(price)
            total.quantity += q
            total.value += q * p
            total.commission += from_cents(commission)
        return totals

    def _select(self, cursor, where, params, suffix=""):
        cursor.execute(self.sql(f"SELECT {COLUMNS} FROM orders o WHERE {where} {suffix}"), params)
        rows = cursor.fetchall()
        if not rows:
            return []
        ids = [r[0] for r in rows]
        filled = {}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            filled.update(self._filled(cursor, f"o.id IN {_in(part)}", part))
        return [self._order(r, filled.get(r[0])) for r in rows]

    def open_orders(self, cursor, account_id=None):
        """Every open or held order (of one account, or of all), in id order."""
        if account_id is not None:
            return self.open_orders_of(cursor, [account_id])[account_id]
        return self._open(cursor, "", [])

    def open_orders_of(self, cursor, account_ids):
        """The open orders of each of these accounts (a dict by account id; every id has a list), in id order."""
        ids = sorted(set(account_ids))
        found = {a: [] for a in ids}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            for order in self._open(cursor, f" AND o.portfolio_id IN {_in(part)}", part):
                found[order.account_id].append(order)
        return found

    def open_orders_kept(self, cursor, account_ids, keep=True):
        """``open_orders_of``, from memory where it can: the caller holds these portfolios' locks.  What had to
        be read is kept, unless ``keep`` is false (a transaction that may have written them already)."""
        memory = self.open_memory
        found, missing = {}, []
        for account_id in sorted(set(account_ids)):
            orders = memory.get(account_id)
            if orders is None:
                missing.append(account_id)
            else:
                found[account_id] = orders
        if missing:
            stamps = {a: memory.stamp(a) for a in missing}
            read = self.open_orders_of(cursor, missing)
            for account_id, orders in read.items():
                if keep:
                    memory.keep(account_id, stamps[account_id], orders)
                found[account_id] = orders
        return found

    def open_after_commit(self, cursor, account_id, unchanged, written):
        """Once the transaction running now commits, the portfolio's open orders are ``unchanged`` (those of its
        open orders the unit of work did not write, in id order) and those of the orders ``written`` (ids of
        orders it placed: not filled) still open, as the database has them (the rows ``insert`` wrote, or read
        back): keep them then, unless something changes the portfolio before.  Called by a unit of work when it has written everything it
        will."""
        transaction = self.db.transaction()
        if transaction is None:
            return
        fresh = []
        if written:  # orders just written, none of them filled yet (a fill is a market step's)
            rows = transaction.data.get((self, "rows"), {})
            if all(i in rows for i in written):  # as insert wrote them
                fresh = [self._order(rows[i]) for i in written]
            else:
                cursor.execute(self.sql(f"SELECT {COLUMNS} FROM orders o WHERE o.id IN {_in(written)}"),
                               list(written))
                fresh = [self._order(row) for row in cursor.fetchall()]
        pending = transaction.data.get(self)
        if pending is None:
            pending = transaction.data[self] = {}
            transaction.before_commit.append(lambda: self._stamp_pending(transaction, pending))
        fresh = [o for o in fresh if o.live]
        if fresh and unchanged and min(o.id for o in fresh) < unchanged[-1].id:
            pending[account_id] = tuple(sorted([*unchanged, *fresh], key=lambda o: o.id))
        else:  # the new orders come last (the usual case: no need to read every open order again)
            pending[account_id] = (*unchanged, *sorted(fresh, key=lambda o: o.id))

    def _stamp_pending(self, transaction, pending):
        memory = self.open_memory
        stamped = [(a, memory.stamp(a), orders) for a, orders in pending.items()]

        def ended(committed):
            if committed:
                for account_id, stamp, orders in stamped:
                    memory.keep(account_id, stamp, orders)

        transaction.ended.append(ended)

    def rolled_back(self, account_ids):
        """A unit of work that may have written these portfolios was rolled back (to its savepoint): what it
        handed over for after the commit is withdrawn, and what is kept of them is not trusted."""
        self._changed(account_ids)

    def _changed(self, account_ids):
        """These portfolios' orders or fills are being written (see master/open_orders.py)."""
        self.open_memory.changed(account_ids)
        transaction = self.db.transaction()
        pending = transaction.data.get(self) if transaction is not None else None
        if pending:
            for account_id in account_ids:
                pending.pop(account_id, None)

    def _open(self, cursor, condition, params):
        # The statuses spelt out as the partial index orders_open has them (migration 0011), so both
        # databases can use it: one portfolio's open orders cost what they are, not its whole history.
        cursor.execute(self.sql(f"SELECT {COLUMNS} FROM orders o WHERE o.status IN {LIVE_LITERAL}{condition}"
                                " ORDER BY o.id"), params)
        rows = cursor.fetchall()
        filled = self._filled(cursor, f"o.status IN {LIVE_LITERAL} AND o.status = 'partially_filled'{condition}",
                              params)
        return [self._order(r, filled.get(r[0])) for r in rows]

    def get(self, cursor, account_id, order_id):
        found = self._select(cursor, "o.id = ? AND o.portfolio_id = ?", [order_id, account_id])
        return found[0] if found else None

    def by_client_order_id(self, cursor, account_id, client_order_id, placing=None):
        """The order of the portfolio's current generation (since its last reset) with this client order id.
        ``placing``: what ``placing`` read of the portfolio, if nothing wrote its orders since (its answer for an id
        it was asked about saves a query)."""
        if placing is not None and client_order_id in placing.asked and client_order_id not in placing.taken:
            return None
        found = self._select(cursor, f"o.portfolio_id = ? AND o.client_order_id = ? AND {CURRENT}",
                             [account_id, client_order_id])
        return found[0] if found else None

    def by_uuid(self, cursor, account_id, order_uuid):
        found = self._select(cursor, "o.portfolio_id = ? AND o.uuid = ?", [account_id, order_uuid])
        return found[0] if found else None

    def placing(self, cursor, asked):
        """For orders about to be placed: {portfolio id: Placing} of the portfolios ``asked`` names (a dict: portfolio
        id -> the client order ids its orders will have), in two queries for them all (instead of two per order:
        ``by_client_order_id``, ``_submitted``).  True until the portfolio's orders are written (the caller holds
        its lock): pass it to those methods only until then."""
        ids = sorted(asked)
        latest = {}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            cursor.execute(self.sql(
                f"SELECT p.id, (SELECT {SHOWN_CREATED} FROM orders o WHERE o.portfolio_id = p.id"
                f" ORDER BY o.generation DESC, o.id DESC LIMIT 1), p.began FROM portfolios p"
                f" WHERE p.id IN {_in(part)}"), part)
            latest.update((p, (shown, began)) for p, shown, began in cursor.fetchall())
        pairs = [(p, c) for p in ids for c in sorted(asked[p])]
        taken = defaultdict(set)
        for chunk in range(0, len(pairs), 250):
            part = pairs[chunk:chunk + 250]
            # One look-up of the unique index (portfolio, generation, client order id) per pair asked, in the
            # portfolio's current generation (CURRENT, as a join: a condition on o itself would not use the index).
            cursor.execute(self.sql(
                "WITH asked (portfolio_id, client_order_id) AS (VALUES " + ", ".join("(?, ?)" for _ in part) + ")"
                " SELECT o.portfolio_id, o.client_order_id FROM asked a JOIN portfolios p ON p.id = a.portfolio_id"
                " JOIN orders o ON o.portfolio_id = p.id AND o.generation = p.generation"
                " AND o.client_order_id = a.client_order_id"), [value for pair in part for value in pair])
            for portfolio_id, client_order_id in cursor.fetchall():
                taken[portfolio_id].add(client_order_id)
        return {p: Placing(frozenset(asked[p]), frozenset(taken.get(p, ())), _time(latest[p][0]),
                           _time(latest[p][1]))
                for p in ids if p in latest}

    def legs_of(self, cursor, order_ids):
        """{order id: the exits that hang from it, in id order} (bracket, OCO and OTO orders)."""
        found = {}
        for chunk in range(0, len(order_ids), 500):
            part = list(order_ids[chunk:chunk + 500])
            for order in self._select(cursor, f"o.parent_id IN {_in(part)}", part, "ORDER BY o.id"):
                found.setdefault(order.parent_id, []).append(order)
        return found

    def placed_with(self, cursor, order):
        """The exits ``order`` (a bracket's, OCO's or OTO's first part) was placed with, and those that replaced
        them, in id order: those that hang from it and, for an OCO's take-profit since replaced, from its
        successors (an OCO's live stop-loss moves to the new take-profit)."""
        ids, current = [order.id], order
        while current.leg is Leg.TAKE_PROFIT and current.replaced_by is not None:
            current = self.get(cursor, order.account_id, current.replaced_by)
            ids.append(current.id)
        found = self.legs_of(cursor, ids)
        return sorted((leg for i in ids for leg in found.get(i, ())), key=lambda leg: leg.id)

    def group_of(self, cursor, account_id, group):
        """Every part of the bracket, OCO or OTO order whose first part is ``group``, in id order."""
        return self._select(cursor, "o.portfolio_id = ? AND (o.id = ? OR o.parent_id = ?)", [account_id, group, group],
                            "ORDER BY o.id")

    def page(self, cursor, account_id, statuses=None, before=None, limit=50, after=None, until=None,
             oldest_first=False, symbols=None, side=None, after_id=None, generation=None, parents_only=False):
        """Up to ``limit`` orders, newest first (or oldest first): with an id below ``before`` (above
        ``after_id``), of the given statuses, created after ``after`` and before ``until`` (both exclusive, as Alpaca's), of ``symbols``, of
        ``side``; of the portfolio's current generation, or of ``generation`` (an archived one); ``parents_only``:
        not the exits of bracket, OCO and OTO orders (their first part is listed if one of them has one of
        ``statuses``)."""
        where, params = "o.portfolio_id = ?", [account_id]
        if parents_only:
            where += " AND o.parent_id IS NULL"
            if statuses:  # a first part is listed if it, or one of its exits, has one of these statuses
                where += (f" AND (o.status IN {_in(statuses)} OR EXISTS (SELECT 1 FROM orders l WHERE l.parent_id"
                          f" = o.id AND l.status IN {_in(statuses)}))")
                params += list(statuses) * 2
                statuses = None
        if generation is None:
            where += f" AND {CURRENT}"
        else:
            where += " AND o.generation = ?"
            params.append(generation)
        if statuses:
            where += f" AND o.status IN {_in(statuses)}"
            params += list(statuses)
        if before is not None:
            where += " AND o.id < ?"
            params.append(before)
        if after_id is not None:
            where += " AND o.id > ?"
            params.append(after_id)
        if after is not None:
            where += f" AND {SHOWN_CREATED} > ?"
            params.append(iso(after))
        if until is not None:
            where += f" AND {SHOWN_CREATED} < ?"  # exclusive, as Alpaca's
            params.append(iso(until))
        if symbols:
            where += f" AND o.symbol IN {_in(symbols)}"
            params += list(symbols)
        if side is not None:
            where += " AND o.side = ?"
            params.append(side)
        order = "ASC" if oldest_first else "DESC"
        return self._select(cursor, where, params + [limit], f"ORDER BY o.id {order} LIMIT ?")

    def fills(self, cursor, order_id):
        cursor.execute(self.sql(
            "SELECT time, quantity_units, price_units, commission_cents, amount_cents, model FROM transactions"
            " WHERE order_id = ? AND kind = 'fill' ORDER BY id"), (order_id,))
        return [dict(time=parse_iso(r[0]), quantity=from_quantity_units(r[1]), price=from_price_units(r[2]),
                     commission=from_cents(r[3]), amount=from_cents(r[4]), model=r[5] or "")
                for r in cursor.fetchall()]

    def stamp(self, cursor, order_id):
        """When, from where and through which worker the order arrived."""
        cursor.execute(self.sql("SELECT received, client_ip, worker FROM orders WHERE id = ?"), (order_id,))
        row = cursor.fetchone()
        return dict(received=parse_iso(row[0]), client_ip=row[1], worker=row[2]) if row else {}

    # --- books -------------------------------------------------------------------

    def lock_accounts(self, cursor, account_ids):
        """Lock these accounts' rows until the transaction ends (PostgreSQL; SQLite has one writer), in ascending
        id order (every transaction locks in that order, so none waits on another in a circle)."""
        ids = sorted(set(account_ids))
        if self.db.dialect == "postgresql":
            for chunk in range(0, len(ids), 1000):
                part = ids[chunk:chunk + 1000]
                cursor.execute(self.sql(f"SELECT id FROM portfolios WHERE id IN {_in(part)} ORDER BY id FOR UPDATE"),
                               part)
                cursor.fetchall()

    def open_portfolio_ids(self, cursor):
        """The accounts that have an open (or held) order."""
        cursor.execute(self.sql(f"SELECT DISTINCT portfolio_id FROM orders WHERE status IN {LIVE_LITERAL}"))
        return {r[0] for r in cursor.fetchall()}

    def books(self, cursor, account_ids):
        ids = sorted(set(account_ids))
        if not ids:
            return {}
        cash, kinds, configurations = {}, {}, {}
        positions = defaultdict(dict)
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            cursor.execute(self.sql(f"SELECT id, cash_cents, kind, configuration FROM portfolios WHERE id IN"
                                    f" {_in(part)}"), part)
            for a, c, kind, configured in cursor.fetchall():
                cash[a] = from_cents(c)
                kinds[a] = kind
                if configured:
                    configurations[a] = self._configuration(configured)
            cursor.execute(self.sql("SELECT portfolio_id, symbol, quantity_units, cost_cents, entry_price_units"
                                    f" FROM positions WHERE portfolio_id IN {_in(part)}"), part)
            for account_id, symbol, quantity, cost, entry in cursor.fetchall():
                positions[account_id][symbol] = Position(symbol, from_quantity_units(quantity), from_cents(cost),
                                                         from_price_units(entry) if entry is not None else None)
        return {a: Book(a, cash[a], positions.get(a, {}), self._margin(kinds[a]), configurations.get(a))
                for a in ids if a in cash}

    def _configuration(self, text):
        """A portfolio's stored configuration, parsed once per distinct text (a market step reads every book)."""
        found = self._configurations.get(text)
        if found is None:
            if len(self._configurations) >= 1000:
                self._configurations.clear()
            found = self._configurations[text] = configuration.from_stored(text)
        return found

    def _margin(self, kind):
        return self.margin_rules if kind == "margin" else None

    def book(self, cursor, account_id):
        return self.books(cursor, [account_id])[account_id]

    def generations(self, cursor, portfolio_ids):
        """Each portfolio's current generation (how many times it was reset)."""
        ids = sorted(portfolio_ids)
        found = {}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            cursor.execute(self.sql(f"SELECT id, generation FROM portfolios WHERE id IN {_in(part)}"), part)
            found.update(cursor.fetchall())
        return found

    # --- writing -----------------------------------------------------------------

    def insert(self, cursor, order, received, client_ip, worker, origin=None, parent=None, placing=None):
        """Store a new order (and link it from the order it replaces); returns it with its id and uuid.
        ``parent``: the order (stored) an exit of a bracket, OCO or OTO order hangs from.
        ``origin``: None (the user) or 'liquidation' (placed by the platform to meet a margin call).
        ``placing``: what ``placing`` read of the portfolio, if nothing wrote its orders since."""
        order_uuid = str(uuid.uuid4())
        if parent is not None:
            order = order.but(parent_id=parent.id, parent_uuid=parent.uuid)
        self._changed([order.account_id])
        order = order.but(submitted=self._submitted(cursor, order, placing))
        # The columns as COLUMNS reads them, from client_order_id to replaces.
        values = (order.client_order_id, order.side.value, order.symbol, order.type.value,
                  order.time_in_force.value, _maybe(to_quantity_units, order.quantity), _maybe(to_cents, order.notional),
                  _maybe(to_price_units, order.limit_price), _maybe(to_price_units, order.stop_price),
                  _maybe(to_price_units, order.trail_price), _percent_bp(order.trail_percent), order.status.value,
                  iso(order.created), iso(order.updated or order.created), _maybe(iso, order.expires),
                  _maybe(iso, order.session_open), _maybe(iso, order.session_close),
                  _maybe(to_price_units, order.watermark), int(order.triggered), order.replaces)
        cursor.execute(self.sql(
            "INSERT INTO orders (uuid, portfolio_id, generation, client_order_id, side, symbol, type, time_in_force,"
            " quantity_units, notional_cents, limit_units, stop_units, trail_units, trail_percent_bp, status, created,"
            " updated, expires, session_open, session_close, watermark_units, triggered, replaces, received,"
            " client_ip, worker, origin, order_class, leg, parent_id, opens, submitted) VALUES (?, ?, (SELECT"
            " generation FROM portfolios WHERE id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
            (order_uuid, order.account_id, order.account_id, *values, iso(received), client_ip[:64], worker[:64],
             origin, order.order_class.value, _maybe(lambda leg: leg.value, order.leg), order.parent_id,
             _maybe(int, order.opens), iso(order.submitted)))
        order = order.but(id=cursor.fetchone()[0], uuid=order_uuid)
        if order.replaces is not None:
            cursor.execute(self.sql("SELECT uuid FROM orders WHERE id = ?"), (order.replaces,))
            order = order.but(replaces_uuid=cursor.fetchone()[0])
        if order.replaces is not None:
            cursor.execute(self.sql("UPDATE orders SET replaced_by = ? WHERE id = ?"), (order.id, order.replaces))
            self._rewritten([order.replaces])
        transaction = self.db.transaction()
        if transaction is not None:  # the row as a SELECT of COLUMNS would read it now (open_after_commit)
            transaction.data.setdefault((self, "rows"), {})[order.id] = (
                order.id, order_uuid, order.account_id, *values, None, None, None, 0, order.replaces_uuid, None,
                order.order_class.value, _maybe(lambda leg: leg.value, order.leg), order.parent_id, order.parent_uuid,
                _maybe(int, order.opens), iso(order.submitted))
        return order

    def _submitted(self, cursor, order, placing=None):
        """The time a new order shows it was submitted (Order.submitted): its created time, unless the
        portfolio's latest order shows that time or one less than a second after it (placed at the same market
        time: a replay's stands still between updates), then a microsecond after that one's.  The portfolio's
        making (or last reset: ``began``, the account's created_at) counts as such an order: one placed at the
        market time it was made shows a microsecond after it, so orders listed ``after`` the account's
        created_at are all its orders.  (A replay moved back places orders before the latest's by more than
        that: they show their own time.)  The latest order's time is ``placing``'s, if it is given."""
        if placing is not None:
            latest, began = placing.latest, placing.began
        else:
            cursor.execute(self.sql(f"SELECT (SELECT {SHOWN_CREATED} FROM orders o WHERE o.portfolio_id = p.id"
                                    " ORDER BY o.generation DESC, o.id DESC LIMIT 1), p.began FROM portfolios p"
                                    " WHERE p.id = ?"), (order.account_id,))
            row = cursor.fetchone()
            latest, began = (_time(row[0]), _time(row[1])) if row else (None, None)
        near = [t for t in (latest, began) if t is not None and order.created <= t < order.created + MOST_APART]
        if near:
            return max(near) + MICROSECOND
        return order.created

    def _rewritten(self, order_ids):
        """These orders' rows change after insert wrote them: what it remembered of them is no longer true."""
        transaction = self.db.transaction()
        rows = transaction.data.get((self, "rows")) if transaction is not None else None
        if rows:
            for order_id in order_ids:
                rows.pop(order_id, None)

    def save(self, cursor, orders, books, events, recorded, records=()):
        """Write a step's (or a cancel's, a replace's, an acceptance's) outcome: changed orders, books,
        fills, events, and what corporate actions did (``records``)."""
        sql = self.sql
        if not orders and not records and not any(e.fill is not None for e in events):
            # events alone (an order accepted): what follows would find nothing to do
            self._changed({e.order.account_id for e in events})
            self._write_events(cursor, events, recorded, iter(()))
            return
        changed = {o.account_id for o in orders} | {e.order.account_id for e in events} | \
            {e.fill.account_id for e in events if e.fill is not None} | {r.account_id for r in records}
        if changed:
            self._changed(changed)
        if orders:
            self._rewritten([o.id for o in orders])
            cursor.executemany(sql(
                "UPDATE orders SET status = ?, quantity_units = ?, updated = ?, watermark_units = ?, triggered = ?,"
                " reason_code = ?, reason = ?, limit_units = ?, stop_units = ?, trail_units = ?,"
                " filled_adjustment_units = ?, parent_id = ? WHERE id = ?"),
                [(o.status.value, _maybe(to_quantity_units, o.quantity), iso(o.updated or o.created),
                  _maybe(to_price_units, o.watermark), int(o.triggered), o.reason_code, o.reason,
                  _maybe(to_price_units, o.limit_price), _maybe(to_price_units, o.stop_price),
                  _maybe(to_price_units, o.trail_price), to_quantity_units(o.filled_adjustment), o.parent_id, o.id)
                 for o in orders])
        fills = [e.fill for e in events if e.fill is not None]
        touched = {(f.account_id, f.symbol) for f in fills} | {(r.account_id, r.symbol) for r in records}
        accounts = sorted({f.account_id for f in fills} | {r.account_id for r in records})
        if accounts:
            cursor.executemany(sql("UPDATE portfolios SET cash_cents = ? WHERE id = ?"),
                               [(to_cents(books[a].cash), a) for a in accounts])
        gone, held = [], []
        for account_id, symbol in sorted(touched):
            position = books[account_id].positions.get(symbol)
            if position is None:
                gone.append((account_id, symbol))
            else:
                entry = position.entry_price
                held.append((account_id, symbol, to_quantity_units(position.quantity), to_cents(position.cost),
                             to_price_units(entry) if entry is not None else None))
        if gone:
            cursor.executemany(sql("DELETE FROM positions WHERE portfolio_id = ? AND symbol = ?"), gone)
        if held:
            cursor.executemany(sql(
                "INSERT INTO positions (portfolio_id, symbol, quantity_units, cost_cents, entry_price_units)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (portfolio_id, symbol) DO UPDATE SET"
                " quantity_units = excluded.quantity_units, cost_cents = excluded.cost_cents,"
                " entry_price_units = excluded.entry_price_units"), held)
        generation = self.generations(cursor, {f.account_id for f in fills} | {r.account_id for r in records})
        # Corporate actions come first in a step (then the orders trade): their rows go first too, so the
        # ledger read in order (by id) has every row's cash_after = the one before + its amount.
        if records:
            cursor.executemany(sql(
                "INSERT INTO transactions (portfolio_id, generation, order_id, kind, time, side, symbol, quantity_units,"
                " price_units, commission_cents, amount_cents, cash_after_cents, position_after_units, details)"
                " VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"),
                [(r.account_id, generation[r.account_id], r.kind, iso(r.time), r.kind, r.symbol, to_quantity_units(r.quantity),
                  to_price_units(r.per_share), to_cents(r.amount), to_cents(r.cash_after),
                  to_quantity_units(r.quantity) if r.kind == "split" else None, _details(r)) for r in records])
        fill_rows = [
            (f.account_id, generation[f.account_id], f.order_id, iso(f.time), f.side, f.symbol, to_quantity_units(f.quantity),
             to_price_units(f.price), to_cents(f.commission), to_cents(f.amount), to_cents(f.cash_after),
             to_cents(f.realized), to_quantity_units(f.position_after), f.model) for f in fills]
        transaction_ids = iter(self.db.insert_many(cursor, (
            "INSERT INTO transactions (portfolio_id, generation, order_id, kind, time, side, symbol, quantity_units, price_units,"
            " commission_cents, amount_cents, cash_after_cents, realized_cents, position_after_units, model)"
            " VALUES (?, ?, ?, 'fill', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"), fill_rows))
        self._write_events(cursor, events, recorded, transaction_ids)

    def _write_events(self, cursor, events, recorded, transaction_ids):
        """The order events; a fill's event takes the next of ``transaction_ids`` (its fill's row)."""
        recorded = iso(recorded)
        rows = [(event.order.account_id, event.order.id, event.kind.value, iso(event.time), recorded,
                 next(transaction_ids) if event.fill is not None else None, event.reason_code, event.reason)
                for event in events]
        if rows:
            query = self.sql("INSERT INTO order_events (portfolio_id, order_id, kind, time, recorded, transaction_id,"
                             " reason_code, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            if len(rows) == 1:  # (an order accepted: psycopg's executemany sets up a pipeline for one row)
                cursor.execute(query, rows[0])
            else:
                cursor.executemany(query, rows)

    # --- margin accounts ------------------------------------------------------------------

    def liquidating(self, cursor, portfolio_ids):
        """Those of these portfolios with a liquidation order (placed by the platform) still open."""
        ids = sorted(portfolio_ids)
        found = set()
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            cursor.execute(self.sql(
                f"SELECT DISTINCT portfolio_id FROM orders WHERE origin = 'liquidation' AND status IN"
                f" {_in(OPEN_STATUSES)} AND portfolio_id IN {_in(part)}"), list(OPEN_STATUSES) + part)
            found.update(r[0] for r in cursor.fetchall())
        return found

    def charge_borrow_fees(self, cursor, portfolio_id, time, charges, prices):
        """Write a portfolio's borrow fees: one ``borrow_fee`` transaction per short position
        (``charges``: (position, fee, cash after, days)), and its cash after them."""
        generation = self.generations(cursor, [portfolio_id])[portfolio_id]
        cursor.executemany(self.sql(
            "INSERT INTO transactions (portfolio_id, generation, order_id, kind, time, side, symbol, quantity_units,"
            " price_units, commission_cents, amount_cents, cash_after_cents, details)"
            " VALUES (?, ?, NULL, 'borrow_fee', ?, 'borrow_fee', ?, ?, ?, 0, ?, ?, ?)"),
            [(portfolio_id, generation, iso(time), position.symbol, to_quantity_units(-position.quantity),
              to_price_units(prices.get(position.symbol) or round_price(position.average_price.copy_abs())),
              -to_cents(fee),
              to_cents(cash), f"borrow fee: {days} day{'s' if days > 1 else ''} on {quantity_text(-position.quantity)}"
              f" shares short") for position, fee, cash, days in charges])
        cursor.execute(self.sql("UPDATE portfolios SET cash_cents = ? WHERE id = ?"),
                       (to_cents(charges[-1][2]), portfolio_id))

    # --- corporate actions -------------------------------------------------------------

    def holders(self, cursor, symbols):
        """Accounts holding any of ``symbols``."""
        symbols = sorted(symbols)
        if not symbols:
            return set()
        cursor.execute(self.sql(f"SELECT DISTINCT portfolio_id FROM positions WHERE symbol IN {_in(symbols)}"), symbols)
        return {r[0] for r in cursor.fetchall()}

    def split_restores(self, cursor, portfolio_ids, split):
        """{(portfolio id, symbol): shares} that ``split``, played again, gives back exactly: for each portfolio
        whose newest change of the position is that split undone by a seek back, still holding what the undo
        left, the shares it held before the undo (papertrader/trading/corporate.py ``split_book``)."""
        ids = sorted(portfolio_ids)
        if not ids:
            return {}
        undone = f"{split.new.normalize():f}-for-{split.old.normalize():f} split undone%"
        cursor.execute(self.sql(
            "SELECT t.portfolio_id, t.id, t.generation, t.position_after_units FROM transactions t"
            " JOIN portfolios p ON p.id = t.portfolio_id AND p.generation = t.generation"
            " JOIN positions s ON s.portfolio_id = t.portfolio_id AND s.symbol = t.symbol"
            " AND s.quantity_units = t.position_after_units"
            f" WHERE t.symbol = ? AND t.kind = 'split' AND t.details LIKE ? AND t.portfolio_id IN {_in(ids)}"
            " AND t.id = (SELECT MAX(u.id) FROM transactions u WHERE u.portfolio_id = t.portfolio_id"
            " AND u.symbol = t.symbol AND u.generation = t.generation AND u.kind IN ('fill', 'split'))"),
            [split.symbol, undone, *ids])
        out = {}
        for portfolio_id, undo_id, generation, _ in cursor.fetchall():
            cursor.execute(self.sql(
                "SELECT position_after_units FROM transactions WHERE portfolio_id = ? AND symbol = ? AND generation = ?"
                " AND kind IN ('fill', 'split') AND id < ? AND position_after_units IS NOT NULL ORDER BY id DESC"
                " LIMIT 1"), (portfolio_id, split.symbol, generation, undo_id))
            row = cursor.fetchone()
            if row is not None:
                out[(portfolio_id, split.symbol)] = from_quantity_units(row[0])
        return out

    def due_dividends(self, cursor, today):
        """Dividends owed and not yet paid whose pay date has come."""
        cursor.execute(self.sql(
            "SELECT id, portfolio_id, symbol, ex_date, pay_date, quantity_units, per_share_units, amount_cents"
            " FROM dividends WHERE paid IS NULL AND pay_date <= ? ORDER BY id"), (today.isoformat(),))
        return [Entitlement(r[1], r[2], date.fromisoformat(r[3]), date.fromisoformat(r[4]),
                            from_quantity_units(r[5]), from_quantity_units(r[6]), from_cents(r[7]), id=r[0])
                for r in cursor.fetchall()]

    def forget_dividends_from(self, cursor, day):
        """Market time moved back to ``day``: the dividends owed from ex-dates on or after it and not paid yet
        are forgotten (the days are played again: they are owed again, or not, to whoever holds then)."""
        cursor.execute(self.sql("DELETE FROM dividends WHERE paid IS NULL AND ex_date >= ?"), (day.isoformat(),))

    def save_dividends(self, cursor, owed, paid, recorded):
        if owed:
            cursor.executemany(self.sql(
                "INSERT INTO dividends (portfolio_id, symbol, ex_date, pay_date, quantity_units, per_share_units,"
                " amount_cents) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                [(e.account_id, e.symbol, e.ex_date.isoformat(), e.pay_date.isoformat(),
                  to_quantity_units(e.quantity), to_quantity_units(e.per_share), to_cents(e.amount)) for e in owed])
        if paid:
            cursor.executemany(self.sql("UPDATE dividends SET paid = ? WHERE id = ?"),
                               [(iso(recorded), e.id) for e in paid])

    # --- market state --------------------------------------------------------------

    def get_state(self, cursor, name):
        cursor.execute(self.sql("SELECT value FROM market_state WHERE name = ?"), (name,))
        row = cursor.fetchone()
        return row[0] if row else None

    def all_state(self, cursor):
        cursor.execute(self.sql("SELECT name, value FROM market_state"))
        return dict(cursor.fetchall())

    def save_state(self, cursor, changes):
        for name, value in changes.items():
            self.set_state(cursor, name, value)

    def set_state(self, cursor, name, value):
        cursor.execute(self.sql("INSERT INTO market_state (name, value) VALUES (?, ?)"
                                " ON CONFLICT (name) DO UPDATE SET value = excluded.value"), (name, value))
