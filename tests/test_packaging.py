"""What `pip install .` installs: every module and data file of the package, nothing left behind.

The tests import the checkout, so a module missing from setup.cfg would pass them all and still be absent
from an installed server (it happened: the HTTP streams answered 404 after `pip install .`)."""

import os
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shipped(top):
    """Every file under ``top`` (relative to the checkout) that belongs in the package."""
    found = set()
    for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if not name.endswith((".pyc", ".pyo")):
                found.add(os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/"))
    return found


def test_the_wheel_holds_every_module_and_data_file_of_the_checkout(tmp_path):
    # From a copy of what a clean checkout holds: a build/ folder left by an earlier build would lend the wheel
    # the files setup.cfg forgets.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), source / name)
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache")
    for top in ("papertrader", "twisted"):
        shutil.copytree(os.path.join(ROOT, top), source / top, ignore=ignored)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
                            str(tmp_path / "wheel"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel, = (tmp_path / "wheel").glob("papertrader-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    wanted = shipped("papertrader") | {p for p in shipped(os.path.join("twisted", "plugins")) if p.endswith(".py")}
    assert sorted(wanted - names) == []
    assert "papertrader/worker/http/streams/trading.py" in names  # (the one that was missing)
