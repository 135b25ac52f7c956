-- Schema version 16: whether an order opens a position or closes one (its position intent).
--   orders.opens: 1 for an order that opens or adds to a position (a buy while not short, a short sale, a
--     bracket's or OTO's entry), 0 for one that closes one (a sale of shares held, a buy covering a short, an
--     exit), as known when it was accepted; NULL for the orders made before this version (their intent is
--     told from their side: a buy opens, a sale closes).

ALTER TABLE orders ADD COLUMN opens SMALLINT
