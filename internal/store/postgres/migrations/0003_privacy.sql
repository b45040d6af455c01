-- Suppression list: keyed hashes of the identifiers of every person whose
-- erasure completed, so they are not re-created (importers ask
-- /v1/suppressions/check) and are erased again after a backup restore
-- (`lethe replay`). Hashes only; kept after the request is purged.
CREATE TABLE suppressions (
    hash       text NOT NULL,
    kind       text NOT NULL,
    request_id text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (hash, request_id)
);
CREATE INDEX suppressions_created ON suppressions (created_at);

-- What is left of a request purged at the end of its retention period.
CREATE TABLE purges (
    request_id     text PRIMARY KEY,
    status         text NOT NULL,
    jurisdiction   text NOT NULL,
    received_at    timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    completed_at   timestamptz,
    certificate_id text NOT NULL DEFAULT '',
    log_index      bigint,
    purged_at      timestamptz NOT NULL
);

CREATE INDEX requests_completed ON requests (completed_at) WHERE completed_at IS NOT NULL;

-- Callbacks find the task waiting on a vendor job.
CREATE INDEX tasks_job_ref ON tasks (connector, job_ref) WHERE job_ref <> '';
