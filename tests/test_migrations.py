"""Upgrading a database that holds data: version 5 (market orders only) to the order types of version 6."""

import pytest_twisted

from papertrader.master.db import Database
from papertrader.master.order_store import OrderStore
from papertrader.trading.orders import OrderType, Status, TimeInForce


class UpTo(Database):
    """The real Database, as a release that shipped only the migrations up to ``last`` would have it."""

    def __init__(self, url, data_dir, last):
        super().__init__(url, data_dir)
        self.last = last

    def migrations(self):
        return [m for m in super().migrations() if m[0] <= self.last]


LEGACY = [
    "INSERT INTO accounts (id, username, username_key, email, password_hash, cash_cents, created) VALUES"
    " (1, 'alice', 'alice', 'a@example.com', NULL, 9984975, '2026-01-01T00:00:00.000000+00:00')",
    # A filled market order and its fill, a rejected one, and one still queued.
    "INSERT INTO orders (id, account_id, client_order_id, side, symbol, quantity_units, status, created, received,"
    " client_ip, worker, price_units, amount_cents, processed) VALUES (1, 1, 'a', 'buy', 'AAPL', 1000000, 'filled',"
    " '2026-01-01T00:00:01.000000+00:00', '2026-01-01T00:00:01.000000+00:00', '192.0.2.1', 'w1', 1502500, -15025,"
    " '2026-01-01T00:00:05.000000+00:00')",
    "INSERT INTO transactions (account_id, order_id, time, side, symbol, quantity_units, price_units,"
    " commission_cents, amount_cents, cash_after_cents) VALUES (1, 1, '2026-01-01T00:00:05.000000+00:00', 'buy',"
    " 'AAPL', 1000000, 1502500, 0, -15025, 9984975)",
    "INSERT INTO positions (account_id, symbol, quantity_units, cost_cents) VALUES (1, 'AAPL', 1000000, 15025)",
    "INSERT INTO orders (id, account_id, client_order_id, side, symbol, quantity_units, status, created, received,"
    " client_ip, worker, reason, reason_code, processed) VALUES (2, 1, 'b', 'sell', 'MSFT', 1000000, 'rejected',"
    " '2026-01-01T00:00:02.000000+00:00', '2026-01-01T00:00:02.000000+00:00', '192.0.2.1', 'w1', 'no shares',"
    " 'insufficient_position', '2026-01-01T00:00:05.000000+00:00')",
    "INSERT INTO orders (id, account_id, client_order_id, side, symbol, quantity_units, status, created, received,"
    " client_ip, worker) VALUES (3, 1, 'c', 'buy', 'TSLA', 2500000, 'queued', '2026-01-01T00:00:06.000000+00:00',"
    " '2026-01-01T00:00:06.000000+00:00', '192.0.2.1', 'w2')",
]


@pytest_twisted.ensureDeferred
async def test_version_5_orders_and_fills_come_through_version_6(database_url, tmp_path):
    old = UpTo(database_url, str(tmp_path), 5)
    try:
        await old.migrate()
        for statement in LEGACY:
            await old.execute(statement)
    finally:
        old.close()

    db = Database(database_url, str(tmp_path))
    try:
        applied = await db.migrate()
        assert applied and applied[0].startswith("0006_order_types")
        store = OrderStore(db)
        filled, rejected, queued = [await db.run(store.get, 1, n) for n in (1, 2, 3)]
        assert (filled.status, filled.type, filled.time_in_force) == (Status.FILLED, OrderType.MARKET,
                                                                       TimeInForce.DAY)
        assert (filled.filled_quantity, filled.average_price) == (1, 150.25)  # from its fill
        assert (rejected.status, rejected.reason_code) == (Status.REJECTED, "insufficient_position")
        # A queued market order is an open day order that never expires (it was placed before calendars).
        assert (queued.status, queued.quantity, queued.expires) == (Status.NEW, 2.5, None)
        assert [o.id for o in await db.run(store.open_orders)] == [3]
        uuids = {o.uuid for o in (filled, rejected, queued)}
        assert len(uuids) == 3 and all(len(u) == 36 and u[14] == "4" for u in uuids)
        assert await db.query("SELECT kind, model FROM transactions") == [("fill", "ideal")]
        book = await db.run(store.book, 1)
        assert book.positions["AAPL"].quantity == 1
        # Several fills per order are allowed now (partial fills).
        await db.execute("INSERT INTO transactions (account_id, order_id, kind, time, side, symbol, quantity_units,"
                         " price_units, commission_cents, amount_cents, cash_after_cents) VALUES (1, 1, 'fill', 't',"
                         " 'buy', 'AAPL', 1, 1, 0, 0, 0)")
        assert await db.migrate() == []
    finally:
        db.close()
