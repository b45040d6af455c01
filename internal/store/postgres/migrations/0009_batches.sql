-- Batches: requests filed together (one POST /v1/requests/batch, one CSV
-- import) carry the batch's name, so staff can follow the batch as a whole.
-- A name, never personal data; '' for a request filed alone.
ALTER TABLE requests ADD COLUMN batch text NOT NULL DEFAULT '';
CREATE INDEX requests_batch ON requests (batch, id) WHERE batch <> '';
