"""The log system: a bounded in-memory ring of the newest entries, a log file, caller file/function/line."""

import inspect
import time
from datetime import datetime, timezone

import pytest
from twisted.internet import task
from twisted.logger import LogLevel, formatEvent, formatEventAsClassicLogText, globalLogPublisher

from papertrader.logs import LogSystem


@pytest.fixture
def system():
    s = LogSystem("unit", 5, forward=False)
    yield s
    s.close()


def here():
    """The line number of the caller."""
    return inspect.currentframe().f_back.f_lineno


def test_memory_keeps_only_the_newest_entries(system):
    log = system.logger("papertrader.unit")
    for i in range(12):
        log.info("event {i}", i=i)
    assert [e.message for e in system.newest(100)] == [f"event {i}" for i in range(7, 12)]
    assert [e.message for e in system.newest(2)] == ["event 10", "event 11"]


def test_entry_names_time_level_caller_and_formatted_message(system):
    log = system.logger("papertrader.unit")
    before = datetime.now(timezone.utc)
    line = here() + 1
    log.warn("order {id} for {user!r} refused", id=7, user="alice")
    after = datetime.now(timezone.utc)
    [entry] = system.newest(1)
    assert entry.level == "warn"
    assert entry.file == "test_logs.py"
    assert entry.function == "test_entry_names_time_level_caller_and_formatted_message"
    assert entry.line == line
    assert entry.message == "order 7 for 'alice' refused"
    assert before.timestamp() - 0.001 <= entry.time.timestamp() <= after.timestamp() + 0.001
    assert entry.time.tzinfo is not None
    text = entry.format()
    assert f"WARN     test_logs.py:test_entry_names_time_level_caller_and_formatted_message:{line} " in text
    assert text.endswith("order 7 for 'alice' refused")


def test_failure_entry_names_the_caller_and_carries_the_traceback(system):
    log = system.logger("papertrader.unit")
    try:
        raise RuntimeError("feed down")
    except RuntimeError:
        line = here() + 1
        log.failure("update failed")
    [entry] = system.newest(1)
    assert entry.level == "critical"
    assert (entry.file, entry.function, entry.line) == (
        "test_logs.py", "test_failure_entry_names_the_caller_and_carries_the_traceback", line)
    assert entry.message.startswith("update failed\n")
    assert "RuntimeError: feed down" in entry.message


def test_caller_is_the_function_that_logged_not_a_helper_of_the_log_system(system):
    log = system.logger("papertrader.unit")

    def place_order():
        log.info("queued")
        return here() - 1

    line = place_order()
    [entry] = system.newest(1)
    assert (entry.function, entry.line) == ("place_order", line)


def test_newest_filters_by_level(system):
    log = system.logger("papertrader.unit")
    log.info("i1")
    log.error("e1")
    log.info("i2")
    log.error("e2")
    log.warn("w1")
    assert [e.message for e in system.newest(10, "error")] == ["e1", "e2"]
    assert [e.message for e in system.newest(1, "error")] == ["e2"]  # the newest error, not the newest entry
    assert [e.message for e in system.newest(10, LogLevel.warn)] == ["w1"]
    assert system.newest(10, "debug") == []
    assert [e.message for e in system.newest(3)] == ["i2", "e2", "w1"]


def test_entries_are_written_to_the_log_file(tmp_path):
    path = tmp_path / "logs" / "master.log"  # the directory is created
    system = LogSystem("master", 2, path=str(path), forward=False)
    try:
        log = system.logger("papertrader.master")
        lines = []
        for i in range(4):
            lines.append(here() + 1)
            log.info("entry {i}", i=i)
        text = path.read_text(encoding="utf-8")
    finally:
        system.close()
    written = text.splitlines()
    # The file keeps everything, even what has dropped off the memory ring.
    assert len(written) == 4
    for i, (row, line) in enumerate(zip(written, lines)):
        assert f"INFO     test_logs.py:test_entries_are_written_to_the_log_file:{line} entry {i}" in row
        datetime.strptime(row[:23], "%Y-%m-%d %H:%M:%S.%f")
    assert [e.message for e in system.newest(10)] == ["entry 2", "entry 3"]


def test_entries_are_forwarded_to_the_global_log():
    """What twistd's log shows is the line the log system made (braces in a value shown as they are), and a
    failure's traceback follows it."""
    seen = []
    globalLogPublisher.addObserver(seen.append)
    system = LogSystem("fwd", 10)
    n = time.time_ns()
    try:
        log = system.logger("papertrader.fwd")
        log.info("forwarded {n} by {who}", n=n, who="{user}")
        try:
            1 / 0
        except ZeroDivisionError:
            log.failure("failed {n}", n=n)
    finally:
        globalLogPublisher.removeObserver(seen.append)
        system.close()
    ours = [e for e in seen if e.get("log_namespace") == "papertrader.fwd"]
    assert [formatEvent(e) for e in ours] == [f"forwarded {n} by {{user}}", f"failed {n}"]
    classic = formatEventAsClassicLogText(ours[1])
    assert f"failed {n}" in classic and "ZeroDivisionError" in classic


def test_two_systems_keep_separate_memories():
    a, b = LogSystem("a", 10, forward=False), LogSystem("b", 10, forward=False)
    a.logger("papertrader.a").info("only in a")
    assert [e.message for e in a.newest()] == ["only in a"]
    assert b.newest() == []


def test_a_reactor_turns_lines_reach_the_file_together_and_closing_writes_the_rest(tmp_path):
    """With a reactor, the file gets one write per turn of the reactor, in order; nothing logged is lost."""
    clock = task.Clock()
    path = tmp_path / "logs" / "master.log"
    system = LogSystem("master", 10, str(path), forward=False, reactor=clock)
    log = system.logger("papertrader.test")
    log.info("order {id} accepted", id=1)
    log.info("order {id} {what!r}", id=2, what="canceled")
    assert path.read_text() == ""  # this turn is not over yet
    clock.advance(0)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(" order 1 accepted") and lines[1].endswith(" order 2 'canceled'")
    log.info("the last {n}", n="line")
    system.close()
    assert path.read_text().splitlines()[-1].endswith("the last line")


def test_messages_are_what_twisted_would_format_including_what_only_twisted_can():
    """The fast path (str.format_map) and twisted's formatEvent agree; what the fast path cannot do (a call in
    a field, a missing key) is still formatted by twisted."""
    from twisted.logger import formatEvent

    from papertrader.logs import _message

    events = [dict(log_format="{a} {b!r} {c:>5} {d[k]} {e.real}", a=1, b="x", c="y", d={"k": 2}, e=3),
              dict(log_format="size {size()}", size=lambda: 7),
              dict(log_format="{missing}"),
              dict(log_format="no fields {{}}")]
    for event in events:
        assert _message(event) == formatEvent(event)
    assert _message(events[1]) == "size 7"
