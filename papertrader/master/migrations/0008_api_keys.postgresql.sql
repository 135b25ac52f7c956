-- Schema version 8 (PostgreSQL): API keys for the HTTP API, and a public UUID per account
-- (see 0008_api_keys.sqlite.sql).

CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created TEXT NOT NULL,
    last_used TEXT,
    revoked TEXT
);

CREATE INDEX api_keys_account ON api_keys (account_id);

ALTER TABLE accounts ADD COLUMN uuid TEXT;

UPDATE accounts SET uuid = CAST(gen_random_uuid() AS TEXT);

CREATE UNIQUE INDEX accounts_uuid ON accounts (uuid)
