-- Schema version 18: a portfolio's configuration, set by its owner (Alpaca's account configurations:
--   papertrader/trading/configuration.py).
--   portfolios.configuration: JSON text of the settings that differ from the defaults (no_shorting,
--     suspend_trade, fractional_trading, ...); NULL: all defaults.

ALTER TABLE portfolios ADD COLUMN configuration TEXT
