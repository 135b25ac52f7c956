-- Schema version 13: a position's average entry price.
--   entry_price_units: what its fills paid per share on average (commissions not included), in 1e-4 units, as
--     Alpaca's avg_entry_price; each fill that adds to the position averages its price in, one that reduces it
--     leaves it; a split divides it.  NULL: the position was last changed before this version (its cost per
--     share, commissions included, stands in until its next fill).

ALTER TABLE positions ADD COLUMN entry_price_units BIGINT
