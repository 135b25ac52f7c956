-- Schema version 1: accounts, sessions, workers, orders, positions, transactions, candles.
-- Money is stored in cents, prices in 1e-4 units, quantities in 1e-6 units (integers).
-- Times are ISO-8601 UTC text ("2026-01-02T03:04:05.123456+00:00"), which sorts in time order.
-- {{ID}} becomes the dialect's auto-increment primary key.

CREATE TABLE accounts (
    id {{ID}},
    username TEXT NOT NULL,
    username_key TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    password_hash TEXT,
    cash_cents BIGINT NOT NULL,
    created TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    created TEXT NOT NULL,
    expires TEXT NOT NULL,
    worker TEXT NOT NULL,
    client_ip TEXT NOT NULL
);

CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE workers (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);

CREATE TABLE orders (
    id {{ID}},
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    client_order_id TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    symbol TEXT NOT NULL,
    quantity_units BIGINT NOT NULL CHECK (quantity_units > 0),
    status TEXT NOT NULL CHECK (status IN ('queued', 'filled', 'rejected')),
    created TEXT NOT NULL,
    received TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    worker TEXT NOT NULL,
    price_units BIGINT,
    amount_cents BIGINT,
    reason TEXT,
    reason_code TEXT,
    processed TEXT,
    UNIQUE (account_id, client_order_id)
);

CREATE INDEX orders_status ON orders (status, id);

CREATE TABLE positions (
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    symbol TEXT NOT NULL,
    quantity_units BIGINT NOT NULL,
    cost_cents BIGINT NOT NULL,
    PRIMARY KEY (account_id, symbol)
);

CREATE TABLE transactions (
    id {{ID}},
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    order_id BIGINT NOT NULL UNIQUE REFERENCES orders (id),
    time TEXT NOT NULL,
    side TEXT NOT NULL,
    symbol TEXT NOT NULL,
    quantity_units BIGINT NOT NULL,
    price_units BIGINT NOT NULL,
    commission_cents BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL,
    cash_after_cents BIGINT NOT NULL
);

CREATE INDEX transactions_account ON transactions (account_id, id);

CREATE TABLE candles (
    symbol TEXT NOT NULL,
    time TEXT NOT NULL,
    open_units BIGINT NOT NULL,
    high_units BIGINT NOT NULL,
    low_units BIGINT NOT NULL,
    close_units BIGINT NOT NULL,
    volume BIGINT NOT NULL,
    PRIMARY KEY (symbol, time)
);
