-- Schema version 7: bars at two resolutions, corporate actions (splits, dividends), stale-proof history.
--   bars: OHLCV per symbol per interval bucket: '1m' (minute bars, kept for months) and '1d' (daily bars,
--     kept for years); time = the bucket's start (ISO-8601 UTC).  Replaces candles (one row per update):
--     its rows are folded into minute and daily buckets.
--   orders.filled_adjustment_units: shares splits added to what an order's fills add up to.
--   transactions.details: what a split or a dividend was ("4-for-1 split: 10 -> 40 shares").
--   dividends: cash dividends owed (held at the ex-date, paid on the pay date); paid = when it was paid.

CREATE TABLE bars (
    symbol TEXT NOT NULL,
    interval TEXT NOT NULL,
    time TEXT NOT NULL,
    open_units BIGINT NOT NULL,
    high_units BIGINT NOT NULL,
    low_units BIGINT NOT NULL,
    close_units BIGINT NOT NULL,
    volume BIGINT NOT NULL,
    PRIMARY KEY (symbol, interval, time)
);

INSERT INTO bars (symbol, interval, time, open_units, high_units, low_units, close_units, volume)
SELECT g.symbol, '1m', g.bucket,
       (SELECT c.open_units FROM candles c WHERE c.symbol = g.symbol AND c.time = g.first),
       g.high, g.low,
       (SELECT c.close_units FROM candles c WHERE c.symbol = g.symbol AND c.time = g.last),
       g.volume
FROM (SELECT symbol, substr(time, 1, 16) || ':00.000000+00:00' AS bucket, MIN(time) AS first, MAX(time) AS last,
             MAX(high_units) AS high, MIN(low_units) AS low, SUM(volume) AS volume
      FROM candles GROUP BY symbol, substr(time, 1, 16)) g;

INSERT INTO bars (symbol, interval, time, open_units, high_units, low_units, close_units, volume)
SELECT g.symbol, '1d', g.bucket,
       (SELECT c.open_units FROM candles c WHERE c.symbol = g.symbol AND c.time = g.first),
       g.high, g.low,
       (SELECT c.close_units FROM candles c WHERE c.symbol = g.symbol AND c.time = g.last),
       g.volume
FROM (SELECT symbol, substr(time, 1, 10) || 'T00:00:00.000000+00:00' AS bucket, MIN(time) AS first,
             MAX(time) AS last, MAX(high_units) AS high, MIN(low_units) AS low, SUM(volume) AS volume
      FROM candles GROUP BY symbol, substr(time, 1, 10)) g;

DROP TABLE candles;

ALTER TABLE orders ADD COLUMN filled_adjustment_units BIGINT NOT NULL DEFAULT 0;
ALTER TABLE transactions ADD COLUMN details TEXT;

CREATE TABLE dividends (
    id {{ID}},
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    symbol TEXT NOT NULL,
    ex_date TEXT NOT NULL,
    pay_date TEXT NOT NULL,
    quantity_units BIGINT NOT NULL,
    per_share_units BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL,
    paid TEXT
);

CREATE INDEX dividends_due ON dividends (paid, pay_date)
