"""The master's AMP protocol over an in-memory transport (twisted.test.iosim), with a real Master behind it."""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.protocols import amp
from twisted.python import failure
from twisted.test import iosim

from papertrader import commands, gpgkeys
from papertrader.errors import WorkerRefused
from papertrader.master import files
from papertrader.master.protocol import MasterProtocol
from papertrader.master.service import Master
from papertrader.times import utc


@pytest_twisted.async_yield_fixture
async def master(tmp_path, settings, database_url, clock):
    m = Master(str(tmp_path / "master"), settings, reactor, database=database_url, listen="0", clock=clock)
    await m.db.migrate()
    yield m
    m.db.close()
    m.workers.keyring.close()
    m.logs.close()


class Peer(amp.AMP):
    """The far end of the connection, taking the master's pushes like a worker would."""

    def __init__(self):
        super().__init__()
        self.quotes = []

    @commands.QuotesTick.responder
    def quotes_tick(self, quotes, replace=False, market_time=None, market_open=None, market_state=None):
        self.quotes.append(quotes)
        return {}

    @commands.Kicked.responder
    def kicked(self, reason):
        return {}


def connect(master):
    client, server, pump = iosim.connectedServerAndClient(
        ServerClass=lambda: MasterProtocol(master), ClientClass=Peer, greet=True)
    return client, server, pump


async def settle(pump, d):
    """Pump the in-memory connection until ``d`` has an answer (the master's database runs in threads)."""
    outcome = []
    d.addBoth(outcome.append)
    while not outcome:
        pump.flush()
        await task.deferLater(reactor, 0, lambda: None)
    if isinstance(outcome[0], failure.Failure):
        outcome[0].raiseException()
    return outcome[0]


@pytest_twisted.ensureDeferred
async def test_worker_list_is_empty_until_a_worker_proves_itself(master, tmp_path):
    client, server, pump = connect(master)
    answer = await settle(pump, client.callRemote(commands.ListWorkers))
    assert answer["workers"] == []

    bundle = str(tmp_path / "w")
    armor = files.make_worker_bundle(master.data_dir, "w1", (), bundle)
    await master.workers.register("w1", armor)
    hello = await settle(pump, client.callRemote(commands.WorkerHello, name="w1", host="edge.example", port=2050,
                                                 version="test"))
    assert hello["challenge"].startswith("papertrader-worker-challenge:w1:")
    signature = gpgkeys.sign(bundle + "/gnupg", hello["challenge"])
    await settle(pump, client.callRemote(commands.WorkerProve, signature=signature))
    answer = await settle(pump, client.callRemote(commands.ListWorkers))
    assert answer["workers"] == [{"name": "w1", "region": "default", "host": "edge.example", "port": 2050,
                                  "load": 0}]

    # Disconnecting unlinks it: it leaves the list at once.
    client.transport.loseConnection()
    pump.flush()
    assert master.workers.listing() == []
    gpgkeys.stop_agent(bundle + "/gnupg")


@pytest_twisted.ensureDeferred
async def test_a_challenge_answers_once(master, tmp_path):
    bundle = str(tmp_path / "w")
    await master.workers.register("w1", files.make_worker_bundle(master.data_dir, "w1", (), bundle))
    client, server, pump = connect(master)
    hello = await settle(pump, client.callRemote(commands.WorkerHello, name="w1", host="localhost", port=1,
                                                 version="test"))
    signature = gpgkeys.sign(bundle + "/gnupg", hello["challenge"])
    await settle(pump, client.callRemote(commands.WorkerProve, signature=signature))

    # Someone replaying the same answer on another connection gets nothing.
    other, _, other_pump = connect(master)
    with pytest.raises(WorkerRefused):
        await settle(other_pump, other.callRemote(commands.WorkerProve, signature=signature))
    # And a fresh challenge on that connection is not answered by the old signature.
    await settle(other_pump, other.callRemote(commands.WorkerHello, name="w1", host="localhost", port=1,
                                              version="test"))
    with pytest.raises(WorkerRefused) as refused:
        await settle(other_pump, other.callRemote(commands.WorkerProve, signature=signature))
    assert str(refused.value).startswith("the signature does not match the key registered for worker 'w1'")
    gpgkeys.stop_agent(bundle + "/gnupg")


@pytest_twisted.ensureDeferred
async def test_garbage_signature_is_refused_not_crashed(master, tmp_path):
    bundle = str(tmp_path / "w")
    await master.workers.register("w1", files.make_worker_bundle(master.data_dir, "w1", (), bundle))
    client, server, pump = connect(master)
    await settle(pump, client.callRemote(commands.WorkerHello, name="w1", host="localhost", port=1, version="t"))
    with pytest.raises(WorkerRefused):
        await settle(pump, client.callRemote(commands.WorkerProve, signature="-----BEGIN PGP SIGNATURE-----\nxx"))
    assert master.workers.listing() == []
    gpgkeys.stop_agent(bundle + "/gnupg")


class SilentPeer(Peer):
    """A worker that stopped answering (hung process, cut network): heartbeats go unanswered."""

    @commands.Heartbeat.responder
    def heartbeat(self):
        return defer.Deferred()


class HealthyPeer(Peer):
    @commands.Heartbeat.responder
    def heartbeat(self):
        return {"clients": 7, "sessions": 3, "commands": 50}


async def link(master, name, peer_class, bundle, with_server=False):
    await master.workers.register(name, files.make_worker_bundle(master.data_dir, name, (), bundle))
    client, server, pump = iosim.connectedServerAndClient(
        ServerClass=lambda: MasterProtocol(master), ClientClass=peer_class, greet=True)
    hello = await settle(pump, client.callRemote(commands.WorkerHello, name=name, host="localhost", port=2050,
                                                 version="t"))
    await settle(pump, client.callRemote(commands.WorkerProve,
                                         signature=gpgkeys.sign(bundle + "/gnupg", hello["challenge"])))
    gpgkeys.stop_agent(bundle + "/gnupg")
    return (client, server, pump) if with_server else (client, pump)


@pytest_twisted.ensureDeferred
async def test_a_silent_worker_is_marked_down_after_missed_heartbeats(master, tmp_path, clock):
    from papertrader.master.workers import WorkerMonitor

    silent, silent_pump = await link(master, "quiet", SilentPeer, str(tmp_path / "q"))
    healthy, healthy_pump = await link(master, "busy", HealthyPeer, str(tmp_path / "b"))
    interval, misses = master.settings.heartbeat_interval, master.settings.heartbeat_misses
    monitor = WorkerMonitor(master.workers, interval, misses, clock, master.log)
    monitor.startService()
    try:
        for _ in range(misses):
            clock.advance(interval)
            silent_pump.flush()
            healthy_pump.flush()
            assert {w["name"] for w in master.workers.listing()} >= {"busy"}
        assert master.workers.linked["busy"].clients == 7
        listed = {w["name"]: w for w in master.workers.listing()}
        assert listed["busy"]["load"] == 7
        assert "quiet" not in listed  # late: no longer given to clients
        clock.advance(interval)  # one more miss than allowed: down and dropped
        silent_pump.flush()
        assert "quiet" not in master.workers.linked
        assert any("quiet missed" in e.message for e in master.logs.newest(20))
        assert "busy" in master.workers.linked
    finally:
        monitor.stopService()


@pytest_twisted.ensureDeferred
async def test_a_busy_worker_whose_heartbeat_answers_are_behind_its_commands_stays_linked(master, tmp_path, clock):
    """Under load a worker's answer to a heartbeat waits in its connection behind the orders it passes on: the
    master marked it down after three "missed" heartbeats and cut the link while it was sending, and every order
    in flight became an unknown outcome for its client (bench_load, 2026-12-03: 2,289 of them).  What the worker
    sends proves it alive; only silence is a miss."""
    from papertrader.master.workers import WorkerMonitor

    busy, pump = await link(master, "busy", SilentPeer, str(tmp_path / "b"))
    interval, misses = master.settings.heartbeat_interval, master.settings.heartbeat_misses
    monitor = WorkerMonitor(master.workers, interval, misses, clock, master.log)
    monitor.startService()
    try:
        for _ in range(misses + 2):
            await settle(pump, busy.callRemote(commands.OrderWatchers, usernames=["alice"], action="add"))
            clock.advance(interval)
            pump.flush()
        assert "busy" in master.workers.linked
        assert not any("busy missed" in e.message for e in master.logs.newest(50))
        for _ in range(misses + 1):  # then silent: marked down as before
            clock.advance(interval)
            pump.flush()
        assert "busy" not in master.workers.linked
    finally:
        monitor.stopService()


@pytest_twisted.ensureDeferred
async def test_a_kicked_worker_gets_nothing_even_if_its_connection_lingers(master, tmp_path):
    client, server, pump = await link(master, "w1", HealthyPeer, str(tmp_path / "w"), with_server=True)
    await master.workers.kick("w1")
    # Say the peer never finishes closing and its next command still arrives on this connection:
    stamp = {"received": utc(0), "client_ip": "192.0.2.1", "worker": "w1"}
    with pytest.raises(WorkerRefused):
        await server.register(username="mallory", email="m@example.com", password="long enough pw", **stamp)
    assert (await master.db.query("SELECT COUNT(*) FROM accounts"))[0][0] == 0


@pytest_twisted.ensureDeferred
async def test_a_key_cannot_be_registered_to_a_second_name_nor_after_its_revocation(master, tmp_path):
    from papertrader.errors import InvalidInput

    armor = files.make_worker_bundle(master.data_dir, "w1", (), str(tmp_path / "w1"))
    await master.workers.register("w1", armor)
    with pytest.raises(InvalidInput, match="already registered to worker 'w1'"):
        await master.workers.register("w2", armor)
    await master.workers.revoke("w1")
    # Each refusal names the command that brings the worker back (they said "register it again with a new key"
    # and "make a new bundle (remove the old bundle directory first)": the operator had to find out how).
    with pytest.raises(InvalidInput) as refused:
        await master.workers.register("w1", armor)
    assert "was revoked (worker 'w1'): give the worker a new key: 'register-worker w1 --out NEW_DIR'" \
        in str(refused.value), str(refused.value)
    with pytest.raises(InvalidInput) as refused:
        await master.workers.allow("w1")
    assert str(refused.value).startswith("worker 'w1' was revoked: its key never links again; give the worker a new"
                                         " key: 'register-worker w1 --out NEW_DIR'"), str(refused.value)


@pytest_twisted.ensureDeferred
async def test_an_address_that_keeps_failing_the_handshake_under_many_names_is_slowed_down(master):
    client, server, pump = connect(master)
    free = master.workers.address_refusals.free
    for n in range(free):  # far more names than one misconfigured worker's retries in a window
        with pytest.raises(WorkerRefused, match="not registered"):
            await settle(pump, client.callRemote(commands.WorkerHello, name=f"guess{n}", host="h", port=1,
                                                 version="t"))
    with pytest.raises(WorkerRefused, match="too many refused handshakes from this address"):
        await settle(pump, client.callRemote(commands.WorkerHello, name=f"guess{free}", host="h", port=1,
                                             version="t"))


@pytest_twisted.ensureDeferred
async def test_a_kick_wins_over_a_handshake_that_read_the_old_state(master, tmp_path):
    bundle = str(tmp_path / "w")
    await link(master, "w1", HealthyPeer, bundle)
    # A handshake that read the registration (still 'registered') before the kick, and links after it:
    read = await master.workers.admit("w1", "192.0.2.7")
    await master.workers.kick("w1")
    with pytest.raises(WorkerRefused, match="kicked or revoked"):
        master.workers.link("w1", "default", "edge.example", 2050, "test", "192.0.2.7", object(), bars=read["bars"])
    assert "w1" not in master.workers.linked
    await master.workers.allow("w1")
    await link(master, "w1", HealthyPeer, bundle)
    assert "w1" in master.workers.linked


async def handshake(master, name, bundle):
    """A worker's handshake over a new connection; its answer (or the refusal raised)."""
    client, server, pump = connect(master)
    hello = await settle(pump, client.callRemote(commands.WorkerHello, name=name, host="edge.example", port=2050,
                                                 version="test"))
    signature = gpgkeys.sign(bundle + "/gnupg", hello["challenge"])
    return await settle(pump, client.callRemote(commands.WorkerProve, signature=signature))


@pytest_twisted.ensureDeferred
async def test_a_worker_registered_again_by_papertrader_admin_after_a_revoke_links_and_a_kicked_one_stays_kicked(
        master, tmp_path):
    """Revoked, then registered again with a new key by papertrader-admin (on the database, while the master ran):
    the master went on refusing it ('kicked or revoked', and logged nothing) until an allow or a restart.  The
    database has the last word; and a kicked worker registered again with its own key stays kicked."""
    from papertrader.master.workers import Workers

    admin = Workers(master.db, gpgkeys.Keyring(master.workers.keyring.home), master.workers.clock, master.log)
    first, second = str(tmp_path / "w1"), str(tmp_path / "w1-new")
    try:
        await master.workers.register("w1", files.make_worker_bundle(master.data_dir, "w1", (), first))
        assert await handshake(master, "w1", first) == {}
        await master.workers.revoke("w1")
        with pytest.raises(WorkerRefused):
            await handshake(master, "w1", first)
        await admin.register("w1", files.make_worker_bundle(master.data_dir, "w1", (), second), replace=True)
        assert await handshake(master, "w1", second) == {}
        assert "w1" in master.workers.linked

        await master.workers.kick("w1")
        await admin.register("w1", files.make_worker_bundle(master.data_dir, "w1", (), second))  # its key, a new host
        assert (await master.workers.registration("w1"))["state"] == "kicked"
        with pytest.raises(WorkerRefused, match="kicked"):
            await handshake(master, "w1", second)
        await admin.allow("w1")  # allowed, on the database: it links
        assert await handshake(master, "w1", second) == {}
    finally:
        for bundle in (first, second):
            gpgkeys.stop_agent(bundle + "/gnupg")
        admin.keyring.close()


@pytest_twisted.ensureDeferred
async def test_a_linked_worker_whose_address_is_no_longer_allowed_is_cut_off_and_refused_from_then_on(master,
                                                                                                      tmp_path):
    """Changing a registered worker's allowed addresses (papertrader-admin allow-ip) needed its bundle back on the
    master's machine (register-worker --out BUNDLE), and the worker linked kept its link until it reconnected.
    Now the change is made by name; a worker linked from an address no longer allowed is cut off at once, as a
    kick does, and refused when it comes back; allowing any address again lets it link."""
    from papertrader.errors import InvalidInput

    bundle = str(tmp_path / "w")
    client, server, pump = await link(master, "w1", HealthyPeer, bundle, with_server=True)
    address = master.workers.linked["w1"].address  # (what the in-memory transport says the peer is)
    changed = await master.workers.set_allowed("w1", "10.0.0.0/8, 192.0.2.7")
    assert changed == {"name": "w1", "before": None, "after": "10.0.0.0/8,192.0.2.7", "disconnected": True,
                       "address": address}
    assert "w1" not in master.workers.linked
    assert (await master.workers.registration("w1"))["allowed_ips"] == "10.0.0.0/8,192.0.2.7"
    with pytest.raises(WorkerRefused, match=f"worker 'w1' may not connect from {address}"):
        await handshake(master, "w1", bundle)
    # Nothing to cut off: said so.
    again = await master.workers.set_allowed("w1", "10.0.0.0/8")
    assert (again["before"], again["after"], again["disconnected"]) == ("10.0.0.0/8,192.0.2.7", "10.0.0.0/8", False)
    # Any address again: it links.
    back = await master.workers.set_allowed("w1", None)
    assert (back["before"], back["after"]) == ("10.0.0.0/8", None)
    assert await handshake(master, "w1", bundle) == {}
    # A bad network or an unknown name: refused, nothing changed.
    with pytest.raises(InvalidInput, match="'10.0.0.300' is not an IP address or network"):
        await master.workers.set_allowed("w1", "10.0.0.300")
    with pytest.raises(InvalidInput, match="no worker named 'nosuch' is registered"):
        await master.workers.set_allowed("nosuch", "10.0.0.0/8")
    assert (await master.workers.registration("w1"))["allowed_ips"] is None
    assert "w1" in master.workers.linked
    gpgkeys.stop_agent(bundle + "/gnupg")


@pytest_twisted.ensureDeferred
async def test_an_address_change_wins_over_a_handshake_that_read_the_old_addresses(master, tmp_path):
    bundle = str(tmp_path / "w")
    await link(master, "w1", HealthyPeer, bundle)
    # A handshake from 192.0.2.7 that read the registration (any address) before the change, and links after it:
    read = await master.workers.admit("w1", "192.0.2.7")
    await master.workers.set_allowed("w1", "10.0.0.0/8")
    with pytest.raises(WorkerRefused, match="may not connect from 192.0.2.7"):
        master.workers.link("w1", "default", "edge.example", 2050, "test", "192.0.2.7", object(), bars=read["bars"],
                            readdressed=read["readdressed"])
    # From an address still allowed it links.
    read = await master.workers.admit("w1", "10.1.2.3")
    master.workers.link("w1", "default", "edge.example", 2050, "test", "10.1.2.3", object(), bars=read["bars"],
                        readdressed=read["readdressed"])
    assert master.workers.linked["w1"].address == "10.1.2.3"


@pytest_twisted.ensureDeferred
async def test_the_console_changes_a_workers_allowed_addresses_as_papertrader_admin_does(master, tmp_path):
    from papertrader.master.console import namespace

    allow_ip = namespace(master)["allow_ip"]
    bundle = str(tmp_path / "w")
    await link(master, "w1", HealthyPeer, bundle)
    address = master.workers.linked["w1"].address
    shown = await allow_ip("w1", "10.0.0.0/8", "192.0.2.7")
    assert str(shown) == ("worker w1 may connect from: 10.0.0.0/8, 192.0.2.7 (was: any address)\n"
                          f"it was connected from {address}, which is no longer allowed: disconnected, and refused"
                          " from there from now on")
    assert "w1" not in master.workers.linked
    assert str(await allow_ip("w1")) == "worker w1 may connect from: 10.0.0.0/8, 192.0.2.7"
    assert str(await allow_ip("w1", any=True)) == ("worker w1 may connect from: any address (was: 10.0.0.0/8,"
                                                   " 192.0.2.7)")
    assert str(await allow_ip("nosuch", "10.0.0.0/8")) == "refused: no worker named 'nosuch' is registered"
    assert str(await allow_ip("w1", "10.0.0.300")) == "refused: '10.0.0.300' is not an IP address or network"
    gpgkeys.stop_agent(bundle + "/gnupg")


@pytest_twisted.ensureDeferred
async def test_a_registration_restored_without_its_key_is_refused_naming_the_commands_that_fix_it(master, tmp_path):
    """A database restored from a backup made before a revoke brings the worker's registration back, but not its
    key, which the revoke took out of gnupg/.  The worker, signing with that very key, was refused as 'bad signature
    (not made with its registered key ...: a worker given a new key, or a backup restored, needs its current
    bundle)': its bundle is the current one, and the operator was not told what to run.  Now the master says
    the key is missing from its keyring and names the commands that settle it: revoke again, or a new key."""
    from tests.conftest import wait_for_log

    bundle = str(tmp_path / "w1")
    fingerprint = await master.workers.register("w1", files.make_worker_bundle(master.data_dir, "w1", (), bundle))
    assert await handshake(master, "w1", bundle) == {}
    await master.workers.revoke("w1")
    # The backup made before the revoke is restored (papertrader-admin restore; gnupg/ is not in a backup), and the
    # master started on it: the registration is back as it was, the key is not.
    await master.db.execute("UPDATE workers SET state = 'registered' WHERE name = 'w1'")
    master.workers.barred.clear()
    logged = wait_for_log(master.logs, "refused worker 'w1'")
    with pytest.raises(WorkerRefused) as refused:
        await handshake(master, "w1", bundle)
    assert str(refused.value) == (
        "the master does not have the key registered for worker 'w1' (its database was restored from a backup made"
        " before the worker was revoked or given a new key): on the master, revoke it again"
        " ('papertrader-admin revoke w1') or give it a new key ('register-worker w1 --replace --out NEW_DIR') and"
        " copy that bundle here"), str(refused.value)
    entry = await logged
    assert entry.message == (
        f"refused worker 'w1' from ?: its registered key {fingerprint} is not in the master's keyring"
        f" ({master.data_dir}/gnupg): the database was restored from a backup made before the worker was revoked"
        " or given a new key (or gnupg/ was not copied with the data dir): to keep it out, revoke it again:"
        " papertrader-admin revoke w1; to let it in, give it a new key: papertrader-admin register-worker w1"
        " --replace --out NEW_DIR, and copy that bundle to the worker"), entry.message
    [row] = [w for w in await master.workers.overview() if w["name"] == "w1"]
    assert "key missing from the master's keyring: papertrader-admin revoke w1, or register-worker w1 --replace" \
        in row["refused"], row
    # Either command settles it: revoked again, it is refused as revoked.
    assert await master.workers.revoke("w1") is True
    with pytest.raises(WorkerRefused, match="has been revoked"):
        await handshake(master, "w1", bundle)
    gpgkeys.stop_agent(bundle + "/gnupg")
