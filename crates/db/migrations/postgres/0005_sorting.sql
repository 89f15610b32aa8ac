-- Seed 002's bucket workflow: the same tables as migrations/sqlite/0005_sorting.sql, in
-- PostgreSQL's types; conventions as in 0001_init.sql.

-- Set while a decided video's object (with its sidecar and outputs) is being moved: `source_key`
-- already names the new key, this the old one, until every object is moved. A key in either
-- column is taken, so the copy's own upload event (or a rescan of the old folder) never
-- registers the file twice.
ALTER TABLE videos ADD COLUMN moving_from text;
CREATE UNIQUE INDEX videos_moving_from ON videos (moving_from) WHERE moving_from IS NOT NULL;

CREATE TABLE qc_results (
    id         uuid PRIMARY KEY,
    owner      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video      uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    -- The job whose report was read; no foreign key: the result outlives a deleted job.
    job        uuid,
    cycle      bigint NOT NULL,
    -- 0 for the first decision about the video, then one more per retry.
    attempt    bigint NOT NULL,
    -- Where the file was when it was checked.
    key        text NOT NULL,
    file_name  text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('processed', 'failed', 'unable_to_process')),
    rating     bigint,
    passed     boolean NOT NULL,
    -- JSON `Failure`: why it failed.
    error      text,
    -- JSON: the report's checks, and the sidecar as read (null when absent).
    checks     text NOT NULL,
    sidecar    text NOT NULL,
    moved_to   text,
    created_at timestamptz NOT NULL,
    -- Racing schedulers decide each attempt once.
    UNIQUE (video, attempt)
);

-- The read API: one owner's results in a time range, in id (time) order.
CREATE INDEX qc_results_owner_time ON qc_results (owner, created_at, id);
