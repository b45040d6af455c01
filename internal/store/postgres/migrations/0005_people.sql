-- The portal: the person's language for emails, and the emailed code
-- (hashed) with its expiry and wrong attempts. The links a person is given
-- are derived from the request id with a keyed MAC, so none is stored.
CREATE TABLE portal_requests (
    request_id      text PRIMARY KEY REFERENCES requests (id),
    lang            text NOT NULL,
    code_hash       text NOT NULL,
    code_expires_at timestamptz NOT NULL,
    code_attempts   integer NOT NULL DEFAULT 0,
    verified_at     timestamptz
);

-- Staff console sessions: the cookie's SHA-256, never the cookie.
CREATE TABLE sessions (
    id_hash    text PRIMARY KEY,
    user_name  text NOT NULL,
    role       text NOT NULL,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
