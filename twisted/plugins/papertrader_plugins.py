"""twistd plugins: papertrader-master, papertrader-worker, papertrader-cluster."""

import os
import signal
import sys

from twisted.application.service import ServiceMaker


class _Maker(ServiceMaker):
    def makeService(self, options):
        # What the server writes is its user's alone, twistd's log (made after this: it keeps every request's
        # address and user agent) and pid file included, as the data dir's files are.
        os.umask(os.umask(0o077) | 0o077)
        try:
            made = super().makeService(options)
            # What is loaded now lives as long as the process: the garbage collector need not visit it again
            # (papertrader/collector.py: a collection of all of it stopped a loaded worker for up to 135 ms).
            from papertrader import collector
            collector.settle()
            return made
        finally:
            # Before the reactor runs: twistd's own handler (a clean shutdown) takes Ctrl-C from here on; it
            # installs itself only over Python's default one.
            if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
                signal.signal(signal.SIGINT, signal.default_int_handler)


papertrader_master = _Maker(
    "PaperTrader master", "papertrader.master.service", "PaperTrader master server.", "papertrader-master")
papertrader_worker = _Maker(
    "PaperTrader worker", "papertrader.worker.service", "PaperTrader worker server.", "papertrader-worker")
papertrader_cluster = _Maker(
    "PaperTrader cluster", "papertrader.cluster", "A PaperTrader master and N workers in one process.",
    "papertrader-cluster")

_OURS = {papertrader_master.tapname, papertrader_worker.tapname, papertrader_cluster.tapname}


def _interrupted_while_starting(signum, frame):
    """Ctrl-C before the service is made (imports, checking the configuration, loading the market's history): a
    line, not a KeyboardInterrupt traceback, and the exit a Ctrl-C gives once it runs (twistd's own handler
    takes over once the service is made: _Maker)."""
    try:
        sys.stderr.write("\nInterrupted while starting: nothing was served.\n")
        sys.stderr.flush()
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


# twistd imports this module when it looks for plugins, before it reads a subcommand's options: a twistd run
# of one of ours (not another program listing plugins) is quiet on Ctrl-C from here on.
if os.path.basename(sys.argv[0] if sys.argv else "") == "twistd" and _OURS & set(sys.argv[1:]) and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_while_starting)
