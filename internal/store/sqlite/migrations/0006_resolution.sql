-- Resolution: resolvers look the person up before anything is erased, so a
-- request has a task per connector per phase. Tasks record the kinds of
-- identifier they were searched by (and a resolver, what it supplied),
-- whether a vendor gave no count, and why a task is not applicable or
-- needs an identifier. Requests record where each kind came from (kinds
-- and system names only; the values stay in subject_enc), and the deadline
-- before an extension with the kind of reason given.
-- SQLite cannot drop a table constraint, so tasks is rebuilt.
CREATE TABLE tasks_new (
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
    exemption_basis text NOT NULL DEFAULT '',
    phase           text NOT NULL DEFAULT 'erase',
    searched_by     text NOT NULL DEFAULT '[]',
    found           text NOT NULL DEFAULT '[]',
    records_unknown integer NOT NULL DEFAULT 0,
    reason          text NOT NULL DEFAULT '',
    UNIQUE (request_id, phase, connector)
);
INSERT INTO tasks_new (id, request_id, connector, connector_type, status, attempt, records_erased, job_ref,
    next_attempt_at, next_poll_at, last_error, evidence, verified, created_at, updated_at, completed_at, exemption_basis)
SELECT id, request_id, connector, connector_type, status, attempt, records_erased, job_ref,
    next_attempt_at, next_poll_at, last_error, evidence, verified, created_at, updated_at, completed_at, exemption_basis
FROM tasks;
DROP TABLE tasks;
ALTER TABLE tasks_new RENAME TO tasks;
CREATE INDEX tasks_retry_due ON tasks (next_attempt_at) WHERE status = 'failed';
CREATE INDEX tasks_poll_due ON tasks (next_poll_at) WHERE status = 'running';
CREATE INDEX tasks_dispatched ON tasks (updated_at) WHERE status = 'dispatched';
CREATE INDEX tasks_job_ref ON tasks (connector, job_ref) WHERE job_ref <> '';

ALTER TABLE requests ADD COLUMN sources text NOT NULL DEFAULT '{}';
ALTER TABLE requests ADD COLUMN original_due_at integer;
ALTER TABLE requests ADD COLUMN extension_category text NOT NULL DEFAULT '';
