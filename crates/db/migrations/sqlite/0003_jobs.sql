-- Jobs made of steps (one run of a recipe over input videos), their history, the task queue that
-- replaces the per-video job queue, and notifications owed per job. Conventions as in
-- 0001_init.sql. Upgrades a database of 0001 and 0002 in place.

-- The old queue held one live row per video. Its rows are dropped rather than converted: a video
-- they were queued for is still `queued` (or `processing`) with no `job`, and the scheduler finds
-- such videos (`stale_queued`) and makes their job, which queues its tasks.
DROP TABLE jobs;

CREATE TABLE jobs (
    id          TEXT PRIMARY KEY NOT NULL,
    owner       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The built-in recipe it was made from, if any.
    recipe_name TEXT,
    -- JSON `Recipe`: the checked recipe, with the options re-runs edited.
    recipe      TEXT NOT NULL,
    -- JSON parameters the job was made with.
    params      TEXT NOT NULL,
    -- JSON object, input name -> `JobInput` (video, uploaded).
    inputs      TEXT NOT NULL,
    -- The /v1/videos video the job was made for: its status mirrors the job's, and deleting it
    -- deletes the job.
    video       TEXT REFERENCES videos (id) ON DELETE CASCADE,
    -- Derived from the steps, stored for the listing's filter.
    status      TEXT NOT NULL CHECK (status IN
                    ('waiting', 'queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    cycle       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- The listing: one owner's jobs, newest first, optionally of one status.
CREATE INDEX jobs_owner ON jobs (owner, id);
CREATE INDEX jobs_owner_status ON jobs (owner, status, id);
-- The `video` foreign key's cascade.
CREATE INDEX jobs_video ON jobs (video) WHERE video IS NOT NULL;

-- The videos each job reads, to find the jobs an upload lets run. `jobs.inputs` is the job's own
-- record; this is its index.
CREATE TABLE job_inputs (
    job   TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name  TEXT NOT NULL,
    -- Deleting a video a job reads (without being made for it) keeps the job, which still names
    -- the video in `inputs`; only this lookup row goes.
    video TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    PRIMARY KEY (job, name)
);

CREATE INDEX job_inputs_video ON job_inputs (video);

CREATE TABLE steps (
    job          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- Its index in the recipe: steps are read back in this order.
    position     INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN
                     ('waiting', 'ready', 'running', 'succeeded', 'failed', 'dead', 'skipped',
                      'cancelled')),
    attempts     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    -- Runs started in every cycle: what a task's `attempt` names (never goes back).
    run          INTEGER NOT NULL DEFAULT 0,
    -- JSON `Failure`.
    last_error   TEXT,
    progress     INTEGER,
    -- A ready step's task is due then.
    run_at       INTEGER,
    -- A running step belongs to `worker` until then.
    lease_until  INTEGER,
    worker       TEXT,
    started_at   INTEGER,
    finished_at  INTEGER,
    -- JSON array of `Artefact`.
    artefacts    TEXT NOT NULL,
    -- JSON, what the operation reported besides its files.
    result       TEXT,
    PRIMARY KEY (job, name)
);

-- The scheduler's sweep of ready steps whose task may have been lost (`overdue_tasks`).
CREATE INDEX steps_ready ON steps (run_at) WHERE status = 'ready';

-- A job's history, one row per step status change.
CREATE TABLE step_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    job     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    step    TEXT NOT NULL,
    status  TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    reason  TEXT
);

CREATE INDEX step_events_job ON step_events (job, seq);

-- The database task queue: the old queue's leases, deliveries and mid-run enqueues, carrying a
-- task (job, step, attempt) instead of a video.
CREATE TABLE tasks (
    id            TEXT PRIMARY KEY NOT NULL,
    -- No foreign key: the queue stands alone (it may live beside another repository backend),
    -- and the step judges every delivery anyway.
    job           TEXT NOT NULL,
    step          TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('queued', 'running', 'dead')),
    run_at        INTEGER NOT NULL,
    lease_owner   TEXT,
    -- Random per claim: proves the holder still owns the task after a reclaim.
    lease_token   TEXT,
    lease_until   INTEGER,
    deliveries    INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    -- An enqueue that arrived while the task ran (the worker queueing the step's next attempt
    -- before it acknowledges this one, or a user's re-run): when the run ends, this attempt is
    -- queued for this time instead of the enqueue being lost.
    rerun_at      INTEGER,
    rerun_attempt INTEGER,
    created_at    INTEGER NOT NULL
);

-- At most one live task per job step; dead ones are kept for inspection.
CREATE UNIQUE INDEX tasks_live_step ON tasks (job, step) WHERE status IN ('queued', 'running');
CREATE INDEX tasks_due ON tasks (status, run_at);

-- The job /v1/videos made for the video, and when its bytes were stored. No foreign key on
-- `job`: the video is created before its job (the job reads it), and the job goes with the video
-- (`jobs.video` cascades). Existing rows are pre-jobs videos: no job, and `uploaded_at` unknown.
-- `status` keeps its CHECK as it is: changing it would mean rebuilding `videos`, and the rebuild
-- would cascade deletes to every table that references it.
ALTER TABLE videos ADD COLUMN job TEXT;
ALTER TABLE videos ADD COLUMN uploaded_at INTEGER;

-- A video still waiting for its upload was created to be processed as frames: it gets the id of
-- the job its upload will make (the job service makes a video's missing job when the bytes
-- arrive). A random UUID in the usual text form.
UPDATE videos
SET job = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
          || substr(lower(hex(randomblob(2))), 2) || '-'
          || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2)
          || '-' || lower(hex(randomblob(6)))
WHERE status = 'awaiting_upload' AND job IS NULL;

-- The sweep of pre-jobs videos waiting for a job (`stale_queued`).
CREATE INDEX videos_without_job ON videos (updated_at)
    WHERE status IN ('queued', 'processing') AND job IS NULL;

-- Notifications are owed per video (`video.*`) or per job (`job.*`), so `video` becomes nullable
-- and `job` appears, each the subject of its own uniqueness rule (NULLs never collide in a UNIQUE
-- constraint). SQLite cannot drop a NOT NULL, so the table is rebuilt: nothing references it, so
-- dropping the old one cascades nowhere. Rows are copied as they are.
CREATE TABLE notifications_new (
    id               TEXT PRIMARY KEY NOT NULL,
    owner            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Exactly one subject: the video of a `video.*` event or the job of a `job.*` one.
    video            TEXT REFERENCES videos (id) ON DELETE CASCADE,
    job              TEXT REFERENCES jobs (id) ON DELETE CASCADE,
    cycle            INTEGER NOT NULL,
    event            TEXT NOT NULL,
    -- JSON `Channel`.
    channel          TEXT NOT NULL,
    -- 'email', or 'webhook:<id>': what makes two notifications the same one.
    channel_key      TEXT NOT NULL,
    -- Set for webhook deliveries: the delivery log's key, and deleting the webhook drops them.
    webhook          TEXT REFERENCES webhooks (id) ON DELETE CASCADE,
    -- JSON event body, frozen at the outcome.
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    last_status_code INTEGER,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until      INTEGER,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    CHECK ((video IS NULL) <> (job IS NULL)),
    -- Exactly one per terminal outcome per channel, however often the outcome is recorded.
    UNIQUE (video, cycle, event, channel_key),
    UNIQUE (job, cycle, event, channel_key)
);

INSERT INTO notifications_new
    (id, owner, video, cycle, event, channel, channel_key, webhook, payload, status, attempts,
     last_error, last_status_code, next_attempt_at, lease_owner, lease_until, created_at,
     delivered_at)
SELECT id, owner, video, cycle, event, channel, channel_key, webhook, payload, status, attempts,
       last_error, last_status_code, next_attempt_at, lease_owner, lease_until, created_at,
       delivered_at
FROM notifications;

DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;

CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_webhook ON notifications (webhook, id);
