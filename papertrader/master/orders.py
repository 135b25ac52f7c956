"""The order queue: durable acceptance, and one pass per update interval.

``submit`` validates an order, writes it to the ``orders`` table as
``queued`` and only then answers: an acknowledged order is on disk.  A
``client_order_id`` already used on the account returns the order it made.

``process`` is one queue pass, in arrival (id) order, at the board's prices;
the market service runs it right after every update (one LoopingCall).
Each batch of orders is one database transaction that moves cash and
positions, appends the transaction history and marks the orders
``filled``/``rejected`` together: after a crash an order is either untouched
(and filled by the next pass) or completely done, never twice.
"""

from twisted.internet import defer

from papertrader.errors import DuplicateOrder, InsufficientFunds, InsufficientPosition, InvalidInput, UnknownOrder
from papertrader.master import ledger, validation
from papertrader.master.db import is_unique_violation
from papertrader.money import (
    from_cents,
    from_price_units,
    from_quantity_units,
    round_money,
    to_cents,
    to_price_units,
    to_quantity_units,
)
from papertrader.times import iso, parse_iso, utc

BATCH = 500
#: Orders one account may have waiting for the next queue pass.
MAX_QUEUED = 100

_ORDER_COLUMNS = (
    "id, client_order_id, side, symbol, quantity_units, status, created, price_units,"
    " amount_cents, reason, reason_code, processed, worker"
)


def _order(row):
    order = dict(
        id=row[0], client_order_id=row[1], side=row[2], symbol=row[3],
        quantity=from_quantity_units(row[4]), status=row[5], created=parse_iso(row[6]),
        price=from_price_units(row[7]) if row[7] is not None else None,
        amount=from_cents(row[8]) if row[8] is not None else None,
        reason=row[9], reason_code=row[10],
        processed=parse_iso(row[11]) if row[11] else None, worker=row[12],
    )
    return {k: v for k, v in order.items() if v is not None}


def _in(ids):
    return "(" + ", ".join("?" for _ in ids) + ")"


class Orders:
    """Order submission, the queue pass, and the account views built on the ledger."""

    def __init__(self, db, settings, board, clock, log):
        self.db = db
        self.settings = settings
        self.board = board
        self.clock = clock
        self.log = log
        self.filled = 0
        self.rejected = 0

    # --- reading books ------------------------------------------------------

    def _load_books(self, cursor, account_ids):
        ids = sorted(set(account_ids))
        books = {}
        cursor.execute(self.db.sql(f"SELECT id, cash_cents FROM accounts WHERE id IN {_in(ids)}"), ids)
        for account_id, cash in cursor.fetchall():
            books[account_id] = ledger.Book(from_cents(cash))
        cursor.execute(
            self.db.sql(
                f"SELECT account_id, symbol, quantity_units, cost_cents FROM positions WHERE account_id IN {_in(ids)}"
            ),
            ids,
        )
        for account_id, symbol, quantity, cost in cursor.fetchall():
            books[account_id].holdings[symbol] = ledger.Holding(from_quantity_units(quantity), from_cents(cost))
        return books

    def book(self, account_id):
        return self.db.run(lambda cursor: self._load_books(cursor, [account_id])[account_id])

    # --- submission ---------------------------------------------------------

    def _find(self, cursor, account_id, client_order_id):
        cursor.execute(
            self.db.sql(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE account_id = ? AND client_order_id = ?"),
            (account_id, client_order_id),
        )
        row = cursor.fetchone()
        return _order(row) if row else None

    def _check_buying_power(self, cursor, account_id, side, symbol, quantity, prices):
        """Refuse at once an order that could not fill at current prices after the account's queued orders."""
        price = prices.get(symbol)
        if price is None:
            return  # no price yet: the queue pass decides
        book = self._load_books(cursor, [account_id])[account_id]
        cursor.execute(
            self.db.sql("SELECT side, symbol, quantity_units FROM orders WHERE account_id = ? AND status = 'queued'"
                        " ORDER BY id"),
            (account_id,),
        )
        queued = cursor.fetchall()
        if len(queued) >= MAX_QUEUED:
            raise InvalidInput(f"you already have {MAX_QUEUED} orders waiting; wait for the next update")
        for queued_side, queued_symbol, units in queued:
            if queued_symbol in prices:
                ledger.execute(book, queued_side, queued_symbol, from_quantity_units(units), prices[queued_symbol],
                               self.settings.commission)
        result = ledger.execute(book, side, symbol, quantity, price, self.settings.commission)
        if isinstance(result, ledger.Rejection):
            if result.code == "order_too_small":
                raise InvalidInput(result.reason)
            error = InsufficientFunds if result.code == "insufficient_funds" else InsufficientPosition
            raise error(result.reason + (" after your queued orders" if queued else ""))

    @defer.inlineCallbacks
    def submit(self, session, client_order_id, side, symbol, quantity, received, client_ip, worker):
        client_order_id = validation.client_order_id(client_order_id)
        side = validation.side(side)
        symbol = validation.symbol(symbol, self.board.assets)
        quantity = validation.quantity(quantity)
        prices = self.board.prices()  # read here, in the reactor thread
        now = iso(utc(self.clock.seconds()))

        def insert(cursor):
            existing = self._find(cursor, session.account_id, client_order_id)
            if existing is None:
                self._check_buying_power(cursor, session.account_id, side, symbol, quantity, prices)
            if existing is None:
                cursor.execute(
                    self.db.sql(
                        "INSERT INTO orders (account_id, client_order_id, side, symbol, quantity_units, status,"
                        " created, received, client_ip, worker) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)"
                    ),
                    (session.account_id, client_order_id, side, symbol, to_quantity_units(quantity), now,
                     iso(received), client_ip[:64], worker[:64]),
                )
                return self._find(cursor, session.account_id, client_order_id), True
            return existing, False

        try:
            order, created = yield self.db.run(insert)
        except Exception as e:
            if not is_unique_violation(e):
                raise
            # A concurrent retry with the same id won the race: answer with its order.
            order = yield self.db.run(lambda c: self._find(c, session.account_id, client_order_id))
            created = False
        if not created and (order["side"], order["symbol"], order["quantity"]) != (side, symbol, quantity):
            raise DuplicateOrder(
                f"client_order_id {client_order_id!r} was already used for order {order['id']}"
                f" ({order['side']} {order['quantity']} {order['symbol']})"
            )
        if created:
            self.log.info("order {id} queued: {side} {quantity} {symbol} for {username} via {worker} from {ip}",
                          id=order["id"], side=side, quantity=quantity, symbol=symbol,
                          username=session.username, worker=worker, ip=client_ip)
        return order

    # --- the queue pass -----------------------------------------------------

    def _process_batch(self, cursor, after_id, last_id, prices, now):
        cursor.execute(
            self.db.sql(
                "SELECT id, account_id, side, symbol, quantity_units FROM orders"
                " WHERE status = 'queued' AND id > ? AND id <= ? ORDER BY id LIMIT ?"
            ),
            (after_id, last_id, BATCH),
        )
        rows = cursor.fetchall()
        if not rows:
            return None, 0, 0
        books = self._load_books(cursor, [r[1] for r in rows])
        touched = set()
        fills, rejections = [], []
        for order_id, account_id, side, symbol, quantity_units in rows:
            price = prices.get(symbol)
            if price is None:
                continue  # no quote yet: stays queued for a later pass
            result = ledger.execute(books[account_id], side, symbol, from_quantity_units(quantity_units),
                                    price, self.settings.commission)
            if isinstance(result, ledger.Fill):
                fills.append((order_id, account_id, result))
                touched.add((account_id, symbol))
            else:
                rejections.append((order_id, result))
        stamp = iso(now)
        cursor.executemany(
            self.db.sql(
                "UPDATE orders SET status = 'filled', price_units = ?, amount_cents = ?, processed = ?"
                " WHERE id = ? AND status = 'queued'"
            ),
            [(to_price_units(f.price), to_cents(f.amount), stamp, oid) for oid, _, f in fills],
        )
        cursor.executemany(
            self.db.sql(
                "UPDATE orders SET status = 'rejected', reason = ?, reason_code = ?, processed = ?"
                " WHERE id = ? AND status = 'queued'"
            ),
            [(r.reason, r.code, stamp, oid) for oid, r in rejections],
        )
        cursor.executemany(
            self.db.sql(
                "INSERT INTO transactions (account_id, order_id, time, side, symbol, quantity_units, price_units,"
                " commission_cents, amount_cents, cash_after_cents) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            [
                (aid, oid, stamp, f.side, f.symbol, to_quantity_units(f.quantity), to_price_units(f.price),
                 to_cents(f.commission), to_cents(f.amount), to_cents(f.cash_after))
                for oid, aid, f in fills
            ],
        )
        accounts = sorted({aid for _, aid, _ in fills})
        cursor.executemany(
            self.db.sql("UPDATE accounts SET cash_cents = ? WHERE id = ?"),
            [(to_cents(books[aid].cash), aid) for aid in accounts],
        )
        for account_id, symbol in sorted(touched):
            holding = books[account_id].holdings.get(symbol)
            if holding is None:
                cursor.execute(self.db.sql("DELETE FROM positions WHERE account_id = ? AND symbol = ?"),
                               (account_id, symbol))
            else:
                cursor.execute(
                    self.db.sql(
                        "INSERT INTO positions (account_id, symbol, quantity_units, cost_cents) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (account_id, symbol) DO UPDATE SET quantity_units = excluded.quantity_units,"
                        " cost_cents = excluded.cost_cents"
                    ),
                    (account_id, symbol, to_quantity_units(holding.quantity), to_cents(holding.cost)),
                )
        return rows[-1][0], len(fills), len(rejections)

    def after_update(self, quotes):
        """The market update's listener: one queue pass at the new prices."""
        return self.process()

    @defer.inlineCallbacks
    def process(self):
        """One queue pass over the orders queued when it starts; fires (filled, rejected)."""
        prices = self.board.prices()
        now = utc(self.clock.seconds())
        rows = yield self.db.query("SELECT MAX(id) FROM orders WHERE status = 'queued'")
        last_id = rows[0][0]
        filled = rejected = 0
        after = 0
        while last_id is not None:
            after, f, r = yield self.db.run(self._process_batch, after, last_id, prices, now)
            if after is None:
                break
            filled += f
            rejected += r
        self.filled += filled
        self.rejected += rejected
        if filled or rejected:
            self.log.info("queue pass: {filled} filled, {rejected} rejected", filled=filled, rejected=rejected)
        return filled, rejected

    # --- account views ------------------------------------------------------

    @defer.inlineCallbacks
    def get(self, session, order_id):
        rows = yield self.db.query(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ? AND account_id = ?", (order_id, session.account_id)
        )
        if not rows:
            raise UnknownOrder(f"no order {order_id} on your account")
        return _order(rows[0])

    @defer.inlineCallbacks
    def list(self, session, limit):
        rows = yield self.db.query(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE account_id = ? ORDER BY id DESC LIMIT ?",
            (session.account_id, limit),
        )
        return [_order(r) for r in reversed(rows)]

    @defer.inlineCallbacks
    def portfolio(self, session):
        book = yield self.book(session.account_id)
        positions = []
        equity = book.cash
        for symbol in sorted(book.holdings):
            holding = book.holdings[symbol]
            quote = self.board.get(symbol)
            value = round_money(holding.quantity * quote.price) if quote else holding.cost
            equity += value
            position = dict(symbol=symbol, quantity=holding.quantity, average_price=holding.average_price,
                            market_value=value)
            if quote:
                position["price"] = quote.price
            positions.append(position)
        return dict(cash=book.cash, equity=equity, positions=positions)

    @defer.inlineCallbacks
    def history(self, session, limit):
        rows = yield self.db.query(
            "SELECT time, order_id, side, symbol, quantity_units, price_units, commission_cents, amount_cents,"
            " cash_after_cents FROM transactions WHERE account_id = ? ORDER BY id DESC LIMIT ?",
            (session.account_id, limit),
        )
        return [
            dict(time=parse_iso(r[0]), order_id=r[1], side=r[2], symbol=r[3], quantity=from_quantity_units(r[4]),
                 price=from_price_units(r[5]), commission=from_cents(r[6]), amount=from_cents(r[7]),
                 cash_after=from_cents(r[8]))
            for r in reversed(rows)
        ]
