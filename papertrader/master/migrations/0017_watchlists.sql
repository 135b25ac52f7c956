-- Schema version 17: watchlists, as Alpaca's: an account's named, ordered lists of symbols to follow.
--   watchlists: uuid (the id the HTTP API shows), account_id (the owner: a user's lists, whatever portfolio
--     or API key reads them), name (1-64 printable characters, unique in the account), symbols (the list's
--     symbols in their order, comma-separated; '' for none), created and updated (ISO 8601, UTC).
--   An account's deletion removes its lists.

CREATE TABLE watchlists (
    id {{ID}},
    uuid TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    symbols TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);

CREATE UNIQUE INDEX watchlists_name ON watchlists (account_id, name)
