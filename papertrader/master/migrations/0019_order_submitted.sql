-- Schema version 19: the time an order shows it was submitted (trading/orders.py Order.submitted).
--   orders.submitted: ISO text; the order's created time, or a microsecond after the portfolio's previous
--     order's when both were placed at the same market time (a replay's time stands still between updates), so
--     that paging by time (after, until) skips no order; NULL for orders stored before: their created time.

ALTER TABLE orders ADD COLUMN submitted TEXT
