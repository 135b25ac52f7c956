"""The candle store: one OHLCV bar per asset per update, in the ``candles`` table (time = the bar's start)."""

from twisted.internet import defer

from papertrader.money import from_price_units, to_price_units
from papertrader.times import iso, parse_iso


class CandleStore:
    def __init__(self, db):
        self.db = db

    def store(self, bars):
        """Record bars (a list of Bar); a bar already stored for that time is kept."""

        def write(cursor):
            cursor.executemany(
                self.db.sql(
                    "INSERT INTO candles (symbol, time, open_units, high_units, low_units, close_units, volume)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (symbol, time) DO NOTHING"),
                [(b.symbol, iso(b.start), to_price_units(b.open), to_price_units(b.high), to_price_units(b.low),
                  to_price_units(b.close), b.volume) for b in bars])

        return self.db.run(write)

    @defer.inlineCallbacks
    def last_closes(self, symbols):
        """{symbol: (close, time)} of the newest stored candle of each symbol."""
        out = {}
        for symbol in symbols:
            rows = yield self.db.query(
                "SELECT time, close_units FROM candles WHERE symbol = ? ORDER BY time DESC LIMIT 1", (symbol,))
            if rows:
                out[symbol] = (from_price_units(rows[0][1]), parse_iso(rows[0][0]))
        return out

    @defer.inlineCallbacks
    def newest(self, symbol, limit):
        """The newest ``limit`` candles of ``symbol``, oldest first."""
        rows = yield self.db.query(
            "SELECT time, open_units, high_units, low_units, close_units, volume FROM candles"
            " WHERE symbol = ? ORDER BY time DESC LIMIT ?", (symbol, limit))
        return [dict(time=parse_iso(r[0]), open=from_price_units(r[1]), high=from_price_units(r[2]),
                     low=from_price_units(r[3]), close=from_price_units(r[4]), volume=r[5])
                for r in reversed(rows)]
