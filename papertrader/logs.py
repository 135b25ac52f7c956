"""The log system of the specification, built on ``twisted.logger``.

Each process part (the master, each worker) owns a :class:`LogSystem`: a
publisher whose observers are a bounded in-memory ring (the newest
``log_memory_size`` entries, retrievable), a log file in the data dir, and the
global publisher (so twistd's own log shows everything too).  Events from a
:class:`Logger` carry the caller's file, function and line.
"""

import collections
import errno
import os
import sys
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from twisted.logger import (
    LogLevel,
    LogPublisher,
    formatEvent,
    globalLogPublisher,
)
from twisted.logger import Logger as _TwistedLogger
from twisted.python.logfile import LogFile
from twisted.python.threadable import isInIOThread


class Logger(_TwistedLogger):
    """A twisted Logger whose events name the calling file, function and line."""

    def emit(self, level, format=None, **kwargs):
        if level not in _LEVELS:  # twisted's Logger says so, in a log event of its own
            return super().emit(level, format, **kwargs)
        frame = sys._getframe(1)
        # Skip Logger's own methods (info, failure, ...) to find the real caller.
        while frame is not None and frame.f_code.co_filename in _OWN_FILES:
            frame = frame.f_back
        if frame is not None:
            code = frame.f_code
            kwargs.setdefault("log_file", _basename(code.co_filename))
            kwargs.setdefault("log_function", code.co_name)
            kwargs.setdefault("log_line", frame.f_lineno)
        # What twisted's Logger.emit does with a valid level (without listing and sorting the levels again to
        # check it: a busy master logs a line per order).
        kwargs.update(log_logger=self, log_level=level, log_namespace=self.namespace, log_source=self.source,
                      log_format=format, log_time=time.time())
        if "log_trace" in kwargs:
            kwargs["log_trace"].append((self, self.observer))
        self.observer(kwargs)


_TWISTED_LOGGER_FILE = sys.modules[_TwistedLogger.__module__].__file__
_OWN_FILES = (__file__, _TWISTED_LOGGER_FILE)
_LEVELS = frozenset(LogLevel.iterconstants())
_BASENAMES = {}


def _basename(path):
    """``os.path.basename(path)``, remembered (a log line's file is one of a few)."""
    found = _BASENAMES.get(path)
    if found is None:
        if len(_BASENAMES) > 1000:
            _BASENAMES.clear()
        found = _BASENAMES[path] = os.path.basename(path)
    return found


def _message(event):
    """The event's message: its format filled in with ``str.format_map`` (fast, in C), or, where that cannot
    (a ``{call()}``, a missing key, a malformed format), by ``twisted.logger.formatEvent``, which does the same
    and more, slowly, and says when it cannot."""
    log_format = event.get("log_format")
    if isinstance(log_format, str):
        try:
            return log_format.format_map(event)
        except Exception:
            pass
    return formatEvent(event)


@dataclass(frozen=True)
class LogEntry:
    time: datetime
    level: str
    file: str
    function: str
    line: int
    message: str

    @classmethod
    def from_event(cls, event):
        text = _message(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}\n{failure.getTraceback()}"
        return cls(
            time=datetime.fromtimestamp(event.get("log_time", 0), timezone.utc),
            level=event.get("log_level", LogLevel.info).name,
            file=event.get("log_file", event.get("log_namespace", "?")),
            function=event.get("log_function", "?"),
            line=event.get("log_line", 0),
            message=text,
        )

    def format(self):
        stamp = self.time.isoformat(" ", "milliseconds")[:23]  # 2026-01-02 03:04:05.678
        return f"{stamp} {self.level.upper():<8} {self.file}:{self.function}:{self.line} {self.message}"


#: The key under which an event keeps its LogEntry, made once for the memory ring and the log file.
_ENTRY = "papertrader_log_entry"


def entry_of(event):
    """The event as a LogEntry (formatted once, however many of a LogSystem's observers ask)."""
    entry = event.get(_ENTRY)
    if entry is None:
        entry = event[_ENTRY] = LogEntry.from_event(event)
    return entry


#: Characters of one entry's message kept in memory (the log file has all of it).
MAX_MEMORY_MESSAGE = 8000


class MemoryLog:
    """The newest ``size`` entries in memory, each message at most MAX_MEMORY_MESSAGE characters; older ones
    drop off."""

    def __init__(self, size):
        self.entries = collections.deque(maxlen=size)

    def __call__(self, event):
        entry = entry_of(event)
        if len(entry.message) > MAX_MEMORY_MESSAGE:
            entry = replace(entry, message=entry.message[:MAX_MEMORY_MESSAGE] + " [...]")
        self.entries.append(entry)

    def newest(self, n=20, level=None):
        entries = list(self.entries)
        if level is not None:
            wanted = LogLevel.levelWithName(level).name if isinstance(level, str) else level.name
            entries = [e for e in entries if e.level == wanted]
        return entries if n is None else entries[len(entries) - n:] if n > 0 else []


class _LogFile(LogFile):
    """Twisted's rotated log file, writing all of each write or raising (its file is unbuffered: a full disk
    wrote part of a line, silently, and the next line went on after it)."""

    def write(self, data):
        if self.shouldRotate():
            self.flush()
            self.rotate()
        if isinstance(data, str):
            data = data.encode("utf8")
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            self.size += written or 0
            if not written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]


def _forward(event):
    """Hand the event to the global log (twistd's log file or terminal) with its message already made: the same
    text, without formatting it again (twistd's observer would fill the format in with ``formatEvent``, several
    times slower than ``str.format_map``: a busy master logs a line per order)."""
    message = entry_of(event).message if event.get("log_failure") is None else _message(event)
    globalLogPublisher(dict(event, log_format=message.replace("{", "{{").replace("}", "}}")))


class LogSystem:
    """One part's logs: memory ring + rotated file + forwarding to the global log.

    With a ``reactor``, the lines logged in the reactor thread during one turn of the reactor are written to
    the file together at the end of it (one write instead of one per line: a busy master logs a line per
    order); a process killed mid-turn loses that turn's lines from the file (never from the database).
    Lines logged in other threads, or without a reactor, are written at once (after those of the reactor
    thread still waiting)."""

    def __init__(self, name, memory_size, path=None, forward=True, reactor=None):
        self.name = name
        #: The log file (None: memory only).
        self.path = path
        self.memory = MemoryLog(memory_size)
        self.publisher = LogPublisher(self.memory)
        self._file = None
        self._reactor = reactor
        self._pending = []
        self._writing = threading.Lock()
        #: Lines the file could not take since it last could (a full disk), and why.
        self._lost = 0
        self._lost_why = ""
        if path is not None:
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, mode=0o700, exist_ok=True)
            if os.stat(directory).st_mode & 0o077:  # (made by an older release)
                os.chmod(directory, 0o700)
            # Readable by its owner only (it names users, addresses, orders), its rotated files likewise.
            self._file = _LogFile.fromFullPath(path, rotateLength=10_000_000, maxRotatedFiles=10, defaultMode=0o600)
            self.publisher.addObserver(self._to_file)
        if forward:
            self.publisher.addObserver(_forward)

    def _to_file(self, event):
        line = entry_of(event).format() + "\n"
        with self._writing:
            if self._reactor is None or not isInIOThread():  # at once, after what the reactor thread logged
                self._write(self._pending + [line])
                self._pending = []
                return
            if not self._pending:
                self._reactor.callLater(0, self._flush)
            self._pending.append(line)

    def _flush(self):
        with self._writing:
            lines, self._pending = self._pending, []
            self._write(lines)

    def _write(self, lines):
        """Write ``lines`` to the file.  If it cannot be written (a full disk), they are lost from it (the memory ring
        and the global log still had them): said once on the process's stderr, and counted in the file, on a line
        of its own, once it can be written again."""
        if not lines or self._file is None:
            return
        text = "".join(lines)
        if self._lost:
            stamp = datetime.now(timezone.utc).isoformat(" ", "milliseconds")[:23]
            text = (f"\n{stamp} {'ERROR':<8} papertrader.logs:_write:0 {counted(self._lost, 'log line')} could not"
                    f" be written to this file ({self._lost_why}): they are missing above\n") + text
        try:
            self._file.write(text)
        except (OSError, ValueError) as e:  # (ValueError: a rotation that failed left the file closed)
            if isinstance(e, ValueError):
                e = OSError(0, str(e))
                try:
                    self._file.reopen()
                except (OSError, ValueError):
                    pass
            if not self._lost:
                sys.stderr.write(f"papertrader: cannot write the log file {self._file.path} ({e.strerror or e}): its"
                                 " lines are lost from it until it can be written again\n")
            self._lost += len(lines)
            self._lost_why = e.strerror or str(e)
        else:
            self._lost = 0

    def logger(self, namespace):
        return Logger(namespace=namespace, observer=self.publisher)

    def newest(self, n=20, level=None):
        return self.memory.newest(n, level)

    def close(self):
        """Close the log file (its owner does this last, once nothing is left to log).

        An entry logged after that still reaches the memory ring and the global log, never the closed file.
        """
        if self._file is not None:
            self.publisher.removeObserver(self._to_file)
            self._flush()
            self._file.close()
            self._file = None


def counted(n, what, many=None):
    """``n`` and ``what``, plural unless n is 1: '1 session', '2 sessions' (``many``: an irregular plural)."""
    return f"{n} {what if n == 1 else (many or what + 's')}"
