"""Helpers shared by the benchmarks: free ports, percentiles, waiting, PostgreSQL schemas, a running cluster."""

import contextlib
import shutil
import socket
import tempfile
import uuid
import math
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from twisted.internet import defer, task


def bench_settings(**changes):
    """Settings of a benchmark's cluster: simulated prices of the simulated assets, market updates only when a
    benchmark runs them (``update_interval`` an hour), and one address (every client's) free to register and
    log in as often as it needs; ``changes`` on top."""
    from papertrader.config import Settings
    from papertrader.market.setup import SIMULATED_ASSETS

    return replace(Settings(), **{**dict(provider="simulated", assets=SIMULATED_ASSETS, update_interval=3600,
                                         registrations_per_address=100_000, login_free_attempts=100_000,
                                         login_ceiling=100_000), **changes})


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def sleep(reactor, seconds):
    await task.deferLater(reactor, seconds, lambda: None)


def _closed(proto):
    """A Deferred firing when ``proto``'s connection is gone."""
    d = defer.Deferred()
    original = proto.connectionLost

    def connectionLost(reason):
        original(reason)
        if not d.called:
            d.callback(None)

    proto.connectionLost = connectionLost
    return d


def with_search_path(url, schema):
    return url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"


def create_schema(url):
    import psycopg

    schema = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema


def drop_schema(url, schema):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def bench_database(url):
    """(database URL for the cluster, PostgreSQL schema to drop afterwards or None, label to print)."""
    if not url:
        return None, None, "sqlite (temporary data dir)"
    if urlsplit(url).scheme in ("postgresql", "postgres"):
        schema = create_schema(url)
        return with_search_path(url, schema), schema, f"postgresql (schema {schema})"
    return url, None, url


async def wait_for_cluster(reactor, cluster, assets, timeout=30.0):
    """Until every worker of ``cluster`` is linked, listed and has a quote of every asset; RuntimeError
    (with the newest log entries) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    assets = assets or cluster.master.board.assets  # (settings with no assets: the source's own list)
    while True:
        workers = list(cluster.workers)
        listed = {w["name"] for w in cluster.master.workers.listing()}
        if workers and all(w.name in listed and w.link.proven is not None and len(w.quotes.all()) == len(assets)
                           for w in workers):
            return
        if time.monotonic() > deadline:
            lines = [e.format() for e in cluster.master.logs.newest(15)]
            for w in workers:
                lines += [e.format() for e in w.logs.newest(5)]
            raise RuntimeError("the workers are not all linked with quotes after %.0f s; newest log entries:\n%s"
                               % (timeout, "\n".join(lines)))
        await sleep(reactor, 0.02)


@dataclass
class RunningCluster:
    cluster: object
    data_dir: str
    #: The URL the cluster's master uses (None: SQLite in data_dir).
    database: object
    #: What to print about the database.
    label: str


@contextlib.asynccontextmanager
async def running_cluster(reactor, settings, database_url, timeout=30.0):
    """A Cluster on loopback in a temporary data dir (a fresh PostgreSQL schema for a postgresql:// URL),
    ready with a quote of every asset, the garbage collector set as a twistd daemon of ours sets it
    (papertrader/collector.py); stopped, and its data dir and schema removed, afterwards."""
    from papertrader import collector
    from papertrader.cluster import Cluster

    # Every client of a benchmark connects from one address: no per-address cap.
    settings = replace(settings, max_connections_per_address=1_000_000)
    database, schema, label = bench_database(database_url)
    data_dir = tempfile.mkdtemp(prefix="ptbench-")
    cluster = None
    try:
        cluster = Cluster(data_dir, settings, reactor, master_port=free_port(), worker_port=0, database=database,
                          interface="127.0.0.1")
        collector.settle()
        cluster.startService()
        await cluster.whenReady()
        await wait_for_cluster(reactor, cluster, settings.assets, timeout)
        yield RunningCluster(cluster, data_dir, database, label)
    finally:
        if cluster is not None and cluster.running:
            await cluster.stopService()
        shutil.rmtree(data_dir, ignore_errors=True)
        if schema is not None:
            drop_schema(database_url, schema)
