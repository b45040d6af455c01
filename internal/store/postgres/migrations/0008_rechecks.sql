-- Re-checks over time: a completed request gets follow-up tasks (phase
-- "recheck:<age>", and "reerase:<age>" when a re-check finds the person
-- again) that wait, status 'scheduled', until next_attempt_at. A request a
-- re-check found the person in again is flagged for staff: flag says why
-- (words and system names, no personal data).
ALTER TABLE requests ADD COLUMN flag text NOT NULL DEFAULT '';
ALTER TABLE requests ADD COLUMN flagged_at timestamptz;
CREATE INDEX requests_flagged ON requests (id) WHERE flag <> '';
CREATE INDEX tasks_scheduled_due ON tasks (next_attempt_at) WHERE status = 'scheduled';
