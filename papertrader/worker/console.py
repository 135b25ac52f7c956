"""A worker's admin console (a manhole namespace): plain functions that print tables."""

from papertrader import tls
from papertrader.manhole import Record, Table, Text, help_text, log_text


def namespace(worker):
    ns = {}

    def clients():
        """Connected clients: address, and whether they watch live prices."""
        watching = set(worker.fanout.watchers())
        return Table([dict(address=c.client_ip(), watching=c in watching) for c in worker.clients],
                     ["address", "watching"])

    def sessions():
        """Sessions this worker has validated with the master and keeps in its cache."""
        return Table([dict(user=s.username, expires=s.expires) for s in worker.sessions.entries()],
                     ["user", "expires"])

    def master():
        """The link to the master: address, and whether it is up and proven."""
        host, port = worker.master_address
        return Record(master=tls.address_text(host, port), linked=worker.link.proven is not None, name=worker.name,
                      region=worker.region, commands_passed_on=worker.commands,
                      calls_waiting=worker.link.waiting(), refused_while_master_behind=worker.link.refused_behind,
                      candle_answers_cached=len(worker.candles), candle_cache_hits=worker.candles.hits)

    def cache():
        """Cached quotes (pushed by the master every update); cached candle answers are counted in master()."""
        return Table(worker.quotes.all(), ["symbol", "price", "time"])

    def logs(n=20, level=None):
        """The newest n in-memory log entries (level: 'debug', 'info', 'warn', 'error', 'critical': that level only)."""
        return log_text(worker.logs, n, level)

    def help():
        """This list."""
        return Text(help_text(ns))

    ns.update(clients=clients, sessions=sessions, master=master, cache=cache, logs=logs, help=help, worker=worker)
    return ns
