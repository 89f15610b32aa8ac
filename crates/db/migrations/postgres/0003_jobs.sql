-- Jobs made of steps (one run of a recipe over input videos), their history, the task queue that
-- replaces the per-video job queue, and notifications owed per job. The same tables as
-- migrations/sqlite/0003_jobs.sql, in PostgreSQL's types; conventions as in 0001_init.sql.
-- Upgrades a database of 0001 and 0002 in place.

-- The old queue held one live row per video. Its rows are dropped rather than converted: a video
-- they were queued for is still `queued` (or `processing`) with no `job`, and the scheduler finds
-- such videos (`stale_queued`) and makes their job, which queues its tasks.
DROP TABLE jobs;

CREATE TABLE jobs (
    id          uuid PRIMARY KEY,
    owner       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The built-in recipe it was made from, if any.
    recipe_name text,
    -- JSON `Recipe`: the checked recipe, with the options re-runs edited.
    recipe      text NOT NULL,
    -- JSON parameters the job was made with.
    params      text NOT NULL,
    -- JSON object, input name -> `JobInput` (video, uploaded).
    inputs      text NOT NULL,
    -- The /v1/videos video the job was made for: its status mirrors the job's, and deleting it
    -- deletes the job.
    video       uuid REFERENCES videos (id) ON DELETE CASCADE,
    -- Derived from the steps, stored for the listing's filter.
    status      text NOT NULL CHECK (status IN
                    ('waiting', 'queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    cycle       bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- The listing: one owner's jobs, newest first, optionally of one status.
CREATE INDEX jobs_owner ON jobs (owner, id);
CREATE INDEX jobs_owner_status ON jobs (owner, status, id);
-- The `video` foreign key's cascade.
CREATE INDEX jobs_video ON jobs (video) WHERE video IS NOT NULL;

-- The videos each job reads, to find the jobs an upload lets run. `jobs.inputs` is the job's own
-- record; this is its index.
CREATE TABLE job_inputs (
    job   uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name  text NOT NULL,
    -- Deleting a video a job reads (without being made for it) keeps the job, which still names
    -- the video in `inputs`; only this lookup row goes.
    video uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    PRIMARY KEY (job, name)
);

CREATE INDEX job_inputs_video ON job_inputs (video);

CREATE TABLE steps (
    job          uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- Its index in the recipe: steps are read back in this order.
    position     bigint NOT NULL,
    status       text NOT NULL CHECK (status IN
                     ('waiting', 'ready', 'running', 'succeeded', 'failed', 'dead', 'skipped',
                      'cancelled')),
    attempts     bigint NOT NULL,
    max_attempts bigint NOT NULL,
    -- Runs started in every cycle: what a task's `attempt` names (never goes back).
    run          bigint NOT NULL DEFAULT 0,
    -- JSON `Failure`.
    last_error   text,
    progress     bigint,
    -- A ready step's task is due then.
    run_at       timestamptz,
    -- A running step belongs to `worker` until then.
    lease_until  timestamptz,
    worker       text,
    started_at   timestamptz,
    finished_at  timestamptz,
    -- JSON array of `Artefact`.
    artefacts    text NOT NULL,
    -- JSON, what the operation reported besides its files.
    result       text,
    PRIMARY KEY (job, name)
);

-- The scheduler's sweep of ready steps whose task may have been lost (`overdue_tasks`).
CREATE INDEX steps_ready ON steps (run_at) WHERE status = 'ready';

-- A job's history, one row per step status change.
CREATE TABLE step_events (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    step    text NOT NULL,
    status  text NOT NULL,
    attempt bigint NOT NULL,
    at      timestamptz NOT NULL,
    reason  text
);

CREATE INDEX step_events_job ON step_events (job, seq);

-- The database task queue: the old queue's leases, deliveries and mid-run enqueues, carrying a
-- task (job, step, attempt) instead of a video.
CREATE TABLE tasks (
    id            uuid PRIMARY KEY,
    -- No foreign key: the queue stands alone (it may live beside another repository backend),
    -- and the step judges every delivery anyway.
    job           uuid NOT NULL,
    step          text NOT NULL,
    attempt       bigint NOT NULL,
    status        text NOT NULL CHECK (status IN ('queued', 'running', 'dead')),
    run_at        timestamptz NOT NULL,
    lease_owner   text,
    -- Random per claim: proves the holder still owns the task after a reclaim.
    lease_token   text,
    lease_until   timestamptz,
    deliveries    bigint NOT NULL DEFAULT 0,
    last_error    text,
    -- An enqueue that arrived while the task ran (the worker queueing the step's next attempt
    -- before it acknowledges this one, or a user's re-run): when the run ends, this attempt is
    -- queued for this time instead of the enqueue being lost.
    rerun_at      timestamptz,
    rerun_attempt bigint,
    created_at    timestamptz NOT NULL
);

-- At most one live task per job step; dead ones are kept for inspection.
CREATE UNIQUE INDEX tasks_live_step ON tasks (job, step) WHERE status IN ('queued', 'running');
-- Claims walk live tasks in line order (`run_at`, then id), bounded by `run_at <= now`.
CREATE INDEX tasks_due ON tasks (run_at, id) WHERE status IN ('queued', 'running');

-- The job /v1/videos made for the video, and when its bytes were stored. No foreign key on
-- `job`: the video is created before its job (the job reads it), and the job goes with the video
-- (`jobs.video` cascades). Existing rows are pre-jobs videos: no job, and `uploaded_at` unknown.
-- `status` keeps its CHECK as it is, like SQLite's, which cannot change it in place.
ALTER TABLE videos
    ADD COLUMN job uuid,
    ADD COLUMN uploaded_at timestamptz;

-- A video still waiting for its upload was created to be processed as frames: it gets the id of
-- the job its upload will make (the job service makes a video's missing job when the bytes
-- arrive).
UPDATE videos SET job = gen_random_uuid() WHERE status = 'awaiting_upload' AND job IS NULL;

-- The sweep of pre-jobs videos waiting for a job (`stale_queued`), which replaces the sweep of
-- queued videos whose job may have been lost.
DROP INDEX videos_queued;
CREATE INDEX videos_without_job ON videos (updated_at)
    WHERE status IN ('queued', 'processing') AND job IS NULL;

-- Notifications are owed per video (`video.*`) or per job (`job.*`): `video` becomes nullable and
-- `job` appears, each the subject of its own uniqueness rule. The existing UNIQUE (video, cycle,
-- event, channel_key) stays as it is: NULLs never collide in it, so job rows pass it by.
ALTER TABLE notifications
    ALTER COLUMN video DROP NOT NULL,
    ADD COLUMN job uuid REFERENCES jobs (id) ON DELETE CASCADE,
    ADD CONSTRAINT notifications_one_subject CHECK ((video IS NULL) <> (job IS NULL)),
    -- Also the index of the `job` foreign key's cascade.
    ADD CONSTRAINT notifications_job_outcome UNIQUE (job, cycle, event, channel_key);
