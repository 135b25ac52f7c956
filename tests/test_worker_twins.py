"""One worker bundle started twice: the two processes take the link from each other every few seconds, and
the master only said "worker w2 connected again; dropping its older link" each time.  It now says what is
happening, once a minute while it goes on."""

from types import SimpleNamespace

from twisted.internet import task

from papertrader.master.workers import Workers


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
