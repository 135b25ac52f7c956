"""``papertrader-admin`` as an operator runs it: a real process, its output and its exit status."""

import json
import os
import subprocess
import sys

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.protocols import amp

from papertrader import commands
from papertrader.master import files
from tests.conftest import WatchedProcess

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def admin(*argv):
    """Run papertrader-admin ARGV; (status, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "papertrader.admin", *argv], env=ENV, capture_output=True,
                          text=True, timeout=60)
    return done.returncode, done.stdout, done.stderr


def one_line(text):
    assert len(text.strip().splitlines()) == 1, text
    return text.strip()


@pytest.fixture
def master_dir(tmp_path):
    data_dir = str(tmp_path / "m")
    files.ensure_master_files(data_dir)
    return data_dir


@pytest.mark.parametrize("argv", [["workers"], ["kick", "w1"], ["register-worker", "w1"]])
def test_a_data_dir_that_is_not_a_masters_is_refused_never_created(tmp_path, argv):
    typo = tmp_path / "TYPO"
    status, out, err = admin("--data-dir", str(typo), *argv)
    assert status == 1
    assert "is not a master's data dir" in one_line(err) and out == ""
    assert not typo.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    status, out, err = admin("--data-dir", str(empty), *argv, "--json")
    assert status == 1
    assert json.loads(out)["error"] == "bad_data_dir"
    assert os.listdir(empty) == []


def test_a_workers_data_dir_is_told_apart_from_a_masters(master_dir, tmp_path):
    """An operator on the worker's machine gives its data dir (a bundle): told so, and told only of what it lacks."""
    status, out, err = admin("--data-dir", master_dir, "register-worker", "eu-1", "--out", str(tmp_path / "eu-1"))
    assert status == 0, err
    bundle = tmp_path / "eu-1"
    before = sorted(os.listdir(bundle))
    status, out, err = admin("--data-dir", str(bundle), "workers")
    assert status == 1 and out == ""
    assert one_line(err) == (f"papertrader-admin: {bundle} is a worker's data dir (its bundle: ca.pem, worker.pem),"
                             " not a master's: run papertrader-admin on the master's machine, with the master's"
                             " --data-dir")
    assert sorted(os.listdir(bundle)) == before
    # A directory with some of a master's files is told which ones it lacks (not all three).
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "ca.pem").write_text("x")
    status, out, err = admin("--data-dir", str(partial), "workers")
    assert "is not a master's data dir (it has no ca-key.pem, master.pem)" in one_line(err), err


@pytest.mark.parametrize("argv, choices", [
    ([], "register-worker|workers|kick|allow|revoke|allow-ip|market|migrate|backup|restore|copy-database|game|"
         "user"),
    (["game"], "create-class"),
    (["user"], "list|show|disable|enable|delete|reset-password"),
])
def test_a_command_without_its_action_names_the_actions(master_dir, argv, choices):
    """It said "the following arguments are required: user_action" (argparse's own name for it)."""
    status, out, err = admin("--data-dir", master_dir, *argv)
    assert status == 2 and out == ""
    assert one_line(err).endswith(f"the following arguments are required: {choices}"), err


def test_json_before_or_after_the_command_and_typed_errors(master_dir):
    for argv in (["--json", "--data-dir", master_dir, "workers"], ["--data-dir", master_dir, "workers", "--json"]):
        status, out, err = admin(*argv)
        assert (status, json.loads(out)) == (0, [])
        assert err == "papertrader-admin: no master is running with this data dir: the workers as registered (none" \
                      " is connected)\n"  # (a stopped master is never mistaken for a fleet with no worker up)
    status, out, _ = admin("--data-dir", master_dir, "register-worker", "w1", "--json")
    registered = json.loads(out)
    assert status == 0 and registered["name"] == "w1" and len(registered["fingerprint"]) == 40
    assert registered["bundle"] == files.worker_dir(master_dir, "w1")
    assert "papertrader-worker" in registered["command"]
    status, out, _ = admin("--json", "--data-dir", master_dir, "kick", "w1")
    assert status == 0 and json.loads(out) == {"name": "w1", "command": "kick", "done": False,
                                               "master_running": False}
    status, out, _ = admin("--data-dir", master_dir, "workers", "--json")
    assert [(w["name"], w["state"]) for w in json.loads(out)] == [("w1", "kicked")]
    status, out, err = admin("--data-dir", master_dir, "register-worker", "w9")
    assert "\nWORKER_HOST: what clients reach the worker by." in out, out  # the placeholder is explained
    # A registration that fails (here: the database cannot be opened) leaves no bundle, private key and all.
    status, out, err = admin("--data-dir", master_dir, "--database", "sqlite:////nonexistent/x.db",
                             "register-worker", "w8")
    assert status == 1 and not os.path.exists(files.worker_dir(master_dir, "w8")), err
    status, out, err = admin("--data-dir", master_dir, "revoke", "w9")
    assert (status, out) == (0, "worker w9: revoke recorded (no master running)\n"), err
    status, out, err = admin("--data-dir", master_dir, "revoke", "w9")  # twice: said so, nothing done again
    assert (status, out) == (0, "worker w9: already revoked\n"), err
    for argv, code, expected in (
            (["kick", "nosuch"], "invalid_input", 1),
            (["allow", "../etc"], "invalid_input", 1),
            (["register-worker", "w2", "--allow-ip", "not-an-address"], "invalid_input", 1),
            (["market", "step", "0"], "invalid_input", 1),
            (["market", "step", "2"], "master_not_running", 1),  # it plays updates: only a running master can
            (["frobnicate"], "usage", 2),
            (["kick"], "usage", 2)):
        status, out, err = admin("--json", "--data-dir", master_dir, *argv)
        assert status == expected, (argv, out, err)
        answer = json.loads(out)
        assert answer["error"] == code and answer["message"] in one_line(err), (argv, out, err)
        assert "Traceback" not in err
    assert not os.path.exists(files.worker_dir(master_dir, "w2"))  # refused before anything was made


def test_registering_again_without_host_names_the_host_its_certificate_keeps(master_dir, tmp_path):
    """Registering a worker again to change --allow-ip, without repeating --host, keeps the certificate's
    name; the printed command said '--public-host WORKER_HOST' and 'Its certificate names only localhost ...'."""
    bundle = str(tmp_path / "eu-2")
    status, out, err = admin("--data-dir", master_dir, "register-worker", "eu-2", "--host", "eu2.example.com",
                             "--out", bundle)
    assert status == 0, err
    status, out, err = admin("--data-dir", master_dir, "register-worker", "eu-2", "--out", bundle,
                             "--allow-ip", "203.0.113.0/24")
    assert status == 0, err
    assert "eu2.example.com" in files.tls.certificate_hostnames(os.path.join(bundle, files.WORKER_CERT))
    assert "--public-host eu2.example.com" in out and "WORKER_HOST" not in out, out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_the_register_worker_hint_names_the_port_the_master_listens_on(deployment):
    d = deployment
    assert d.master_port != 2048
    proc = WatchedProcess()
    reactor.spawnProcess(proc, sys.executable, [sys.executable, "-m", "papertrader.admin", "--data-dir", d.data_dir,
                                                "register-worker", "edge-9", "--host", "edge9.example.com"], env=ENV)
    ended = await proc.ended
    text = proc.output.decode()
    assert getattr(ended, "exitCode", None) == 0, text
    assert f"--master MASTER_HOST:{d.master_port} --public-host edge9.example.com" in text, text
    assert ":2048" not in text
    # The test master has no --host of its own (as one started with --host 127.0.0.1): the hint says what to put.
    assert ("MASTER_HOST: the master's host name or address. Its certificate names only this machine (localhost,"
            " 127.0.0.1, ::1: also when the master was started with one of them as --host)") in text, text


def test_registering_a_worker_again_never_replaces_its_key_unawares(master_dir, tmp_path):
    """Registering a registered worker again with its bundle keeps its key and its allowed addresses; a new
    bundle (a new key) is refused, nothing changed, unless --replace, which says which key it replaces."""
    status, out, err = admin("--json", "--data-dir", master_dir, "register-worker", "eu-1", "--allow-ip",
                             "10.0.0.0/8")
    first = json.loads(out)
    assert status == 0 and first["replaced"] is None, err
    status, out, err = admin("--json", "--data-dir", master_dir, "register-worker", "eu-1")  # its bundle, again
    assert status == 0 and json.loads(out)["fingerprint"] == first["fingerprint"], err
    assert allowed_ips(master_dir, "eu-1") == "10.0.0.0/8"

    elsewhere = str(tmp_path / "eu-1-new")
    status, out, err = admin("--data-dir", master_dir, "register-worker", "eu-1", "--out", elsewhere)
    assert status == 1 and "is already registered" in err and "--replace" in err
    assert not os.path.exists(elsewhere)  # no bundle with a key nobody registered
    status, out, _ = admin("--json", "--data-dir", master_dir, "workers")
    assert [w["fingerprint"] for w in json.loads(out) if w["name"] == "eu-1"] == [first["fingerprint"]]
    assert keyring(master_dir) == [first["fingerprint"]]  # nor its key in the master's keyring

    status, out, err = admin("--data-dir", master_dir, "register-worker", "eu-1", "--replace")
    assert status == 1 and "--replace makes a new key in a new bundle" in err
    status, out, err = admin("--data-dir", master_dir, "register-worker", "eu-1", "--replace", "--out", elsewhere)
    assert status == 0, err
    assert f"it replaces key {first['fingerprint']}" in out
    status, out, _ = admin("--json", "--data-dir", master_dir, "workers")
    [row] = [w for w in json.loads(out) if w["name"] == "eu-1"]
    assert row["fingerprint"] != first["fingerprint"] and allowed_ips(master_dir, "eu-1") == "10.0.0.0/8"
    assert keyring(master_dir) == [row["fingerprint"]]  # the replaced key left the keyring
    # Revoked: its key leaves the keyring, as the README says.
    status, out, err = admin("--data-dir", master_dir, "revoke", "eu-1")
    assert status == 0, err
    assert keyring(master_dir) == []


def test_a_bundle_is_never_written_into_a_directory_that_holds_other_things(master_dir, tmp_path):
    """--out a directory that holds other files (a home, /tmp, the master's own data dir) is refused, nothing
    written into it and nothing registered: the bundle's files (its secret key among them) were mixed into it, and
    the master's data dir gave 'unexpected error (SameFileError ...)'."""
    crowded = tmp_path / "bundles"
    crowded.mkdir()
    (crowded / "notes.txt").write_text("mine\n")
    for out_dir in (str(crowded), master_dir):
        before = sorted(os.listdir(out_dir))
        status, out, err = admin("--data-dir", master_dir, "register-worker", "eu-1", "--out", out_dir)
        assert status == 1 and out == "", err
        assert one_line(err) == (f"papertrader-admin: --out {out_dir} holds other files and is not a worker bundle:"
                                 " give a directory that does not exist yet (the bundle is made there, such as"
                                 f" {os.path.join(out_dir, 'eu-1')}), or this worker's bundle to make it again")
        assert sorted(os.listdir(out_dir)) == before
        status, out, err = admin("--data-dir", master_dir, "register-worker", "eu-1", "--out", out_dir, "--json")
        assert status == 1 and json.loads(out)["error"] == "invalid_input"
    status, out, _ = admin("--json", "--data-dir", master_dir, "workers")
    assert json.loads(out) == [] and keyring(master_dir) == []
    # An empty directory (made beforehand) and a bundle copied back (with the worker's logs) are fine.
    empty = tmp_path / "empty"
    empty.mkdir()
    status, out, err = admin("--json", "--data-dir", master_dir, "register-worker", "eu-1", "--out", str(empty))
    assert status == 0, err
    first = json.loads(out)["fingerprint"]
    (empty / "logs").mkdir()
    (empty / "logs" / "worker.log").write_text("a line\n")
    status, out, err = admin("--json", "--data-dir", master_dir, "register-worker", "eu-1", "--out", str(empty))
    assert status == 0 and json.loads(out)["fingerprint"] == first, err


@pytest.mark.parametrize("host, hint", [
    ("eu1.example.com:2050", "give the name alone, without the port (the worker's --port sets it)"),
    ("https://eu1.example.com", "give the name alone, without 'https://'"),
    ("eu1 example.com", "letters, digits, '-' and '_' in labels of at most 63 separated by dots"),
    ("", "letters, digits, '-' and '_' in labels"),
])
def test_a_host_that_is_no_host_name_is_refused_before_a_bundle_is_made(master_dir, tmp_path, host, hint):
    """It went into the worker's certificate (kept there by every later registration) and into the printed
    command ('--public-host eu1.example.com:2050'), and clients could never reach the worker by it."""
    bundle = tmp_path / "eu-1"
    status, out, err = admin("--data-dir", master_dir, "register-worker", "eu-1", "--host", host, "--out", str(bundle))
    assert status == 1 and out == "", err
    assert one_line(err).startswith(f"papertrader-admin: --host: {host!r} is not a host name or IP address: "), err
    assert hint in err
    assert not bundle.exists()
    status, out, _ = admin("--json", "--data-dir", master_dir, "workers")
    assert json.loads(out) == []
    status, out, err = admin("--data-dir", master_dir, "register-worker", "eu-1", "--host", "2001:db8::7", "--host",
                             "eu1.example.com", "--host", "203.0.113.7", "--out", str(bundle))
    assert status == 0, err


def keyring(master_dir):
    """The fingerprints of the public keys in the master's keyring."""
    from papertrader import gpgkeys

    return sorted(k["fingerprint"] for k in gpgkeys.Keyring(os.path.join(master_dir, "gnupg")).gpg.list_keys())


def allowed_ips(master_dir, name):
    import sqlite3

    with sqlite3.connect(os.path.join(master_dir, "papertrader.db")) as connection:
        return connection.execute("SELECT allowed_ips FROM workers WHERE name = ?", (name,)).fetchone()[0]


async def run_admin(d, *argv):
    """papertrader-admin --data-dir DIR ARGV as a real process while the test's master runs in this one; (status,
    stdout, stderr)."""
    from tests.conftest import WAIT, SeparatedProcess

    proc = SeparatedProcess("")
    reactor.spawnProcess(proc, sys.executable, [sys.executable, "-m", "papertrader.admin", "--data-dir", d.data_dir,
                                                *argv], env=ENV)
    status = (await proc.wait_end(WAIT * 2)).exitCode
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert "Traceback" not in err, err
    return status, out, err


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_the_operator_reads_times_in_the_markets_zone_programs_in_utc(tmp_path, settings, database_url, clock):
    """On a New York market papertrader-admin's text shows times as the command line does, in New York time with
    its abbreviation (the running master names the zone with its answers); --json keeps ISO 8601 in UTC; with no
    master running, a time read from the database is shown in UTC and says so."""
    from dataclasses import replace
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from papertrader.errors import WorkerRefused
    from tests.conftest import start_cluster
    from tests.test_e2e import register_and_login

    d = await start_cluster(tmp_path, replace(settings, calendar="XNYS"), database_url, clock)
    now = datetime.fromtimestamp(clock.seconds(), timezone.utc)
    local = f"{now.astimezone(ZoneInfo('America/New_York')):%Y-%m-%d %H:%M:%S %Z}"
    assert local.endswith((" EDT", " EST"))
    try:
        await register_and_login(d)
        # A registered worker turned away (kicked), as its handshake is: the listing says when, and why.
        await d.master.workers.register("edge-9", files.make_worker_bundle(d.data_dir, "edge-9", (),
                                                                           str(tmp_path / "edge-9")))
        await d.master.workers.kick("edge-9")
        with pytest.raises(WorkerRefused):
            await d.master.workers.admit("edge-9", "192.0.2.9")
        status, out, err = await run_admin(d, "workers")
        assert status == 0, err
        rows = {line.split()[0]: line for line in out.splitlines()[1:]}
        assert local in rows["worker1"], out  # its last heartbeat
        assert rows["edge-9"].endswith(f"{local} worker 'edge-9' was kicked; an operator must allow it again"
                                       " (from 192.0.2.9)"), out
        status, out, err = await run_admin(d, "workers", "--json")
        listed = {w["name"]: w for w in json.loads(out)}
        assert listed["worker1"]["last_heartbeat"] == now.isoformat()  # programs: UTC
        assert listed["edge-9"]["refused_at"].startswith(now.isoformat(timespec="seconds"))
        assert listed["edge-9"]["refused"].startswith(f"{now:%Y-%m-%d %H:%M:%S} worker 'edge-9' was kicked")

        status, out, err = await run_admin(d, "market")
        assert status == 0, err
        # As 'papertrader clock' says it, aligned alike (it said 'is open: yes', 'mode: ...').
        assert f"time:       {local}\n" in out and f"next close: {now:%Y-%m-%d} 16:00:00 EDT\n" in out, out
        assert "market:     open\n" in out or "market:     closed\n" in out, out
        status, out, err = await run_admin(d, "market", "--json")
        clock_answer = json.loads(out)
        assert (clock_answer["time"], clock_answer["timezone"]) == (now.isoformat(), "America/New_York")

        players = tmp_path / "players.txt"
        players.write_text("alice\n")
        status, out, err = await run_admin(d, "game", "create-class", "Class 8", "--players", str(players),
                                           "--creator", "alice", "--start", "2026-09-22", "--end", "2026-12-31",
                                           "--cash", "1000")
        assert status == 0, err
        # Days as given (--end's day is the last one played), as 'papertrader game list' shows them.
        assert out.startswith("game Class 8 created for alice (private), 2026-09-22 to 2026-12-31: 1 player"), out

        status, out, err = await run_admin(d, "user", "list")
        assert status == 0, err
        [row] = out.splitlines()[1:]
        assert row.count(local) == 2, out  # created, last login
        status, out, err = await run_admin(d, "user", "disable", "alice")
        assert status == 0, err
        status, out, err = await run_admin(d, "user", "disable", "alice")
        assert out.startswith(f"alice was already disabled (since {local}): "), out
        status, out, err = await run_admin(d, "user", "show", "alice")
        assert f"\ncreated: {local}\n" in out and f"\ndisabled: since {local}\n" in out, out
        assert "+00:00" not in out
        status, out, err = await run_admin(d, "user", "show", "alice", "--json")
        shown = json.loads(out)
        assert (shown["created"], shown["disabled"]) == (now.isoformat(), now.isoformat())
        assert "timezone" not in shown  # the JSON is as it was
    finally:
        await d.cluster.stopService()
    # No master: the last step as the database holds it, in UTC, said so (no master names the market's zone).
    status, out, err = await run_admin(d, "market")
    assert status == 0, err
    assert out == ("market: no master running (it takes effect when the master starts). Last step:"
                   f" {now:%Y-%m-%d %H:%M:%S} UTC, running\n"), out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_with_no_master_a_market_that_follows_the_wall_clock_cannot_be_paused_or_moved(tmp_path, settings,
                                                                                              database_url, clock):
    """With no master running, 'market pause' on a live market's data dir (alpaca, nasdaq, simulated) said "pause
    recorded; ... it takes effect when the master starts", and status then said "paused"; the master, started,
    ignored it (a live market cannot be paused): the operator was told something that never happened. It is
    refused now, with no master as with one, and nothing is recorded."""
    from tests.conftest import start_cluster

    assert settings.provider == "simulated"
    d = await start_cluster(tmp_path, settings, database_url, clock)
    await d.cluster.stopService()
    for argv in (("pause",), ("resume",), ("seek", "2024-03-04")):
        status, out, err = await run_admin(d, "market", *argv)
        assert (status, out) == (1, ""), (out, err)
        assert err == ("papertrader-admin: the market follows the wall clock (provider simulated, as its master last"
                       " ran): only a replay can be paused, resumed or moved\n"), err
    status, out, err = await run_admin(d, "market")
    assert status == 0 and out.endswith(", running\n") and "recorded" not in out, out


def test_a_workers_allowed_addresses_are_changed_by_name_without_its_bundle(master_dir, database_url):
    """Changing a worker's --allow-ip meant copying its bundle back to the master's machine and registering it
    again with --out BUNDLE.  'allow-ip NAME NET...' changes them by name (and --any lifts them), saying what they
    were and are; with no master running it is recorded in the database (SQLite or PostgreSQL) and applies when
    the worker connects."""
    db = ["--database", database_url]
    status, out, err = admin("--data-dir", master_dir, *db, "register-worker", "eu-1", "--allow-ip", "203.0.113.7")
    assert status == 0, err
    bundle = files.worker_dir(master_dir, "eu-1")
    status, out, err = admin("--data-dir", master_dir, *db, "allow-ip", "eu-1")  # no address: what they are
    assert (status, out) == (0, "worker eu-1 may connect from: 203.0.113.7\n"), err
    status, out, err = admin("--data-dir", master_dir, *db, "allow-ip", "eu-1", "198.51.100.9", "10.1.0.0/16")
    assert (status, out) == (0, "worker eu-1 may connect from: 198.51.100.9, 10.1.0.0/16 (was: 203.0.113.7); no"
                                " master is running: it applies when the worker connects\n"), err
    status, out, err = admin("--json", "--data-dir", master_dir, *db, "allow-ip", "eu-1", "10.1.0.0/16")
    assert status == 0, err
    assert json.loads(out) == {"name": "eu-1", "command": "allow-ip", "before": ["198.51.100.9", "10.1.0.0/16"],
                               "after": ["10.1.0.0/16"], "disconnected": False, "master_running": False}
    # Registered again with its bundle (a new --host, say): its addresses are kept, as the README says.
    status, out, err = admin("--data-dir", master_dir, *db, "register-worker", "eu-1", "--out", bundle)
    assert status == 0, err
    status, out, err = admin("--data-dir", master_dir, *db, "allow-ip", "eu-1", "--any")
    assert (status, out) == (0, "worker eu-1 may connect from: any address (was: 10.1.0.0/16); no master is"
                                " running: it applies when the worker connects\n"), err
    status, out, err = admin("--json", "--data-dir", master_dir, *db, "allow-ip", "eu-1")
    assert json.loads(out)["after"] is None
    # Refused with a typed error, nothing changed: a bad network, an unknown or invalid name, a revoked worker.
    status, out, err = admin("--data-dir", master_dir, *db, "register-worker", "eu-2")
    assert status == 0, err
    status, out, err = admin("--data-dir", master_dir, *db, "revoke", "eu-2")
    assert status == 0, err
    for argv, code, expected, message in (
            (["eu-1", "10.0.0.300"], "invalid_input", 1, "'10.0.0.300' is not an IP address or network"),
            (["eu-1", "10.0.0.0/33"], "invalid_input", 1, "'10.0.0.0/33' is not an IP address or network"),
            (["eu-1", ","], "invalid_input", 1, "no address or network given"),
            (["nosuch", "10.0.0.0/8"], "invalid_input", 1, "no worker named 'nosuch' is registered"),
            (["../etc", "10.0.0.0/8"], "invalid_input", 1, "a worker name is 1-32 letters"),
            (["eu-2", "10.0.0.0/8"], "invalid_input", 1, "worker 'eu-2' was revoked"),
            (["eu-1", "--any", "10.0.0.0/8"], "usage", 2, "--any"),
            ([], "usage", 2, "the following arguments are required: name")):
        status, out, err = admin("--json", "--data-dir", master_dir, *db, "allow-ip", *argv)
        assert status == expected, (argv, out, err)
        answer = json.loads(out)
        assert answer["error"] == code and message in answer["message"], (argv, answer)
        assert answer["message"] in one_line(err) and "Traceback" not in err
    status, out, err = admin("--json", "--data-dir", master_dir, *db, "allow-ip", "eu-1")
    assert json.loads(out)["after"] is None


@pytest_twisted.ensureDeferred
async def test_a_command_the_running_master_does_not_know_says_to_restart_it_with_this_release(
        tmp_path, settings, database_url, clock):
    """A papertrader-admin newer than the running master (installed, the master not restarted yet) asking for a
    command the master does not know said "unexpected error (RemoteAmpError ...)": it now says the master runs an
    older release and to restart it."""
    from papertrader.admin import live
    from papertrader.errors import UnknownCommand
    from tests.conftest import start_cluster

    class AdminFromANewerRelease(commands.Command):
        arguments = [(b"name", amp.Unicode())]
        response = []

    d = await start_cluster(tmp_path, settings, database_url, clock)
    try:
        with pytest.raises(UnknownCommand) as refused:
            await live(reactor, d.data_dir, AdminFromANewerRelease, name="w1")
        assert str(refused.value) == ("the running master does not know this command (AdminFromANewerRelease): it"
                                      " runs an older release of PaperTrader than this papertrader-admin; restart it"
                                      " with this release")
    finally:
        await d.cluster.stopService()
