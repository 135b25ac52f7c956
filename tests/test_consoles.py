"""The consoles as an operator uses them (telnet and SSH): leaving them, mistakes in them, answers that come
later, clients that refuse telnet options or end their input, and the password file."""

import gc
import os
import re
import shutil
import subprocess

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.logger import LogLevel, globalLogPublisher

from papertrader import tls
from papertrader.master import files
from papertrader.master.service import Master
from papertrader.manhole import Text
from tests.conftest import WatchedProcess, bounded
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
        # What earlier tests left for the garbage collector (a Deferred's unhandled error is logged when it is
        # collected) is logged now, before listening: a later gc.collect() here would blame it on this test.
        gc.collect()
        globalLogPublisher.addObserver(self)

    def __call__(self, event):
        if event.get("log_failure") is not None or event.get("log_level") is not None and \
                event["log_level"].name in ("error", "critical"):
            self.events.append(event)

    def close(self):
        globalLogPublisher.removeObserver(self)

    def collected(self):
        """``texts()`` once the garbage is collected (a Deferred's unhandled failure is logged only then)."""
        gc.collect()
        return self.texts()

    def texts(self):
        from twisted.logger import formatEvent

        out = []
        for e in self.events:
            failure = e.get("log_failure")
            out.append(formatEvent(e) + ("\n" + failure.getTraceback() if failure is not None else ""))
        return out


async def leave(session, what="the session to close"):
    """Close a session from the client's side; fires once the connection is closed."""
    session.transport.loseConnection()
    await bounded(session.closed, what)


async def at_password_prompt(port, client=None, end=b"\r\n"):
    """A telnet session that connected, gave the username admin (its line ended with ``end``) and was asked for
    the password."""
    session = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client or Session())
    await session.wait_for(b"Username: ")
    session.transport.write(b"admin" + end)
    await session.wait_for(b"Password: ")
    return session


async def login(port, password):
    session = await at_password_prompt(port)
    session.line(password)
    await session.wait_for(b">>> ")
    return session


class Silent(Session):
    """A client that never answers telnet options (a raw TCP tool such as nc)."""

    def dataReceived(self, data):
        self.negotiated(re.findall(rb"\xff([\xfb-\xfe])(.)", data, re.S))
        self.text += re.sub(rb"\xff[\xfb-\xfe].", b"", data, flags=re.S)
        for text, d in list(self.waiting):
            if text in self.text:
                self.waiting.remove((text, d))
                d.callback(self.text)

    def negotiated(self, requests):
        pass


class Refusing(Silent):
    """A telnet client that refuses every option the console asks for (as Python's telnetlib and some
    line-mode clients do)."""

    def negotiated(self, requests):
        for command, option in requests:
            if command[0] in (self.WILL, self.DO):
                self.transport.write(bytes([self.IAC, self.DONT if command[0] == self.WILL else self.WONT]) + option)


async def _master(tmp_path, settings, clock, database_url, **manhole):
    data_dir = str(tmp_path / "m")
    files.ensure_master_files(data_dir)
    master = Master(data_dir, settings, reactor, database=database_url, listen=tls.listen_description(
        0, "127.0.0.1", os.path.join(data_dir, files.MASTER_CERT)), clock=clock, **manhole)
    master.startService()
    await bounded(master.whenReady(), "the master to start")
    return master


@pytest_twisted.async_yield_fixture
async def console(tmp_path, settings, clock, database_url):
    port = free_port()
    master = await _master(tmp_path, settings, clock, database_url, manhole=f"tcp:{port}:interface=127.0.0.1")
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
    await leave(session)
    assert problems.collected() == []


async def login_with(client, port, password, end=b"\r\n"):
    session = await at_password_prompt(port, client, end)
    session.transport.write(password.encode() + end)
    await session.wait_for(b">>> ")
    return session


def typed(session, keys):
    """Send ``keys`` one at a time, as a terminal in character mode does."""
    session.text = b""
    for key in keys:
        session.transport.write(bytes([key]))


@pytest_twisted.ensureDeferred
async def test_an_answer_that_comes_later_shows_at_once_with_a_client_that_ends_lines_with_a_bare_cr(console):
    master, port, problems = console
    session = await login_with(Session(), port, password_of(master).strip())
    for key in b"accounts()\r":  # one key at a time, Enter as a bare CR
        session.transport.write(bytes([key]))
    # The console runs the line and shows the database's answer with nothing more typed (it used to hold the
    # CR until the next key, then show the answer over that key and break the session).
    await session.wait_for(b"Deferred #0 called back: (none)")
    session.line("1+1")
    await session.wait_for(b"\n2")
    session.line("account('nobody')")
    await session.wait_for(b"no account 'nobody'")
    await leave(session)
    assert problems.collected() == []


@pytest_twisted.ensureDeferred
async def test_an_answer_that_comes_while_the_operator_types_keeps_the_line_and_the_session(console):
    master, port, problems = console
    session = await login(port, password_of(master).strip())
    master.console_test_answer = answer = defer.Deferred()  # an answer the test gives when it chooses
    session.line("master.console_test_answer")
    await session.wait_for(b"<Deferred #0>")
    typed(session, b"6*")  # the next line, half typed
    await session.wait_for(b"*")
    session.text = b""
    answer.callback(Text("the answer"))
    await session.wait_for(b"Deferred #0 called back: the answer")
    await session.wait_for(b"6")  # the half-typed line is drawn again after the answer
    typed(session, b"7\r")
    await session.wait_for(b"\n42")  # and finishing it works: the line was kept as typed
    session.line("1+1")
    await session.wait_for(b"\n2")
    await leave(session)
    assert problems.collected() == []


@pytest_twisted.ensureDeferred
async def test_a_client_that_refuses_or_ignores_telnet_options_logs_in_and_leaves_no_error(console):
    from twisted.logger import formatEvent

    master, port, problems = console
    password = password_of(master).strip()
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        for client in (Refusing(), Silent()):
            session = await login_with(client, port, password)
            session.line("config()")
            await session.wait_for(b"update interval")
            session.line("accounts()")
            await session.wait_for(b"called back")
            await leave(session, f"the {type(client).__name__} session to close")
        # A client that leaves while the console still waits for its answer to an option (here, ECHO for the
        # password), and one whose password is wrong.
        await leave(await at_password_prompt(port, Silent()))
        session = await at_password_prompt(port, Refusing())
        session.line("wrong")
        await session.wait_for(b"Authentication failed")
        await leave(session)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert problems.collected() == []
    # Nothing that reads like a fault (Twisted's telnet said "state changed and new state returned" when the
    # login's answer came at once, as it does once ECHO is refused).
    assert not [formatEvent(e) for e in events if e.get("log_level") in (LogLevel.warn, LogLevel.error)
                and "admin console" not in formatEvent(e)]


@pytest_twisted.ensureDeferred
async def test_each_console_login_is_logged_with_its_address_never_its_password(console):
    """An operator reading the log sees who got into the console and who was refused, from where."""
    from twisted.logger import formatEvent

    master, port, problems = console
    lines = []
    globalLogPublisher.addObserver(lines.append)
    try:
        session = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), Session())
        await session.wait_for(b"Username: ")
        client_port = session.transport.getHost().port
        session.line("admin")
        await session.wait_for(b"Password: ")
        session.line("guess-123")
        await session.wait_for(b"Authentication failed")
        await leave(session)
        await leave(await login(port, password_of(master).strip()))
    finally:
        globalLogPublisher.removeObserver(lines.append)
    said = [formatEvent(e) for e in lines if "admin console" in formatEvent(e)]
    assert [line for line in said if "refused" in line] == [
        f"admin console: a telnet login from 127.0.0.1:{client_port} was refused"]
    assert len([line for line in said if "a telnet login from 127.0.0.1:" in line and "let in" in line]) == 1
    assert not [line for line in said if "guess-123" in line or password_of(master).strip() in line]
    # Nothing that reads like a fault either (Twisted's telnet said "state changed and new state returned").
    assert not [e for e in lines if e.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical)
                and "admin console" not in formatEvent(e)], [formatEvent(e) for e in lines]
    assert problems.collected() == []


def ssh_piped(port, key, user="admin"):
    """The OpenSSH client with its input a pipe: it asks for no terminal (and offers only ``key``)."""
    client = WatchedProcess()
    reactor.spawnProcess(client, "ssh", ["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes",
                                         "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
                                         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                                         f"{user}@127.0.0.1"], env={"PATH": os.environ["PATH"]})
    return client


class Logged:
    """Fires ``seen(text)`` once an event whose text holds ``text`` is logged (from now on)."""

    def __init__(self):
        from twisted.logger import formatEvent

        self.lines, self.waiting, self.format = [], [], formatEvent
        globalLogPublisher.addObserver(self)

    def __call__(self, event):
        line = self.format(event)
        self.lines.append(line)
        for text, d in list(self.waiting):
            if text in line:
                self.waiting.remove((text, d))
                d.callback(line)

    def seen(self, text):
        d = defer.Deferred()
        self.waiting.append((text, d))
        return bounded(d, f"a log line holding {text!r}")

    def close(self):
        globalLogPublisher.removeObserver(self)


@pytest.mark.skipif(not shutil.which("ssh") or not shutil.which("ssh-keygen"), reason="needs the OpenSSH client")
@pytest_twisted.ensureDeferred
async def test_each_ssh_console_login_is_logged_with_its_address_and_key_a_refused_one_as_a_warning(
        tmp_path, settings, clock, database_url):
    """The console reachable from the network says who got in and who was turned away, as the telnet one does."""
    for name in ("admin", "stranger"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
    (tmp_path / "authorized_keys").write_bytes((tmp_path / "admin.pub").read_bytes())
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "admin.pub")], check=True,
                                 capture_output=True, text=True).stdout.split()[1]
    port = free_port()
    master = await _master(tmp_path, settings, clock, database_url, manhole=f"tcp:{port}:interface=127.0.0.1",
                           manhole_keys=str(tmp_path / "authorized_keys"))
    logged = Logged()
    try:
        let_in = logged.seen("an SSH login from")
        admin = ssh_piped(port, str(tmp_path / "admin"))
        admin.transport.closeStdin()
        assert (await admin.ended).exitCode == 0, admin.output
        assert re.fullmatch(rf"admin console: an SSH login from 127\.0\.0\.1:\d+ was let in \(user 'admin', key"
                            rf" {re.escape(fingerprint)}\)", await let_in)
        refused = logged.seen("an SSH login from")
        stranger = ssh_piped(port, str(tmp_path / "stranger"), user="root\x1b[2J")
        stranger.transport.closeStdin()
        assert (await stranger.ended).exitCode == 255, stranger.output
        line = await refused
        assert re.fullmatch(r"admin console: an SSH login from 127\.0\.0\.1:\d+ was refused \(1 attempt\(s\),"
                            r" user 'root\?\[2J'\)", line), line
        levels = {e.message: e.level for e in master.logs.newest(None) if "an SSH login" in e.message}
        assert sorted(levels.values()) == ["info", "warn"], levels
    finally:
        logged.close()
        await master.stopService()


@pytest.mark.skipif(not shutil.which("ssh") or not shutil.which("ssh-keygen"), reason="needs the OpenSSH client")
@pytest_twisted.ensureDeferred
async def test_an_ssh_client_whose_input_ends_gets_its_answers_and_the_session_ends_cleanly(
        tmp_path, settings, clock, database_url):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "admin")], check=True)
    (tmp_path / "authorized_keys").write_bytes((tmp_path / "admin.pub").read_bytes())
    port = free_port()
    master = await _master(tmp_path, settings, clock, database_url, manhole=f"tcp:{port}:interface=127.0.0.1",
                           manhole_keys=str(tmp_path / "authorized_keys"))
    problems = Problems()
    try:
        piped = ssh_piped(port, str(tmp_path / "admin"))  # ssh ... < commands
        # (the input's last block has no blank line after it, its last line no line end: run as Python runs a file)
        piped.transport.write(b"config()\naccounts()\nfor i in range(2):\n    print('line', i)")
        piped.transport.closeStdin()
        ended = await piped.ended
        assert ended.exitCode == 0, piped.output
        assert b"update interval" in piped.output and b"line 0\nline 1\n" in piped.output
        assert b"Deferred #0 called back: (none)" in piped.output  # the answer that came after the input ended
        assert b"<Deferred" not in piped.output  # (only answers: not the placeholder a terminal session shows)
        # Output fit for a file or a program: no prompt, no echo of the input, no terminal escape codes.
        assert b"\x1b" not in piped.output and b">>> " not in piped.output and b"print(" not in piped.output
        empty = ssh_piped(port, str(tmp_path / "admin"))  # ssh ... < /dev/null
        empty.transport.closeStdin()
        ended = await empty.ended
        assert ended.exitCode == 0 and empty.output == b"", empty.output
        unclosed = ssh_piped(port, str(tmp_path / "admin"))  # a bracket never closed: said, as Python says it
        unclosed.transport.write(b"print(1)\nfoo(\n")
        unclosed.transport.closeStdin()
        ended = await unclosed.ended
        assert ended.exitCode == 0 and unclosed.output.startswith(b"1\n"), unclosed.output
        assert b"SyntaxError" in unclosed.output and b"never closed" in unclosed.output, unclosed.output
        leaving = ssh_piped(port, str(tmp_path / "admin"))  # exit() ends the session: the lines after it do not run
        leaving.transport.write(b"print('before')\nexit()\nprint('after')\n")
        leaving.transport.closeStdin()
        ended = await leaving.ended
        assert ended.exitCode == 0 and leaving.output == b"before\n", leaving.output
        flood = ssh_piped(port, str(tmp_path / "admin"))  # a line without end: refused past its limit, not kept
        flood.transport.write(b"x" * (70 * 1024))
        ended = await flood.ended
        assert flood.output == b"refused: a line longer than 65536 bytes; the session is closed\n", flood.output
        assert problems.collected() == []
        closed = [e.message for e in master.logs.newest(None) if "ended its input" in e.message]
        assert [e.level for e in master.logs.newest(None) if "ended its input" in e.message] == ["info"] * 3
        # (Whether accounts() was still pending when the input ended is a race with the database: either way its
        # answer was shown before the session closed, as asserted above.)
        assert "closes once 1 pending answer(s) are shown" in closed[0] or closed[0].endswith("session closed")
        assert closed[1].endswith("session closed") and closed[2].endswith("session closed")
    finally:
        problems.close()
        await master.stopService()
