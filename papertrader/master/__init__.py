"""The master: sole holder of critical data (accounts, orders, ledger, workers)."""
