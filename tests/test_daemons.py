"""The daemons as an operator runs them: real ``twistd`` processes, real ports, real signals.

A daemon that cannot start says why in one line and exits non-zero (so a service manager sees it); a
usage mistake is one line and status 2; a clean SIGTERM logs every goodbye to the log file.
"""

import os
import signal
import socket
import subprocess
import sys

import pytest
import pytest_twisted
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.conch.ssh import keys
from twisted.internet import reactor
from twisted.protocols import amp

from papertrader import tls
from papertrader.master import files
from tests.conftest import WatchedProcess, _drop_schema, _postgres_schema, wait_for_log

TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


_started = []


@pytest_twisted.async_yield_fixture(autouse=True)
async def no_process_left_behind():
    """A test that fails while its daemon still runs must not leave that daemon running."""
    yield
    while _started:
        proc = _started.pop()
        if proc.transport.pid:
            proc.transport.signalProcess("KILL")
            await proc.ended


def twistd(*args):
    """``twistd -n PLUGIN ARGS...`` as a process whose output the test can wait on."""
    proc = WatchedProcess()
    argv = [sys.executable, "-c", TWISTD, "-n", "--pidfile=", *args]
    reactor.spawnProcess(proc, sys.executable, argv, env=ENV, path=os.getcwd())
    _started.append(proc)
    return proc


def run_twistd(*args):
    """Run ``twistd -n PLUGIN ARGS...`` to its end; (status, output)."""
    done = subprocess.run([sys.executable, "-c", TWISTD, "-n", "--pidfile=", *args], env=ENV, cwd=os.getcwd(),
                          capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def status_of(ended):
    return getattr(ended, "exitCode", None)


def stopped_cleanly(ended):
    """A SIGTERM'd twistd ends its reactor cleanly, then ends itself with that signal (as twistd does)."""
    return status_of(ended) == 0 or getattr(ended, "signal", None) == signal.SIGTERM


def listening_socket(interface="127.0.0.1"):
    """A port on loopback that something else already listens on."""
    s = socket.socket()
    s.bind((interface, 0))
    s.listen()
    return s


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def critical_lines(output):
    return [line for line in output.decode(errors="replace").splitlines() if "#critical]" in line]


def master_dir(tmp_path, name="m"):
    data_dir = str(tmp_path / name)
    files.ensure_master_files(data_dir)
    return data_dir


def loopback(data_dir, port):
    return tls.listen_description(port, "127.0.0.1", os.path.join(data_dir, files.MASTER_CERT))


def assert_failed_start(ended, output, reason):
    """Exit status non-zero, the reason in exactly one critical line, no traceback, no port opened."""
    text = output.decode(errors="replace")
    assert status_of(ended) not in (None, 0), text
    lines = critical_lines(output)
    assert len(lines) == 1, text
    assert reason in lines[0], text
    assert "Traceback" not in text
    return lines[0]


# --- item 10: a master or cluster that cannot start -------------------------

@pytest_twisted.ensureDeferred
async def test_a_master_whose_port_is_taken_exits_non_zero_with_one_line(tmp_path):
    data_dir = master_dir(tmp_path)
    taken = listening_socket()
    port = taken.getsockname()[1]
    try:
        master = twistd("papertrader-master", "--data-dir", data_dir, "--port", loopback(data_dir, port))
        ended = await master.ended
    finally:
        taken.close()
    assert_failed_start(ended, master.output, f"cannot listen on 127.0.0.1 port {port}: Address already in use")


@pytest_twisted.ensureDeferred
async def test_twistds_own_log_is_its_users_alone(tmp_path):
    """twistd's log (its access lines: addresses, user agents, paths) was made readable by everyone (0644)."""
    import stat

    data_dir = master_dir(tmp_path)
    taken = listening_socket()
    logfile = os.path.join(str(tmp_path), "twistd.log")
    try:
        master = twistd(f"--logfile={logfile}", "papertrader-master", "--data-dir", data_dir, "--port",
                        loopback(data_dir, taken.getsockname()[1]))
        await master.ended
    finally:
        taken.close()
    assert stat.S_IMODE(os.stat(logfile).st_mode) == 0o600
    assert "cannot listen" in open(logfile).read()


@pytest_twisted.ensureDeferred
async def test_a_master_that_cannot_write_its_files_exits_non_zero_with_one_line(tmp_path):
    """A file of its data dir it cannot write (a full disk; here, a directory where master.port goes): one line
    saying which and why, as for any expected failure, not a traceback; no half-written file left."""
    data_dir = master_dir(tmp_path)
    os.mkdir(os.path.join(data_dir, files.PORT_FILE))
    master = twistd("papertrader-master", "--data-dir", data_dir, "--port", loopback(data_dir, 0))
    ended = await master.ended
    assert_failed_start(ended, master.output,
                        f"master cannot start: cannot write {os.path.join(data_dir, files.PORT_FILE)}: Is a directory")
    assert not os.path.exists(os.path.join(data_dir, files.PORT_FILE + ".tmp"))


@pytest_twisted.ensureDeferred
async def test_a_second_master_on_the_same_data_dir_exits_without_opening_its_port(tmp_path):
    data_dir = master_dir(tmp_path)
    first = twistd("papertrader-master", "--data-dir", data_dir, "--port", loopback(data_dir, 0))
    try:
        await first.wait_for("master listening on port")
        port = free_port()
        second = twistd("papertrader-master", "--data-dir", data_dir, "--port", loopback(data_dir, port))
        ended = await second.ended
        assert_failed_start(ended, second.output, f"another master is already running with the data dir {data_dir}")
        assert b"listening on port" not in second.output  # its TLS port was never opened
        assert b"migration" not in second.output  # nor did it touch the database
    finally:
        first.transport.signalProcess("TERM")
        assert stopped_cleanly(await first.ended)


@pytest_twisted.ensureDeferred
async def test_an_ssl_port_description_without_a_key_uses_the_daemons_own_certificate(tmp_path):
    """--port ssl:PORT:interface=ADDRESS, to choose the interface only, stopped the start with
    "twistd papertrader-master: /current/dir/server.pem: No such file or directory" (Twisted's default key file)."""
    from papertrader.client.connection import connect

    data_dir = master_dir(tmp_path)
    port = free_port()
    master = twistd("papertrader-master", "--data-dir", data_dir, "--port", f"ssl:{port}:interface=127.0.0.1")
    try:
        await master.wait_for(f"master listening on port {port}")
        with open(os.path.join(data_dir, "ca.pem"), "rb") as f:
            ca_pem = f.read()
        # A client that trusts the deployment's CA completes its handshake: the master's own certificate.
        proto = await connect(reactor, "localhost", port, ca_pem, "the master")
        proto.transport.loseConnection()
    finally:
        master.transport.signalProcess("TERM")
        assert stopped_cleanly(await master.ended), master.output.decode()


@pytest_twisted.ensureDeferred
async def test_a_second_master_on_the_same_postgresql_database_exits_without_opening_its_port(tmp_path):
    schema, url = _postgres_schema()
    try:
        one, two = master_dir(tmp_path, "one"), master_dir(tmp_path, "two")
        first = twistd("papertrader-master", "--data-dir", one, "--port", loopback(one, 0), "--database", url)
        try:
            await first.wait_for("master listening on port")
            second = twistd("papertrader-master", "--data-dir", two, "--port", loopback(two, free_port()),
                            "--database", url)
            ended = await second.ended
            assert_failed_start(ended, second.output, "another master is already running against the database")
            assert b"listening on port" not in second.output
        finally:
            first.transport.signalProcess("TERM")
            assert stopped_cleanly(await first.ended)
    finally:
        _drop_schema(schema)


@pytest_twisted.ensureDeferred
async def test_a_master_that_cannot_reach_postgresql_exits_non_zero_with_one_line(tmp_path):
    data_dir = master_dir(tmp_path)
    closed = free_port()
    url = f"postgresql://postgres:secret@127.0.0.1:{closed}/test"
    master = twistd("papertrader-master", "--data-dir", data_dir, "--port", loopback(data_dir, 0), "--database", url)
    ended = await master.ended
    line = assert_failed_start(ended, master.output, f"cannot use the database postgresql://postgres:***@127.0.0.1:"
                                                     f"{closed}/test")
    assert "secret" not in master.output.decode()  # a password never reaches a log
    assert b"listening on port" not in master.output
    assert "refused" in line.lower() or "failed" in line.lower()


@pytest_twisted.ensureDeferred
async def test_a_master_that_cannot_open_its_sqlite_file_names_the_file_and_why(tmp_path):
    """sqlite:///PATH is PATH from the root: 'sqlite:///data/pt.db' is /data/pt.db, not ./data/pt.db.  The line
    said "cannot use the database sqlite:///data/pt.db: unable to open database file", naming no file."""
    data_dir = master_dir(tmp_path)
    missing = tmp_path / "no-such-dir"
    url = f"sqlite://{missing}/pt.db"  # (three slashes, the path's own first one among them)
    master = twistd("papertrader-master", "--data-dir", data_dir, "--port", loopback(data_dir, 0), "--database", url)
    ended = await master.ended
    assert_failed_start(ended, master.output, f"cannot use the database {url} (the file {missing}/pt.db): unable to"
                                              f" open database file: its directory {missing} does not exist")


@pytest_twisted.ensureDeferred
async def test_a_cluster_whose_port_is_taken_exits_non_zero_with_one_line(tmp_path):
    taken = listening_socket()
    port = taken.getsockname()[1]
    try:
        cluster = twistd("papertrader-cluster", "--data-dir", str(tmp_path / "c"), "--master-port", str(port),
                         "--worker-port", str(free_port()), "--workers", "1")
        ended = await cluster.wait_end(timeout=60)  # the first run makes a CA, certificates and a GPG key
    finally:
        taken.close()
    assert_failed_start(ended, cluster.output, f"cannot listen on 127.0.0.1 port {port}: Address already in use")


@pytest_twisted.ensureDeferred
async def test_a_clusters_logs_name_the_configuration_file_it_read(tmp_path):
    """The first line of the master's and each worker's log names the file the settings came from, for the
    cluster as for the separate daemons (the cluster's said "none" while it used DATA_DIR/papertrader.ini)."""
    data_dir = tmp_path / "c"
    data_dir.mkdir()
    ini = data_dir / "papertrader.ini"
    ini.write_text("[papertrader]\nstarting_cash = 1234.00\n", encoding="utf-8")
    cluster = twistd("papertrader-cluster", "--data-dir", str(data_dir), "--master-port", str(free_port()),
                     "--worker-port", str(free_port()), "--workers", "1", "--http-port", "off")
    try:
        await cluster.wait_for("worker worker1 linked", timeout=60)
    finally:
        cluster.transport.signalProcess("INT")
        await cluster.wait_end(timeout=60)
    for log in (data_dir / "logs" / "master.log", data_dir / "workers" / "worker1" / "logs" / "worker.log"):
        with open(log, encoding="utf-8") as f:
            first = f.readline()
        assert f"configuration {ini}" in first, (log, first)


# --- item 11: a worker whose port is taken ----------------------------------

@pytest_twisted.ensureDeferred
async def test_a_worker_whose_port_is_taken_exits_instead_of_retrying_its_master(tmp_path):
    data_dir = master_dir(tmp_path)
    bundle = str(tmp_path / "w1")
    files.make_worker_bundle(data_dir, "w1", (), bundle)
    taken = listening_socket()
    port = taken.getsockname()[1]
    try:
        worker = twistd("papertrader-worker", "--data-dir", bundle, "--name", "w1", "--master",
                        f"localhost:{free_port()}", "--port",
                        tls.listen_description(port, "127.0.0.1", os.path.join(bundle, files.WORKER_CERT)))
        ended = await worker.ended
    finally:
        taken.close()
    line = assert_failed_start(ended, worker.output, f"cannot listen on 127.0.0.1 port {port}: Address already in use")
    assert "worker w1 cannot start" in line
    assert b"Scheduling retry" not in worker.output and b"handshake" not in worker.output


# --- item 12: usage mistakes -------------------------------------------------

def usage_cases(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    not_a_bundle = tmp_path / "empty"
    not_a_bundle.mkdir()
    m = str(tmp_path / "m")

    def config(name, text):
        path = tmp_path / f"{name}.ini"
        path.write_text(f"[papertrader]\n{text}\n")
        return str(path)

    def raw_config(name, text):
        path = tmp_path / f"{name}.ini"
        path.write_text(text)
        return str(path)

    secret = keys.Key(ec.generate_private_key(ec.SECP256R1()))
    authorized_keys = tmp_path / "authorized_keys"
    authorized_keys.write_bytes(b"# the operator\n" + secret.public().toString("OPENSSH") + b" admin@example\n")
    authorized_keys = str(authorized_keys)
    no_keys = tmp_path / "no_keys"
    no_keys.write_text("# nobody yet\nnot a key\n")
    no_keys = str(no_keys)
    private_key = tmp_path / "id_ecdsa"
    private_key.write_bytes(secret.toString("OPENSSH"))
    private_key = str(private_key)

    eu1 = str(tmp_path / "eu-1")  # worker eu-1's bundle (made by another master: "m" must stay unmade)
    files.make_worker_bundle(master_dir(tmp_path, "other-master"), "eu-1", (), eu1)

    used = tmp_path / "used"  # a data dir whose master ran on its SQLite database
    used.mkdir()
    (used / "papertrader.db").write_bytes(b"")
    postgres = "postgresql://postgres@127.0.0.1:5432/test"
    codes = "calendar: 'XNYZ' is not a calendar: always_open, or an exchange code: AIXK, "
    shipped = "the shipped history, which has AAPL, ABBV, "
    return [
        # Settings that name what does not exist, in the config file or as options: before anything starts.
        (["papertrader-master", "--data-dir", m, "--config", config("calendar", "calendar = XNYZ")], codes),
        (["papertrader-cluster", "--data-dir", m, "--calendar", "XNYZ"], codes),
        (["papertrader-worker", "--data-dir", str(not_a_bundle), "--name", "w1", "--calendar", "XNYZ"], codes),
        (["papertrader-master", "--data-dir", m, "--config", config("assets", "assets = AAPL,NOPE")],
         f"assets: no history for NOPE in {shipped}"),
        (["papertrader-cluster", "--data-dir", m, "--assets", "AAPL,NOPE"],
         f"assets: no history for NOPE in {shipped}"),
        (["papertrader-master", "--data-dir", m, "--config", config("files", f"replay_files = {tmp_path}/none")],
         f"replay_files: {tmp_path}/none: no such file or directory"),
        (["papertrader-master", "--data-dir", m, "--config", config("start", "replay_start = 2030-01-02")],
         "replay_start: 2030-01-02 is after the end of the history: the shipped history has days from 1962-01-02 to"
         " 2018-03-27"),
        (["papertrader-master", "--data-dir", m, "--replay-start", "2030-01-02"],
         "replay_start: 2030-01-02 is after the end of the history"),
        # The config file's other sections are checked as [papertrader] is: a typo is not ignored.
        (["papertrader-worker", "--data-dir", str(not_a_bundle), "--name", "w1", "--config",
          config("region", "[worker]\nregoin = lab-zone")], "unknown setting 'regoin' in [worker] (known: region)"),
        (["papertrader-master", "--data-dir", m, "--config", config("section", "[wrker]\nregion = lab-zone")],
         "unknown section [wrker] (known: [papertrader], [worker])"),
        # A file the ini reader cannot read says where and what to write, on one line (not configparser's three).
        (["papertrader-master", "--data-dir", m, "--config", raw_config("headless", "update_interval = 2\n")],
         "headless.ini: line 1: 'update_interval = 2' comes before any section: begin the file with a line"
         " [papertrader] (a worker's region: [worker])"),
        (["papertrader-worker", "--data-dir", str(not_a_bundle), "--name", "w1", "--config",
          raw_config("bracket", "[papertrader\nworkers = 2\n")],
         "bracket.ini: line 1: '[papertrader' is not a section header: write [papertrader]"),
        (["papertrader-master", "--data-dir", m, "--config", raw_config("twice", "[papertrader]\nworkers = 2\n"
                                                                          "workers = 3\n")],
         "twice.ini: line 3: 'workers' is set a second time in [papertrader]: keep one of the two"),
        (["papertrader-master", "--data-dir", m, "--config", raw_config("sections", "[papertrader]\nworkers = 2\n"
                                                                          "[papertrader]\n")],
         "sections.ini: line 3: a second [papertrader] section: put its settings in the first one"),
        (["papertrader-cluster", "--data-dir", m, "--config", raw_config("noequals", "[papertrader]\nworkers\n")],
         "noequals.ini: line 2: 'workers' is not a setting: write NAME = VALUE"),
        # A --host or --public-host that is no host name would go into a certificate nobody can match, for good.
        (["papertrader-master", "--data-dir", m, "--host", "master.example.com:2048"],
         "--host: 'master.example.com:2048' is not a host name or IP address: give the name alone, without the port"
         " (--port sets it)"),
        (["papertrader-cluster", "--data-dir", m, "--host", "https://lab.example.com"],
         "--host: 'https://lab.example.com' is not a host name or IP address: give the name alone, without"
         " 'https://'"),
        (["papertrader-worker", "--data-dir", str(not_a_bundle), "--name", "w1", "--public-host", "eu 1.example.com"],
         "--public-host: 'eu 1.example.com' is not a host name or IP address: letters, digits, '-' and '_' in"
         " labels of at most 63 separated by dots (such as eu1.example.com), or an address (203.0.113.7, 2001:db8::7)"),
        # A bundle started under another worker's name would be refused by the master at each attempt, forever.
        (["papertrader-worker", "--data-dir", eu1, "--name", "eu-2"],
         f"--name eu-2: {eu1} is the bundle of worker eu-1 (its certificate says so): start it with --name eu-1, or"
         " give --data-dir the bundle of eu-2"),
        # An SSH console nobody could reach or log in to is a mistake, not a console that quietly never serves.
        (["papertrader-master", "--data-dir", m, "--manhole-keys", authorized_keys],
         "--manhole-keys needs --manhole ENDPOINT (where the SSH console listens, such as tcp:2222): without it"
         " no console listens"),
        (["papertrader-worker", "--data-dir", str(not_a_bundle), "--name", "w1", "--manhole-keys", authorized_keys],
         "--manhole-keys needs --manhole ENDPOINT"),
        (["papertrader-master", "--data-dir", m, "--manhole", "tcp:0", "--manhole-keys", no_keys],
         f"--manhole-keys: {no_keys} holds no public key (one per line, as in ~/.ssh/authorized_keys: ssh-ed25519"
         " AAAA... COMMENT): no one could log in"),
        (["papertrader-cluster", "--data-dir", m, "--manhole", "tcp:0", "--manhole-keys", private_key],
         f"--manhole-keys: {private_key} is a private key: give the public keys allowed in (an authorized_keys file,"
         " or the key's .pub)"),
        (["papertrader-master", "--data-dir", m, "--manhole", "tcp:2049:interface=0.0.0.0"],
         "a telnet manhole listens only on loopback"),
        (["papertrader-worker", "--data-dir", str(not_a_bundle), "--name", "w1"], "is not a worker bundle"),
        (["papertrader-master", "--data-dir", m, "--database", "mysql://u@h/db"], "unsupported database URL"),
        (["papertrader-cluster", "--data-dir", m, "--database", "mysql://u@h/db"], "unsupported database URL"),
        (["papertrader-master", "--data-dir", m, "--database", "postgresql://u@h/db?nosuchparameter=1"],
         "--database: 'postgresql://u@h/db?nosuchparameter=1' is not a PostgreSQL URL psycopg reads"),
        # Another database than the one the data dir's master last used: it would start empty (nothing is copied).
        (["papertrader-master", "--data-dir", str(used), "--database", postgres],
         f"--database: this data dir's master last used the SQLite database in it ({used}/papertrader.db);"
         f" {postgres} is another database, and nothing is copied from one to the other: the master would start"
         " on what that one holds (nothing, if it is new)"),
        (["papertrader-cluster", "--data-dir", str(used), "--database", postgres],
         "give --new-database to start on"),
        (["papertrader-master", "--data-dir", str(a_file)], "is not a directory"),
        (["papertrader-worker", "--data-dir", str(a_file), "--name", "w1"], "is not a directory"),
        (["papertrader-cluster", "--data-dir", str(a_file)], "is not a directory"),
        (["papertrader-master", "--data-dir", m, "--port", "nonsense:2048"], "--port nonsense:2048"),
        # The trading protocol (passwords, sessions) is never served unencrypted, on any interface.
        (["papertrader-master", "--data-dir", m, "--port", "tcp:2048:interface=127.0.0.1"],
         "--port tcp:2048:interface=127.0.0.1: a port number or an ssl: description: clients and workers speak to it"
         " over TLS only"),
        (["papertrader-master", "--data-dir", m, "--port", "99999"], "--port 99999: a port number is from 0 to 65535"),
        (["papertrader-cluster", "--data-dir", m, "--worker-port", "70000"],
         "--worker-port 70000: a port number is from 0 to 65535"),
        (["papertrader-master"], "--data-dir is required"),
        # Provider sign-in on: an issuer the master could not talk to is a usage mistake, not a traceback.
        (["papertrader-master", "--data-dir", m, "--oidc-client-id", "abc", "--oidc-issuer", "http://id.example.com"],
         "oidc_issuer: 'http://id.example.com' is not https: an issuer is reached over https (http only on loopback)"),
        (["papertrader-cluster", "--data-dir", m, "--oidc-client-id", "abc", "--oidc-issuer", "accounts.google.com"],
         "oidc_issuer: 'accounts.google.com' is not an issuer URL: https://HOST[/PATH]"),
        (["papertrader-master", "--data-dir", m, "--oidc-client-id", "abc", "--oidc-issuer", ""],
         "oidc_issuer: empty, while oidc_client_id is set"),
        # A word where a number belongs says what is accepted, not Python's words for it.
        (["papertrader-master", "--data-dir", m, "--update-interval", "fast"],
         "update_interval: 'fast' is not a number: must be between 0.01 and 86400 seconds"),
        (["papertrader-master", "--data-dir", m, "--config", config("workers", "workers = two")],
         "workers: 'two' is not a whole number: must be between 1 and 64"),
        (["papertrader-worker", "--data-dir", str(not_a_bundle), "--name", "w1", "--master", "host:port"],
         "port is not a number"),
    ]


def test_usage_mistakes_print_the_message_alone_and_exit_2(tmp_path):
    for argv, message in usage_cases(tmp_path):
        status, output = run_twistd(*argv)
        assert status == 2, (argv, output)
        assert message in output, (argv, output)
        assert "Traceback" not in output, (argv, output)
        assert len(output.strip().splitlines()) == 1, (argv, output)
        assert output.startswith(f"twistd {argv[0]}: "), (argv, output)
    # Found before anything is made: not even the data dir (its CA, keys and logs).
    assert not os.path.exists(tmp_path / "m"), sorted(os.listdir(tmp_path / "m"))


def test_a_master_keeps_to_the_database_it_last_used_and_leaves_it_only_when_told(tmp_path):
    """Switched to PostgreSQL, a master restarted without --database went back to the SQLite file (its accounts
    of before, not those made since), and one switched again started on an empty database without a word."""
    from papertrader.master import files

    data_dir, postgres = str(tmp_path), "postgresql://postgres@127.0.0.1:5432/test"
    assert files.database_to_use(data_dir, None) is None  # a new data dir: SQLite in it
    assert files.database_to_use(data_dir, postgres) == postgres  # nothing to leave behind yet
    files.record_database(data_dir, postgres)
    assert files.database_to_use(data_dir, None) == postgres  # without --database: the one it last used
    assert files.database_to_use(data_dir, postgres) == postgres
    # The same database written another way (no port: 5432; another user) is the same one.
    assert files.database_to_use(data_dir, "postgresql://other@127.0.0.1/test") == postgres
    for other in (f"sqlite:///{tmp_path}/papertrader.db", "postgresql://postgres@127.0.0.1:5432/other"):
        with pytest.raises(files.DatabaseSwitch, match="last used postgresql://postgres@127.0.0.1:5432/test"):
            files.database_to_use(data_dir, other)
    assert files.database_to_use(data_dir, f"sqlite:///{tmp_path}/papertrader.db", new_database=True) is None


# --- item 20: a clean SIGTERM with workers linked -----------------------------

@pytest_twisted.ensureDeferred
async def test_sigterm_with_workers_linked_logs_every_goodbye_to_the_log_file(tmp_path, settings):
    from papertrader.worker.service import Worker
    from tests.test_crash import register_worker

    data_dir = master_dir(tmp_path)
    for name in ("w1", "w2"):
        register_worker(data_dir, name)
    master = twistd("papertrader-master", "--data-dir", data_dir, "--port", loopback(data_dir, 0))
    workers = []
    try:
        await master.wait_for("master listening on port")
        port = int(master.output.split(b"master listening on port ")[1].split()[0])
        for name in ("w1", "w2"):
            bundle = files.worker_dir(data_dir, name)
            worker = Worker(bundle, name, ("localhost", port), settings, reactor,
                            listen=tls.listen_description(0, "127.0.0.1", os.path.join(bundle, files.WORKER_CERT)))
            workers.append(worker)
            worker.startService()
            await master.wait_for(f"worker {name} linked")
        lost = [wait_for_log(w.logs, "lost the link to the master") for w in workers]
        master.transport.signalProcess("TERM")
        ended = await master.ended
        for d in lost:
            await d
    finally:
        for worker in workers:
            await worker.stopService()
        if master.transport.pid:
            master.transport.signalProcess("KILL")
    text = master.output.decode(errors="replace")
    assert stopped_cleanly(ended), text
    assert "Traceback" not in text and "Unhandled" not in text, text
    with open(os.path.join(data_dir, "logs", "master.log"), encoding="utf-8") as f:
        log = f.read()
    assert "worker w1 disconnected" in log and "worker w2 disconnected" in log, log
    # What an operator reads first: which release started, on what, and that it stopped (not crashed).
    from papertrader import __version__

    first, last = log.splitlines()[0], log.splitlines()[-1]
    assert f"PaperTrader {__version__} master starting: data dir {data_dir}, database sqlite:" in first, first
    assert "configuration none (the defaults and options)" in first
    assert last.endswith("master stopped"), last


@pytest_twisted.ensureDeferred
async def test_a_second_ctrl_c_or_sigterm_while_shutting_down_is_noted_not_a_traceback(tmp_path):
    """An impatient operator's second Ctrl-C (or a service manager's second SIGTERM) found Twisted's reactor
    already stopping: "Can't stop reactor that isn't running" and a traceback in the log."""
    data_dir = master_dir(tmp_path)
    master = twistd("papertrader-master", "--data-dir", data_dir, "--port", loopback(data_dir, 0))
    await master.wait_for("master listening on port")
    master.transport.signalProcess("TERM")
    master.transport.signalProcess("INT")  # both pending at once: Python runs SIGINT's handler, then SIGTERM's
    ended = await master.ended
    text = master.output.decode(errors="replace")
    assert status_of(ended) == 0 or getattr(ended, "signal", None) in (signal.SIGINT, signal.SIGTERM), text
    assert "Traceback" not in text and "ReactorNotRunning" not in text, text
    assert "again: already shutting down" in text, text


# --- item 13: a worker that cannot reach its master says where and why -------

async def worker_logs(bundle, master, settings, text):
    """The first entry of the log of a worker of ``bundle`` started against ``master`` (host, port) that holds
    ``text``; the worker is stopped then."""
    from papertrader.worker.service import Worker

    worker = Worker(bundle, "w1", master, settings, reactor,
                    listen=tls.listen_description(0, "127.0.0.1", os.path.join(bundle, files.WORKER_CERT)))
    logged = wait_for_log(worker.logs, text)
    worker.startService()
    try:
        return await logged
    finally:
        await worker.stopService()


@pytest_twisted.ensureDeferred
async def test_a_worker_that_cannot_reach_its_master_logs_the_address_and_the_reason(tmp_path, settings):
    from twisted.logger import formatEvent, globalLogPublisher

    data_dir = master_dir(tmp_path)
    bundle = str(tmp_path / "w1")
    files.make_worker_bundle(data_dir, "w1", (), bundle)
    closed = free_port()
    seen = []
    observer = lambda event: seen.append(formatEvent(event))  # noqa: E731  (twistd's own log)
    globalLogPublisher.addObserver(observer)
    try:
        entry = await worker_logs(bundle, ("127.0.0.1", closed), settings, "cannot reach the master")
    finally:
        globalLogPublisher.removeObserver(observer)
    assert f"cannot reach the master at 127.0.0.1:{closed}: " in entry.message
    assert "refused" in entry.message.lower()
    assert entry.level == "warn"
    retries = [line for line in seen if "Scheduling retry" in line]
    assert retries and all(f"the master at 127.0.0.1:{closed}" in line for line in retries), retries
    assert not any("object at 0x" in line for line in retries), retries


@pytest_twisted.ensureDeferred
async def test_a_worker_whose_master_certificate_does_not_fit_says_what_to_do(tmp_path, settings):
    """--master by an address the master's certificate does not name, or a master of another CA: the worker's log
    said "VerificationError(errors=[IPAddressMismatch(mismatched_id=IPAddress_ID(ip=IPv4Address('127.0.0.2')))])"
    or OpenSSL's tuple, and nothing about --master, --host or the bundle."""
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.protocol import Factory

    data_dir = master_dir(tmp_path)
    bundle = str(tmp_path / "w1")
    files.make_worker_bundle(data_dir, "w1", (), bundle)
    other_ca = master_dir(tmp_path, "another-deployment")
    cases = [(data_dir, "127.0.0.2", "has a certificate that is not valid for '127.0.0.2': give --master the name or"
                                     " address the master was started with as --host (localhost on its own"
                                     " machine), or restart the master with --host 127.0.0.2; if 127.0.0.2:PORT is"
                                     " not the master's port (a worker's, whose certificate names its own host), give"
                                     " --master the port the master listens on (its DATA_DIR/master.port)"),
             (other_ca, "127.0.0.1", "has a certificate that this bundle's CA (ca.pem) did not sign, or one that"
                                     " expired: the bundle is of another deployment, or the master has a new CA:"
                                     " register the worker again on the master and copy its new bundle here")]
    for master_data, host, said in cases:
        port = await serverFromString(reactor, tls.listen_description(
            0, host, os.path.join(master_data, files.MASTER_CERT))).listen(Factory.forProtocol(amp.AMP))
        number = port.getHost().port
        try:
            entry = await worker_logs(bundle, (host, number), settings, "handshake with the master")
        finally:
            await port.stopListening()
        said = said.replace("PORT", str(number))
        assert entry.message == f"handshake with the master at {host}:{number} failed: the master {said}", \
            entry.message


@pytest_twisted.ensureDeferred
async def test_a_worker_given_a_port_that_is_not_the_masters_says_so(tmp_path, settings):
    """--master on the master's console port (2049 for 2048) or on a worker's client port: the worker's log said
    "[('SSL routines', '', 'wrong version number')]" or "the master refused this worker: unknown command
    'WorkerHello'" every few seconds."""
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.protocol import Factory, Protocol

    from papertrader.wire import TypedAMP

    class Console(Protocol):  # speaks first and in clear text, as the telnet console does
        def connectionMade(self):
            self.transport.write(b"\xff\xfb\x01\xff\xfb\x03Username: ")

    data_dir = master_dir(tmp_path)
    bundle = str(tmp_path / "w1")
    files.make_worker_bundle(data_dir, "w1", (), bundle)
    console = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(Factory.forProtocol(Console))
    other_worker = await serverFromString(reactor, tls.listen_description(
        0, "127.0.0.1", os.path.join(data_dir, files.MASTER_CERT))).listen(Factory.forProtocol(TypedAMP))
    for port, said in [(console, "does not speak TLS: it is not the master's port (another service, such as its"
                                 " console?): give --master the port the master listens on (its DATA_DIR/master.port)"),
                       (other_worker, "is not the master: it does not know a worker's first command (a worker's"
                                      " port?): give --master the port the master listens on (its"
                                      " DATA_DIR/master.port)")]:
        number = port.getHost().port
        try:
            entry = await worker_logs(bundle, ("127.0.0.1", number), settings, "127.0.0.1:%d" % number)
        finally:
            await port.stopListening()
        assert entry.message.startswith(f"handshake with the master at 127.0.0.1:{number} failed: 127.0.0.1:{number}"
                                        f" {said}"), entry.message


@pytest_twisted.ensureDeferred
async def test_a_worker_given_another_workers_port_by_the_masters_name_is_told_to_check_the_port(tmp_path, settings):
    """--master HOST:PORT with the master's host name but another worker's port, whose certificate does not name
    HOST: the log said only "the master has a certificate that is not valid for HOST: ... restart the master with
    --host HOST", although the master already has it: the port was wrong, and nothing said to check it."""
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.protocol import Factory

    from papertrader.wire import TypedAMP

    data_dir = master_dir(tmp_path)
    bundle = str(tmp_path / "w1")
    files.make_worker_bundle(data_dir, "w1", (), bundle)
    other = str(tmp_path / "eu-2")
    files.make_worker_bundle(data_dir, "eu-2", ("127.0.0.5",), other)
    port = await serverFromString(reactor, tls.listen_description(
        0, "127.0.0.2", os.path.join(other, files.WORKER_CERT))).listen(Factory.forProtocol(TypedAMP))
    number = port.getHost().port
    try:
        entry = await worker_logs(bundle, ("127.0.0.2", number), settings, "handshake with the master")
    finally:
        await port.stopListening()
    assert entry.message.endswith(f"; if 127.0.0.2:{number} is not the master's port (a worker's, whose certificate"
                                  f" names its own host), give --master the port the master listens on (its"
                                  f" DATA_DIR/master.port)"), entry.message


def test_a_worker_registered_with_a_host_but_started_without_public_host_warns(tmp_path, settings):
    """A worker registered with --host eu1.example.com and started without --public-host told the master, and so
    every client, to reach it at localhost:2050: clients on other machines failed ("cannot reach worker eu-1
    (localhost:2050)"), and its log said nothing."""
    from papertrader.worker.service import Worker

    data_dir = master_dir(tmp_path)
    bundle = str(tmp_path / "eu-1")
    files.make_worker_bundle(data_dir, "eu-1", ("eu1.example.com",), bundle)
    listen = tls.listen_description(0, "127.0.0.1", os.path.join(bundle, files.WORKER_CERT))
    worker = Worker(bundle, "eu-1", ("127.0.0.1", 1), settings, reactor, listen=listen)
    try:
        warned = [e.message for e in worker.logs.newest(50) if "--public-host" in e.message]
    finally:
        worker.logs.close()
    assert warned == ["--public-host localhost (the default) is what clients are told to reach this worker by:"
                      " their own machine; give --public-host the name its certificate has for it, eu1.example.com,"
                      " unless every client runs on this machine"], warned
    # Started as registered, or registered without a --host (a worker for this machine's clients): no warning.
    for host, public_host in (("eu1.example.com", "eu1.example.com"), (None, "localhost")):
        other = str(tmp_path / f"w-{public_host}")
        files.make_worker_bundle(data_dir, "w2", (host,) if host else (), other)
        worker = Worker(other, "w2", ("127.0.0.1", 1), settings, reactor, listen=listen, public_host=public_host)
        try:
            assert not [e for e in worker.logs.newest(50) if "--public-host" in e.message]
        finally:
            worker.logs.close()


# --- item 17: a worker killed with SIGKILL leaves no gpg-agent behind ----------

def agents_of(home):
    """PIDs of the gpg-agent processes serving the GnuPG home ``home``."""
    from papertrader.gpgkeys import _short_home

    homes = {os.path.abspath(home), _short_home(home)}
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"gpg-agent" and any(h.encode() in argv for h in homes):
            found.append(int(pid))
    return found


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_worker_killed_with_sigkill_leaves_no_gpg_agent_and_a_restart_piles_none_up(deployment, tmp_path):
    d = deployment
    bundle = str(tmp_path / "edge-1")
    await d.master.workers.register("edge-1", files.make_worker_bundle(d.data_dir, "edge-1", (), bundle))
    home = os.path.join(bundle, "gnupg")
    listen = tls.listen_description(0, "127.0.0.1", os.path.join(bundle, files.WORKER_CERT))
    # A gpg-agent of an earlier life of this worker, as one killed mid-handshake would leave.
    subprocess.run(["gpg-connect-agent", "--homedir", home, "/bye"], check=True, capture_output=True, timeout=30)
    assert agents_of(home)
    for life in (1, 2):
        linked = wait_for_log(d.master.logs, "worker edge-1 linked")
        worker = twistd("papertrader-worker", "--data-dir", bundle, "--name", "edge-1", "--master",
                        f"localhost:{d.master_port}", "--port", listen)
        await linked
        await worker.wait_for("linked to the master")
        worker.transport.signalProcess("KILL")
        ended = await worker.ended
        assert ended.signal == signal.SIGKILL
        assert agents_of(home) == [], f"life {life}: gpg-agent left running"


@pytest_twisted.ensureDeferred
async def test_a_master_whose_console_port_is_taken_exits_non_zero_with_one_line(tmp_path):
    data_dir = master_dir(tmp_path)
    taken = listening_socket()
    port = taken.getsockname()[1]
    try:
        master = twistd("papertrader-master", "--data-dir", data_dir, "--port", loopback(data_dir, 0),
                        "--manhole", str(port))
        ended = await master.ended
    finally:
        taken.close()
    assert_failed_start(ended, master.output, f"cannot listen on 127.0.0.1 port {port}: Address already in use")


@pytest_twisted.ensureDeferred
async def test_a_master_whose_console_socket_is_held_or_has_no_directory_says_so_in_one_line(tmp_path):
    """A unix: console's socket held by another live process, or in a directory that does not exist: one line with
    the path and what is wrong (it said "cannot listen on b'PATH': Cannot acquire lock", or showed an os.symlink's
    arguments)."""
    from twisted.internet.protocol import Factory

    data_dir = master_dir(tmp_path)
    held = str(tmp_path / "console.sock")
    other = reactor.listenUNIX(held, Factory(), wantPID=True)  # this test's process holds it, as a master would
    try:
        master = twistd("papertrader-master", "--data-dir", data_dir, "--port", loopback(data_dir, 0),
                        "--manhole", f"unix:{held}")
        ended = await master.ended
    finally:
        await other.stopListening()
    assert_failed_start(ended, master.output, f"cannot listen on {held}: another process (pid {os.getpid()}) listens"
                                              f" on it (its lock file {held}.lock): stop it, or give another path")
    nowhere = str(tmp_path / "no-such-dir" / "console.sock")
    master = twistd("papertrader-master", "--data-dir", data_dir, "--port", loopback(data_dir, 0),
                    "--manhole", f"unix:{nowhere}")
    ended = await master.ended
    assert_failed_start(ended, master.output, f"cannot listen on {nowhere}: its directory {tmp_path / 'no-such-dir'}"
                                              " does not exist")


def python(script, cwd, ctrl_c=True):
    """``script`` run by Python as a process of its own (``ctrl_c``: with SIGINT's default, as in a terminal)."""
    reset = (lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if ctrl_c else None
    return subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=60,
                          cwd=cwd, preexec_fn=reset)


def test_ctrl_c_while_a_daemon_starts_is_a_line_not_a_traceback_and_leaves_twistds_own_handler_after(tmp_path):
    """Ctrl-C before the service is made (imports, the configuration's checks, loading the history) printed a
    KeyboardInterrupt traceback; from when the service is made, twistd's handler (a clean shutdown) has it."""
    done = python(
        "import os, signal, sys\n"
        "sys.argv = ['twistd', '-n', 'papertrader-cluster']\n"
        "from twisted.plugins import papertrader_plugins as plugins\n"
        "assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "signal.pause()\n", tmp_path)
    assert done.returncode == -signal.SIGINT, done.stderr
    assert done.stderr.strip() == "Interrupted while starting: nothing was served." and "Traceback" not in done.stderr
    # Once the service is made (here: a made-up maker failing the same way), Python's default handler is back.
    done = python(
        "import signal, sys\n"
        "sys.argv = ['twistd', '-n', 'papertrader-master']\n"
        "from twisted.plugins import papertrader_plugins as plugins\n"
        "maker = plugins._Maker('t', 'no.such.module', 't', 't')\n"
        "try:\n"
        "    maker.makeService({})\n"
        "except Exception:\n"
        "    pass\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n", tmp_path)
    assert done.stdout.strip() == "True", done.stderr
    # Another program that imports the plugins (a test, `twistd --help`) keeps its handler.  (Started with
    # SIGINT's default, as from a terminal: a suite run in the background inherits SIGINT ignored, and Python
    # then installs no handler of its own to keep.)
    done = python("import signal; from twisted.plugins import papertrader_plugins;"
                  " print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)", tmp_path)
    assert done.stdout.strip() == "True", done.stderr


def test_a_daemon_freezes_what_it_loaded_and_collects_the_oldest_objects_rarely(tmp_path):
    """Once a daemon's service is made, what it loaded is frozen out of the garbage collector's way and the
    oldest generation waits for OLDEST_AFTER collections of the middle one (papertrader/collector.py: a full
    collection stopped a loaded worker for up to 135 ms); garbage made while starting is collected first,
    not kept for ever."""
    done = python(
        "import gc, sys, weakref\n"
        f"sys.argv = ['twistd', '-n', 'papertrader-master', '--data-dir', {str(tmp_path / 'data')!r}]\n"
        "from twisted.plugins import papertrader_plugins as plugins\n"
        "from papertrader import collector\n"
        "class Cycle: pass\n"
        "garbage = Cycle(); garbage.me = garbage; dead = weakref.ref(garbage); del garbage\n"
        "young, middle, _ = gc.get_threshold()\n"
        "options = plugins.papertrader_master.options()\n"
        "options.parseOptions(sys.argv[3:])\n"
        "plugins.papertrader_master.makeService(options)\n"
        "assert dead() is None, 'garbage made while starting was frozen'\n"
        "assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()\n"
        "assert gc.get_threshold() == (young, middle, collector.OLDEST_AFTER), gc.get_threshold()\n"
        "print('ok')\n", tmp_path)
    assert done.stdout.strip() == "ok", done.stderr
