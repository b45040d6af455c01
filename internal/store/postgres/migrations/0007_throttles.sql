-- Failures counted against a key that every replica shares: wrong portal
-- codes per email address, failed console sign-ins per account and per
-- account and client. The key is a keyed hash (HMAC), never an address or
-- a name. ref is what the key last pointed at (for a portal address, the
-- request whose code was sent last). updated_at lets housekeeping forget
-- idle keys.
CREATE TABLE throttles (
    key        text PRIMARY KEY,
    failures   integer NOT NULL DEFAULT 0,
    last_at    timestamptz,
    ref        text NOT NULL DEFAULT '',
    updated_at timestamptz
);
CREATE INDEX throttles_updated ON throttles (updated_at);

-- When the code was emailed: a code that was never sent accepts no guess.
ALTER TABLE portal_requests ADD COLUMN code_sent_at timestamptz;
