-- Schema version 6 (SQLite): order types, time in force, partial fills, order events, market state.
-- SQLite cannot change a column's constraints in place, so orders and transactions are rebuilt
-- (the migration runs with foreign keys off and checks them before it commits).
--   orders: status new/partially_filled/filled/canceled/expired/replaced/rejected (queued -> new);
--     quantity_units NULL for a notional order not filled yet; prices in 1e-4 units; trail_percent_bp in
--     hundredths of a percent; created/updated/expires/session_* in market time; received in wall time.
--     What has filled (quantity, value, commission) is derived from the order's fills in transactions.
--   transactions: several fills per order (partial fills); kind 'fill' (later: dividends, splits);
--     realized_cents and position_after_units (NULL for rows made before version 6); model: the fill model.

CREATE TABLE orders_v6 (
    id {{ID}},
    uuid TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    client_order_id TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    symbol TEXT NOT NULL,
    type TEXT NOT NULL,
    time_in_force TEXT NOT NULL,
    quantity_units BIGINT CHECK (quantity_units > 0),
    notional_cents BIGINT,
    limit_units BIGINT,
    stop_units BIGINT,
    trail_units BIGINT,
    trail_percent_bp BIGINT,
    status TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    received TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    worker TEXT NOT NULL,
    expires TEXT,
    session_open TEXT,
    session_close TEXT,
    watermark_units BIGINT,
    triggered INTEGER NOT NULL DEFAULT 0,
    replaces BIGINT,
    replaced_by BIGINT,
    reason TEXT,
    reason_code TEXT,
    UNIQUE (account_id, client_order_id)
);

INSERT INTO orders_v6 (id, uuid, account_id, client_order_id, side, symbol, type, time_in_force, quantity_units,
                       status, created, updated, received, client_ip, worker, reason, reason_code)
SELECT id,
       lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-'
             || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-'
             || hex(randomblob(6))),
       account_id, client_order_id, side, symbol, 'market', 'day', quantity_units,
       CASE status WHEN 'queued' THEN 'new' ELSE status END,
       created, COALESCE(processed, created), received, client_ip, worker, reason, reason_code
FROM orders;

CREATE TABLE transactions_v6 (
    id {{ID}},
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    order_id BIGINT REFERENCES orders (id),
    kind TEXT NOT NULL DEFAULT 'fill',
    time TEXT NOT NULL,
    side TEXT NOT NULL,
    symbol TEXT NOT NULL,
    quantity_units BIGINT NOT NULL,
    price_units BIGINT NOT NULL,
    commission_cents BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL,
    cash_after_cents BIGINT NOT NULL,
    realized_cents BIGINT,
    position_after_units BIGINT,
    model TEXT
);

INSERT INTO transactions_v6 (id, account_id, order_id, kind, time, side, symbol, quantity_units, price_units,
                             commission_cents, amount_cents, cash_after_cents, model)
SELECT id, account_id, order_id, 'fill', time, side, symbol, quantity_units, price_units, commission_cents,
       amount_cents, cash_after_cents, 'ideal'
FROM transactions;

DROP TABLE transactions;
DROP TABLE orders;
ALTER TABLE orders_v6 RENAME TO orders;
ALTER TABLE transactions_v6 RENAME TO transactions;

CREATE INDEX orders_status ON orders (status, id);
CREATE INDEX orders_account ON orders (account_id, id);
CREATE INDEX transactions_account ON transactions (account_id, id);
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
