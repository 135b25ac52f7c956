"""Upgrading a database that holds data: version 5 (market orders only) to the order types of version 6; the
backup made before a migration; a database newer than the code; a migration that fails."""

import glob
import os
import sqlite3
from datetime import timedelta
from decimal import Decimal as D

import pytest
import pytest_twisted

from papertrader.master import files
from papertrader.master.db import Database, pg_schema, shipped
from papertrader.master.order_store import OrderStore
from papertrader.master.upgrades import BackupFirst, MigrationFailed, SchemaTooNew
from papertrader.trading.orders import OrderType, Status, TimeInForce
from tests.test_admin import admin


#: The newest schema version this release ships (the same number on both databases).
LATEST = shipped("sqlite")[-1][0]


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
        applied = await db.migrate(confirmed=True)
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
        await db.execute("INSERT INTO transactions (portfolio_id, order_id, kind, time, side, symbol, quantity_units,"
                         " price_units, commission_cents, amount_cents, cash_after_cents) VALUES (1, 1, 'fill', 't',"
                         " 'buy', 'AAPL', 1, 1, 0, 0, 0)")
        assert await db.migrate() == []
    finally:
        db.close()


class WithMigrations(Database):
    """The real Database, with more migration files than the package ships (as a later release would)."""

    def __init__(self, url, data_dir, extra):
        super().__init__(url, data_dir)
        self.extra = extra

    def migrations(self):
        return super().migrations() + self.extra


async def at_version_5_with_orders(url, data_dir):
    """A database as release 5 left it, holding an account, its orders, a fill and a position."""
    old = UpTo(url, data_dir, 5)
    try:
        await old.migrate()
        for statement in LEGACY:
            await old.execute(statement)
    finally:
        old.close()


def backups_in(directory):
    return sorted(glob.glob(os.path.join(directory, "*.backup")))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_an_sqlite_database_is_backed_up_before_it_is_migrated_and_the_backup_restores(database_url, tmp_path):
    data_dir = str(tmp_path)
    fresh = Database(Database.default_url(str(tmp_path / "fresh")), str(tmp_path / "fresh"))
    os.makedirs(tmp_path / "fresh")
    try:
        assert (await fresh.upgrade()).backup is None  # a new database has nothing to lose: no copy
        assert (await fresh.upgrade()).backup is None  # nor one already up to date
    finally:
        fresh.close()
    assert backups_in(str(tmp_path / "fresh")) == []

    await at_version_5_with_orders(database_url, data_dir)
    db = Database(database_url, data_dir)
    try:
        upgrade = await db.upgrade()
        assert (upgrade.before, upgrade.after, upgrade.applied[0]) == (5, LATEST, "0006_order_types.sqlite.sql")
        assert backups_in(data_dir) == [upgrade.backup]
        assert os.path.basename(upgrade.backup).startswith("papertrader.db.v5-")
        assert oct(os.stat(upgrade.backup).st_mode & 0o777) == "0o600"
        # Later: an order is cancelled, a new account is made.
        await db.execute("UPDATE orders SET status = 'canceled' WHERE id = 3")
        await db.execute("INSERT INTO accounts (username, username_key, email, cash_cents, created) VALUES"
                         " ('bob', 'bob', 'b@example.com', 100, 't')")
    finally:
        db.close()

    # The copy is the version 5 database exactly, a file of its own (no -wal beside it).
    copy = sqlite3.connect(f"file:{upgrade.backup}?mode=ro", uri=True)
    try:
        assert copy.execute("SELECT MAX(version) FROM schema_version").fetchone() == (5,)
        assert copy.execute("SELECT id, client_order_id, status FROM orders ORDER BY id").fetchall() == [
            (1, "a", "filled"), (2, "b", "rejected"), (3, "c", "queued")]
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    finally:
        copy.close()

    # papertrader-admin restore puts it back (migrated to this release) and keeps the database it replaced.
    files.ensure_master_files(data_dir)
    status, out, err = admin("--data-dir", data_dir, "restore", upgrade.backup)
    assert status == 0, err
    assert f"(schema version 5, migrated to {LATEST})" in out
    replaced = out.split("the database it replaced is saved as ")[1].strip()
    db = Database(database_url, data_dir)
    try:
        assert await db.version() == LATEST
        store = OrderStore(db)
        assert (await db.run(store.get, 1, 3)).status == Status.NEW  # as before the cancel
        assert await db.query("SELECT username FROM accounts ORDER BY id") == [("alice",)]
        assert (await db.upgrade()).applied == []
    finally:
        db.close()
    kept = sqlite3.connect(replaced)
    try:
        assert kept.execute("SELECT username FROM accounts ORDER BY id").fetchall() == [("alice",), ("bob",)]
    finally:
        kept.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_an_existing_postgresql_database_is_migrated_only_once_its_operator_says_it_is_backed_up(
        database_url, tmp_path):
    await at_version_5_with_orders(database_url, str(tmp_path))
    db = Database(database_url, str(tmp_path))
    try:
        with pytest.raises(BackupFirst) as refused:
            await db.upgrade()
        message = refused.value.message
        assert f"is at schema version 5 and this release needs version {LATEST}" in message
        assert "pg_dump --format=custom --file=papertrader-v5.dump" in message
        # Only this schema: a dump of the whole database, restored with --clean, would roll back any other
        # schema's tables (another PaperTrader's) to that moment.
        assert f"--schema={pg_schema(database_url)} --dbname=" in message and pg_schema(database_url)
        assert "migrate --backed-up" in message
        assert await db.version() == 5
        upgrade = await db.upgrade(confirmed=True)
        assert (upgrade.before, upgrade.after, upgrade.backup) == (5, LATEST, None)
        assert await db.version() == LATEST
    finally:
        db.close()


@pytest_twisted.ensureDeferred
async def test_a_database_newer_than_the_code_is_refused_and_left_alone(database_url, tmp_path):
    await at_version_5_with_orders(database_url, str(tmp_path))
    current = Database(database_url, str(tmp_path))
    try:
        await current.upgrade(confirmed=True)
        before = await snapshot(current)
    finally:
        current.close()
    backups = backups_in(str(tmp_path))
    older = UpTo(database_url, str(tmp_path), LATEST - 1)  # the release before this one
    try:
        with pytest.raises(SchemaTooNew) as refused:
            await older.upgrade(confirmed=True)
        assert (f"is at schema version {LATEST}, newer than this release of PaperTrader knows ({LATEST - 1})"
                in refused.value.message)
        assert refused.value.code == "schema_too_new"
        assert await snapshot(older) == before
    finally:
        older.close()
    assert backups_in(str(tmp_path)) == backups  # no copy made either


async def snapshot(db):
    """Everything a database holds: its schema (tables, columns, indexes) and every row of every table."""
    if db.dialect == "sqlite":
        schema = await db.query("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                                " ORDER BY type, name")
        tables = [row[1] for row in schema if row[0] == "table"]
    else:
        schema = await db.query("SELECT table_name, column_name, data_type, is_nullable, column_default FROM"
                                " information_schema.columns WHERE table_schema = current_schema()"
                                " ORDER BY table_name, ordinal_position")
        schema += await db.query("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
                                 " ORDER BY indexname")
        tables = sorted({row[0] for row in schema if len(row) == 5})
    rows = {}
    for table in tables:
        rows[table] = sorted(await db.query(f"SELECT * FROM {table}"), key=repr)
    return schema, rows


#: A later release's migrations: the first is fine, the second fails at its last statement after changing
#: tables (a rebuild on SQLite, ALTER on PostgreSQL), rows, indexes and the version table.
GOOD = "CREATE TABLE notes (id {{ID}}, body TEXT NOT NULL);\nINSERT INTO notes (body) VALUES ('first')"
BROKEN = {
    "sqlite": """
        CREATE TABLE workers_new (name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL UNIQUE, created TEXT NOT NULL,
                                  note TEXT);
        INSERT INTO workers_new (name, fingerprint, created) SELECT name, fingerprint, created FROM workers;
        DROP TABLE workers;
        ALTER TABLE workers_new RENAME TO workers;
        ALTER TABLE accounts ADD COLUMN nickname TEXT;
        UPDATE accounts SET cash_cents = 0;
        DELETE FROM orders;
        CREATE INDEX orders_symbol_x ON orders (symbol);
        INSERT INTO schema_version (version, applied) VALUES (9999, 'x');
        INSERT INTO no_such_table VALUES (1)""",
    "postgresql": """
        ALTER TABLE workers ADD COLUMN note TEXT;
        ALTER TABLE accounts ADD COLUMN nickname TEXT;
        UPDATE accounts SET cash_cents = 0;
        DELETE FROM transactions;
        DELETE FROM orders;
        CREATE INDEX orders_symbol_x ON orders (symbol);
        DROP TABLE api_keys;
        INSERT INTO schema_version (version, applied) VALUES (9999, 'x');
        INSERT INTO no_such_table VALUES (1)""",
}


@pytest_twisted.ensureDeferred
async def test_a_failed_migration_leaves_the_schema_and_the_data_exactly_as_they_were(database_url, tmp_path):
    await at_version_5_with_orders(database_url, str(tmp_path))
    db = Database(database_url, str(tmp_path))
    try:
        await db.upgrade(confirmed=True)
        await db.execute("INSERT INTO workers (name, fingerprint, created) VALUES ('w1', 'ABCD', 't')")
        before = await snapshot(db)
    finally:
        db.close()
    dialect = db.dialect
    backups = backups_in(str(tmp_path))
    later = WithMigrations(database_url, str(tmp_path),
                           [(9001, "9001_notes.sql", GOOD), (9002, "9002_broken.sql", BROKEN[dialect])])
    try:
        with pytest.raises(MigrationFailed) as failed:
            await later.upgrade(confirmed=True)
        assert failed.value.message.startswith("migration 9002_broken.sql failed: ")
        assert "no_such_table" in failed.value.message
        assert failed.value.message.endswith(f"the database is unchanged (schema version {LATEST})")
        assert await snapshot(later) == before  # 9001's table and row are gone too: all or nothing
        assert await later.version() == LATEST
    finally:
        later.close()
    # The copy made before the attempt is removed once the rollback succeeded (a restart loop fills no disk).
    assert backups_in(str(tmp_path)) == backups
    # Fixed, it applies, on the same data.
    fixed = WithMigrations(database_url, str(tmp_path), [(9001, "9001_notes.sql", GOOD)])
    try:
        assert (await fixed.upgrade(confirmed=True)).applied == ["9001_notes.sql"]
        assert await fixed.query("SELECT body FROM notes") == [("first",)]
        assert await fixed.query("SELECT client_order_id FROM orders ORDER BY id") == [("a",), ("b",), ("c",)]
    finally:
        fixed.close()



#: A version 8 database's rows: two accounts; alice has a fill, a position, an open order, an event, an owed
#: dividend and an API key; bob has nothing but his cash.
VERSION_8 = [
    "INSERT INTO accounts (id, username, username_key, email, password_hash, cash_cents, created, uuid) VALUES"
    " (1, 'alice', 'alice', 'a@example.com', NULL, 9984975, '2026-01-01T00:00:00.000000+00:00',"
    " '11111111-1111-4111-8111-111111111111')",
    "INSERT INTO accounts (id, username, username_key, email, password_hash, cash_cents, created, uuid) VALUES"
    " (2, 'bob', 'bob', 'b@example.com', NULL, 5000000, '2026-01-02T00:00:00.000000+00:00',"
    " '22222222-2222-4222-8222-222222222222')",
    "INSERT INTO orders (id, uuid, account_id, client_order_id, side, symbol, type, time_in_force, quantity_units,"
    " status, created, updated, received, client_ip, worker) VALUES (1, '00000000-0000-4000-8000-000000000001', 1,"
    " 'a', 'buy', 'AAPL', 'market', 'day', 1000000, 'filled', '2026-01-01T00:00:01.000000+00:00',"
    " '2026-01-01T00:00:05.000000+00:00', '2026-01-01T00:00:01.000000+00:00', '192.0.2.1', 'w1')",
    "INSERT INTO orders (id, uuid, account_id, client_order_id, side, symbol, type, time_in_force, quantity_units,"
    " limit_units, status, created, updated, received, client_ip, worker) VALUES (2,"
    " '00000000-0000-4000-8000-000000000002', 1, 'b', 'buy', 'MSFT', 'limit', 'gtc', 2000000, 1000000, 'new',"
    " '2026-01-01T00:00:06.000000+00:00', '2026-01-01T00:00:06.000000+00:00', '2026-01-01T00:00:06.000000+00:00',"
    " '192.0.2.1', 'w1')",
    "INSERT INTO transactions (id, account_id, order_id, kind, time, side, symbol, quantity_units, price_units,"
    " commission_cents, amount_cents, cash_after_cents, realized_cents, position_after_units, model) VALUES (1, 1, 1,"
    " 'fill', '2026-01-01T00:00:05.000000+00:00', 'buy', 'AAPL', 1000000, 1502500, 0, -15025, 9984975, 0, 1000000,"
    " 'ideal')",
    "INSERT INTO order_events (account_id, order_id, kind, time, recorded, transaction_id) VALUES (1, 1, 'fill',"
    " '2026-01-01T00:00:05.000000+00:00', '2026-01-01T00:00:05.000000+00:00', 1)",
    "INSERT INTO positions (account_id, symbol, quantity_units, cost_cents) VALUES (1, 'AAPL', 1000000, 15025)",
    "INSERT INTO dividends (account_id, symbol, ex_date, pay_date, quantity_units, per_share_units, amount_cents)"
    " VALUES (1, 'AAPL', '2026-02-01', '2026-02-15', 1000000, 2400, 24)",
    "INSERT INTO api_keys (key_id, account_id, name, secret_hash, created) VALUES ('PKAAAAAAAAAAAAAAAAAA', 1, 'bot',"
    " 'x', '2026-01-01T00:00:00.000000+00:00')",
]


@pytest_twisted.ensureDeferred
async def test_version_8_accounts_become_default_portfolios_holding_everything_they_had(database_url, tmp_path):
    from papertrader.master.portfolios import PortfolioStore
    from papertrader.times import utc

    old = UpTo(database_url, str(tmp_path), 8)
    try:
        await old.migrate()
        for statement in VERSION_8:
            await old.execute(statement)
    finally:
        old.close()

    db = Database(database_url, str(tmp_path))
    try:
        applied = await db.migrate(confirmed=True)
        assert applied[0].startswith("0009_portfolios")
        portfolios = PortfolioStore(db)
        alice = await db.run(portfolios.default, 1)
        bob = await db.run(portfolios.default, 2)
        # Each account's default portfolio: its cash, its uuid (the HTTP account id), and the cash it started
        # with (before its first transaction).
        assert (alice.id, alice.name, alice.kind, alice.cash, alice.starting_cash, alice.uuid, alice.generation) == (
            1, "default", "cash", D("99849.75"), D("100000.00"), "11111111-1111-4111-8111-111111111111", 0)
        assert (bob.id, bob.cash, bob.starting_cash) == (2, D("50000.00"), D("50000.00"))
        store = OrderStore(db)
        book = await db.run(store.book, alice.id)
        assert (book.cash, book.positions["AAPL"].quantity) == (D("99849.75"), 1)
        assert [o.id for o in await db.run(store.open_orders, alice.id)] == [2]
        assert (await db.run(store.get, alice.id, 1)).filled_quantity == 1
        assert await db.run(store.by_client_order_id, alice.id, "b") is not None
        assert await db.run(store.open_orders, bob.id) == []
        assert await db.query("SELECT portfolio_id, kind FROM order_events") == [(1, "fill")]
        assert await db.query("SELECT portfolio_id, amount_cents FROM dividends") == [(1, 24)]
        assert await db.query("SELECT portfolio_id, generation FROM transactions") == [(1, 0)]
        assert await db.query("SELECT key_id, portfolio_id FROM api_keys") == [("PKAAAAAAAAAAAAAAAAAA", 1)]
        # New portfolios get new ids (PostgreSQL's identity moved past the ones the migration gave).
        made = await db.run(portfolios.create, 2, "growth", "cash", D("1000.00"), utc(0))
        assert made.id == 3
        # Bob's second portfolio may hold AAPL too (positions are keyed by portfolio), and use the client
        # order id alice used.
        await db.execute("INSERT INTO positions (portfolio_id, symbol, quantity_units, cost_cents) VALUES"
                         " (3, 'AAPL', 1, 1), (2, 'AAPL', 1, 1)")
        assert await db.migrate() == []
    finally:
        db.close()


#: A version 13 database's game: a teacher's private game with one player (alice) in it (ids from 1: a new
#: database's identities give them).
VERSION_13 = [
    "INSERT INTO accounts (id, username, username_key, email, password_hash, cash_cents, created, uuid) VALUES"
    " (1, 'teacher', 'teacher', 't@example.com', NULL, 0, '2026-01-01T00:00:00.000000+00:00',"
    " '11111111-1111-4111-8111-111111111111')",
    "INSERT INTO accounts (id, username, username_key, email, password_hash, cash_cents, created, uuid) VALUES"
    " (2, 'alice', 'alice', 'a@example.com', NULL, 0, '2026-01-01T00:00:00.000000+00:00',"
    " '22222222-2222-4222-8222-222222222222')",
    "INSERT INTO portfolios (uuid, account_id, name, name_key, kind, starting_cash_cents, cash_cents, is_default,"
    " generation, created, game_id) VALUES ('33333333-3333-4333-8333-333333333333', 2, 'Class 7B', 'class 7b',"
    " 'cash', 1000000, 1000000, 0, 0, '2026-01-02T00:00:00.000000+00:00', NULL)",
    "INSERT INTO games (name, name_key, creator_id, starts, ends, starting_cash_cents, rules, private, created)"
    " VALUES ('Class 7B', 'class 7b', 1, '2026-09-01T00:00:00+00:00', '2027-01-01T00:00:00+00:00', 1000000,"
    " '{RULES}', 1, '2026-01-02T00:00:00.000000+00:00')",
    "UPDATE portfolios SET game_id = 1 WHERE id = 1",
    "INSERT INTO game_players (game_id, account_id, portfolio_id, joined) VALUES (1, 2, 1,"
    " '2026-01-02T00:00:00.000000+00:00')",
]


@pytest_twisted.ensureDeferred
async def test_version_13_games_hide_their_players_portfolios_after_version_14(database_url, tmp_path):
    """Version 14 stores whether a game's players may see each other's portfolios: a game made before it
    shows them to its creator only, as it did; a game made after it keeps what its creator chose."""
    from datetime import datetime, timezone

    from papertrader.master.games import GameStore
    from papertrader.times import utc
    from papertrader.trading.games import GameRules

    rules = GameRules(start=datetime(2026, 9, 1, tzinfo=timezone.utc), end=datetime(2027, 1, 1, tzinfo=timezone.utc),
                      starting_cash=D("10000.00"))
    old = UpTo(database_url, str(tmp_path), 13)
    try:
        await old.migrate()
        for statement in VERSION_13:
            await old.execute(statement.replace("{RULES}", rules.to_json()))
    finally:
        old.close()

    db = Database(database_url, str(tmp_path))
    try:
        applied = await db.migrate(confirmed=True)
        assert applied[0].startswith("0014_game_portfolios")
        store = GameStore(db)
        game = await db.run(store.by_name, "class 7b")
        assert (game.name, game.creator, game.private, game.show_portfolios) == ("Class 7B", "teacher", True, False)
        assert await db.run(store.players, game.id) == [(2, "alice", 1)]
        shown = await db.run(store.create, 1, "Open Book", rules, False, utc(0), None, True)
        hidden = await db.run(store.create, 1, "Closed Book", rules, False, utc(0))
        assert (shown.show_portfolios, hidden.show_portfolios) == (True, False)
        assert await db.migrate() == []
    finally:
        db.close()


#: A version 14 portfolio's orders: one open (a limit buy), one filled.
VERSION_14 = VERSION_13[1:2] + [
    "INSERT INTO portfolios (uuid, account_id, name, name_key, kind, starting_cash_cents, cash_cents, is_default,"
    " generation, created) VALUES ('33333333-3333-4333-8333-333333333333', 2, 'default', 'default', 'cash',"
    " 1000000, 1000000, 1, 0, '2026-01-02T00:00:00.000000+00:00')",
    "INSERT INTO orders (uuid, portfolio_id, generation, client_order_id, side, symbol, type, time_in_force,"
    " quantity_units, limit_units, status, created, updated, received, client_ip, worker) VALUES"
    " ('00000000-0000-4000-8000-000000000001', 1, 0, 'a', 'buy', 'MSFT', 'limit', 'gtc', 2000000, 1000000, 'new',"
    " '2026-01-03T00:00:00.000000+00:00', '2026-01-03T00:00:00.000000+00:00', '2026-01-03T00:00:00.000000+00:00',"
    " '192.0.2.1', 'w1')",
    "INSERT INTO orders (uuid, portfolio_id, generation, client_order_id, side, symbol, type, time_in_force,"
    " quantity_units, status, created, updated, received, client_ip, worker) VALUES"
    " ('00000000-0000-4000-8000-000000000002', 1, 0, 'b', 'buy', 'AAPL', 'market', 'day', 1000000, 'filled',"
    " '2026-01-03T00:00:00.000000+00:00', '2026-01-03T00:00:00.000000+00:00', '2026-01-03T00:00:00.000000+00:00',"
    " '192.0.2.1', 'w1')",
]


@pytest_twisted.ensureDeferred
async def test_version_14_orders_are_simple_orders_after_version_15(database_url, tmp_path):
    """Version 15 adds bracket, OCO and OTO orders (their class, an exit's part and parent, the held status):
    every order made before is a simple order, and an open one is still among its portfolio's open orders."""
    from papertrader.trading.orders import OrderClass

    old = UpTo(database_url, str(tmp_path), 14)
    try:
        await old.migrate()
        for statement in VERSION_14:
            await old.execute(statement)
    finally:
        old.close()

    db = Database(database_url, str(tmp_path))
    try:
        applied = await db.migrate(confirmed=True)
        assert [name.split(".")[0] for name in applied] == ["0015_contingent_orders", "0016_position_intent",
                                                            "0017_watchlists", "0018_portfolio_configuration",
                                                            "0019_order_submitted", "0020_username_skeleton",
                                                            "0021_session_device", "0022_portfolio_began"]
        store = OrderStore(db)
        [still_open] = await db.run(store.open_orders, 1)
        assert (still_open.client_order_id, still_open.order_class, still_open.leg, still_open.parent_id) == (
            "a", OrderClass.SIMPLE, None, None)
        # Version 16: whether an order opened or closed a position was not kept before it (told by the side).
        assert (still_open.opens, still_open.position_intent) == (None, None)
        # Version 19: an order stored before shows the time it was created.
        assert still_open.submitted is None and still_open.shown_created == still_open.created
        [shown] = await db.run(store.page, 1, until=still_open.created + timedelta(microseconds=1),
                               after=still_open.created - timedelta(microseconds=1), statuses=("new",))
        assert shown.id == still_open.id
        assert (await db.run(store.by_client_order_id, 1, "b")).order_class is OrderClass.SIMPLE
        assert await db.migrate() == []
    finally:
        db.close()


@pytest_twisted.ensureDeferred
async def test_a_postgresql_schema_that_does_not_exist_is_said_so_not_taken_for_another_master(tmp_path):
    """current_schema() is NULL when no schema of the search_path exists: the master lock's name was NULL, and
    the master said another master was running."""
    import psycopg

    from tests.conftest import POSTGRES

    db = Database(f"{POSTGRES}?options=-csearch_path%3Dt_missing_{os.getpid()}", str(tmp_path))
    try:
        with pytest.raises(psycopg.OperationalError) as refused:
            await db.lock()
        assert f"(t_missing_{os.getpid()}) exists in the database: create it first" in str(refused.value)
    finally:
        db.close()



@pytest_twisted.ensureDeferred
async def test_version_20_gives_existing_accounts_the_skeleton_the_code_computes(database_url, tmp_path):
    """The migration computes in SQL what validation.username_skeleton computes for new usernames: an
    existing account's look-alikes are refused as a new one's are."""
    from papertrader.master.validation import username_skeleton

    names = ["ILya_0rnvv1", "Alice", "b.o-b"]
    old = UpTo(database_url, str(tmp_path), 19)
    try:
        await old.migrate()
        for n, name in enumerate(names, 1):
            await old.execute("INSERT INTO accounts (id, username, username_key, email, password_hash, cash_cents,"
                              " created, uuid) VALUES (?, ?, ?, ?, NULL, 0, '2026-01-01T00:00:00.000000+00:00', ?)",
                              (n, name, name.lower(), f"{n}@example.com", f"11111111-1111-4111-8111-00000000000{n}"))
    finally:
        old.close()
    db = Database(database_url, str(tmp_path))
    try:
        assert [name.split(".")[0] for name in await db.migrate(confirmed=True)] == ["0020_username_skeleton",
                                                                                     "0021_session_device",
                                                                                     "0022_portfolio_began"]
        rows = await db.query("SELECT username, username_skeleton FROM accounts ORDER BY id")
        assert [tuple(r) for r in rows] == [(name, username_skeleton(name)) for name in names]
        assert username_skeleton("ILya_0rnvv1") == "llya_omwl"
    finally:
        db.close()


@pytest_twisted.ensureDeferred
async def test_version_21_portfolios_have_no_market_beginning_and_new_ones_keep_it(database_url, tmp_path):
    """Version 22 keeps when a portfolio began in market time (a replay's, years from the wall clock's ``created``),
    where the website's equity curve starts. A portfolio made before has none (its curve starts at its first trade,
    as before); one made or reset since has the market time it is given."""
    from datetime import datetime, timezone

    from papertrader.master.portfolios import PortfolioStore
    from papertrader.times import utc

    old = UpTo(database_url, str(tmp_path), 21)
    try:
        await old.migrate()
        await old.execute("INSERT INTO accounts (id, username, username_key, username_skeleton, email, password_hash,"
                          " cash_cents, created, uuid) VALUES (1, 'alice', 'alice', 'alice', 'a@example.com', NULL,"
                          " 0, '2026-01-01T00:00:00.000000+00:00', '11111111-1111-4111-8111-111111111111')")
        await old.execute("INSERT INTO portfolios (uuid, account_id, name, name_key, kind, starting_cash_cents,"
                          " cash_cents, is_default, generation, created) VALUES"
                          " ('22222222-2222-4222-8222-222222222222', 1, 'default', 'default', 'cash', 1000000,"
                          " 1000000, 1, 0, '2026-01-01T00:00:00.000000+00:00')")
    finally:
        old.close()

    db = Database(database_url, str(tmp_path))
    try:
        assert [name.split(".")[0] for name in await db.migrate(confirmed=True)] == ["0022_portfolio_began"]
        portfolios = PortfolioStore(db)
        before = await db.run(portfolios.default, 1)
        assert (before.name, before.began) == ("default", None)
        in_2014 = datetime(2014, 3, 5, 14, 30, tzinfo=timezone.utc)
        made = await db.run(portfolios.create, 1, "growth", "cash", D("1000.00"), utc(1_800_000_000), began=in_2014)
        assert (await db.run(portfolios.get, made.id)).began == in_2014 and made.created.year == 2027
        later = datetime(2014, 6, 2, 14, 30, tzinfo=timezone.utc)
        reset = await db.run(portfolios.reset, before, utc(1_800_000_000), began=later)
        assert (reset.generation, reset.began) == (1, later)
        assert await db.migrate() == []
    finally:
        db.close()
