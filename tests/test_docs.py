"""The README and the example config stay true to the code."""

import os

import pytest

from papertrader import cluster
from papertrader.client import connection
from papertrader.config import Settings, load_settings
from papertrader.errors import ALL_ERRORS
from papertrader.master import service as master_service
from papertrader.worker import service as worker_service

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def test_example_config_documents_the_defaults():
    assert load_settings(os.path.join(ROOT, "etc", "papertrader.ini")) == Settings()


@pytest.mark.parametrize("options", [master_service.Options, worker_service.Options, cluster.Options])
def test_readme_documents_every_service_option(options):
    names = {row[0] for row in options().optParameters}
    missing = [name for name in names if f"--{name}" not in README]
    assert not missing


def test_readme_documents_every_error_code():
    codes = {cls.code for cls in ALL_ERRORS}
    codes |= {cls.code for cls in vars(connection).values()
              if isinstance(cls, type) and issubclass(cls, connection.ClientError) and cls is not connection.ClientError}
    missing = [code for code in codes if f"`{code}`" not in README]
    assert not missing


def test_readme_documents_every_admin_error_code():
    from papertrader import admin
    from papertrader.master import upgrades

    codes = {"usage", "invalid_input", "server_error"}
    codes |= {cls.code for cls in vars(admin).values()
              if isinstance(cls, type) and issubclass(cls, admin.AdminError) and cls is not admin.AdminError}
    refused = upgrades.UpgradeRefused
    codes |= {cls.code for cls in vars(upgrades).values()
              if isinstance(cls, type) and issubclass(cls, refused) and cls is not refused}
    start = README.index("Every `papertrader-admin` command takes `--json`")
    paragraph = README[start:README.index("\n\n", start)]  # (the paragraph that lists the codes)
    missing = [code for code in codes if f"`{code}`" not in paragraph]
    assert not missing


#: Where paths of one machine start (the development machine's workspace, home directories) and the
#: specification kept outside the repository; spelt in pieces so that this file does not name them.
OUTSIDE = tuple("/" + part + "/" for part in ("work", "home", "root")) + ("shared" + "/spec",)


def _our_text_files():
    """The repository's documents, code and configuration (not the virtualenv, data or artefacts)."""
    yield from ("README.md", "setup.cfg", "pyproject.toml", ".ci/run")
    for top in ("papertrader", "bench", "tests", "examples", "etc", "docs", "twisted", "tools"):
        for folder, _, names in os.walk(os.path.join(ROOT, top)):
            for name in names:
                if name.endswith((".py", ".md", ".ini", ".sql", ".cfg", ".txt", ".sh", ".js", ".css")):
                    yield os.path.relpath(os.path.join(folder, name), ROOT)


def test_no_file_points_outside_the_repository():
    """No path of one machine in any file."""
    checked = 0
    for path in _our_text_files():
        if not os.path.exists(os.path.join(ROOT, path)):
            continue
        with open(os.path.join(ROOT, path), encoding="utf-8", errors="replace") as f:
            text = f.read()
        checked += 1
        for outside in OUTSIDE:
            assert outside not in text, (path, outside)
    assert checked > 100


def test_readme_documents_every_http_endpoint():
    import re

    from papertrader.worker.http.rest import RestApi

    section = README[README.index("## HTTP API: Alpaca-compatible"):]
    served = 0
    for rule in RestApi.app.url_map.iter_rules():
        pattern = "".join(r"\{[^}]+\}" if part.startswith("<") else re.escape(part)
                          for part in re.split(r"(<[^>]+>)", rule.rule))
        for method in sorted(rule.methods & {"GET", "POST", "PATCH", "DELETE"}):
            served += 1
            assert re.search(f"`{method} {pattern}`", section), (method, rule.rule)
    assert served >= 25
