"""PaperTrader: a self-hosted paper-trading platform (one master, workers at the edge)."""

__version__ = "0.1.0"
