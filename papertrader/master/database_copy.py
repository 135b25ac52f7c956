"""Copying a master's database to another, of either kind (SQLite to PostgreSQL, or back): ``papertrader-admin
copy-database --to URL``.

No master may be running (the data dir's lock and the source database's are held).  The source must be at this
release's schema version (``migrate`` first), the target hold no PaperTrader schema yet.  The target gets the
schema as a master's first start makes it, then every row of every table, table by table in the order their
foreign keys need (rows by id), in one transaction: a copy that fails leaves the target without the rows (its
empty schema stays: a second attempt is refused until the target's tables are dropped, as its refusal says).  PostgreSQL's id sequences
then continue after the largest id copied.  The rows of each table are counted on both sides before the commit.
The source is only read.

Rows go ``CHUNK`` at a time, read (a PostgreSQL source through a server-side cursor) and written (one
executemany each): the memory a copy needs is a chunk's, however many years of bars the tables hold.
"""

import sqlite3

import psycopg

from papertrader.errors import InvalidInput
from papertrader.master.db import pg_url

#: Rows read and written at a time.
CHUNK = 1000
#: What a migration writes itself (it is there after the target's schema is made): not copied.
SKIPPED = ("schema_version",)


class CopyRefused(InvalidInput):
    """The copy cannot be made as asked (a target that is not empty, a source not at this release's version)."""


def _connect(db):
    if db.dialect == "sqlite":
        connection = sqlite3.connect(db.path, isolation_level=None)
        connection.execute("PRAGMA foreign_keys=ON")
        return connection
    return psycopg.connect(pg_url(db.url))


def _tables(cursor, dialect):
    """{table: [(column, type)]} of the schema, types in lower case."""
    if dialect == "sqlite":
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        names = [r[0] for r in cursor.fetchall()]
        out = {}
        for name in names:
            cursor.execute(f'PRAGMA table_info("{name}")')
            out[name] = [(r[1], (r[2] or "").lower()) for r in cursor.fetchall()]
        return out
    cursor.execute("SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema ="
                   " current_schema() ORDER BY table_name, ordinal_position")
    out = {}
    for table, column, kind in cursor.fetchall():
        out.setdefault(table, []).append((column, kind.lower()))
    return out


def _references(cursor, dialect, tables):
    """{table: {the tables its foreign keys name}} (itself left out: its rows go by id)."""
    out = {t: set() for t in tables}
    if dialect == "sqlite":
        for table in tables:
            cursor.execute(f'PRAGMA foreign_key_list("{table}")')
            out[table] = {r[2] for r in cursor.fetchall()} - {table}
        return out
    cursor.execute("SELECT tc.table_name, ccu.table_name FROM information_schema.table_constraints tc"
                   " JOIN information_schema.constraint_column_usage ccu ON tc.constraint_name = ccu.constraint_name"
                   " AND tc.table_schema = ccu.table_schema WHERE tc.constraint_type = 'FOREIGN KEY'"
                   " AND tc.table_schema = current_schema()")
    for table, named in cursor.fetchall():
        if table in out and named != table:
            out[table].add(named)
    return out


def _in_order(references):
    """The tables, each after those its foreign keys name."""
    done, order = set(), []

    def visit(table, path=()):
        if table in done:
            return
        if table in path:
            raise CopyRefused(f"the tables' foreign keys go round in a circle ({' -> '.join(path + (table,))})")
        for named in sorted(references.get(table, ())):
            if named in references:
                visit(named, path + (table,))
        done.add(table)
        order.append(table)

    for table in sorted(references):
        visit(table)
    return order


def _value(value, kind):
    """A source value as the target's column of ``kind`` takes it."""
    if value is None:
        return None
    if kind == "boolean":
        return bool(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _source_cursor(connection, dialect):
    """A cursor that reads a table's rows a chunk at a time.  PostgreSQL's ordinary (client-side) cursor would
    receive the whole result at execute(), a table of years of bars all in memory at once: a named (server-side)
    cursor is a DECLAREd one that each fetchmany() FETCHes the next chunk of.  It lives in the source's
    transaction (psycopg opens one at the first statement: the connection is not in autocommit).  One name
    serves every table: each cursor is closed before the next is declared.  SQLite's cursor steps through the
    result as rows are fetched already."""
    if dialect == "postgresql":
        return connection.cursor(name="papertrader_copy")
    return connection.cursor()


def _copy_rows(read, write, table, columns, mark, chunk):
    """Copy the rows of ``table`` (its ``columns``: [(name, the target's type)]) from the ``read`` cursor to the
    ``write`` one, by id where it has one, ``chunk`` rows at a time (one executemany each); how many were copied."""
    names = ", ".join(f'"{c}"' for c, _ in columns)
    by_id = " ORDER BY id" if any(c == "id" for c, _ in columns) else ""
    read.execute(f'SELECT {names} FROM "{table}"{by_id}')
    insert = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(mark for _ in columns)})'
    copied = 0
    while rows := read.fetchmany(chunk):
        write.executemany(insert, [tuple(_value(v, kind) for v, (_, kind) in zip(row, columns)) for row in rows])
        copied += len(rows)
    return copied


def _check_count(write, table, copied):
    """The rows copied counted again on the target's side, before the commit."""
    write.execute(f'SELECT COUNT(*) FROM "{table}"')
    if write.fetchone()[0] != copied:
        raise CopyRefused(f"table {table}: the target does not hold the {copied} rows copied")


def _continue_ids(write, table):
    """Set the PostgreSQL sequence of ``table``'s id, if it has one, to go on after the largest id copied."""
    write.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,))
    sequence = write.fetchone()[0]
    if sequence is not None:
        write.execute(f'SELECT setval(%s, COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM "{table}"', (sequence,))


def copy(source, target, chunk=CHUNK):
    """Copy every row of ``source`` (a Database) into ``target`` (a Database with its schema made and no rows but
    what migrations write), ``chunk`` rows at a time: what it holds in memory does not grow with the tables.
    Returns {table: rows copied}.  Blocking: run it in a thread."""
    src, dst = _connect(source), _connect(target)
    try:
        read, write = src.cursor(), dst.cursor()
        theirs, ours = _tables(read, source.dialect), _tables(write, target.dialect)
        read.close()
        missing = sorted(set(theirs) - set(ours) - set(SKIPPED))
        if missing:
            raise CopyRefused(f"the target has no table {', '.join(missing)}: both must be at the same schema version")
        order = [t for t in _in_order(_references(write, target.dialect, ours)) if t in theirs and t not in SKIPPED]
        mark = "?" if target.dialect == "sqlite" else "%s"
        if target.dialect == "sqlite":
            write.execute("BEGIN IMMEDIATE")
        for table in reversed(order):  # what the target's migrations wrote goes first (a copy's rows replace it)
            write.execute(f'DELETE FROM "{table}"')
        counts = {}
        for table in order:
            columns = [(c, kind) for c, kind in ours[table] if c in {name for name, _ in theirs[table]}]
            read = _source_cursor(src, source.dialect)
            try:
                counts[table] = _copy_rows(read, write, table, columns, mark, chunk)
            finally:
                read.close()
            _check_count(write, table, counts[table])
            if target.dialect == "postgresql" and any(c == "id" for c, _ in columns):
                _continue_ids(write, table)
        dst.commit() if target.dialect == "postgresql" else write.execute("COMMIT")
        return counts
    except BaseException:
        try:
            if target.dialect == "postgresql":
                dst.rollback()
            else:
                dst.execute("ROLLBACK")
        except Exception:
            pass
        raise
    finally:
        src.close()
        dst.close()
