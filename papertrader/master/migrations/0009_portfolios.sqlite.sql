-- Schema version 9 (SQLite): portfolios.  An account has one or more portfolios, each with its own cash,
-- positions, orders, history and API keys; one is its default.
--   portfolios: kind 'cash' or 'margin'; starting_cash_cents (what a reset starts again with); cash_cents (the
--     cash, which accounts.cash_cents held before); is_default (exactly one open default per account);
--     generation (how many times it was reset: orders and transactions carry the generation they were made in,
--     older ones are the archive); closed (when it was closed, NULL: open); game_id (the game it belongs to,
--     NULL: none); margin_call_cents/margin_call_since/margin_call_deadline (an open margin call: what must
--     come in, since when, liquidation after the deadline); borrow_fee_through (the last day a short's borrow
--     fee was charged for).
--   Every existing account gets a default portfolio named 'default' whose id is the account's id, holding
--   its cash, positions, orders, history and API keys; its starting cash is the cash before its first
--   transaction (or its cash, if it has none).
--   orders, positions, transactions, order_events, dividends, api_keys: account_id becomes portfolio_id
--   (the same numbers, since a default portfolio's id is its account's id).  SQLite cannot change a
--   foreign key in place, so these tables are rebuilt (foreign keys are checked before the commit).
--   orders.client_order_id is unique per portfolio and generation; orders.origin: NULL (the user) or
--   'liquidation' (placed by the platform to meet a margin call).

CREATE TABLE portfolios (
    id {{ID}},
    uuid TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('cash', 'margin')),
    starting_cash_cents BIGINT NOT NULL,
    cash_cents BIGINT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    generation INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    closed TEXT,
    game_id BIGINT,
    margin_call_cents BIGINT,
    margin_call_since TEXT,
    margin_call_deadline TEXT,
    borrow_fee_through TEXT
);

INSERT INTO portfolios (id, uuid, account_id, name, name_key, kind, starting_cash_cents, cash_cents, is_default,
                        created)
SELECT a.id, a.uuid, a.id, 'default', 'default', 'cash',
       COALESCE((SELECT t.cash_after_cents - t.amount_cents FROM transactions t WHERE t.account_id = a.id
                 ORDER BY t.id LIMIT 1), a.cash_cents),
       a.cash_cents, 1, a.created
FROM accounts a;

CREATE UNIQUE INDEX portfolios_name ON portfolios (account_id, name_key) WHERE closed IS NULL;
CREATE INDEX portfolios_account ON portfolios (account_id, id);
CREATE INDEX portfolios_game ON portfolios (game_id);

CREATE TABLE orders_v9 (
    id {{ID}},
    uuid TEXT NOT NULL UNIQUE,
    portfolio_id BIGINT NOT NULL REFERENCES portfolios (id),
    generation INTEGER NOT NULL DEFAULT 0,
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
    filled_adjustment_units BIGINT NOT NULL DEFAULT 0,
    origin TEXT,
    UNIQUE (portfolio_id, generation, client_order_id)
);

INSERT INTO orders_v9 (id, uuid, portfolio_id, client_order_id, side, symbol, type, time_in_force, quantity_units,
                       notional_cents, limit_units, stop_units, trail_units, trail_percent_bp, status, created,
                       updated, received, client_ip, worker, expires, session_open, session_close, watermark_units,
                       triggered, replaces, replaced_by, reason, reason_code, filled_adjustment_units)
SELECT id, uuid, account_id, client_order_id, side, symbol, type, time_in_force, quantity_units, notional_cents,
       limit_units, stop_units, trail_units, trail_percent_bp, status, created, updated, received, client_ip, worker,
       expires, session_open, session_close, watermark_units, triggered, replaces, replaced_by, reason, reason_code,
       filled_adjustment_units
FROM orders;

CREATE TABLE transactions_v9 (
    id {{ID}},
    portfolio_id BIGINT NOT NULL REFERENCES portfolios (id),
    generation INTEGER NOT NULL DEFAULT 0,
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
    model TEXT,
    details TEXT
);

INSERT INTO transactions_v9 (id, portfolio_id, order_id, kind, time, side, symbol, quantity_units, price_units,
                             commission_cents, amount_cents, cash_after_cents, realized_cents, position_after_units,
                             model, details)
SELECT id, account_id, order_id, kind, time, side, symbol, quantity_units, price_units, commission_cents,
       amount_cents, cash_after_cents, realized_cents, position_after_units, model, details
FROM transactions;

CREATE TABLE order_events_v9 (
    id {{ID}},
    portfolio_id BIGINT NOT NULL REFERENCES portfolios (id),
    order_id BIGINT NOT NULL REFERENCES orders (id),
    kind TEXT NOT NULL,
    time TEXT NOT NULL,
    recorded TEXT NOT NULL,
    transaction_id BIGINT REFERENCES transactions (id),
    reason_code TEXT,
    reason TEXT
);

INSERT INTO order_events_v9 (id, portfolio_id, order_id, kind, time, recorded, transaction_id, reason_code, reason)
SELECT id, account_id, order_id, kind, time, recorded, transaction_id, reason_code, reason FROM order_events;

CREATE TABLE positions_v9 (
    portfolio_id BIGINT NOT NULL REFERENCES portfolios (id),
    symbol TEXT NOT NULL,
    quantity_units BIGINT NOT NULL,
    cost_cents BIGINT NOT NULL,
    PRIMARY KEY (portfolio_id, symbol)
);

INSERT INTO positions_v9 (portfolio_id, symbol, quantity_units, cost_cents)
SELECT account_id, symbol, quantity_units, cost_cents FROM positions;

CREATE TABLE dividends_v9 (
    id {{ID}},
    portfolio_id BIGINT NOT NULL REFERENCES portfolios (id),
    symbol TEXT NOT NULL,
    ex_date TEXT NOT NULL,
    pay_date TEXT NOT NULL,
    quantity_units BIGINT NOT NULL,
    per_share_units BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL,
    paid TEXT
);

INSERT INTO dividends_v9 (id, portfolio_id, symbol, ex_date, pay_date, quantity_units, per_share_units, amount_cents,
                          paid)
SELECT id, account_id, symbol, ex_date, pay_date, quantity_units, per_share_units, amount_cents, paid FROM dividends;

CREATE TABLE api_keys_v9 (
    key_id TEXT PRIMARY KEY,
    portfolio_id BIGINT NOT NULL REFERENCES portfolios (id),
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created TEXT NOT NULL,
    last_used TEXT,
    revoked TEXT
);

INSERT INTO api_keys_v9 (key_id, portfolio_id, name, secret_hash, created, last_used, revoked)
SELECT key_id, account_id, name, secret_hash, created, last_used, revoked FROM api_keys;

DROP TABLE order_events;
DROP TABLE transactions;
DROP TABLE orders;
DROP TABLE positions;
DROP TABLE dividends;
DROP TABLE api_keys;
ALTER TABLE orders_v9 RENAME TO orders;
ALTER TABLE transactions_v9 RENAME TO transactions;
ALTER TABLE order_events_v9 RENAME TO order_events;
ALTER TABLE positions_v9 RENAME TO positions;
ALTER TABLE dividends_v9 RENAME TO dividends;
ALTER TABLE api_keys_v9 RENAME TO api_keys;

CREATE INDEX orders_status ON orders (status, id);
CREATE INDEX orders_portfolio ON orders (portfolio_id, generation, id);
CREATE INDEX transactions_portfolio ON transactions (portfolio_id, generation, id);
CREATE INDEX transactions_order ON transactions (order_id);
CREATE INDEX order_events_portfolio ON order_events (portfolio_id, id);
CREATE INDEX dividends_due ON dividends (paid, pay_date);
CREATE INDEX api_keys_portfolio ON api_keys (portfolio_id)
