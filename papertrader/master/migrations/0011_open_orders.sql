-- Schema version 11: an index of the open orders alone.
--   orders_open: the open orders (status new or partially_filled) of each portfolio, in id order.  Every order
--     placed or replaced reads its portfolio's open orders (buying power, shares already promised, the cap on
--     open orders); before this index that read walked every order the portfolio ever had, so it slowed down as
--     the history grew.  The queries that use it spell the statuses out as this predicate does.

CREATE INDEX orders_open ON orders (portfolio_id, id) WHERE status IN ('new', 'partially_filled');
