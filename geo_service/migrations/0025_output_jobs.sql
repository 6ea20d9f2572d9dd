-- Long outputs (a commune's map book) made as background jobs (issues #18, #24): a job is
-- a row here, so that any instance answers its status and any instance runs it (claimed
-- with FOR UPDATE SKIP LOCKED; a worker's heartbeat; a job whose worker stopped beating is
-- claimed again). Its result is kept here too, in chunks, for a stated time: every
-- instance already reaches the database, which a shared directory would add to each
-- deployment (and to each replica's host).
CREATE TABLE output_job (
    id            uuid PRIMARY KEY,
    process       text NOT NULL,
    inputs        jsonb NOT NULL,
    -- the same request (process and inputs) joins the job of it that is still running
    request_key   text NOT NULL,
    -- what a reader must be allowed to read to see the job (the commune and its province)
    commune_code  text NOT NULL,
    province_code text,
    -- who asked ("user NAME" or "address A"): the per-client limit counts these; a client
    -- that cancels leaves, and the job stops when nobody is left
    clients       text[] NOT NULL,
    status        text NOT NULL DEFAULT 'accepted'
                  CHECK (status IN ('accepted', 'running', 'successful', 'failed', 'dismissed')),
    message       text,
    pages_done    integer NOT NULL DEFAULT 0 CHECK (pages_done >= 0),
    pages_total   integer NOT NULL CHECK (pages_total >= 0),
    attempts      integer NOT NULL DEFAULT 0,
    worker        text,
    heartbeat     timestamptz,
    created       timestamptz NOT NULL DEFAULT now(),
    started       timestamptz,
    finished      timestamptz,
    updated       timestamptz NOT NULL DEFAULT now(),
    -- a finished job (and its result) is deleted after this
    expires       timestamptz,
    result_name   text,
    result_type   text,
    result_bytes  bigint
);
CREATE UNIQUE INDEX output_job_running_request ON output_job (request_key)
    WHERE status IN ('accepted', 'running');
CREATE INDEX output_job_queue ON output_job (created) WHERE status IN ('accepted', 'running');
CREATE INDEX output_job_expires ON output_job (expires) WHERE expires IS NOT NULL;

-- A result in chunks of 1 MiB: written from the job's file and read back chunk by chunk,
-- so neither the worker nor a download holds a whole book in memory.
CREATE TABLE output_job_chunk (
    job_id uuid NOT NULL REFERENCES output_job (id) ON DELETE CASCADE,
    n      integer NOT NULL,
    data   bytea NOT NULL,
    PRIMARY KEY (job_id, n)
);
-- (PDF streams are compressed already: no second compression on the way in)
ALTER TABLE output_job_chunk ALTER COLUMN data SET STORAGE EXTERNAL;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'geo_service_app') THEN
        GRANT INSERT, UPDATE, DELETE ON output_job, output_job_chunk TO geo_service_app;
    END IF;
END $$;
