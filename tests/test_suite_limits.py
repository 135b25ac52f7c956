"""The test suite's own limits: a wait that never ends fails, a hanging test is cut off alone."""

import os
import sys
import textwrap

import pytest
import pytest_twisted

from papertrader.logs import LogSystem
from tests.conftest import wait_for_log

pytest_plugins = ["pytester"]


@pytest_twisted.ensureDeferred
async def test_a_log_wait_that_is_never_met_fails_naming_what_it_waited_for():
    logs = LogSystem("quiet", 10, forward=False)
    logs.logger("papertrader.test").info("something else")
    try:
        with pytest.raises(AssertionError, match="'never logged' not logged by quiet within 0.2 s"):
            await wait_for_log(logs, "never logged", timeout=0.2)
    finally:
        logs.close()


def test_a_hanging_test_fails_at_its_ceiling_and_the_next_one_still_runs(pytester, monkeypatch):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pytester.makeconftest("from tests.conftest import pytest_pyfunc_call  # the ceiling of every async test\n")
    pytester.makepyfile(test_inner=textwrap.dedent("""
        import pytest, pytest_twisted
        from twisted.internet import defer

        @pytest.mark.timeout(7)  # ceiling: 2 s; pytest-timeout would end the whole run at 7 s
        @pytest_twisted.ensureDeferred
        async def test_hangs():
            await defer.Deferred()

        @pytest_twisted.ensureDeferred
        async def test_after():
            assert await defer.succeed(1) == 1
    """))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root] + sys.path))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=60)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_hangs*TimeoutError*"])
