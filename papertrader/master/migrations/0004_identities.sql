-- Schema version 4: accounts signed in through an OpenID Connect provider.
-- An account may have no password (password_hash NULL) and one or more provider identities.

CREATE TABLE identities (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    email TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX identities_account ON identities (account_id)
