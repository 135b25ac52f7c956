"""A running cluster with the workers' HTTP API, an account and an API key, for the alpaca-py tests.

alpaca-py is synchronous (requests) for REST and runs its own asyncio loop for the streams: the tests
call it in a thread (``in_thread``), with a bound, while the reactor runs the cluster.
"""

import json
from dataclasses import replace

import pytest_twisted
from twisted.internet import threads

from tests.conftest import bounded, start_cluster
from tests.test_e2e import register_and_login


class Api:
    def __init__(self, deployment, key_id, secret):
        self.d = deployment
        self.key_id = key_id
        self.secret = secret
        worker = deployment.cluster.workers[0]
        self.port = worker.http.port.getHost().port
        self.url = f"http://127.0.0.1:{self.port}"

    def trading(self, **kwargs):
        from alpaca.trading.client import TradingClient

        return TradingClient(self.key_id, self.secret, paper=True, url_override=self.url, **kwargs)

    def data(self):
        from alpaca.data.historical import StockHistoricalDataClient

        return StockHistoricalDataClient(self.key_id, self.secret, url_override=self.url)


def in_thread(function, *args, what="alpaca-py", timeout=30, **kwargs):
    """Run a blocking call in a thread while the reactor runs; its result (or its exception), within a bound."""
    return bounded(threads.deferToThread(function, *args, **kwargs), what, timeout)


async def make_key(d, user="alice"):
    status, out, err = await d.cli("api-key", "create", "--name", "tests", user=user)
    assert status == 0, err
    key = json.loads(out)
    return key["key_id"], key["secret"]


async def start_api(tmp_path, settings, database_url, clock, **more):
    d = await start_cluster(tmp_path, replace(settings, **more), database_url, clock, http_port=0)
    await register_and_login(d)
    key_id, secret = await make_key(d)
    return Api(d, key_id, secret)


@pytest_twisted.async_yield_fixture
async def api(tmp_path, settings, database_url, clock):
    # The rate limit counts by the cluster's task.Clock, which stands still: high enough for any one test.
    a = await start_api(tmp_path, settings, database_url, clock, fill_model="ideal", api_rate_limit=100_000)
    yield a
    await a.d.cluster.stopService()
