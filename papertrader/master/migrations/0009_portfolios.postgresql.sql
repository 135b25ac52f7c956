-- Schema version 9 (PostgreSQL): portfolios.  An account has one or more portfolios, each with its own cash,
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
--   (the same numbers, since a default portfolio's id is its account's id), reached with ALTER TABLE
--   (the SQLite version of this migration rebuilds the tables instead).
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

SELECT setval(pg_get_serial_sequence('portfolios', 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM portfolios), false);

ALTER TABLE orders DROP CONSTRAINT orders_account_id_fkey;
ALTER TABLE orders RENAME COLUMN account_id TO portfolio_id;
ALTER TABLE orders ADD CONSTRAINT orders_portfolio_id_fkey FOREIGN KEY (portfolio_id) REFERENCES portfolios (id);
ALTER TABLE transactions DROP CONSTRAINT transactions_account_id_fkey;
ALTER TABLE transactions RENAME COLUMN account_id TO portfolio_id;
ALTER TABLE transactions ADD CONSTRAINT transactions_portfolio_id_fkey FOREIGN KEY (portfolio_id) REFERENCES portfolios (id);
ALTER TABLE order_events DROP CONSTRAINT order_events_account_id_fkey;
ALTER TABLE order_events RENAME COLUMN account_id TO portfolio_id;
ALTER TABLE order_events ADD CONSTRAINT order_events_portfolio_id_fkey FOREIGN KEY (portfolio_id) REFERENCES portfolios (id);
ALTER TABLE positions DROP CONSTRAINT positions_account_id_fkey;
ALTER TABLE positions RENAME COLUMN account_id TO portfolio_id;
ALTER TABLE positions ADD CONSTRAINT positions_portfolio_id_fkey FOREIGN KEY (portfolio_id) REFERENCES portfolios (id);
ALTER TABLE dividends DROP CONSTRAINT dividends_account_id_fkey;
ALTER TABLE dividends RENAME COLUMN account_id TO portfolio_id;
ALTER TABLE dividends ADD CONSTRAINT dividends_portfolio_id_fkey FOREIGN KEY (portfolio_id) REFERENCES portfolios (id);
ALTER TABLE api_keys DROP CONSTRAINT api_keys_account_id_fkey;
ALTER TABLE api_keys RENAME COLUMN account_id TO portfolio_id;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_portfolio_id_fkey FOREIGN KEY (portfolio_id) REFERENCES portfolios (id);
ALTER TABLE orders ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN origin TEXT;
ALTER TABLE orders DROP CONSTRAINT orders_account_id_client_order_id_key;
ALTER TABLE orders ADD CONSTRAINT orders_portfolio_generation_client_order_id_key UNIQUE (portfolio_id, generation, client_order_id);
ALTER TABLE transactions ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE positions DROP CONSTRAINT positions_pkey;
ALTER TABLE positions ADD PRIMARY KEY (portfolio_id, symbol);
DROP INDEX IF EXISTS orders_account;
DROP INDEX IF EXISTS transactions_account;
DROP INDEX IF EXISTS order_events_account;
DROP INDEX IF EXISTS api_keys_account;
CREATE INDEX orders_portfolio ON orders (portfolio_id, generation, id);
CREATE INDEX transactions_portfolio ON transactions (portfolio_id, generation, id);
CREATE INDEX order_events_portfolio ON order_events (portfolio_id, id);
CREATE INDEX api_keys_portfolio ON api_keys (portfolio_id)
