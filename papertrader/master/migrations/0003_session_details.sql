-- Schema version 3: sessions a user can list and end one by one, and an idle timeout.
-- public_id: a short random id shown to the user (the token itself is never stored or shown again).
-- last_used: when the session was last used (updated at most once a minute).

ALTER TABLE sessions ADD COLUMN public_id TEXT;
ALTER TABLE sessions ADD COLUMN last_used TEXT;
UPDATE sessions SET public_id = substr(token_hash, 1, 12), last_used = created;
CREATE UNIQUE INDEX sessions_public_id ON sessions (public_id)
