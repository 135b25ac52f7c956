-- Schema version 12: accounts an operator can disable, and when each user last logged in.
--   disabled: when the operator disabled the account (NULL: enabled); it cannot log in (password or identity
--     provider), its sessions were ended and its API keys are refused until it is enabled again.
--   disabled_reason: what the operator gave with --reason (shown to them, never to anyone else).
--   last_login: when the account last opened a session (password or provider; NULL: not since this version).

ALTER TABLE accounts ADD COLUMN disabled TEXT;
ALTER TABLE accounts ADD COLUMN disabled_reason TEXT;
ALTER TABLE accounts ADD COLUMN last_login TEXT
