-- Schema version 6 (PostgreSQL): order types, time in force, partial fills, order events, market state.
-- The same tables as the SQLite version of this migration (see 0006_order_types.sqlite.sql for the
-- meaning of each column), reached with ALTER TABLE.

ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_status_check;
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_quantity_units_check;
ALTER TABLE orders ALTER COLUMN quantity_units DROP NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_quantity_units_check CHECK (quantity_units > 0);
ALTER TABLE orders ADD COLUMN uuid TEXT;
UPDATE orders SET uuid = CAST(gen_random_uuid() AS TEXT);
ALTER TABLE orders ALTER COLUMN uuid SET NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_uuid_key UNIQUE (uuid);
ALTER TABLE orders ADD COLUMN type TEXT NOT NULL DEFAULT 'market';
ALTER TABLE orders ADD COLUMN time_in_force TEXT NOT NULL DEFAULT 'day';
ALTER TABLE orders ADD COLUMN notional_cents BIGINT;
ALTER TABLE orders ADD COLUMN limit_units BIGINT;
ALTER TABLE orders ADD COLUMN stop_units BIGINT;
ALTER TABLE orders ADD COLUMN trail_units BIGINT;
ALTER TABLE orders ADD COLUMN trail_percent_bp BIGINT;
ALTER TABLE orders ADD COLUMN updated TEXT;
UPDATE orders SET updated = COALESCE(processed, created), status = CASE status WHEN 'queued' THEN 'new' ELSE status END;
ALTER TABLE orders ALTER COLUMN updated SET NOT NULL;
ALTER TABLE orders ADD COLUMN expires TEXT;
ALTER TABLE orders ADD COLUMN session_open TEXT;
ALTER TABLE orders ADD COLUMN session_close TEXT;
ALTER TABLE orders ADD COLUMN watermark_units BIGINT;
ALTER TABLE orders ADD COLUMN triggered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN replaces BIGINT;
ALTER TABLE orders ADD COLUMN replaced_by BIGINT;
ALTER TABLE orders DROP COLUMN price_units;
ALTER TABLE orders DROP COLUMN amount_cents;
ALTER TABLE orders DROP COLUMN processed;
CREATE INDEX orders_account ON orders (account_id, id);

ALTER TABLE transactions DROP CONSTRAINT IF EXISTS transactions_order_id_key;
ALTER TABLE transactions ALTER COLUMN order_id DROP NOT NULL;
ALTER TABLE transactions ADD COLUMN kind TEXT NOT NULL DEFAULT 'fill';
ALTER TABLE transactions ADD COLUMN realized_cents BIGINT;
ALTER TABLE transactions ADD COLUMN position_after_units BIGINT;
ALTER TABLE transactions ADD COLUMN model TEXT;
UPDATE transactions SET model = 'ideal';
CREATE INDEX transactions_order ON transactions (order_id);

CREATE TABLE order_events (
    id {{ID}},
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    order_id BIGINT NOT NULL REFERENCES orders (id),
    kind TEXT NOT NULL,
    time TEXT NOT NULL,
    recorded TEXT NOT NULL,
    transaction_id BIGINT REFERENCES transactions (id),
    reason_code TEXT,
    reason TEXT
);

CREATE INDEX order_events_account ON order_events (account_id, id);

CREATE TABLE market_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
