-- Schema version 2: an operator's decisions about each worker, and an optional address allow-list.
-- state: 'registered' (may connect), 'kicked' (refused until allowed), 'revoked' (refused for good).
-- allowed_ips: comma-separated addresses or networks (CIDR) the worker may connect from; NULL for any.

ALTER TABLE workers ADD COLUMN state TEXT NOT NULL DEFAULT 'registered';
ALTER TABLE workers ADD COLUMN allowed_ips TEXT
