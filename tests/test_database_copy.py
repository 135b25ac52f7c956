"""``database_copy.copy`` (``papertrader-admin copy-database``) a few rows at a time, both ways.

With a chunk of 4 rows, tables of exactly two chunks, of two chunks and one row, and of five chunks and three rows
are copied (SQLite to PostgreSQL, PostgreSQL to SQLite: the source's kind is the parameter) and every table of the
copy is compared with the source's, row for row.  A chunk lost, read twice or cut short would show there.
``tests/test_backup.py`` runs the whole command against a real master's database.
"""

import sqlite3

import psycopg
import pytest_twisted
from twisted.internet import threads

from papertrader.master import database_copy
from papertrader.master.db import Database
from tests.conftest import _drop_schema, _postgres_schema

CHUNK = 4
#: Beyond a float's 53 bits: a copy that went through a float would change it.
BIG_CENTS = 2 ** 62 + 1


def fill(cursor, sql):
    """8 accounts (ids with a gap), 9 portfolios of theirs, 23 bars, some values NULL."""
    ids = [1, 2, 3, 4, 5, 6, 7, 20]
    for n, account in enumerate(ids):
        cursor.execute(sql("INSERT INTO accounts (id, username, username_key, email, password_hash, cash_cents,"
                           " created, uuid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                       (account, f"Üser{n}", f"user{n}", f"u{n}@example.com", None if n % 3 else f"hash{n}",
                        BIG_CENTS + n, f"2026-01-0{1 + n % 9}T00:00:00+00:00", f"uuid-{n}"))
    for n in range(2 * CHUNK + 1):
        cursor.execute(sql("INSERT INTO portfolios (id, uuid, account_id, name, name_key, kind, starting_cash_cents,"
                           " cash_cents, created, closed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                       (100 + n, f"p-{n}", ids[n % len(ids)], f"P{n}", f"p{n}", "margin" if n % 2 else "cash",
                        500_000, BIG_CENTS - n, "2026-01-01T00:00:00+00:00",
                        None if n % 4 else "2026-02-01T00:00:00+00:00"))
    for n in range(5 * CHUNK + 3):
        cursor.execute(sql("INSERT INTO bars (symbol, interval, time, open_units, high_units, low_units, close_units,"
                           " volume) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                       ("AAPL" if n % 2 else "MSFT", "1m", f"2026-01-02T14:{n:02d}:00+00:00", 1_500_000 + n,
                        1_500_100 + n, 1_499_900 + n, 1_500_050 + n, 10 ** 12 + n))


def contents(db):
    """{table: its rows}, every table but schema_version (each database's own record of its migrations), each row
    as its (column, value) pairs by column name, the rows in one order whatever order the database gave them."""
    if db.dialect == "sqlite":
        connection = sqlite3.connect(db.path)
        listing = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    else:
        connection = psycopg.connect(db.url)
        listing = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    try:
        out = {}
        for (table,) in connection.execute(listing).fetchall():
            if table != "schema_version":
                cursor = connection.execute(f'SELECT * FROM "{table}"')
                names = [d[0] for d in cursor.description]
                out[table] = sorted((tuple(sorted(zip(names, row))) for row in cursor.fetchall()), key=repr)
        return out
    finally:
        connection.close()


@pytest_twisted.ensureDeferred
async def test_a_copy_a_chunk_at_a_time_holds_every_row_as_it_was(db, tmp_path):
    schema = None
    if db.dialect == "sqlite":
        schema, url = _postgres_schema()
    else:
        url = f"sqlite:///{tmp_path}/copy.db"
    target = Database(url)
    try:
        await target.upgrade(backup=False)
        await db.run(fill, db.sql)
        counts = await threads.deferToThread(database_copy.copy, db, target, chunk=CHUNK)
        theirs, ours = contents(db), contents(target)
        assert {t: len(rows) for t, rows in theirs.items()} == counts
        assert (counts["accounts"], counts["portfolios"], counts["bars"]) == (2 * CHUNK, 2 * CHUNK + 1, 5 * CHUNK + 3)
        assert ours == theirs
        # New ids go on after the largest one copied (20), on either kind of target.
        new = await target.run(lambda cursor: target.insert_many(
            cursor, "INSERT INTO accounts (username, username_key, email, cash_cents, created) VALUES"
            " (?, ?, ?, ?, ?) RETURNING id", [("new", "new", "new@example.com", 0, "2026-03-01T00:00:00+00:00")]))
        assert new == [21]
    finally:
        target.close()
        if schema is not None:
            _drop_schema(schema)
