"""Fault injection for the crash tests: named points where a process can be made to stop mid-work.

With ``PAPERTRADER_PAUSE_AT=NAME`` in its environment, a process that reaches
the point ``NAME`` says so on stderr and stops there (the thread waits forever),
so a test can kill it at exactly that moment, e.g. inside a market step's
transaction after its fills are written but before they are committed.
Without the variable a point costs one dictionary lookup.
"""

import os
import sys
import threading

ENV = "PAPERTRADER_PAUSE_AT"


def point(name):
    if os.environ.get(ENV) != name:
        return
    sys.stderr.write(f"papertrader: paused at {name}\n")
    sys.stderr.flush()
    threading.Event().wait()
