"""The candle store: OHLCV bars per symbol at two resolutions, in the ``bars`` table.

Each bar the market hands out is folded into its minute bucket (``1m``, when the bar is no
longer than a minute: the live and simulated sources) and into its session's bucket (``1d``, keyed
by the session's open).  A bucket keeps the first open, the highest high, the lowest low, the last
close and the summed volume.  Reads by interval: ``1m`` and ``1d`` directly, buckets of minutes that
divide an hour (``5m``, ``15m``, ``30m``...) and ``1h`` aggregated from minutes; every read is an indexed range read (symbol, interval, time).
Minute buckets older than ``keep_minutes`` days are pruned; daily ones are kept.
"""

from datetime import timedelta

from twisted.internet import defer

from papertrader.market.periods import MINUTE_BUCKETS
from papertrader.money import from_price_units, to_price_units
from papertrader.times import iso, parse_iso

#: The intervals read, in minutes (None: a day): minutes, buckets of minutes that divide an hour, hours, days.
INTERVALS = {**{f"{n}m": n for n in MINUTE_BUCKETS}, "1h": 60, "1d": None}
MINUTE = timedelta(minutes=1)

_UPSERT = (
    "INSERT INTO bars (symbol, interval, time, open_units, high_units, low_units, close_units, volume)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (symbol, interval, time) DO UPDATE SET"
    " high_units = CASE WHEN excluded.high_units > bars.high_units THEN excluded.high_units ELSE bars.high_units END,"
    " low_units = CASE WHEN excluded.low_units < bars.low_units THEN excluded.low_units ELSE bars.low_units END,"
    " close_units = excluded.close_units, volume = bars.volume + excluded.volume"
)


def minute_of(moment):
    return moment.replace(second=0, microsecond=0)


class CandleStore:
    def __init__(self, db, keep_minutes=90):
        self.db = db
        self.keep_minutes = keep_minutes

    def rows(self, bars, session_open):
        """The bucket rows of ``bars`` (a list of Bar); ``session_open(bar)`` gives its session's open."""
        def row(bar, interval, time):
            return (bar.symbol, interval, iso(time), to_price_units(bar.open), to_price_units(bar.high),
                    to_price_units(bar.low), to_price_units(bar.close), bar.volume)

        out = []
        for b in bars:
            # Minute candles: a bar of a minute or less, else the minutes it folds (each its own candle).
            minutes = (b,) if b.end - b.start <= MINUTE else b.minutes
            out.extend(row(m, "1m", minute_of(m.start)) for m in minutes)
            out.append(row(b, "1d", session_open(b)))
        return out

    def write(self, cursor, rows):
        """Fold bucket rows into the table (inside the caller's transaction)."""
        cursor.executemany(self.db.sql(_UPSERT), rows)

    def store(self, bars, session_open):
        return self.store_rows(self.rows(bars, session_open))

    def store_rows(self, rows):
        """Fold bucket rows (``rows``) into the table, in a transaction of their own."""
        return self.db.run(self.write, rows) if rows else defer.succeed(None)

    @defer.inlineCallbacks
    def last_closes(self, symbols, before=None, intervals=False):
        """{symbol: (close, time of the bucket)} of the newest bar of each symbol (that began before ``before``);
        with ``intervals``, (close, time of the bucket, its interval: '1m' or '1d')."""
        out = {}
        for symbol in symbols:
            where, params = "symbol = ?", [symbol]
            if before is not None:
                where += " AND time < ?"
                params.append(iso(before))
            rows = yield self.db.query(
                f"SELECT time, close_units, interval FROM bars WHERE {where} ORDER BY time DESC, interval LIMIT 1",
                params)
            if rows:
                found = (from_price_units(rows[0][1]), parse_iso(rows[0][0]))
                out[symbol] = found + (rows[0][2],) if intervals else found
        return out

    @defer.inlineCallbacks
    def read(self, symbol, interval, limit, start=None, end=None, newest=False):
        """Up to ``limit`` candles of ``interval``, oldest first: the newest ones (before ``end``), or the first
        ones from ``start`` (and before ``end``); with ``newest``, the newest ones from ``start``."""
        minutes = INTERVALS[interval]
        table_interval = "1d" if minutes is None else "1m"
        group = 1 if minutes is None else minutes
        where, params = "symbol = ? AND interval = ?", [symbol, table_interval]
        if start is not None:
            where += " AND time >= ?"
            params.append(iso(start))
        if end is not None:
            where += " AND time < ?"
            params.append(iso(end))
        order = "ASC" if start is not None and not newest else "DESC"
        rows = yield self.db.query(
            "SELECT time, open_units, high_units, low_units, close_units, volume FROM bars"
            f" WHERE {where} ORDER BY time {order} LIMIT ?", params + [(limit + 1) * group])
        if order == "DESC":
            rows = list(reversed(rows))
        candles = _aggregate([(parse_iso(r[0]),) + tuple(r[1:]) for r in rows], group)
        candles = candles[:limit] if order == "ASC" else candles[-limit:]
        return [dict(time=t, open=from_price_units(o), high=from_price_units(h), low=from_price_units(lo),
                     close=from_price_units(c), volume=v) for t, o, h, lo, c, v in candles]

    def forget_from(self, moment, symbols):
        """Forget the candles of ``symbols`` from ``moment`` on: market time was moved back to it (a replay sought
        or looped), and the days after it are played again, or not at all (by key: symbol, interval, time)."""
        rows = [(symbol, interval, iso(moment)) for symbol in symbols for interval in ("1m", "1d")]

        def forget(cursor):
            cursor.executemany(self.db.sql("DELETE FROM bars WHERE symbol = ? AND interval = ? AND time >= ?"), rows)

        return self.db.run(forget)

    def prune(self, now):
        """Forget minute buckets older than ``keep_minutes`` days."""
        return self.db.execute("DELETE FROM bars WHERE interval = '1m' AND time < ?",
                               (iso(now - timedelta(days=self.keep_minutes)),))


def _aggregate(rows, minutes):
    """Fold (time, o, h, l, c, v) minute rows into buckets of ``minutes`` (aligned to the hour)."""
    if minutes == 1:
        return rows
    out = []
    for time, o, h, lo, c, v in rows:
        bucket = time.replace(minute=time.minute - time.minute % minutes) if minutes < 60 else \
            time.replace(minute=0)
        if out and out[-1][0] == bucket:
            t, o0, h0, l0, _, v0 = out[-1]
            out[-1] = (t, o0, max(h0, h), min(l0, lo), c, v0 + v)
        else:
            out.append((bucket, o, h, lo, c, v))
    return out
