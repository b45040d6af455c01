-- Every job reference a task has had, so that a callback about an earlier
-- attempt's job (an old confirmation link, a processor's late callback)
-- finds its task and is told it is no longer current, instead of "not
-- recorded yet, send it again" for ever. A job reference never identifies
-- the person.
CREATE TABLE task_job_refs (
    connector text NOT NULL,
    job_ref   text NOT NULL,
    task_id   text NOT NULL REFERENCES tasks (id),
    PRIMARY KEY (connector, job_ref)
);
INSERT INTO task_job_refs (connector, job_ref, task_id)
    SELECT connector, job_ref, id FROM tasks WHERE job_ref <> ''
    ON CONFLICT DO NOTHING;
