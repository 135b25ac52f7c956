"""The database layer on SQLite and PostgreSQL: migrations applied once, one query syntax for both."""

import os

import pytest
import pytest_twisted

from papertrader.master.db import Database, is_unique_violation

NOTES = """CREATE TABLE notes (id {{ID}}, body TEXT NOT NULL);
-- a comment; with a semicolon
CREATE INDEX notes_body ON notes (body)"""
BROKEN = "CREATE TABLE notes (id {{ID}}, body TEXT NOT NULL);\nCREATE TABLE broken (x INTEGER"


LATER = 9001  # a migration number after every shipped one, as a later release would add


class WithMigrations(Database):
    """The real Database, with more migration files than the package ships (as a later release would)."""

    def __init__(self, url, data_dir, extra):
        super().__init__(url, data_dir)
        self.extra = extra

    def migrations(self):
        return super().migrations() + self.extra


async def versions(db):
    return [r[0] for r in await db.query("SELECT version FROM schema_version ORDER BY version")]


@pytest_twisted.ensureDeferred
async def test_a_new_database_gets_every_migration_once(database_url, tmp_path):
    db = Database(database_url, str(tmp_path))
    try:
        shipped = db.migrations()
        assert shipped[0][:2] == (1, "0001_initial.sql")
        assert [v for v, _, _ in shipped] == list(range(1, len(shipped) + 1))  # numbered without gaps
        applied = await db.migrate()
        assert applied == [name for _, name, _ in shipped]
        latest = shipped[-1][0]
        assert await db.version() == latest
        assert await versions(db) == list(range(1, latest + 1))
        assert await db.migrate() == []  # nothing is applied twice
        assert await versions(db) == list(range(1, latest + 1))
    finally:
        db.close()


@pytest_twisted.ensureDeferred
async def test_reopening_applies_nothing_and_keeps_the_data(db, database_url, tmp_path):
    await db.execute("INSERT INTO workers (name, fingerprint, created) VALUES (?, ?, ?)", ("w1", "ABCD", "t"))
    again = Database(database_url, str(tmp_path))
    try:
        assert await again.migrate() == []
        assert await again.query("SELECT name, fingerprint FROM workers WHERE name = ?", ("w1",)) == [("w1", "ABCD")]
        assert await again.version() == db.migrations()[-1][0]
    finally:
        again.close()


@pytest_twisted.ensureDeferred
async def test_a_later_migration_is_applied_on_top(db, database_url, tmp_path):
    newer = WithMigrations(database_url, str(tmp_path), [(LATER, "9001_notes.sql", NOTES)])
    try:
        shipped = [v for v, _, _ in Database.migrations(newer)]
        # confirmed: PostgreSQL migrates an existing database once its operator says it is backed up.
        assert await newer.migrate(confirmed=True) == ["9001_notes.sql"]
        assert await versions(newer) == shipped + [LATER]
        assert await newer.migrate() == []
        for body in ("first", "second"):
            await newer.execute("INSERT INTO notes (body) VALUES (?)", (body,))
        assert await newer.query("SELECT id, body FROM notes ORDER BY id") == [(1, "first"), (2, "second")]
    finally:
        newer.close()


@pytest.mark.parametrize("database_url", [
    "sqlite",
    "postgresql",
], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_failed_migration_changes_nothing_and_can_be_retried(database_url, tmp_path):
    broken = WithMigrations(database_url, str(tmp_path), [(LATER, "9001_notes.sql", BROKEN)])
    try:
        with pytest.raises(Exception):
            await broken.migrate()
    finally:
        broken.close()
    fixed = WithMigrations(database_url, str(tmp_path), [(LATER, "9001_notes.sql", NOTES)])
    try:
        shipped = [name for _, name, _ in Database.migrations(fixed)]
        assert await fixed.migrate() == shipped + ["9001_notes.sql"]
        assert await fixed.version() == LATER
    finally:
        fixed.close()


@pytest_twisted.ensureDeferred
async def test_duplicates_are_recognised_as_unique_violations(db):
    await db.execute("INSERT INTO workers (name, fingerprint, created) VALUES (?, ?, ?)", ("w1", "AAAA", "t"))
    with pytest.raises(Exception) as excinfo:
        await db.execute("INSERT INTO workers (name, fingerprint, created) VALUES (?, ?, ?)", ("w2", "AAAA", "t"))
    assert is_unique_violation(excinfo.value)
    # Other integrity errors are not unique violations.
    with pytest.raises(Exception) as excinfo:
        await db.execute("INSERT INTO workers (name, fingerprint, created) VALUES (?, ?, ?)", ("w3", None, "t"))
    assert not is_unique_violation(excinfo.value)
    assert await db.query("SELECT name FROM workers") == [("w1",)]


@pytest_twisted.ensureDeferred
async def test_run_is_one_transaction(db):
    def two_inserts(cursor):
        cursor.execute(db.sql("INSERT INTO workers (name, fingerprint, created) VALUES (?, ?, ?)"), ("w1", "A", "t"))
        cursor.execute(db.sql("INSERT INTO workers (name, fingerprint, created) VALUES (?, ?, ?)"), ("w2", "A", "t"))

    with pytest.raises(Exception):
        await db.run(two_inserts)
    assert await db.query("SELECT COUNT(*) FROM workers") == [(0,)]  # the first insert was rolled back too


@pytest_twisted.ensureDeferred
async def test_large_integers_round_trip(db):
    # Money, prices and quantities are integers in minor units; they must survive as BIGINT on both.
    big = 10**15 * 100
    await db.execute("INSERT INTO bars (symbol, interval, time, open_units, high_units, low_units, close_units,"
                     " volume) VALUES (?, '1d', ?, ?, ?, ?, ?, ?)",
                     ("AAPL", "2026-01-01T00:00:00.000000+00:00", big, big, 1, -1, 2**62))
    assert await db.query("SELECT open_units, low_units, close_units, volume FROM bars") == [(big, 1, -1, 2**62)]


def test_unsupported_database_url_is_refused():
    with pytest.raises(ValueError, match="unsupported database URL 'mysql://x/y'"):
        Database("mysql://x/y")


@pytest_twisted.ensureDeferred
async def test_a_postgresql_schema_written_as_people_write_it(tmp_path):
    """``options=-csearch_path=NAME``, as the README writes it (a second '=' psycopg refuses as such), reaches that
    schema; a URL psycopg cannot read is a ValueError saying why, never a driver's traceback at start."""
    from tests.conftest import POSTGRES, _drop_schema, _postgres_schema

    schema, _ = _postgres_schema()
    db = Database(f"{POSTGRES}?options=-csearch_path={schema}", str(tmp_path))
    try:
        assert db.url.endswith(f"options=-csearch_path%3D{schema}")
        await db.migrate()
        assert (await db.query("SELECT current_schema()")) == [(schema,)]
    finally:
        db.close()
        _drop_schema(schema)
    with pytest.raises(ValueError, match="is not a PostgreSQL URL psycopg reads: .*nosuchparameter"):
        Database(f"{POSTGRES}?nosuchparameter=1")


@pytest_twisted.ensureDeferred
async def test_relative_sqlite_path_is_inside_the_data_dir(tmp_path):
    db = Database("sqlite:papertrader.db", str(tmp_path))
    try:
        assert db.path == os.path.join(str(tmp_path), "papertrader.db")
        await db.migrate()
        assert os.path.exists(tmp_path / "papertrader.db")
    finally:
        db.close()
    assert Database.default_url(str(tmp_path)) == "sqlite:///" + os.path.join(str(tmp_path), "papertrader.db")
