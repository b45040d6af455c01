-- The transparency log (see internal/translog): leaves, the stored hashes of
-- the Merkle tree (golang.org/x/mod/sumdb/tlog's layout), signed checkpoints,
-- and the head that serialises appends. All append-only.

CREATE TABLE log_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    size bigint NOT NULL
);
INSERT INTO log_head (id, size) VALUES (1, 0);

CREATE TABLE log_entries (
    idx        bigint PRIMARY KEY,
    kind       text NOT NULL,
    ref        text NOT NULL,          -- certificate id or key id
    data       bytea NOT NULL,         -- the leaf data: no personal data
    created_at timestamptz NOT NULL
);
CREATE INDEX log_entries_ref ON log_entries (kind, ref);

CREATE TABLE log_hashes (
    id   bigint PRIMARY KEY,           -- tlog stored hash index
    hash bytea NOT NULL
);

CREATE TABLE log_checkpoints (
    size       bigint PRIMARY KEY,
    root       bytea NOT NULL,
    note       bytea NOT NULL,         -- the signed checkpoint
    created_at timestamptz NOT NULL
);

CREATE FUNCTION lethe_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'lethe: the transparency log is append-only';
END
$$;
CREATE TRIGGER log_entries_append_only BEFORE UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION lethe_log_append_only();
CREATE TRIGGER log_hashes_append_only BEFORE UPDATE OR DELETE ON log_hashes
    FOR EACH ROW EXECUTE FUNCTION lethe_log_append_only();
CREATE TRIGGER log_checkpoints_append_only BEFORE UPDATE OR DELETE ON log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION lethe_log_append_only();

ALTER TABLE certificates ADD COLUMN log_index bigint;
CREATE INDEX certificates_issued ON certificates (issued_at);

-- Keyed hashes of each request's identifiers, to find a person's
-- certificates from an email an auditor types in (hashed on the fly).
CREATE TABLE subject_hashes (
    hash       text NOT NULL,
    request_id text NOT NULL REFERENCES requests (id),
    PRIMARY KEY (hash, request_id)
);
CREATE INDEX requests_received ON requests (received_at);
