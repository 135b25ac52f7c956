"""The console scripts' entry points (setup.cfg): ``papertrader`` and ``papertrader-admin``.

Their first code, before the heavy imports (Twisted, cryptography: a fifth of a second), makes Ctrl-C
(SIGINT) and SIGTERM end the command quietly with the status shells give an interrupted command, 130
or 143 (``papertrader --json``: with its one JSON value, ``{"error": "interrupted", ...}``, as the
client says it later).  Python's own handling would print a KeyboardInterrupt traceback from inside
whichever import the signal interrupted.  Once the command runs, the client installs its own handling
(``papertrader.client.interrupts``) and papertrader-admin hands SIGINT to the reactor (``admin.main``), so a
backup, restore or migration is not cut mid-write.

Only the standard library is imported here, and only what the interpreter has already loaded.
"""

import os
import signal
import sys

#: What an interrupted ``papertrader --json`` prints, as ``Client.stopped`` says it.
_JSON = '{"error": "interrupted", "message": "interrupted (%s)"}\n'


def _quiet_exit(json_command):
    def handler(signum, frame):
        if json_command:
            try:
                sys.stdout.write(_JSON % signal.Signals(signum).name)
                sys.stdout.flush()
            except Exception:
                pass
        os._exit(128 + signum)

    return handler


def _stop_quietly(json_command=False):
    handler = _quiet_exit(json_command)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


def papertrader():
    argv = sys.argv[1:]
    # (watch --json streams: interrupted, it just stops, as the client's own handling does)
    _stop_quietly(json_command="--json" in argv and "watch" not in argv)
    from papertrader.client.cli import main

    return main()


def papertrader_admin():
    _stop_quietly()
    from papertrader.admin import main

    return main()
