"""What every source of market data answers (simulated, replayed history, live providers)."""

from zope.interface import Attribute, Interface


class IMarketDataSource(Interface):
    name = Attribute("a short name for logs and the clock ('simulated', 'replay', 'alpaca'...)")

    def fetch(symbols, start, end):
        """Fire with {symbol: Bar} for the interval [start, end) (symbols without data left out)."""

    def resume(symbol, price):
        """Continue ``symbol`` from its last known ``price`` (after a restart), if the source cares."""
