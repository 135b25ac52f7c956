"""Market-data commands the master answers: candles and the market clock (quotes come from a worker's cache)."""

from twisted.internet import defer

from papertrader import commands
from papertrader.master import validation


class MarketDataCommands:
    def __init__(self, board, candles, market_clock):
        self.board = board
        self.candles_store = candles
        self.market_clock = market_clock

    @defer.inlineCallbacks
    def candles(self, stamp, symbol, limit):
        symbol = validation.symbol(symbol, self.board.assets)
        validation.limit(limit, commands.MAX_LIST)
        candles = yield self.candles_store.newest(symbol, limit)
        return {"candles": candles}

    def clock(self, stamp):
        return self.market_clock.describe()
