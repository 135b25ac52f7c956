"""A log file that cannot be written (a full disk): its lines are counted, said, and never glued together.

The master.log of an operator whose disk filled lost lines silently, and the line being written when space ran
out was cut mid-word and glued to the next one written after space was freed.  A real process whose file size
is limited (RLIMIT_FSIZE: writes past it fail as on a full disk) logs through the real LogSystem."""

import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import resource, signal, sys
    from papertrader.logs import LogSystem
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    logs = LogSystem("test", 100, path=sys.argv[1], forward=False)
    log = logs.logger("papertrader.test")
    for n in range(40):
        log.info("order {n} accepted: sell 10 AAPL market day for alice via worker1", n=n)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space again
    log.info("order 40 accepted: buy 1 MSFT market day for bob via worker1")
    logs.close()
""")


def test_lines_a_full_disk_loses_are_counted_and_said_and_none_is_cut(tmp_path):
    path = str(tmp_path / "logs" / "master.log")
    done = subprocess.run([sys.executable, "-c", CHILD, path, "2000"], capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("cannot write the log file") == 1 and "its lines are lost from it" in done.stderr
    lines = open(path, encoding="utf-8").read().splitlines()
    written = [line for line in lines if "accepted:" in line and line.endswith("via worker1")]
    orders = [int(line.split("order ")[1].split(" ")[0]) for line in written]
    assert orders[-1] == 40 and orders == sorted(orders)  # whole lines, in order: the last after the space came
    notice = [line for line in lines if "could not be written to this file" in line]
    assert len(notice) == 1 and notice[0].split("ERROR")[1].split()[1] == str(40 - (len(orders) - 1)), notice
    cut = [line for line in lines if line not in written and line not in notice]
    assert all("accepted:" in line for line in cut) and len(cut) <= 1  # at most the one cut by the limit
    assert lines.index(notice[0]) == len(lines) - 2  # said just before the first line written again
