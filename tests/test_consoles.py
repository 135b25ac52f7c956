"""The telnet console as an operator uses it: leaving it, mistakes in it, and its password file."""

import gc
import os

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.logger import globalLogPublisher

from papertrader import tls
from papertrader.master import files
from papertrader.master.service import Master
from tests.conftest import bounded
from tests.test_fleet import Telnet, free_port


class Session(Telnet):
    """A telnet client that also tells when the console closed the connection."""

    def __init__(self):
        super().__init__()
        self.closed = defer.Deferred()

    def connectionLost(self, reason):
        self.closed.callback(None)


class Problems:
    """Everything logged anywhere in the process (twistd's log) that is a traceback or an error."""

    def __init__(self):
        self.events = []
        globalLogPublisher.addObserver(self)

    def __call__(self, event):
        if event.get("log_failure") is not None or event.get("log_level") is not None and \
                event["log_level"].name in ("error", "critical"):
            self.events.append(event)

    def close(self):
        globalLogPublisher.removeObserver(self)

    def texts(self):
        from twisted.logger import formatEvent

        out = []
        for e in self.events:
            failure = e.get("log_failure")
            out.append(formatEvent(e) + ("\n" + failure.getTraceback() if failure is not None else ""))
        return out


async def login(port, password):
    session = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Session())
    await session.wait_for(b"Username: ")
    session.line("admin")
    await session.wait_for(b"Password: ")
    session.line(password)
    await session.wait_for(b">>> ")
    return session


@pytest_twisted.async_yield_fixture
async def console(tmp_path, settings, clock):
    port = free_port()
    data_dir = str(tmp_path / "m")
    files.ensure_master_files(data_dir)
    master = Master(data_dir, settings, reactor, listen=tls.listen_description(0, "127.0.0.1", os.path.join(
        data_dir, files.MASTER_CERT)), clock=clock, manhole=f"tcp:{port}:interface=127.0.0.1")
    master.startService()
    await bounded(master.whenReady(), "the master to start")
    problems = Problems()
    try:
        yield master, port, problems
    finally:
        problems.close()
        await master.stopService()


def password_of(master):
    with open(os.path.join(master.data_dir, "manhole.passwd"), encoding="utf-8") as f:
        return f.read()


@pytest_twisted.ensureDeferred
async def test_the_password_file_holds_the_password(console):
    master, port, problems = console
    content = password_of(master)
    assert content.endswith("\n") and ":" not in content and len(content.strip()) >= 16
    session = await login(port, content.strip())
    session.line("help()")
    await session.wait_for(b"kick(name)")
    session.transport.loseConnection()
    assert os.stat(os.path.join(master.data_dir, "manhole.passwd")).st_mode & 0o077 == 0


@pytest_twisted.ensureDeferred
async def test_leaving_with_exit_quit_or_ctrl_d_logs_nothing_and_keeps_the_master(console):
    master, port, problems = console
    password = password_of(master).strip()
    for leave in (b"exit()\r\n", b"quit()\r\n", b"\x04", b"\xff\xec"):  # the last: a line-mode client's Ctrl-D
        session = await login(port, password)
        session.transport.write(leave)
        await bounded(session.closed, f"the console to close after {leave!r}")
    assert problems.texts() == []
    session = await login(port, password)  # the master and its console are still there
    session.line("config()")
    await session.wait_for(b"update interval")
    session.transport.loseConnection()
    assert master.running


@pytest_twisted.ensureDeferred
async def test_a_console_call_that_fails_is_shown_not_left_unhandled(console):
    master, port, problems = console
    session = await login(port, password_of(master).strip())
    session.line('kick("nosuch")')
    await session.wait_for(b"no worker named 'nosuch'")
    session.line('master.workers.status("nosuch")')  # any failing Deferred: shown as failed
    await session.wait_for(b"is not connected")
    assert b"failed" in session.text, session.text
    session.line("1")  # the console's _ lets go of the last result
    await session.wait_for(b"\n>>> ")
    session.transport.loseConnection()
    await bounded(session.closed, "the session to close")
    gc.collect()
    assert problems.texts() == []
