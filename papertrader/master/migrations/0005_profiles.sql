-- Schema version 5: public profiles and deleted accounts.
-- public_portfolio: 1 if the user lets others see their positions.  deleted: when the account was
-- deleted (its personal data is gone; its ledger rows stay, so cash, positions and history agree).

ALTER TABLE accounts ADD COLUMN public_portfolio INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN deleted TEXT
