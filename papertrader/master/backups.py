"""SQLite backups: copies made with SQLite's online backup API, checked, and put back.

A copy is a consistent snapshot even while a master writes (one read transaction
of the source, which never blocks its writer in WAL mode), written to a private
temporary file (mode 0600), switched to a single file (no ``-wal`` beside it),
flushed to disk, and only then given its name; an existing file is never
overwritten.  Names: ``DB.vN-YYYYMMDDTHHMMSSZ.backup`` next to the database ``DB``,
N being the schema version it holds (UTC time).

Used by the master before it migrates (``Database.upgrade``) and by
``papertrader-admin backup`` / ``restore``.
"""

import os
import sqlite3
import time
from datetime import datetime, timezone
from urllib.parse import quote

from papertrader.master.upgrades import BackupFailed, NotADatabase, SchemaTooNew

SUFFIX = ".backup"
#: Seconds a copy may wait for a database another connection keeps locked before it gives up.
LOCK_TIMEOUT = 60
_BUSY, _LOCKED = 5, 6  # SQLITE_BUSY, SQLITE_LOCKED (named in sqlite3 only from Python 3.11)


def stamp(now=None):
    """UTC time as it appears in a backup's name: 20260921T120000Z."""
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def backup_path(db_path, version, now=None):
    """Where the backup of ``db_path`` at schema ``version`` goes: next to it, named with the version and time
    (and -2, -3... after it when backups of that second exist already: two in one second are two files)."""
    base = f"{db_path}.v{version}-{stamp(now)}"
    path, n = base + SUFFIX, 1
    while os.path.lexists(path) and n < 1000:
        n += 1
        path = f"{base}-{n}{SUFFIX}"
    return path


def uri(path, mode):
    """A SQLite URI for ``path`` (``mode``: ro, rw), so a missing file is an error instead of a new database."""
    path = os.path.abspath(path)
    return f"file:///{quote(path.lstrip('/'))}?mode={mode}"


def _deadline(seconds):
    """A backup progress callback that gives up once the source has stayed locked for ``seconds``
    (sqlite3's backup otherwise retries a locked database for ever)."""
    end = time.monotonic() + seconds

    def progress(status, remaining, total):
        if status in (_BUSY, _LOCKED) and time.monotonic() > end:
            raise BackupFailed(f"the database stayed locked for {seconds} s")

    return progress


def _fsync(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def snapshot(source, directory, lock_timeout=LOCK_TIMEOUT):
    """Copy the open sqlite3 connection ``source`` to a new private file in ``directory``; its path.

    The copy is one self-contained file (rollback journal mode), flushed to disk.  The caller names it
    (:func:`publish`) or removes it.
    """
    tmp = os.path.join(directory, f".papertrader-{os.getpid()}-{time.monotonic_ns()}.partial")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        target = sqlite3.connect(tmp)
        try:
            source.backup(target, progress=_deadline(lock_timeout))
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
        _fsync(tmp)
    except BaseException:
        discard(tmp)
        raise
    return tmp


def publish(tmp, destination):
    """Give the finished copy ``tmp`` its name ``destination``, never replacing an existing file."""
    try:
        try:
            os.link(tmp, destination)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links
            if os.path.lexists(destination):
                raise FileExistsError(destination)
            os.rename(tmp, destination)
        _fsync(os.path.dirname(os.path.abspath(destination)), directory=True)
    finally:
        discard(tmp)
    return destination


def discard(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def version_of(connection, what):
    """The schema version of the PaperTrader database open on ``connection``; NotADatabase if it is none."""
    try:
        if connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise NotADatabase(f"{what} is damaged (SQLite's quick_check fails)")
        if connection.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
                              " AND name = 'schema_version'").fetchone()[0] == 0:
            raise NotADatabase(f"{what} is not a PaperTrader database (it has no schema_version table)")
        version = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise NotADatabase(f"{what} is not a PaperTrader database ({e})")
    if not version:
        raise NotADatabase(f"{what} is not a PaperTrader database (its schema_version is empty)")
    return version


def open_existing(path, mode="rw"):
    """A connection to the SQLite file ``path``, which must exist (never creates one)."""
    if not os.path.isfile(path):
        raise NotADatabase(f"there is no database at {path}")
    try:
        connection = sqlite3.connect(uri(path, mode), uri=True, isolation_level=None)
        connection.execute("PRAGMA busy_timeout=10000")
    except sqlite3.DatabaseError as e:
        raise NotADatabase(f"cannot open {path}: {e}")
    return connection


def back_up(db_path, destination=None, lock_timeout=LOCK_TIMEOUT):
    """Copy the PaperTrader database ``db_path`` (live or not) to ``destination`` (default: next to it,
    named with its version and the time); fires (path, schema version).  Refuses an existing destination."""
    if destination is not None and os.path.lexists(destination):
        raise FileExistsError(destination)
    source = open_existing(db_path)
    try:
        directory = os.path.dirname(os.path.abspath(destination or db_path))
        try:
            tmp = snapshot(source, directory, lock_timeout)
        except sqlite3.Error as e:
            raise BackupFailed(f"cannot copy {db_path}: {e}")
    finally:
        source.close()
    try:
        copy = sqlite3.connect(uri(tmp, "ro"), uri=True)
        try:
            version = version_of(copy, db_path)
        finally:
            copy.close()
        return publish(tmp, destination or backup_path(db_path, version)), version
    finally:
        discard(tmp)


def stage(file, directory, known):
    """Copy the backup ``file`` into ``directory`` for a restore, after checking it is a PaperTrader
    database this release can use (schema version at most ``known``); fires (temporary path, version)."""
    source = open_existing(file, "ro")
    try:
        try:
            tmp = snapshot(source, directory)
        except sqlite3.DatabaseError as e:
            raise NotADatabase(f"{file} is not a PaperTrader database ({e})")
    finally:
        source.close()
    try:
        copy = sqlite3.connect(tmp)
        try:
            version = version_of(copy, file)
        finally:
            copy.close()
        if version > known:
            raise SchemaTooNew(f"{file} is at schema version {version}, newer than this release of PaperTrader"
                               f" knows ({known}): restore it with the release that wrote it")
    except BaseException:
        discard(tmp)
        raise
    return tmp, version


def settle(path):
    """Fold a closed database's WAL back into its file (rollback journal mode), leaving one file."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        if connection.execute("PRAGMA journal_mode=DELETE").fetchone()[0] != "delete":
            raise BackupFailed(f"{path} is still in use")
    finally:
        connection.close()
    _fsync(path)


def put_in_place(tmp, db_path):
    """Make the staged copy ``tmp`` the database ``db_path`` (no master may be running on it).

    The database it replaces is first saved as a backup next to it (or, if SQLite cannot read it, moved
    aside as ``DB.unreadable-TIME`` with its ``-wal``); returns that file's path, or None if there was none.
    """
    saved = None
    if os.path.exists(db_path) and os.path.getsize(db_path) > 0:
        try:
            saved = _save(db_path)
        except (sqlite3.DatabaseError, NotADatabase):
            saved = _move_aside(db_path)
    elif os.path.exists(db_path + "-wal") and os.path.getsize(db_path + "-wal") > 0:
        saved = _move_aside(db_path)  # a WAL left without its database: kept, never replayed onto the new one
    os.replace(tmp, db_path)
    for suffix in ("-wal", "-shm"):
        discard(db_path + suffix)  # emptied by the checkpoint in _save
    _fsync(os.path.dirname(os.path.abspath(db_path)), directory=True)
    return saved


def _save(db_path):
    """Back up the database about to be replaced, then empty its WAL into it; the backup's path."""
    current = open_existing(db_path)
    try:
        try:
            version = current.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        except sqlite3.OperationalError:
            version = 0
        saved = publish(snapshot(current, os.path.dirname(os.path.abspath(db_path))), backup_path(db_path, version))
        # Everything of the WAL into the file and the WAL emptied: nothing of the old database can be
        # replayed onto the new one.
        busy = current.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            raise BackupFailed(f"{db_path} is in use by another process; stop it and try again")
    finally:
        current.close()
    return saved


def _move_aside(db_path):
    aside = f"{db_path}.unreadable-{stamp()}"
    for suffix in ("-wal", "-shm", ""):
        if os.path.exists(db_path + suffix):
            os.rename(db_path + suffix, aside + suffix)
    return aside
