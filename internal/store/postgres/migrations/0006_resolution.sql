-- Resolution: resolvers look the person up before anything is erased, so a
-- request has a task per connector per phase. Tasks record the kinds of
-- identifier they were searched by (and a resolver, what it supplied),
-- whether a vendor gave no count, and why a task is not applicable or
-- needs an identifier. Requests record where each kind came from (kinds
-- and system names only; the values stay in subject_enc), and the deadline
-- before an extension with the kind of reason given.
ALTER TABLE tasks ADD COLUMN phase text NOT NULL DEFAULT 'erase';
ALTER TABLE tasks ADD COLUMN searched_by text NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN found text NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN records_unknown integer NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN reason text NOT NULL DEFAULT '';
ALTER TABLE tasks DROP CONSTRAINT tasks_request_id_connector_key;
ALTER TABLE tasks ADD CONSTRAINT tasks_request_phase_connector UNIQUE (request_id, phase, connector);

ALTER TABLE requests ADD COLUMN sources text NOT NULL DEFAULT '{}';
ALTER TABLE requests ADD COLUMN original_due_at timestamptz;
ALTER TABLE requests ADD COLUMN extension_category text NOT NULL DEFAULT '';
