-- Schema version 22: when a portfolio began, in market time.
--   portfolios.began: ISO text; the market clock's time (a replay's own, not the wall clock's) when the portfolio
--     was made, or last reset (its current generation began then): where its equity curve starts.  NULL for the
--     portfolios made before: the market time they were made was not kept (portfolios.created is the wall clock's,
--     years away from a replay's market time), so their curve starts at their first trade, as it did.

ALTER TABLE portfolios ADD COLUMN began TEXT
