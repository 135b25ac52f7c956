"""A fleet of workers: failover, kick/allow/revoke, live prices, the admin channel and console."""

import json
import os
import select
import shutil
import socket
import subprocess
from dataclasses import replace

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols import policies

import papertrader
from papertrader import admin, commands
from papertrader.client.connection import Connection, connect
from papertrader.errors import PaperTraderError
from papertrader.master.workers import KICKED, REVOKED
from papertrader.worker.fanout import WINDOW
from papertrader.worker.link import LINK_BETWEEN, LINK_READ
from tests.conftest import WatchedProcess, bounded, start_cluster, until, wait_for_log
from tests.fuzz_helpers import RawPeer, close
from tests.test_e2e import register_and_login


@pytest_twisted.async_yield_fixture
async def fleet(tmp_path, settings, database_url, clock):
    """One master and three workers on loopback."""
    deployment = await start_cluster(tmp_path, replace(settings, workers=3), database_url, clock)
    yield deployment
    await deployment.cluster.stopService()


def worker(d, name):
    return next(w for w in d.cluster.workers if w.name == name)


def j(text):
    return json.loads(text)


@pytest_twisted.ensureDeferred
async def test_client_fails_over_when_its_worker_dies(fleet):
    d = fleet
    await register_and_login(d)
    status, out, _ = await d.cli("--worker", "worker2", "whoami", user="alice")
    assert j(out)["worker"] == "worker2"  # remembered from now on
    # worker2 stops answering clients; the master still lists it (its link is up).
    await worker(d, "worker2").listener.stopService()
    for w in worker(d, "worker2").clients.copy():
        w.transport.abortConnection()
    status, out, err = await d.cli("buy", "AAPL", "2", "--client-order-id", "during-failover", user="alice")
    assert status == 0, err
    await d.tick()
    status, out, _ = await d.cli("whoami", user="alice")
    assert j(out)["worker"] != "worker2"
    status, out, _ = await d.cli("history", user="alice")
    [fill] = j(out)
    assert (fill["side"], fill["quantity"]) == ("buy", "2")


@pytest_twisted.ensureDeferred
async def test_kick_moves_watchers_and_refuses_the_worker_until_allowed(fleet):
    d = fleet
    await register_and_login(d)
    await d.cli("--worker", "worker1", "whoami", user="alice")  # the client remembers worker1
    watches = wait_for_log(worker(d, "worker1").logs, "watches AAPL")
    moved = defer.DeferredList([wait_for_log(worker(d, name).logs, "watches AAPL") for name in ("worker2", "worker3")],
                               fireOnOneCallback=True, consumeErrors=True)
    watching = defer.ensureDeferred(d.cli("watch", "AAPL", "--count", "3", user="alice"))
    await watches
    await d.tick()
    refused = wait_for_log(d.master.logs, "refused kicked worker 'worker1'")
    assert await d.master.workers.kick("worker1") is True
    assert "worker1" not in [w["name"] for w in d.master.workers.listing()]
    await refused  # it tried to come back and was refused
    # The watcher was told to leave and goes on through another worker.
    await moved
    await d.tick()
    await d.tick()
    status, out, err = await watching
    lines = [j(line) for line in out.splitlines()]
    assert [line["symbol"] for line in lines] == ["AAPL"] * 3
    assert "moving to another worker" in err
    registration = await d.master.workers.registration("worker1")
    assert registration["state"] == KICKED

    linked = wait_for_log(d.master.logs, "worker worker1 linked")
    assert await d.master.workers.allow("worker1") is True
    worker(d, "worker1").link.refusals = 0
    worker(d, "worker1").link._hold.reset(0)  # don't wait out the backoff in a test
    await linked
    assert "worker1" in [w["name"] for w in d.master.workers.listing()]


@pytest_twisted.ensureDeferred
async def test_revoked_worker_is_gone_for_good(fleet):
    d = fleet
    refused = wait_for_log(d.master.logs, "refused revoked worker 'worker3'")
    assert await d.master.workers.revoke("worker3") is True
    await refused
    assert await d.master.workers.revoke("worker3") is False  # already: nothing done (nor logged) again
    assert "worker3" not in [w["name"] for w in d.master.workers.listing()]
    assert (await d.master.workers.registration("worker3"))["state"] == REVOKED
    from papertrader.errors import InvalidInput

    with pytest.raises(InvalidInput):
        await d.master.workers.allow("worker3")
    status, out, _ = await d.cli("workers")
    assert sorted(w["name"] for w in j(out)) == ["worker1", "worker2"]


@pytest_twisted.ensureDeferred
async def test_workers_list_has_region_and_load(fleet):
    d = fleet
    await register_and_login(d)
    status, out, _ = await d.cli("workers")
    listed = j(out)
    assert {w["region"] for w in listed} == {"default"}
    assert all(isinstance(w["load"], int) for w in listed)


@pytest_twisted.ensureDeferred
async def test_a_slow_watcher_does_not_delay_the_others(fleet):
    d = fleet
    w1 = worker(d, "worker1")
    ca = open(os.path.join(d.data_dir, "ca.pem"), "rb").read()
    port = w1.listener.port.getHost().port
    fast = await connect(reactor, "localhost", port, ca, "worker1")
    slow = await connect(reactor, "localhost", port, ca, "worker1")
    received = []
    waiting = []

    def on_tick(quote):
        received.append(quote)
        ready = list(waiting)  # firing resumes the test, which may add a new waiter: fire only these
        waiting.clear()
        for d in ready:
            d.callback(None)

    fast.on_tick = on_tick
    # The slow client never answers a tick (as one that does not read its socket).
    slow.locateResponder = lambda name: (lambda box: defer.Deferred()) if name == b"Tick" else None
    await fast.callRemote(commands.Watch, symbols=["AAPL"])
    await slow.callRemote(commands.Watch, symbols=["AAPL"])
    for n in range(1, WINDOW + 3):
        got = defer.Deferred()
        waiting.append(got)
        await d.tick()
        await got
        assert len(received) == n
    code, message = await slow.ended
    assert code in ("slow_consumer", "connection_lost")
    assert w1.fanout.cut_off == 1
    assert len(w1.fanout) == 1  # the fast one is still watching
    fast.transport.loseConnection()


def test_client_choice_prefers_region_then_memory_then_load():
    listed = [dict(name="a", region="eu", host="h", port=1, load=0),
              dict(name="b", region="us", host="h", port=2, load=1),
              dict(name="c", region="us", host="h", port=3, load=5)]
    c = Connection(None, ("m", 1), b"", region="us")
    assert [w["name"] for w in c.choose(listed)] == ["b", "c", "a"]
    c = Connection(None, ("m", 1), b"", region="us", remembered="c")
    assert [w["name"] for w in c.choose(listed)][0] == "c"
    # The worker used last, in another region than the one preferred: still tried, after the region's workers
    # (with one worker listed, it is the only one).
    c = Connection(None, ("m", 1), b"", region="us", remembered="a")
    assert [w["name"] for w in c.choose(listed)] == ["b", "c", "a"]
    c = Connection(None, ("m", 1), b"", region="mars", remembered="b")
    assert [w["name"] for w in c.choose(listed[1:2])] == ["b"]
    c = Connection(None, ("m", 1), b"", remembered="gone")
    assert [w["name"] for w in c.choose(listed)][0] == "a"
    c.avoid.add("a")
    assert [w["name"] for w in c.choose(listed)][0] == "b"


def tcp_under(transport):
    """The TCP connection under a protocol's transport (TLS's wrapper passes reads of attributes on to it)."""
    while isinstance(transport, policies.ProtocolWrapper):
        transport = transport.transport
    return transport


@pytest_twisted.ensureDeferred
async def test_the_link_to_the_master_reads_what_waits_on_it_at_once_and_a_client_does_not(deployment):
    """Under load a turn of a worker's reactor lasts long (3,000 clients: about a second).  The link carrying all
    its clients' answers and pushes read 64 KiB a turn and fell behind: bench_load's orders waited seconds longer
    than its quotes, 1.5 MB queued on the master's side.  It reads everything waiting now; a client's connection
    still reads 64 KiB a turn (no client gets a larger share of the worker)."""
    d = deployment
    w = d.cluster.workers[0]
    link = await bounded(w.link.whenConnected(), "the worker's link")
    assert tcp_under(link.transport).bufferSize == LINK_READ >= 1 << 20
    ca = open(os.path.join(d.data_dir, "ca.pem"), "rb").read()
    client = await connect(reactor, "localhost", w.listener.port.getHost().port, ca, w.name)
    await client.callRemote(commands.Quote, symbol="AAPL")
    [served] = w.clients
    assert tcp_under(served.transport).bufferSize == 1 << 16
    client.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_the_link_is_served_between_two_clients_reads(deployment, clock):
    """A turn of a busy worker's reactor reads every client that sent something (3,000: hundreds of ms) and the
    link once; what the worker writes to the link leaves in the next turn: an order crossed the reactor twice,
    waiting a turn each time, where a quote waited one.  The link is now served (what waits for the master sent,
    what came from it read) after a client's read once LINK_BETWEEN has passed.  Here the reactor neither reads
    nor writes the link (as in a long turn that has not reached it); a quote of another client, read after
    LINK_BETWEEN, sends the first client's request and brings its answer in."""
    w = deployment.cluster.workers[0]
    ca = open(os.path.join(deployment.data_dir, "ca.pem"), "rb").read()
    other = await connect(reactor, "localhost", w.listener.port.getHost().port, ca, w.name)

    async def read():
        await other.callRemote(commands.Quote, symbol="AAPL")

    await served_between_reads(deployment, clock, read)
    other.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_the_link_is_served_between_two_http_clients_reads(tmp_path, settings, database_url, clock):
    """The same between two reads of the worker's HTTP listener (its guard calls the same hook): a page asked
    for over HTTP, read after LINK_BETWEEN, sends an AMP client's request and brings its answer in."""
    d = await start_cluster(tmp_path, settings, database_url, clock, http_port=0)
    try:
        url = f"http://127.0.0.1:{d.cluster.workers[0].http.port.getHost().port}/signin"

        async def read():
            response = await bounded(treq.get(url, persistent=False), "the sign-in page")
            assert response.code == 200
            await bounded(response.content(), "the sign-in page's body")

        await served_between_reads(d, clock, read)
    finally:
        await d.cluster.stopService()


async def served_between_reads(d, clock, read):
    """A client's request waits on a link the reactor neither reads nor writes; ``read`` (another client's read of
    the worker, which needs nothing from the master) sends it once LINK_BETWEEN has passed, and brings its answer
    in after LINK_BETWEEN more."""
    w = d.cluster.workers[0]
    link = await bounded(w.link.whenConnected(), "the worker's link")
    ca = open(os.path.join(d.data_dir, "ca.pem"), "rb").read()
    asking = await connect(reactor, "localhost", w.listener.port.getHost().port, ca, w.name)
    await read()
    connection = tcp_under(link.transport)
    connection.stopReading()
    reactor.removeWriter(connection)
    writing = connection.startWriting
    connection.startWriting = lambda: None  # (the reactor is not asked to write the link either)
    try:
        answered = asking.callRemote(commands.Clock)
        await until(lambda: w.link.waiting() == 1, "the worker to pass the request on")
        await read()  # LINK_BETWEEN has not passed (the worker's clock)
        assert w.link.waiting() == 1 and not select.select([connection.fileno()], [], [], 0)[0]
        clock.advance(LINK_BETWEEN * 1.01)  # (the clock's float)
        await read()  # the request goes now
        # The master's answer arrives on the link's socket, which the reactor does not read.
        await until(lambda: select.select([connection.fileno()], [], [], 0)[0], "the master's answer on the link")
        assert w.link.waiting() == 1
        clock.advance(LINK_BETWEEN * 1.01)
        await read()
        assert w.link.waiting() == 0, "the answer waiting on the link was not read between the clients' reads"
        assert (await bounded(answered, "the answer read between the clients' reads"))["mode"]
    finally:
        connection.startWriting = writing
        connection.startReading()
        connection.startWriting()
    asking.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_admin_command_kicks_through_the_running_master(fleet, capsys):
    d = fleet
    await admin.run(reactor, admin.parser().parse_args(["--data-dir", d.data_dir, "workers", "--json"]))
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["state"] for r in rows} == {"worker1": "connected", "worker2": "connected",
                                                    "worker3": "connected"}
    # The text listing shows each worker's release too, as the README says (after an upgrade: who is behind).
    await admin.run(reactor, admin.parser().parse_args(["--data-dir", d.data_dir, "workers"]))
    header, *lines = capsys.readouterr().out.splitlines()
    assert "VERSION" in header.split() and all(papertrader.__version__ in line for line in lines), (header, lines)
    await admin.run(reactor, admin.parser().parse_args(["--data-dir", d.data_dir, "kick", "worker2"]))
    assert "kick done" in capsys.readouterr().out
    assert "worker2" not in d.master.workers.linked
    await admin.run(reactor, admin.parser().parse_args(["--data-dir", d.data_dir, "allow", "worker2"]))
    assert (await d.master.workers.registration("worker2"))["state"] == "registered"


class Telnet(protocol.Protocol):
    """A telnet client that answers option negotiation as a terminal would, and waits for text."""

    IAC, WILL, WONT, DO, DONT, SB, SE = 255, 251, 252, 253, 254, 250, 240

    def __init__(self):
        self.text = b""
        self.waiting = []

    def dataReceived(self, data):
        i = 0
        while i < len(data):
            if data[i] == self.IAC and i + 1 < len(data):
                command = data[i + 1]
                if command in (self.WILL, self.WONT, self.DO, self.DONT) and i + 2 < len(data):
                    option = data[i + 2]
                    answer = {self.WILL: self.DO if option in (1, 3) else self.DONT, self.WONT: self.DONT,
                              self.DO: self.WILL if option == 3 else self.WONT, self.DONT: self.WONT}[command]
                    self.transport.write(bytes([self.IAC, answer, option]))
                    i += 3
                    continue
                if command == self.SB:
                    i = data.index(bytes([self.IAC, self.SE]), i) + 2
                    continue
                i += 2
                continue
            self.text += data[i:i + 1]
            i += 1
        for text, d in list(self.waiting):
            if text in self.text:
                self.waiting.remove((text, d))
                d.callback(self.text)

    def wait_for(self, text):
        d = defer.Deferred()
        self.waiting.append((text, d))
        self.dataReceived(b"")
        return d.addTimeout(30, reactor)

    def line(self, text):
        self.text = b""
        self.transport.write(text.encode() + b"\r\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest_twisted.ensureDeferred
async def test_manhole_console_lists_and_kicks_workers(tmp_path, settings, clock):
    from papertrader.cluster import Cluster

    port = free_port()
    cluster = Cluster(str(tmp_path / "data"), replace(settings, workers=2), reactor, master_port=0, worker_port=0,
                      database=None, clock=clock, manhole=f"tcp:{port}:interface=127.0.0.1")
    cluster.startService()
    try:
        await cluster.whenReady()
        while len(cluster.master.workers.linked) < 2:
            await wait_for_log(cluster.master.logs, "linked")
        password = open(tmp_path / "data" / "manhole.passwd").read().strip()  # the file holds the password
        client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Telnet())
        await client.wait_for(b"Username: ")
        client.line("admin")
        await client.wait_for(b"Password: ")
        client.line(password)
        await client.wait_for(b">>> ")
        client.line("workers()")
        listing = await client.wait_for(b"worker2  connected")
        assert b"worker1  connected" in listing
        client.line('kick("worker2")')
        await client.wait_for(b"worker worker2 kicked and disconnected")
        assert "worker2" not in cluster.master.workers.linked
        client.line("help()")
        await client.wait_for(b"revoke(name)")
        client.transport.loseConnection()
    finally:
        await cluster.stopService()


def test_telnet_manhole_refuses_to_listen_beyond_loopback(tmp_path):
    from papertrader.manhole import ManholeError, telnet_description

    assert telnet_description("2049") == "tcp:2049:interface=127.0.0.1"
    assert telnet_description("unix:/tmp/x.sock") == "unix:/tmp/x.sock:mode=0600"
    assert telnet_description("unix:/tmp/x.sock:mode=0660") == "unix:/tmp/x.sock:mode=0660"  # as the operator said
    for unsafe in ("tcp:2049", "tcp:2049:interface=0.0.0.0", "ssl:2049"):
        with pytest.raises(ManholeError):
            telnet_description(unsafe)


@pytest_twisted.ensureDeferred
async def test_a_console_on_a_bare_port_is_on_loopback_with_ssh_keys_too_and_its_unix_socket_is_the_owners(
        tmp_path):
    """Adding --manhole-keys to '--manhole 2049' opened the console on every interface; a unix: socket was
    0666, its login prompt open to every local user."""
    import stat

    from papertrader.manhole import manhole_service

    (tmp_path / "authorized_keys").write_text("")
    ssh = manhole_service("0", {}, str(tmp_path), authorized_keys=str(tmp_path / "authorized_keys"))
    socket_path = tmp_path / "console.sock"
    telnet = manhole_service(f"unix:{socket_path}", {}, str(tmp_path))
    for listening in (ssh, telnet):
        listening.startService()
        await bounded(listening.whenListening(), "the console")
    try:
        assert ssh.port.getHost().host == "127.0.0.1"
        assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o600
    finally:
        for listening in (ssh, telnet):
            await listening.stopService()


@pytest_twisted.ensureDeferred
async def test_candles_come_from_the_worker_cache_until_the_next_update(fleet):
    d = fleet
    await register_and_login(d)
    w = worker(d, "worker1")
    first = await d.cli("--worker", "worker1", "candles", "AAPL", "--limit", "5", user="alice")
    again = await d.cli("--worker", "worker1", "candles", "AAPL", "--limit", "5", user="alice")
    assert first == again and w.candles.hits == 1
    await d.tick()
    status, out, _ = await d.cli("--worker", "worker1", "candles", "AAPL", "--limit", "5", user="alice")
    assert j(out) != j(first[1])  # the new update's candle is there
    assert w.candles.hits == 1


def ssh(port, key):
    client = WatchedProcess()
    reactor.spawnProcess(client, "ssh", ["ssh", "-tt", "-i", key, "-p", str(port), "-o", "BatchMode=yes",
                                         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                         "admin@127.0.0.1"], env={"PATH": os.environ["PATH"]})
    return client


@pytest.mark.skipif(not shutil.which("ssh") or not shutil.which("ssh-keygen"), reason="needs the OpenSSH client")
@pytest_twisted.ensureDeferred
async def test_ssh_console_takes_authorized_keys_only(tmp_path, settings, clock):
    from papertrader.master.service import Master

    for name in ("admin", "stranger"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
    (tmp_path / "authorized_keys").write_bytes((tmp_path / "admin.pub").read_bytes())
    from papertrader import tls
    from papertrader.master import files

    port = free_port()
    files.ensure_master_files(str(tmp_path / "m"))
    listen = tls.listen_description(0, "127.0.0.1", str(tmp_path / "m" / files.MASTER_CERT))
    master = Master(str(tmp_path / "m"), settings, reactor, listen=listen, clock=clock,
                    manhole=f"tcp:{port}:interface=127.0.0.1", manhole_keys=str(tmp_path / "authorized_keys"))
    master.startService()
    try:
        await master.whenReady()
        admin = ssh(port, str(tmp_path / "admin"))
        await admin.wait_for(b">>> ", timeout=30)
        admin.transport.write(b"config()\r")
        await admin.wait_for(b"update interval")
        admin.transport.signalProcess("KILL")
        await admin.ended
        stranger = ssh(port, str(tmp_path / "stranger"))
        assert (await stranger.ended).exitCode == 255
        assert b"Permission denied" in stranger.output
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_a_worker_drops_a_silent_master_link_and_reconnects(fleet):
    d = fleet
    w = worker(d, "worker2")
    # The fleet is ready only once each worker's own side of the handshake is proven: before that its
    # watchdog has no link to watch, and this test would wait for a drop that never comes.
    assert w.link.proven is not None
    d.master.monitor.stopService()  # the master goes quiet: no heartbeats, no updates
    dropped = wait_for_log(w.logs, "no word from the master")
    relinked = wait_for_log(w.logs, "linked to the master")
    settings = d.master.settings
    for _ in range(settings.heartbeat_misses + 2):
        d.clock.advance(settings.heartbeat_interval)
    await dropped
    await relinked
    assert "worker2" in d.master.workers.linked


@pytest_twisted.ensureDeferred
async def test_a_worker_keeps_a_link_whose_master_answers_its_calls_without_pushing(fleet):
    """The worker's watchdog counted only the master's pushes (heartbeats, updates): a master busy answering the
    worker's calls, its pushes late, was dropped as silent and every call in flight failed."""
    d = fleet
    w = worker(d, "worker2")
    assert w.link.proven is not None
    d.master.monitor.stopService()  # no heartbeats, no updates: only answers
    settings = d.master.settings
    for _ in range(2 * (settings.heartbeat_misses + 1)):  # twice the silence the watchdog allows
        await bounded(w.link.call(commands.OrderWatchers, usernames=[], action="add"), "the master's answer")
        d.clock.advance(settings.heartbeat_interval)
    assert w.link.proven is not None
    assert not any("no word from the master" in e.message for e in w.logs.newest(None))


@pytest_twisted.ensureDeferred
async def test_a_cluster_for_other_machines_names_its_host_in_every_certificate_and_to_clients(tmp_path, settings,
                                                                                                clock):
    """papertrader-cluster --interface 0.0.0.0 --host NAME: the name other machines use is in the master's and
    the workers' certificates, and the workers give it to clients; the workers still reach the master."""
    from papertrader import tls
    from papertrader.cluster import Cluster
    from papertrader.master import files
    from tests.conftest import bounded, cluster_linked

    data_dir = str(tmp_path / "data")
    cluster = Cluster(data_dir, settings, reactor, master_port=0, worker_port=0, interface="0.0.0.0",
                      host="trader.example", clock=clock)
    cluster.startService()
    try:
        await bounded(cluster.whenReady(), "the cluster to start")
        await cluster_linked(cluster)
        assert "trader.example" in tls.certificate_hostnames(os.path.join(data_dir, files.MASTER_CERT))
        for w in cluster.workers:
            assert "trader.example" in tls.certificate_hostnames(os.path.join(w.data_dir, files.WORKER_CERT))
        assert {(w["host"]) for w in cluster.master.workers.listing()} == {"trader.example"}
    finally:
        await cluster.stopService()
    # One address listened on: it is in the certificates, and the workers reach the master there.
    assert Cluster(str(tmp_path / "one"), settings, reactor, interface="192.0.2.7")._master_host() == "192.0.2.7"
    assert "192.0.2.7" in tls.certificate_hostnames(os.path.join(str(tmp_path / "one"), files.MASTER_CERT))
    # Without --host, clients are told that address for the workers too (not localhost, where nothing listens).
    data_dir = str(tmp_path / "other")
    cluster = Cluster(data_dir, settings, reactor, master_port=0, worker_port=0, interface="127.0.0.2", clock=clock)
    cluster.startService()
    try:
        await bounded(cluster.whenReady(), "the cluster on 127.0.0.2 to start")
        await cluster_linked(cluster)
        assert {(w["host"]) for w in cluster.master.workers.listing()} == {"127.0.0.2"}
        for w in cluster.workers:
            assert "127.0.0.2" in tls.certificate_hostnames(os.path.join(w.data_dir, files.WORKER_CERT))
    finally:
        await cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_the_consoles_register_worker_takes_a_list_of_addresses_and_leaves_nothing_when_refused(fleet):
    """register_worker(..., allowed_ips=["...", "..."]) failed with "'list' object has no attribute 'split'"; its
    refusal said to add --replace, which it did not take; a refused one left a bundle nobody registered."""
    from papertrader.master import files
    from papertrader.master.console import namespace

    d = fleet
    ns = namespace(d.master)
    said = await ns["register_worker"]("edge-1", allowed_ips=["127.0.0.1", "10.1.0.0/16"])
    assert "worker edge-1 registered" in said
    assert (await d.master.workers.registration("edge-1"))["allowed_ips"] == "127.0.0.1,10.1.0.0/16"
    bundle = files.worker_dir(d.master.data_dir, "edge-1")
    shutil.rmtree(bundle)  # copied to its machine, and removed here
    refused = await ns["register_worker"]("edge-1")
    assert refused.startswith("refused: ") and "replace=True in the console" in refused, refused
    assert not os.path.exists(bundle)
    replaced = await ns["register_worker"]("edge-1", replace=True)
    assert "worker edge-1 registered" in replaced and os.path.exists(bundle)
    # A host with its port is no host name: refused before a bundle is made (its certificate would keep it).
    refused = await ns["register_worker"]("edge-2", host="edge2.example.com:2050")
    assert refused == ("refused: host: 'edge2.example.com:2050' is not a host name or IP address: give the name"
                       " alone, without the port (the worker's --port sets it)"), refused
    assert not os.path.exists(files.worker_dir(d.master.data_dir, "edge-2"))


@pytest_twisted.ensureDeferred
async def test_the_consoles_logs_say_when_nothing_matches_and_refuse_an_unknown_level(fleet):
    """logs(level="critical") with no such entry printed an empty line, and logs(level="warning") (a name
    people type) failed with InvalidLogLevelError's traceback in the console."""
    from papertrader.master.console import namespace
    from papertrader.worker.console import namespace as worker_namespace

    d = fleet
    for ns in (namespace(d.master), worker_namespace(worker(d, "worker1"))):
        none = ns["logs"](level="critical")
        assert none.startswith("no critical entries among the newest "), none
        assert "logs/" in none  # where the rest are
        refused = ns["logs"](level="warning")
        assert refused == "refused: level must be one of debug, info, warn, error, critical", refused
        assert ns["logs"](level="info")  # some there are: the services logged their start


@pytest_twisted.ensureDeferred
async def test_a_worker_refuses_new_requests_while_the_master_is_far_behind_and_takes_them_again_after(fleet):
    """Overloaded (2026-12-03, bench_load at 1,200 calls/s on 2 busy CPUs), a worker queued every request for
    the master however long the queue: orders waited 15-27 s and those past 30 s became unknown outcomes.  Once
    its oldest request has waited max_master_wait seconds, a worker refuses new ones at once ("throttled":
    nothing was done, try again), but for one at a time that goes through to see whether the master is back,
    until it catches up; what was already sent is answered as usual."""
    d = fleet
    await register_and_login(d)
    links = [w.protocol for w in d.master.workers.linked.values()]
    for proto in links:  # the master stops reading its workers: what they send waits
        proto.transport.pauseProducing()
    try:
        sent, behind = await _refused_while_behind(d)
    finally:
        for proto in links:
            proto.transport.resumeProducing()
    for run in sent:
        status, out, err = await bounded(run, "the answer to an order sent before the refusals")
        assert status == 0 and j(out)["status"] in ("new", "accepted"), (out, err)
    assert any("caught up" in e.message for e in behind.logs.newest(50))
    status, out, err = await d.cli("buy", "AAPL", "4", user="alice")
    assert status == 0, (out, err)
    status, out, _ = await d.cli("orders", "--status", "all", user="alice")
    assert sorted(o["quantity"] for o in j(out)) == ["1", "2", "4"]  # the refused one was never placed


async def _refused_while_behind(d):
    """With the master not reading: an order waits at a worker; past max_master_wait one more goes through (the
    probe) and waits too, and the next is refused.  Returns the two CLI runs waiting and their worker."""
    first = defer.ensureDeferred(d.cli("buy", "AAPL", "1", user="alice"))
    await until(lambda: any(w.link.waiting() for w in d.cluster.workers), "the first order to wait at a worker")
    [w] = [w for w in d.cluster.workers if w.link.waiting()]
    d.clock.advance(d.master.settings.max_master_wait + 1)
    probe = defer.ensureDeferred(d.cli("buy", "AAPL", "2", user="alice"))
    await until(lambda: w.link.waiting() == 2, "the probe to wait at the same worker")
    status, out, err = await d.cli("buy", "AAPL", "3", user="alice")
    assert status == 1 and j(out)["error"] == "throttled", (out, err)
    assert "nothing was done" in j(out)["message"] and "waited" in j(out)["message"]
    assert any("behind" in e.message for e in w.logs.newest(50))
    return (first, probe), w


@pytest_twisted.ensureDeferred
async def test_a_client_sending_thousands_of_requests_at_once_has_a_few_worked_on_and_the_rest_wait_unread(fleet):
    """A client that pipelines requests (a runaway script) had every one of them passed on to the master at once:
    2,000 requests were 2,000 calls waiting there, ahead of every other client's.  A worker works on at most
    MAX_IN_FLIGHT commands of one connection and reads no more of it until some are answered (TCP holds the
    rest); all are answered in the end; other clients are served meanwhile."""
    import secrets

    from papertrader.worker.protocol import MAX_IN_FLIGHT
    from tests.test_connection_limits import amp_client

    d = fleet
    w = worker(d, "worker1")
    port = w.listener.port.getHost().port
    flood = await amp_client(d, port)
    other = await amp_client(d, port)
    links = [p.protocol for p in d.master.workers.linked.values()]
    for proto in links:  # the master stops reading its workers: every call to it waits
        proto.transport.pauseProducing()
    try:
        calls = [flood.callRemote(commands.Whoami, token=secrets.token_hex(16)) for _ in range(2000)]
        for call in calls:
            call.addErrback(lambda f: f.trap(PaperTraderError))  # (no such session: refused, typed)
        await until(lambda: w.link.waiting() >= MAX_IN_FLIGHT, "the worker to work on the flood")
        for _ in range(20):  # (the rest of what it had read, given the chance to be dispatched)
            await task.deferLater(reactor, 0.01, lambda: None)
        assert w.link.waiting() == MAX_IN_FLIGHT
        [held] = [c for c in w.clients if c.not_read()]
        assert held.keeps_alive()  # it waits for answers: the idle timeout does not count the time it is not read
        quote = await bounded(other.callRemote(commands.Quote, symbol="AAPL"), "another client's quote")
        assert quote["symbol"] == "AAPL"
    finally:
        for proto in links:
            proto.transport.resumeProducing()
    answers = await bounded(defer.gatherResults(calls), "every request of the flood to be answered", timeout=60)
    assert len(answers) == 2000  # each refused (no such session), none lost
    assert w.link.waiting() == 0
    await close(flood)
    await close(other)



class _TickAnswering(RawPeer):
    """A client that answers every price push at once."""

    def __init__(self):
        super().__init__()
        self.ticks = 0

    @commands.Tick.responder
    def tick(self, **quote):
        self.ticks += 1
        return {}


@pytest_twisted.ensureDeferred
async def test_a_watching_client_with_many_requests_waiting_is_not_cut_as_a_slow_consumer(fleet):
    """While the worker did not read a client with MAX_IN_FLIGHT requests waiting, its answers to price pushes
    were not read either, and after 64 updates it was cut as a slow consumer though it answered each at once
    (found in review, 2026-12-03)."""
    import secrets

    from papertrader.worker.fanout import WINDOW
    from papertrader.worker.protocol import MAX_IN_FLIGHT
    from tests.test_connection_limits import amp_client

    d = fleet
    w = worker(d, "worker1")
    client = await amp_client(d, w.listener.port.getHost().port, peer=_TickAnswering)
    await bounded(client.callRemote(commands.Watch, symbols=["AAPL"]), "the watch")
    links = [p.protocol for p in d.master.workers.linked.values()]
    for proto in links:
        proto.transport.pauseProducing()
    try:
        calls = [client.callRemote(commands.Whoami, token=secrets.token_hex(16)) for _ in range(MAX_IN_FLIGHT + 1)]
        for call in calls:
            call.addErrback(lambda f: f.trap(PaperTraderError))
        await until(lambda: w.link.waiting() >= MAX_IN_FLIGHT, "the worker to work on the requests")
        for _ in range(WINDOW + 10):  # prices keep coming, and the client answers each
            w.fanout.publish([("AAPL", w.quotes.get("AAPL"))])
        assert not client.closed.called and w.fanout.cut_off == 0
    finally:
        for proto in links:
            proto.transport.resumeProducing()
    await bounded(defer.gatherResults(calls), "the requests' answers")
    await until(lambda: client.ticks >= WINDOW + 10, "the pushes to be answered")
    assert not client.closed.called and w.fanout.cut_off == 0
    await close(client)


@pytest_twisted.ensureDeferred
async def test_a_call_the_link_cannot_send_leaves_nothing_waiting(fleet):
    """A call whose arguments AMP refused before sending stayed among the calls waiting for ever: after the next
    10 quiet seconds the worker judged the master behind and refused every request until restarted (review)."""
    d = fleet
    w = worker(d, "worker1")
    refused = []
    w.link.call(commands.OrderWatchers, usernames=[], action="add", bogus="x").addErrback(refused.append)
    assert refused and w.link.waiting() == 0
    d.clock.advance(d.master.settings.max_master_wait + 1)
    answer = await bounded(w.link.call(commands.OrderWatchers, usernames=[], action="add"), "the next call")
    assert answer == {}
