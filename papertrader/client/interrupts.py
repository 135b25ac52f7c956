"""Ctrl-C (SIGINT) and SIGTERM for the command-line client: an interrupt stops the command, never with a traceback.

Installed once by ``main`` when the reactor runs.  The first signal asks the
running command to stop (``on_interrupt(signum)``, from the reactor); while the
client waits at a prompt (a password, a confirmation: blocking reads), it
interrupts the read itself.  A second signal, if the first one's clean-up is
stuck, ends the process at once.  Either way the exit status is 128 + the
signal's number: 130 for SIGINT, 143 for SIGTERM.
"""

import contextlib
import os
import signal
import sys

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def status(signum):
    """The exit status of a process stopped by ``signum``, as shells report it."""
    return 128 + signum


class Interrupted(KeyboardInterrupt):
    """Raised out of a blocking prompt by a signal."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class Interrupts:
    def __init__(self, reactor):
        self.reactor = reactor
        self.on_interrupt = None
        self.signum = None
        self._blocking = 0

    def install(self):
        """Take SIGINT and SIGTERM over (call once the reactor runs: it installs its own at start-up)."""
        for signum in SIGNALS:
            signal.signal(signum, self._handler)

    def _handler(self, signum, frame):
        if self.signum is not None:
            # A second signal: the first one's clean-up is stuck. Stop now.
            with contextlib.suppress(Exception):
                sys.stdout.flush()
            os._exit(status(self.signum))
        self.signum = signum
        if self._blocking:
            raise Interrupted(signum)
        self.reactor.callFromThread(self._deliver, signum)

    def _deliver(self, signum):
        if self.on_interrupt is not None:
            self.on_interrupt(signum)

    @contextlib.contextmanager
    def blocking(self):
        """Around a blocking read (a prompt): a signal interrupts the read by raising Interrupted in it."""
        if self.signum is not None:
            raise Interrupted(self.signum)
        self._blocking += 1
        try:
            yield
        finally:
            self._blocking -= 1


class NoInterrupts:
    """In-process runs (tests, embedding): no signal handling, prompts read as they are."""

    signum = None
    on_interrupt = None

    @contextlib.contextmanager
    def blocking(self):
        yield
