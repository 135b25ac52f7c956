-- Schema version 20: usernames that look alike (master/validation.py username_skeleton).
--   accounts.username_skeleton: the username with the letters that look alike made one (capital I and the
--     digit 1 as l, the digit 0 as o, rn as m, vv as w), lowercased: a new username whose skeleton an
--     existing account has is refused (a game's leaderboard shows usernames only: 'aIice' beside 'alice').
--   Accounts made before keep theirs, even where two look alike.

ALTER TABLE accounts ADD COLUMN username_skeleton TEXT;
UPDATE accounts SET username_skeleton = REPLACE(REPLACE(REPLACE(REPLACE(LOWER(REPLACE(username, 'I', 'l')),
    '1', 'l'), '0', 'o'), 'rn', 'm'), 'vv', 'w');
CREATE INDEX accounts_skeleton ON accounts (username_skeleton)
