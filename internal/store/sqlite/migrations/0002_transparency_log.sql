-- The transparency log (see internal/translog): leaves, the stored hashes of
-- the Merkle tree (golang.org/x/mod/sumdb/tlog's layout), signed checkpoints,
-- and the head that serialises appends. All append-only.

CREATE TABLE log_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    size integer NOT NULL
);
INSERT INTO log_head (id, size) VALUES (1, 0);

CREATE TABLE log_entries (
    idx        integer PRIMARY KEY,
    kind       text NOT NULL,
    ref        text NOT NULL,
    data       blob NOT NULL,
    created_at integer NOT NULL
);
CREATE INDEX log_entries_ref ON log_entries (kind, ref);

CREATE TABLE log_hashes (
    id   integer PRIMARY KEY,
    hash blob NOT NULL
);

CREATE TABLE log_checkpoints (
    size       integer PRIMARY KEY,
    root       blob NOT NULL,
    note       blob NOT NULL,
    created_at integer NOT NULL
);

CREATE TRIGGER log_entries_no_update BEFORE UPDATE ON log_entries
BEGIN SELECT RAISE(ABORT, 'lethe: the transparency log is append-only'); END;
CREATE TRIGGER log_entries_no_delete BEFORE DELETE ON log_entries
BEGIN SELECT RAISE(ABORT, 'lethe: the transparency log is append-only'); END;
CREATE TRIGGER log_hashes_no_update BEFORE UPDATE ON log_hashes
BEGIN SELECT RAISE(ABORT, 'lethe: the transparency log is append-only'); END;
CREATE TRIGGER log_hashes_no_delete BEFORE DELETE ON log_hashes
BEGIN SELECT RAISE(ABORT, 'lethe: the transparency log is append-only'); END;
CREATE TRIGGER log_checkpoints_no_update BEFORE UPDATE ON log_checkpoints
BEGIN SELECT RAISE(ABORT, 'lethe: the transparency log is append-only'); END;
CREATE TRIGGER log_checkpoints_no_delete BEFORE DELETE ON log_checkpoints
BEGIN SELECT RAISE(ABORT, 'lethe: the transparency log is append-only'); END;

ALTER TABLE certificates ADD COLUMN log_index integer;
CREATE INDEX certificates_issued ON certificates (issued_at);

CREATE TABLE subject_hashes (
    hash       text NOT NULL,
    request_id text NOT NULL REFERENCES requests (id),
    PRIMARY KEY (hash, request_id)
);
CREATE INDEX requests_received ON requests (received_at);
