"""The files that hold users' data are readable by their owner only (they were 0644 inside a 0700 data dir:
safe only while nobody loosened the directory): the SQLite database and its WAL, and the logs."""

import os
import stat

import pytest_twisted

from papertrader.logs import LogSystem
from papertrader.master.db import Database


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest_twisted.ensureDeferred
async def test_the_database_and_its_wal_are_private(tmp_path):
    db = Database(Database.default_url(str(tmp_path)), str(tmp_path))
    try:
        await db.migrate()
        await db.execute("UPDATE schema_version SET version = version")  # a write: the WAL exists
        for name in ("papertrader.db", "papertrader.db-wal", "papertrader.db-shm"):
            assert mode(tmp_path / name) == 0o600, name
    finally:
        db.close()
    os.chmod(tmp_path / "papertrader.db", 0o644)  # as an older release left it
    db = Database(Database.default_url(str(tmp_path)), str(tmp_path))
    try:
        await db.query("SELECT version FROM schema_version")
        assert mode(tmp_path / "papertrader.db") == 0o600
    finally:
        db.close()


def test_the_logs_are_private(tmp_path):
    logs = LogSystem("test", 10, path=str(tmp_path / "logs" / "master.log"), forward=False)
    logs.logger("papertrader.test").info("alice logged in from 192.0.2.1")
    logs.close()
    assert (mode(tmp_path / "logs"), mode(tmp_path / "logs" / "master.log")) == (0o700, 0o600)
