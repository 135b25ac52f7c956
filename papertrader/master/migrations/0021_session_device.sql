-- Schema version 21: what each session signed in from (master/validation.py device).
--   sessions.device: the client's own word for what it is ('Chrome on Linux', 'papertrader CLI on Linux'), at
--     most 100 printable characters, shown in the account's sessions list to tell them apart; NULL for sessions
--     opened before, and for clients that say nothing.

ALTER TABLE sessions ADD COLUMN device TEXT
