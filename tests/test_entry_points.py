"""The console scripts as pip installs them (setup.cfg's console_scripts): Ctrl-C right after start.

Importing Twisted and cryptography takes a fifth of a second; a Ctrl-C then used to print Python's
KeyboardInterrupt traceback from inside an import.  The entry points' first code now makes SIGINT and
SIGTERM end the command quietly (130, 143) until the command installs its own handling.

The processes are real, started as pip's generated script starts them (import the entry point's module,
call its function).  The signal is sent as soon as the entry point's first code has run, which the
test sees in /proc (the process catches SIGTERM: Python does not by itself), so it lands in the imports
or, on a fast machine, in the command: both must stop quietly with 130.  (A signal in the interpreter's
own start-up, before any of the project's code runs, is Python's to handle and out of reach.)
"""

import configparser
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from papertrader import tls

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAIT = 60  # seconds: the most any process here may take


def console_scripts():
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict((part.strip() for part in line.split("=", 1)) for line in lines)


def script_code(name):
    """What pip's generated ``name`` script runs."""
    module, function = console_scripts()[name].split(":")
    return f"import sys; from {module} import {function}; sys.exit({function}())"


def env_for(tmp_path):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), PYTHONPATH=ROOT)


@pytest.mark.parametrize("name", ["papertrader", "papertrader-admin"])
def test_an_entry_point_imports_neither_twisted_nor_cryptography_before_its_first_code(name, tmp_path):
    module = console_scripts()[name].split(":")[0]
    code = (f"import sys; import {module}; print(sorted(m for m in sys.modules"
            " if m.split('.')[0] in ('twisted', 'cryptography', 'OpenSSL', 'psycopg')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT,
                          env=env_for(tmp_path), cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def catches(pid, signum):
    """Whether process ``pid`` has a handler for ``signum`` (/proc/PID/status, SigCgt)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def wait_until_catching(proc, signum, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the process ended ({proc.returncode}) before it caught signal {signum}:"
                                 f" {proc.communicate()}")
        try:
            if catches(proc.pid, signum):
                return
        except FileNotFoundError:
            pass
        os.sched_yield()
    raise AssertionError(f"the process did not catch signal {signum} within {timeout} s")


def shell_status(returncode):
    """The exit status as a shell reports it (a process killed by signal N: 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


@pytest.fixture
def silent_master(tmp_path):
    """A --master and a CA file: the address accepts connections and never answers, so a command waits."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    ca = tls.CertificateAuthority.ensure(str(tmp_path / "ca"))
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.pem())
    yield ["--master", f"127.0.0.1:{listener.getsockname()[1]}", "--ca-file", str(ca_file)]
    listener.close()


def interrupted_at_once(name, argv, tmp_path, signum=signal.SIGINT):
    proc = subprocess.Popen([sys.executable, "-c", script_code(name), *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env_for(tmp_path), cwd=str(tmp_path))
    try:
        wait_until_catching(proc, signal.SIGTERM)  # the entry point's first code has run
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=WAIT)
    return shell_status(proc.returncode), out.decode(), err.decode()


linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")


@linux_only
@pytest.mark.parametrize("argv", [["quote", "AAPL"], ["orders"], ["--help"]])
def test_ctrl_c_right_after_papertrader_starts_stops_it_quietly_with_130(argv, tmp_path, silent_master):
    status, out, err = interrupted_at_once("papertrader", [*silent_master, *argv], tmp_path)
    assert (status, err) == (130, "")
    assert "Traceback" not in out and "KeyboardInterrupt" not in out


@linux_only
def test_ctrl_c_right_after_papertrader_json_starts_prints_the_interrupted_value(tmp_path, silent_master):
    status, out, err = interrupted_at_once("papertrader", ["--json", *silent_master, "quote", "AAPL"], tmp_path)
    assert (status, err) == (130, "")
    assert json.loads(out) == {"error": "interrupted", "message": "interrupted (SIGINT)"}


@linux_only
def test_sigterm_right_after_papertrader_starts_stops_it_quietly_with_143(tmp_path, silent_master):
    status, out, err = interrupted_at_once("papertrader", [*silent_master, "quote", "AAPL"], tmp_path,
                                           signal.SIGTERM)
    assert (status, out, err) == (143, "", "")


@linux_only
def test_ctrl_c_right_after_papertrader_admin_starts_stops_it_quietly_with_130(tmp_path):
    status, out, err = interrupted_at_once("papertrader-admin", ["--data-dir", str(tmp_path), "workers"], tmp_path)
    assert (status, out, err) == (130, "", "")


@pytest.mark.parametrize("name", ["papertrader", "papertrader-admin"])
def test_version_prints_the_installed_version_and_exits_0(name, tmp_path):
    import papertrader

    done = subprocess.run([sys.executable, "-c", script_code(name), "--version"], capture_output=True, text=True,
                          env=env_for(tmp_path), cwd=str(tmp_path), timeout=WAIT)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{name} {papertrader.__version__}\n", "")
