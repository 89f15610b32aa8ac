-- Seed 002's bucket workflow: the decisions about watched files (checked, then moved to
-- processed/, failed/ or unable_to_process/), and the move a decision starts. Conventions as in
-- 0001_init.sql.

-- Set while a decided video's object (with its sidecar and outputs) is being moved: `source_key`
-- already names the new key, this the old one, until every object is moved. A key in either
-- column is taken, so the copy's own upload event (or a rescan of the old folder) never
-- registers the file twice.
ALTER TABLE videos ADD COLUMN moving_from TEXT;
CREATE UNIQUE INDEX videos_moving_from ON videos (moving_from) WHERE moving_from IS NOT NULL;

CREATE TABLE qc_results (
    id         TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video      TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    -- The job whose report was read; no foreign key: the result outlives a deleted job.
    job        TEXT,
    cycle      INTEGER NOT NULL,
    -- 0 for the first decision about the video, then one more per retry.
    attempt    INTEGER NOT NULL,
    -- Where the file was when it was checked.
    key        TEXT NOT NULL,
    file_name  TEXT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('processed', 'failed', 'unable_to_process')),
    rating     INTEGER,
    passed     INTEGER NOT NULL,
    -- JSON `Failure`: why it failed.
    error      TEXT,
    -- JSON: the report's checks, and the sidecar as read (null when absent).
    checks     TEXT NOT NULL,
    sidecar    TEXT NOT NULL,
    moved_to   TEXT,
    created_at INTEGER NOT NULL,
    -- Racing schedulers decide each attempt once.
    UNIQUE (video, attempt)
);

-- The read API: one owner's results in a time range, in id (time) order.
CREATE INDEX qc_results_owner_time ON qc_results (owner, created_at, id);
