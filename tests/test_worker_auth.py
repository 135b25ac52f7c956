"""Only registered workers that prove their GPG key are linked; anyone else gets no data."""

import json
import os

import pytest
import pytest_twisted
from twisted.internet import reactor

from papertrader import commands, tls
from papertrader.client.connection import call, connect
from papertrader.errors import WorkerRefused
from papertrader.master import files
from papertrader.worker.service import Worker
from tests.conftest import wait_for_log


def start_worker(d, name, bundle_dir):
    cert = os.path.join(bundle_dir, files.WORKER_CERT)
    worker = Worker(bundle_dir, name, ("localhost", d.master_port), d.master.settings, reactor,
                    listen=tls.listen_description(0, "127.0.0.1", cert), clock=d.clock)
    worker.startService()
    return worker


async def linked_worker(d, name, bundle_dir):
    """A worker ``name`` registered with a bundle made in ``bundle_dir``, started and linked (the caller stops it)."""
    await d.master.workers.register(name, files.make_worker_bundle(d.data_dir, name, (), bundle_dir))
    linked = wait_for_log(d.master.logs, f"worker {name} linked")
    worker = start_worker(d, name, bundle_dir)
    try:
        await linked
    except BaseException:
        await worker.stopService()
        raise
    return worker


async def listed(d):
    ca = open(os.path.join(d.data_dir, "ca.pem"), "rb").read()
    proto = await connect(reactor, "localhost", d.master_port, ca, "master")
    try:
        return [w["name"] for w in (await call(reactor, proto, commands.ListWorkers, "master"))["workers"]]
    finally:
        proto.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_unregistered_worker_is_refused(deployment, tmp_path):
    d = deployment
    bundle = str(tmp_path / "ghost")
    files.make_worker_bundle(d.data_dir, "ghost", (), bundle)  # a valid bundle, never registered
    refused = wait_for_log(d.master.logs, "refused unregistered worker 'ghost'")
    worker = start_worker(d, "ghost", bundle)
    told = wait_for_log(worker.logs, "the master refused this worker")
    try:
        entry = await refused
        assert entry.level == "warn"
        assert "not registered" in (await told).message
        assert "ghost" not in await listed(d)
        assert "ghost" not in d.master.workers.linked
    finally:
        await worker.stopService()


@pytest_twisted.ensureDeferred
async def test_worker_with_forged_signature_is_refused(deployment, tmp_path):
    d = deployment
    # "mallory" is registered with one key, but the process claiming that name signs with another.
    real = str(tmp_path / "real")
    armor = files.make_worker_bundle(d.data_dir, "mallory", (), real)
    fingerprint = await d.master.workers.register("mallory", armor)
    impostor = str(tmp_path / "impostor")
    files.make_worker_bundle(d.data_dir, "mallory", (), impostor)  # (its certificate names mallory too)
    refused = wait_for_log(d.master.logs, "refused worker 'mallory'")
    worker = start_worker(d, "mallory", impostor)
    told = wait_for_log(worker.logs, "the master refused this worker")
    try:
        entry = await refused
        # The worker's own log, on its machine, says what to do (it said only "the signature does not match the
        # key registered for worker 'mallory'": an old bundle after a key rotation, or a master restored from an
        # older backup, looks just like this).
        assert ("the signature does not match the key registered for worker 'mallory': this bundle's key is not"
                " the one the master has (an old bundle, or the master's database restored from a backup made"
                " before this key): on the master, register the worker again with"
                " 'register-worker mallory --replace --out NEW_DIR' and copy that bundle here"
                in (await told).message), (await told).message
        assert "bad signature" in entry.message
        assert f"its registered key {fingerprint}" in entry.message  # which key the operator must give it
        assert "mallory" not in await listed(d)
        # The operator's listing says it is being turned away, and why (it looked merely "registered").
        [row] = [w for w in await d.master.workers.overview() if w["name"] == "mallory"]
        assert row["state"] == "registered" and "bad signature" in row["refused"], row
    finally:
        await worker.stopService()


@pytest_twisted.ensureDeferred
async def test_registered_worker_started_separately_is_listed(deployment, tmp_path):
    d = deployment
    worker = await linked_worker(d, "edge-3", str(tmp_path / "w3"))
    try:
        assert "edge-3" in await listed(d)
    finally:
        await worker.stopService()


@pytest.mark.parametrize("command, arguments", [
    (commands.stamped(commands.Portfolio), {"token": "x" * 43}),
    (commands.Authenticate, {"token": "x" * 43}),
    (commands.stamped(commands.Login), {"username": "alice", "password": "whatever1", "remember": False}),
])
@pytest_twisted.ensureDeferred
async def test_anonymous_peer_gets_no_data(deployment, command, arguments):
    d = deployment
    from datetime import datetime, timezone

    ca = open(os.path.join(d.data_dir, "ca.pem"), "rb").read()
    proto = await connect(reactor, "localhost", d.master_port, ca, "master")
    stamp = {"received": datetime.now(timezone.utc), "client_ip": "10.0.0.1", "worker": "worker1"}
    try:
        with pytest.raises(WorkerRefused):
            await call(reactor, proto, command, "master", **arguments, **stamp)
    finally:
        proto.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_a_master_that_cannot_listen_says_so(deployment, tmp_path, settings):
    from papertrader.master.service import Master

    taken = deployment.master_port
    other = Master(str(tmp_path / "second"), settings, reactor, listen=str(taken))
    other.startService()
    with pytest.raises(Exception) as failed:
        await other.whenReady()
    assert "Address already in use" in str(failed.value) or "98" in str(failed.value)
    assert any(e.level == "critical" and "cannot listen" in e.message for e in other.logs.newest(50))
    await other.stopService()


@pytest_twisted.ensureDeferred
async def test_worker_outside_its_allowed_addresses_is_refused(deployment, tmp_path):
    d = deployment
    bundle = str(tmp_path / "fenced")
    armor = files.make_worker_bundle(d.data_dir, "fenced", (), bundle)
    await d.master.workers.register("fenced", armor, allowed_ips="10.0.0.0/8, 192.0.2.7")
    refused = wait_for_log(d.master.logs, "refused worker 'fenced' from 127.0.0.1: not in its allowed addresses")
    worker = start_worker(d, "fenced", bundle)
    try:
        await refused
        assert "fenced" not in await listed(d)
    finally:
        await worker.stopService()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_second_master_on_the_same_postgresql_database_refuses_to_start(deployment, tmp_path, settings,
                                                                                database_url):
    from papertrader.master.service import Master

    other = Master(str(tmp_path / "elsewhere"), settings, reactor, database=database_url, listen="0")
    other.startService()
    with pytest.raises(RuntimeError, match="another master"):
        await other.whenReady()
    await other.stopService()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_worker_that_keeps_being_refused_does_not_hold_up_healthy_workers_on_its_host(deployment, tmp_path):
    d = deployment
    ca = open(os.path.join(d.data_dir, "ca.pem"), "rb").read()
    await d.master.workers.revoke("worker2")
    proto = await connect(reactor, "localhost", d.master_port, ca, "master")
    try:
        # A revoked worker and a misspelt one, both on this host, retrying over and over.
        for name in ("worker2", "wokrer1"):
            for _ in range(d.master.workers.refusals.free):
                with pytest.raises(WorkerRefused, match="revoked|not registered"):
                    await call(reactor, proto, commands.WorkerHello, "master", name=name, host="localhost",
                               port=1, version="t")
            with pytest.raises(WorkerRefused, match=f"too many refused handshakes for worker '{name}'"):
                await call(reactor, proto, commands.WorkerHello, "master", name=name, host="localhost", port=1,
                           version="t")
    finally:
        proto.transport.loseConnection()
    # A healthy worker on the same host (the same address) links at its first attempt.
    worker = await linked_worker(d, "edge-3", str(tmp_path / "edge-3"))
    try:
        assert worker.link.refusals == 0
    finally:
        await worker.stopService()


@pytest_twisted.ensureDeferred
async def test_a_worker_is_cut_off_when_its_address_is_no_longer_allowed_and_links_again_when_it_is(deployment,
                                                                                                     tmp_path):
    """papertrader-admin allow-ip, run while the master runs: a worker linked from an address the new list still
    allows keeps its link; one linked from an address no longer allowed is disconnected at once (told why, on its
    machine too) and refused when it comes back; allowed again (--any), it links."""
    from tests.test_admin import run_admin

    d = deployment
    worker = await linked_worker(d, "edge-7", str(tmp_path / "edge-7"))
    try:
        status, out, err = await run_admin(d, "allow-ip", "edge-7", "127.0.0.0/8", "192.0.2.7")
        assert (status, out) == (0, "worker edge-7 may connect from: 127.0.0.0/8, 192.0.2.7 (was: any address)\n"), err
        assert "edge-7" in d.master.workers.linked  # 127.0.0.1 is still allowed

        told = wait_for_log(worker.logs, "the master disconnected this worker")
        refused = wait_for_log(d.master.logs, "refused worker 'edge-7' from 127.0.0.1: not in its allowed addresses")
        status, out, err = await run_admin(d, "allow-ip", "edge-7", "192.0.2.7")
        assert status == 0, err
        assert out == ("worker edge-7 may connect from: 192.0.2.7 (was: 127.0.0.0/8, 192.0.2.7)\n"
                       "it was connected from 127.0.0.1, which is no longer allowed: disconnected, and refused from"
                       " there from now on\n"), out
        assert "127.0.0.1 is no longer among its allowed addresses" in (await told).message
        await refused  # it came back, and was turned away
        assert "edge-7" not in await listed(d)
        [row] = [w for w in await d.master.workers.overview() if w["name"] == "edge-7"]
        assert "may not connect from 127.0.0.1" in row["refused"], row

        linked = wait_for_log(d.master.logs, "worker edge-7 linked")
        status, out, err = await run_admin(d, "allow-ip", "edge-7", "--any")
        assert (status, out) == (0, "worker edge-7 may connect from: any address (was: 192.0.2.7)\n"), err
        worker.link.refusals = 0
        worker.link._hold.reset(0)  # don't wait out the backoff in a test
        await linked
        assert "edge-7" in await listed(d)
        status, out, err = await run_admin(d, "allow-ip", "edge-7", "--json")
        assert (status, json.loads(out)) == (0, {"name": "edge-7", "command": "allow-ip", "before": None,
                                                 "after": None, "disconnected": False, "master_running": True}), err
    finally:
        await worker.stopService()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_registering_a_linked_worker_again_with_other_addresses_cuts_it_off_as_allow_ip_does(deployment,
                                                                                                    tmp_path):
    """register-worker NAME --allow-ip NET for a registered worker wrote the new addresses and left a worker linked
    from an address no longer allowed on its link until it reconnected.  With the master running it is cut off at
    once and refused from there, as allow-ip does; addresses that still allow it leave its link alone."""
    from tests.test_admin import run_admin

    d = deployment
    bundle = str(tmp_path / "edge-8")
    worker = await linked_worker(d, "edge-8", bundle)
    try:
        status, out, err = await run_admin(d, "--json", "register-worker", "edge-8", "--out", bundle,
                                           "--allow-ip", "127.0.0.0/8")
        assert status == 0, err
        assert json.loads(out)["disconnected"] is False
        assert "edge-8" in d.master.workers.linked  # 127.0.0.1 is still allowed

        told = wait_for_log(worker.logs, "the master disconnected this worker")
        refused = wait_for_log(d.master.logs, "refused worker 'edge-8' from 127.0.0.1: not in its allowed addresses")
        status, out, err = await run_admin(d, "register-worker", "edge-8", "--out", bundle, "--allow-ip", "192.0.2.7")
        assert status == 0, err
        assert ("it was connected from 127.0.0.1, which is no longer allowed: disconnected, and refused from there"
                " from now on") in out, out
        assert "127.0.0.1 is no longer among its allowed addresses" in (await told).message
        await refused  # it came back, and was turned away
        assert "edge-8" not in await listed(d)
    finally:
        await worker.stopService()
