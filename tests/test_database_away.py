"""The master's database goes away (PostgreSQL stopped, unreachable) and comes back.

Each command that needed it was answered ``server_error`` and logged with a 5 kB traceback (332 kB of
master.log in 30 s for an operator), with no line saying the database was away.  Now it is refused as
``database_unavailable`` (nothing was done; HTTP 503), the outage is logged once when it begins and once when
it ends, and everything goes on by itself.  A real PostgreSQL behind a proxy that cuts and refuses connections."""

import json

import pytest
import pytest_twisted

from tests.conftest import _drop_schema, _postgres_schema, start_cluster
from tests.pg_proxy import CommitCutter
from tests.test_e2e import register_and_login


@pytest.fixture
def postgres():
    schema, url = _postgres_schema()
    yield url
    _drop_schema(schema)


@pytest_twisted.ensureDeferred
async def test_commands_while_the_database_is_away_are_refused_and_the_outage_logged_once(
        postgres, tmp_path, settings, clock):
    cutter = CommitCutter(postgres)
    d = await start_cluster(tmp_path, settings, await cutter.start(), clock)
    try:
        await register_and_login(d)
        cutter.away()
        for argv in (["buy", "AAPL", "1"], ["portfolio"], ["orders"]):
            status, out, err = await d.cli(*argv, user="alice")
            answer = json.loads(out)
            assert (status, answer["error"]) == (1, "database_unavailable"), (argv, answer, err)
            assert "nothing was done" in answer["message"]
            status, _, err = await d.cli("quote", "AAPL", user="alice")  # one that needs no database: answered
            assert status == 0, err
        cutter.back()
        status, out, err = await d.cli("portfolio", user="alice")
        assert status == 0, err
        status, out, err = await d.cli("orders", user="alice")
        assert status == 0 and json.loads(out) == [], out  # the buy was not made
        messages = [e.message for e in d.master.logs.newest(200)]
        away = [m for m in messages if "the database is not answering" in m]
        back = [m for m in messages if "the database answers again" in m]
        assert len(away) == 1 and len(back) == 1, messages
        assert "commands were refused meanwhile" in back[0]
        assert not any("Traceback" in m for m in messages)
    finally:
        await d.cluster.stopService()
        await cutter.listening.stopListening()
