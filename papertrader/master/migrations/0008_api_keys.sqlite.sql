-- Schema version 8 (SQLite): API keys for the HTTP API, and a public UUID per account.
--   api_keys: key_id is public (PK + 18 letters and digits); only the SHA-256 of the secret is kept;
--     revoked: when it was revoked (NULL: usable).
--   accounts.uuid: the account's id in the HTTP API (orders already have theirs).

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

UPDATE accounts SET uuid = lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4'
    || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1)
    || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)));

CREATE UNIQUE INDEX accounts_uuid ON accounts (uuid)
