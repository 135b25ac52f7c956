"""One worker bundle started twice: the two processes take the link from each other every few seconds, and
the master only said "worker w2 connected again; dropping its older link" each time.  It now says what is
happening, once a minute while it goes on."""

from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet import task

from papertrader.master.workers import Workers
from tests.conftest import wait_for_log
from tests.test_worker_auth import linked_worker, start_worker


def test_a_worker_that_keeps_replacing_its_own_link_is_said_to_run_twice(logs, log):
    clock = task.Clock()
    workers = Workers(None, None, clock, log)

    def link(address):
        workers.link("w2", "eu", "w2.example.com", 2050, "1", address, SimpleNamespace(transport=None))
        clock.advance(2)

    link("10.0.0.5:40001")
    link("10.0.0.5:40002")  # a reconnect after a cut: nothing more said
    assert not logs.newest(10, "error")
    for n in range(4):  # and then again and again, from two machines
        link(f"10.0.0.{6 + n % 2}:4100{n}")
    [said] = logs.newest(10, "error")
    assert "worker w2 replaced its own link 3 times in 60 s" in said.message
    assert "10.0.0.6:41000" in said.message and "10.0.0.7:41001" in said.message
    assert "two processes are probably running with its bundle" in said.message
    clock.advance(60)
    for n in range(3):
        link(f"10.0.0.{6 + n % 2}:4200{n}")
    assert len(logs.newest(10, "error")) == 2  # said again a minute later, while it goes on


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_the_worker_whose_link_is_taken_is_told_why(deployment, tmp_path):
    """The worker whose link another process of its bundle took logged only "lost the link to the master;
    reconnecting", every few seconds, with nothing on the worker's machine saying why (only the master's log
    did).  The master now tells it, and it says so."""
    d = deployment
    bundle = str(tmp_path / "edge-7")
    first = await linked_worker(d, "edge-7", bundle)
    try:
        told = wait_for_log(first.logs, "the master gave this worker's link to")
        second = start_worker(d, "edge-7", bundle)
        try:
            entry = await told
        finally:
            await second.stopService()
    finally:
        await first.stopService()
    assert entry.level == "warn"
    assert entry.message == ("the master gave this worker's link to another connection of worker edge-7 (from"
                             " 127.0.0.1): if that is not this worker reconnecting, another process is running with"
                             " this bundle: stop one (each worker name is one process)"), entry.message
