"""Backups and upgrades as an operator meets them: real ``twistd`` masters, real ``papertrader-admin`` processes.

``papertrader-admin backup`` copies the SQLite database while the master serves orders; ``restore`` refuses while
a master runs and anything that is not a usable PaperTrader database, and puts a backup back into a stopped data
dir; a master refuses a database newer than itself, backs up an SQLite one before migrating it, and leaves an
existing PostgreSQL one alone until ``papertrader-admin migrate --backed-up``.
"""

import json
import os
import sqlite3
import stat
import sys

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, utils

from papertrader import tls
from papertrader.master import files
from papertrader.master.db import Database, pg_schema, redact, shipped
from papertrader.worker.service import Worker
from tests.conftest import Client, bounded, wait_for_log
from tests.test_crash import register_worker
from tests.test_daemons import (ENV, assert_failed_start, loopback, master_dir, no_process_left_behind,  # noqa: F401
                                stopped_cleanly, twistd)
from tests.test_migrations import at_version_5_with_orders, backups_in

LATEST = shipped("sqlite")[-1][0]
MASTER_OPTIONS = ("--update-interval", "3600", "--bcrypt-rounds", "4", "--assets", "AAPL,MSFT")


async def admin(*argv):
    """Run ``papertrader-admin ARGV`` without blocking the reactor; (status, stdout, stderr)."""
    out, err, status = await bounded(
        utils.getProcessOutputAndValue(sys.executable, ["-m", "papertrader.admin", *argv], env=ENV, path=os.getcwd()),
        f"papertrader-admin {' '.join(argv)}")
    return status, out.decode(), err.decode()


def failure(out, err):
    """The code of a failed --json command, after checking it said why in one line and no traceback."""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    answer = json.loads(out)
    assert answer["message"] in err
    return answer["error"]


def start_master(data_dir, port=0, *extra):
    return twistd("papertrader-master", "--data-dir", data_dir, "--port", loopback(data_dir, port), *MASTER_OPTIONS,
                  *extra)


async def listening(master):
    await master.wait_for("master listening on port")
    return int(master.output.split(b"master listening on port ")[1].split()[0])


async def stop(master):
    master.transport.signalProcess("TERM")
    assert stopped_cleanly(await master.ended)


def client_order_ids(db_path):
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("SELECT client_order_id FROM orders ORDER BY id")]
    finally:
        db.close()


@pytest_twisted.ensureDeferred
async def test_a_backup_taken_while_the_master_serves_orders_restores_into_the_stopped_data_dir(tmp_path, settings):
    data_dir = master_dir(tmp_path)
    db_path = os.path.join(data_dir, "papertrader.db")
    register_worker(data_dir, "w1")
    master = start_master(data_dir)
    port = await listening(master)
    bundle = files.worker_dir(data_dir, "w1")
    worker = Worker(bundle, "w1", ("localhost", port), settings, reactor,
                    listen=tls.listen_description(0, "127.0.0.1", os.path.join(bundle, files.WORKER_CERT)))
    linked = wait_for_log(worker.logs, "linked to the master")
    worker.startService()
    try:
        await linked
        await master.wait_for("worker w1 linked")
        d = Client(data_dir, str(tmp_path / "home"), port)
        status, _, err = await d.cli("register", "carol", "carol@example.com", "--password-stdin",
                                     stdin="long password\n")
        assert status == 0, err
        status, _, err = await d.cli("login", "carol", "--password-stdin", stdin="long password\n")
        assert status == 0, err

        async def buy(client_order_id):
            status, out, err = await d.cli("buy", "AAPL", "1", "--client-order-id", client_order_id)
            assert status == 0, err
            assert json.loads(out)["status"] == "new"

        for n in range(3):
            await buy(f"before-{n}")
        # The backup runs while orders keep being acknowledged (written) by the master.
        file = str(tmp_path / "saved" / "monday.db")
        os.makedirs(os.path.dirname(file))
        backup = defer.ensureDeferred(admin("--json", "--data-dir", data_dir, "backup", "--to", file))
        during = []
        while not backup.called and len(during) < 500:
            during.append(f"during-{len(during)}")
            await buy(during[-1])
        status, out, err = await backup
        assert status == 0, err
        made = json.loads(out)
        assert (made["file"], made["version"]) == (file, LATEST)
        await buy("after-0")

        # Restore (and migrate) refuse while the master runs: nothing is touched.
        for argv in (["restore", file], ["migrate"]):
            status, out, err = await admin("--json", "--data-dir", data_dir, *argv)
            assert status == 1 and failure(out, err) == "master_running", (argv, err)
            assert f"a master is running with the data dir {data_dir} (pid {master.transport.pid})" in err
        assert client_order_ids(db_path)[-1] == "after-0"

        # Stopped, the data dir takes the backup back.
        await stop(master)
        status, out, err = await admin("--data-dir", data_dir, "restore", file)
        assert status == 0, err
        assert f"database {db_path} restored from {file} (schema version {made['version']})" in out
        replaced = out.split("the database it replaced is saved as ")[1].strip()
        assert client_order_ids(replaced)[-1] == "after-0"  # a restore loses nothing either

        relinked = wait_for_log(worker.logs, "linked to the master")
        master = start_master(data_dir, port)
        await listening(master)
        await relinked
        status, out, err = await d.cli("orders", "--limit", "500")
        assert status == 0, err
        seen = [order["client_order_id"] for order in json.loads(out)]
        assert seen == client_order_ids(file)
        # Every order acknowledged before the backup began is back; those acknowledged while it ran are there up
        # to the moment of its snapshot (a prefix: nothing torn); the one acknowledged after it is not.
        assert seen[:3] == ["before-0", "before-1", "before-2"]
        assert seen[3:] == during[:len(seen) - 3]
        assert "after-0" not in seen
        status, out, err = await d.cli("buy", "AAPL", "1", "--client-order-id", "after-restore")
        assert status == 0, err
    finally:
        await worker.stopService()
        if master.transport.pid:
            await stop(master)
    text = master.output.decode(errors="replace")
    assert "Traceback" not in text, text


@pytest_twisted.ensureDeferred
async def test_restore_refuses_what_it_cannot_use_and_leaves_the_database_alone(tmp_path):
    data_dir = master_dir(tmp_path)
    db_path = os.path.join(data_dir, "papertrader.db")
    db = Database(Database.default_url(data_dir), data_dir)
    try:
        await db.upgrade()
        await db.execute("INSERT INTO workers (name, fingerprint, created) VALUES ('w1', 'ABCD', 't')")
    finally:
        db.close()
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    foreign = str(tmp_path / "other.db")
    with sqlite3.connect(foreign) as other:
        other.execute("CREATE TABLE things (x)")
    other.close()
    newer = str(tmp_path / "newer.db")
    status, _, err = await admin("--data-dir", data_dir, "backup", "--to", newer)
    assert status == 0, err
    with sqlite3.connect(newer) as later:
        later.execute("INSERT INTO schema_version (version, applied) VALUES (9999, 't')")
    later.close()
    listing = sorted(set(os.listdir(data_dir) + ["logs"]))  # where papertrader-admin logs what it does (a backup too)
    for file, code, message in (
            (str(text), "not_a_database", f"{text} is not a PaperTrader database (file is not a database)"),
            (foreign, "not_a_database", f"{foreign} is not a PaperTrader database (it has no schema_version table)"),
            (newer, "schema_too_new", f"{newer} is at schema version 9999, newer than this release of PaperTrader"
                                      " knows"),
            (db_path, "invalid_input", f"{db_path} is the database itself"),
            (str(tmp_path / "nothing.db"), "invalid_input", "nothing.db is not a file")):
        status, out, err = await admin("--json", "--data-dir", data_dir, "restore", file)
        assert status == 1 and failure(out, err) == code, (file, err)
        assert message in err, err
    assert sorted(os.listdir(data_dir)) == listing, (listing, os.listdir(data_dir))  # no copy, no temporary file
    check = sqlite3.connect(db_path)
    try:
        assert check.execute("SELECT name FROM workers").fetchall() == [("w1",)]
    finally:
        check.close()


@pytest_twisted.ensureDeferred
async def test_backup_never_overwrites_and_needs_a_database(tmp_path):
    data_dir = master_dir(tmp_path)
    status, out, err = await admin("--json", "--data-dir", data_dir, "backup")
    assert status == 1 and failure(out, err) == "not_a_database"
    assert f"there is no database at {os.path.join(data_dir, 'papertrader.db')}" in err
    assert not os.path.exists(os.path.join(data_dir, "papertrader.db"))  # never created by a backup
    status, _, err = await admin("--data-dir", data_dir, "workers")  # makes the database
    assert status == 0, err
    status, out, err = await admin("--data-dir", data_dir, "backup")  # default: next to the database
    assert status == 0, err
    [made] = backups_in(data_dir)
    assert out.strip().endswith(made) and os.path.basename(made).startswith("papertrader.db.v")
    # What papertrader-admin did is in DATA_DIR/logs/admin.log, a backup too (when the last one was made, where).
    with open(os.path.join(data_dir, "logs", "admin.log")) as f:
        logged = f.read()
    assert f"backup of the database {os.path.join(data_dir, 'papertrader.db')} (schema version" in logged, logged
    assert f") written to {made}" in logged, logged
    taken = tmp_path / "taken.db"
    taken.write_text("precious\n")
    status, out, err = await admin("--json", "--data-dir", data_dir, "backup", "--to", str(taken))
    assert status == 1 and failure(out, err) == "invalid_input"
    assert "a backup never overwrites a file" in err
    assert taken.read_text() == "precious\n"
    status, out, err = await admin("--json", "--data-dir", data_dir, "backup", "--to", str(tmp_path / "no" / "x.db"))
    assert status == 1 and failure(out, err) == "invalid_input" and "No such file or directory" in err


def test_two_backups_in_one_second_are_two_files(tmp_path):
    """The default name holds the time to the second: a second backup in that second (or the master's before
    a migration just after an operator's) was refused ('None exists')."""
    from datetime import datetime, timezone

    from papertrader.master import backups as backups_module

    db_path, now = str(tmp_path / "papertrader.db"), datetime(2026, 11, 30, 21, 0, 0, tzinfo=timezone.utc)
    first = backups_module.backup_path(db_path, 13, now)
    open(first, "w").close()
    second = backups_module.backup_path(db_path, 13, now)
    assert second != first and second.endswith("-20261130T210000Z-2" + backups_module.SUFFIX)
    open(second, "w").close()
    assert backups_module.backup_path(db_path, 13, now).endswith("Z-3" + backups_module.SUFFIX)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_backup_and_restore_of_postgresql_say_how_to_use_pg_dump(database_url, tmp_path):
    data_dir = master_dir(tmp_path)
    for argv in (["backup"], ["restore", str(tmp_path / "x.dump")]):
        status, out, err = await admin("--json", "--data-dir", data_dir, "--database", database_url, *argv)
        assert status == 1 and failure(out, err) == "use_pg_dump", err
        assert "pg_dump --format=custom" in err and "pg_restore --clean --if-exists" in err
        assert f"--schema={pg_schema(database_url)} " in err  # this schema only, not the whole database


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_pg_dump_advice_never_shows_a_password_and_says_where_it_goes(database_url, tmp_path):
    data_dir = master_dir(tmp_path)
    with_password = database_url.replace("postgres@", "postgres:s3cret-pw@", 1)  # (trust auth: any password)
    assert with_password != database_url
    status, out, err = await admin("--json", "--data-dir", data_dir, "--database", with_password, "backup")
    assert status == 1 and failure(out, err) == "use_pg_dump", err
    assert "s3cret-pw" not in err and "postgres:***@" in err
    # The commands as printed cannot carry it: the person is told how pg_dump finds it.
    assert "~/.pgpass" in err and "PGPASSWORD" in err


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_papertrader_admin_works_on_the_database_the_master_last_started_with(database_url, tmp_path):
    data_dir = master_dir(tmp_path)
    sqlite_path = os.path.join(data_dir, "papertrader.db")
    master = start_master(data_dir, 0, "--database", database_url)
    try:
        await listening(master)
    finally:
        await stop(master)
    # Not told the database again (as the README's commands are written): the master's, not a new SQLite one.
    status, out, err = await admin("--json", "--data-dir", data_dir, "register-worker", "w1")
    assert status == 0, err
    status, out, err = await admin("--json", "--data-dir", data_dir, "backup")
    assert status == 1 and failure(out, err) == "use_pg_dump"
    assert not os.path.exists(sqlite_path)
    db = Database(database_url, data_dir)
    try:
        assert await db.query("SELECT name FROM workers") == [("w1",)]
    finally:
        db.close()
    assert stat.S_IMODE(os.stat(os.path.join(data_dir, files.DATABASE_FILE)).st_mode) == 0o600  # it may hold a password
    # Started again without --database: the same database, never a new SQLite file beside it.
    master = start_master(data_dir)
    try:
        await listening(master)
    finally:
        await stop(master)
    status, out, err = await admin("--json", "--data-dir", data_dir, "workers")
    assert (status, [w["name"] for w in json.loads(out)]) == (0, ["w1"]), err
    if database_url.startswith("sqlite"):
        return
    assert not os.path.exists(sqlite_path)
    # Another database only when told (it starts empty: nothing is copied); then that is the one from then on.
    master = start_master(data_dir, 0, "--database", f"sqlite:///{sqlite_path}")
    ended = await master.ended
    assert ended.exitCode == 2 and b"--database: this data dir's master last used" in master.output
    master = start_master(data_dir, 0, "--database", f"sqlite:///{sqlite_path}", "--new-database")
    try:
        await listening(master)
    finally:
        await stop(master)
    status, out, err = await admin("--json", "--data-dir", data_dir, "workers")
    assert (status, json.loads(out)) == (0, []), err
    assert os.path.exists(sqlite_path)


@pytest_twisted.ensureDeferred
async def test_a_master_refuses_a_database_newer_than_itself_in_one_line(database_url, tmp_path):
    data_dir = master_dir(tmp_path)
    db = Database(database_url, data_dir)
    try:
        await db.upgrade()
        await db.execute("INSERT INTO schema_version (version, applied) VALUES (9999, 't')")
    finally:
        db.close()
    known = db.known_version()
    master = start_master(data_dir, 0, "--database", database_url)
    ended = await master.ended
    assert_failed_start(ended, master.output, f"is at schema version 9999, newer than this release of PaperTrader"
                                              f" knows ({known}): run the release that wrote it, or restore a backup")
    assert b"listening on port" not in master.output
    # Not told the database: the one the refused master was given (noted before it would migrate).
    status, out, err = await admin("--json", "--data-dir", data_dir, "workers")
    assert status == 1 and failure(out, err) == "schema_too_new"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_master_backs_up_an_sqlite_database_before_migrating_it_and_logs_where(database_url, tmp_path):
    data_dir = master_dir(tmp_path)
    await at_version_5_with_orders(Database.default_url(data_dir), data_dir)
    master = start_master(data_dir)
    try:
        await listening(master)
    finally:
        await stop(master)
    [made] = backups_in(data_dir)
    assert os.path.basename(made).startswith("papertrader.db.v5-")
    with open(os.path.join(data_dir, "logs", "master.log"), encoding="utf-8") as f:
        log = f.read()
    assert f"database at schema version 5 backed up to {made} before migrating" in log
    assert "database migrated from schema version 5 to" in log
    assert client_order_ids(made) == ["a", "b", "c"]
    # A second start has nothing to migrate and copies nothing.
    master = start_master(data_dir)
    try:
        await listening(master)
    finally:
        await stop(master)
    assert backups_in(data_dir) == [made]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_master_leaves_an_existing_postgresql_database_alone_until_admin_migrate_backed_up(
        database_url, tmp_path):
    data_dir = master_dir(tmp_path)
    await at_version_5_with_orders(database_url, data_dir)
    master = start_master(data_dir, 0, "--database", database_url)
    ended = await master.ended
    line = assert_failed_start(ended, master.output, "is at schema version 5 and this release needs version")
    assert "pg_dump --format=custom --file=papertrader-v5.dump" in line and "migrate --backed-up" in line
    status, out, err = await admin("--json", "--data-dir", data_dir, "--database", database_url, "migrate")
    assert status == 1 and failure(out, err) == "backup_first"
    status, out, err = await admin("--json", "--data-dir", data_dir, "--database", database_url, "migrate",
                                   "--backed-up")
    assert status == 0, err
    done = json.loads(out)
    assert (done["before"], done["backup"]) == (5, None) and done["applied"][0].startswith("0006_")
    status, out, err = await admin("--data-dir", data_dir, "--database", database_url, "migrate")
    assert (status, out.strip()) == (0, f"database at schema version {done['after']}: up to date"), err
    master = start_master(data_dir, 0, "--database", database_url)
    try:
        await listening(master)
        # While it runs, nothing else migrates that database.
        other = master_dir(tmp_path, "other")
        status, out, err = await admin("--json", "--data-dir", other, "--database", database_url, "migrate")
        assert status == 1 and failure(out, err) == "master_running"
        assert "a master is running against the database" in err
    finally:
        await stop(master)



@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_admin_commands_back_up_an_older_sqlite_database_before_migrating_it(database_url, tmp_path):
    data_dir = master_dir(tmp_path)
    await at_version_5_with_orders(Database.default_url(data_dir), data_dir)
    status, out, err = await admin("--data-dir", data_dir, "workers")  # any command that opens the database
    assert (status, out.strip()) == (0, "No workers."), err
    [made] = backups_in(data_dir)
    assert err.strip().splitlines() == [
        f"papertrader-admin: database migrated from schema version 5 to {LATEST}; backup of version 5: {made}",
        "papertrader-admin: no master is running with this data dir: the workers as registered (none is connected)"]
    assert client_order_ids(made) == ["a", "b", "c"]
    status, out, err = await admin("--json", "--data-dir", data_dir, "migrate")
    assert status == 0 and json.loads(out)["applied"] == [] and err == "", err


@pytest_twisted.ensureDeferred
async def test_a_database_is_copied_into_the_other_kind_and_the_master_goes_on_there(tmp_path, settings, clock,
                                                                                     database_url):
    """Moving from SQLite to PostgreSQL (or back) started an empty database: now papertrader-admin copy-database
    copies every row (accounts, sessions, portfolios, orders and fills, watchlists, API keys, workers, candles),
    and the master starts on the copy, where everything is as it was and new ids follow the copied ones."""
    from tests.conftest import _drop_schema, _postgres_schema, start_cluster

    schema = None
    if database_url.startswith("sqlite"):
        schema, target = _postgres_schema()
    else:
        target = f"sqlite:///{tmp_path}/copy.db"
    d = await start_cluster(tmp_path, settings, database_url, clock)
    try:
        for argv in (["register", "alice", "alice@example.com", "--password-stdin"],
                     ["login", "alice", "--password-stdin"]):
            status, _, err = await d.cli(*argv, stdin="long password\n")
            assert status == 0, err
        for argv in (["buy", "AAPL", "3"], ["watchlist", "create", "tech", "AAPL,MSFT"], ["api-key", "create"],
                     ["portfolio", "create", "growth", "--cash", "5000"]):
            status, _, err = await d.cli(*argv)
            assert status == 0, err
        await d.tick()
        status, _, err = await d.cli("sell", "AAPL", "1", "--limit", "100000", "--tif", "gtc")
        assert status == 0, err
        before = {what: json.loads((await d.cli(*what.split()))[1]) for what in ("portfolio", "orders --status all",
                                                                               "history", "watchlist list")}
    finally:
        await d.cluster.stopService()
    try:
        status, out, err = await admin("--json", "--data-dir", d.data_dir, "copy-database", "--to", target)
        assert status == 0, err
        done = json.loads(out)
        assert done["counts"]["orders"] == 2 and done["counts"]["accounts"] == 1 and done["counts"]["workers"] == 2
        assert done["counts"]["bars"] > 0 and done["rows"] == sum(done["counts"].values())
        # Into the master's own database, however it is written: refused as that.
        own = database_url.replace(":5432/", "/") if database_url.startswith("postgresql") else \
            f"sqlite:///{tmp_path}/../{tmp_path.name}/papertrader.db"
        status, out, err = await admin("--json", "--data-dir", d.data_dir, "--database", database_url,
                                       "copy-database", "--to", own)
        assert status == 1 and "--to names the master's database itself" in err, err
        # Into a database that is not empty: refused, nothing done.
        status, out, err = await admin("--json", "--data-dir", d.data_dir, "--database", database_url,
                                       "copy-database", "--to", target)
        assert status == 1 and failure(out, err) == "invalid_input" and "holds a PaperTrader database already" in err
        if target.startswith("sqlite"):  # (going back to SQLite: the file the master used before, say)
            assert ": copy only into an empty database: move that file away first, or give --to a new file" in err, err
        # The master starts on the copy (not told: it is the one recorded), and all is as it was.
        d = await start_cluster(tmp_path, settings, None, clock)
        try:
            assert redact(d.cluster.master.db.url) == redact(Database(target).url)
            after = {what: json.loads((await d.cli(*what.split()))[1]) for what in before}

            def held(p):  # (not its value: the market moved on at the restart)
                return p["cash"], p["realized_pl"], [(h["symbol"], h["quantity"], h["average_price"])
                                                     for h in p["positions"]]

            assert held(after.pop("portfolio")) == held(before["portfolio"])
            assert after == {k: v for k, v in before.items() if k != "portfolio"}
            status, out, err = await d.cli("buy", "MSFT", "1")
            assert status == 0, err
            assert json.loads(out)["id"] > max(o["id"] for o in before["orders --status all"])
            status, _, err = await d.cli("login", "alice", "--password-stdin", stdin="long password\n")
            assert status == 0, err  # its password hash came too
        finally:
            await d.cluster.stopService()
    finally:
        if schema is not None:
            _drop_schema(schema)
