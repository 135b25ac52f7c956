"""Market-data commands the master answers: candles and the market clock (quotes come from a worker's cache)."""

from twisted.internet import defer

from papertrader.errors import InvalidInput
from papertrader.master import validation
from papertrader.master.candles import INTERVALS

#: Most candles one answer holds (fewer if they do not fit one AMP value: page on with --start).
MAX_CANDLES = 1000


class MarketDataCommands:
    def __init__(self, board, candles, market_clock, source=None):
        self.board = board
        self.candles_store = candles
        self.market_clock = market_clock
        self.source = source

    @property
    def default_interval(self):
        """Daily candles for a replay that plays whole sessions, minute candles otherwise."""
        return "1d" if getattr(self.market_clock, "step_text", None) == "1d" else "1m"

    @defer.inlineCallbacks
    def candles(self, stamp, symbol, limit, interval=None, start=None, end=None):
        symbol = validation.symbol(symbol, self.board.assets)
        validation.limit(limit, MAX_CANDLES)
        interval = interval or self.default_interval
        if interval not in INTERVALS:
            raise InvalidInput(f"interval must be one of {', '.join(INTERVALS)}")
        if start is not None and end is not None and end <= start:
            raise InvalidInput("the end must come after the start")
        candles = yield self.candles_store.read(symbol, interval, limit, start, end)
        return {"candles": candles, "interval": interval}

    def clock(self, stamp):
        answer = self.market_clock.describe()
        if self.source is not None:
            state = getattr(self.source, "state", "ok")
            answer["source"] = self.source.name + ("" if state == "ok" else f" ({state})")
        return answer
