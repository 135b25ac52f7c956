"""Helpers shared by the benchmarks: free ports, percentiles, waiting, PostgreSQL schemas."""

import socket
import uuid
import math
import time
from urllib.parse import urlsplit

from twisted.internet import defer, task


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
