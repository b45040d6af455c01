-- Lethe's state. Times are integer microseconds since the epoch; JSON is kept as text so that the
-- exact bytes hashed into the event chain are the bytes read back.

CREATE TABLE requests (
    id              text PRIMARY KEY,
    status          text NOT NULL,
    jurisdiction    text NOT NULL,
    -- The identifiers (and the commitment nonce), AES-256-GCM under the
    -- request's own data key; the data key, wrapped by a key-encryption key
    -- from the config. Shredding sets both to NULL.
    subject_enc     blob,
    data_key        blob,
    shredded_at     integer,
    subject_ref     text NOT NULL,          -- keyed hashes only
    source          text NOT NULL,
    idempotency_key text NOT NULL DEFAULT '', -- SHA-256 of the client's key
    created_by      text NOT NULL,
    received_at     integer NOT NULL,
    due_at          integer NOT NULL,
    completed_at    integer,
    updated_at      integer NOT NULL
);
CREATE UNIQUE INDEX requests_idempotency_key ON requests (idempotency_key) WHERE idempotency_key <> '';
CREATE INDEX requests_status ON requests (status, id);
CREATE INDEX requests_due ON requests (due_at);

CREATE TABLE tasks (
    id              text PRIMARY KEY,
    request_id      text NOT NULL REFERENCES requests (id),
    connector       text NOT NULL,
    connector_type  text NOT NULL,
    status          text NOT NULL,
    attempt         integer NOT NULL,
    records_erased  bigint NOT NULL DEFAULT 0,
    job_ref         text NOT NULL DEFAULT '',
    next_attempt_at integer,
    next_poll_at    integer,
    last_error      text NOT NULL DEFAULT '',
    evidence        text NOT NULL DEFAULT '[]',
    verified        text NOT NULL DEFAULT '',
    created_at      integer NOT NULL,
    updated_at      integer NOT NULL,
    completed_at    integer,
    UNIQUE (request_id, connector)
);
CREATE INDEX tasks_retry_due ON tasks (next_attempt_at) WHERE status = 'failed';
CREATE INDEX tasks_poll_due ON tasks (next_poll_at) WHERE status = 'running';
CREATE INDEX tasks_dispatched ON tasks (updated_at) WHERE status = 'dispatched';

CREATE TABLE events (
    request_id text NOT NULL REFERENCES requests (id),
    seq        bigint NOT NULL,
    type       text NOT NULL,
    task_id    text NOT NULL DEFAULT '',
    actor      text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    data       text NOT NULL DEFAULT '{}',
    at         integer NOT NULL,
    prev_hash  text NOT NULL,
    hash       text NOT NULL,
    PRIMARY KEY (request_id, seq)
);

-- Retention purges (and only they) mark their transaction here to delete a
-- request's events; the row never outlives that transaction.
CREATE TABLE purge_mode (on_purpose integer PRIMARY KEY);

-- The event log is append-only: the database itself refuses edits.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'lethe: events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events WHEN NOT EXISTS (SELECT 1 FROM purge_mode)
BEGIN SELECT RAISE(ABORT, 'lethe: events are append-only'); END;

CREATE TABLE outbox (
    id         integer PRIMARY KEY AUTOINCREMENT,
    msg_id     text NOT NULL,
    subject    text NOT NULL,
    payload    blob NOT NULL,
    request_id text NOT NULL DEFAULT '',
    task_id    text NOT NULL DEFAULT '',
    attempt    integer NOT NULL DEFAULT 0,
    created_at integer NOT NULL
);
CREATE INDEX outbox_request ON outbox (request_id);

CREATE TABLE certificates (
    request_id text PRIMARY KEY REFERENCES requests (id),
    id         text NOT NULL UNIQUE,
    key_id     text NOT NULL,
    document   blob NOT NULL,
    issued_at  integer NOT NULL
);
