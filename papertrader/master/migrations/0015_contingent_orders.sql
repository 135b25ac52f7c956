-- Schema version 15: bracket, OCO and OTO orders (papertrader/trading/contingent.py).
--   orders.order_class: simple (every order made before this version), bracket, oco or oto.
--   orders.leg: the part an exit plays, take_profit or stop_loss; NULL for an entry and a simple order.
--   orders.parent_id: the order an exit hangs from (a bracket's or OTO's entry, an OCO's take-profit), NULL for
--     that order itself and for simple orders.
--   status held: an exit waiting for its entry to fill.  It is not open, but it is not ended either: the
--     orders_open index now holds held orders too (the master reads a portfolio's open and held orders together).

ALTER TABLE orders ADD COLUMN order_class TEXT NOT NULL DEFAULT 'simple';
ALTER TABLE orders ADD COLUMN leg TEXT;
ALTER TABLE orders ADD COLUMN parent_id BIGINT REFERENCES orders (id);
DROP INDEX orders_open;
CREATE INDEX orders_open ON orders (portfolio_id, id) WHERE status IN ('held', 'new', 'partially_filled');
CREATE INDEX orders_parent ON orders (parent_id) WHERE parent_id IS NOT NULL
