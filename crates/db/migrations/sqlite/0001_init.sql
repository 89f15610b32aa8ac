-- Vidsnap's SQLite schema.
--
-- Conventions: ids are UUIDv7 as lower-case hyphenated text (text order is creation order, so
-- `ORDER BY id` is `ORDER BY created`); times are integer microseconds since the Unix epoch, UTC
-- (PostgreSQL's precision, and comparable with `<`); JSON values are text.

CREATE TABLE users (
    id               TEXT PRIMARY KEY NOT NULL,
    -- Lower-cased by the store before it gets here.
    email            TEXT NOT NULL UNIQUE,
    password_hash    TEXT,
    external_issuer  TEXT,
    external_subject TEXT,
    created_at       INTEGER NOT NULL,
    UNIQUE (external_issuer, external_subject)
);

CREATE TABLE refresh_tokens (
    token_sha256 TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at   INTEGER NOT NULL,
    -- Set when the token is exchanged: a token is good once.
    used_at      INTEGER,
    created_at   INTEGER NOT NULL
);

CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    owner         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);

CREATE INDEX api_keys_owner ON api_keys (owner, id);

CREATE TABLE videos (
    id           TEXT PRIMARY KEY NOT NULL,
    owner        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    file_name    TEXT NOT NULL,
    size         INTEGER,
    -- JSON `VideoOptions`.
    options      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN
                     ('awaiting_upload', 'queued', 'processing', 'succeeded', 'failed', 'dead')),
    attempts     INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    cycle        INTEGER NOT NULL,
    -- JSON `Failure`.
    last_error   TEXT,
    -- JSON ffprobe summary.
    probe        TEXT,
    -- JSON `Outputs`.
    outputs      TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- The listing: one owner's videos, newest first, optionally of one status.
CREATE INDEX videos_owner ON videos (owner, id);
CREATE INDEX videos_owner_status ON videos (owner, status, id);

CREATE TABLE video_history (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    video   TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    status  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    reason  TEXT
);

CREATE INDEX video_history_video ON video_history (video, seq);

CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX webhooks_owner ON webhooks (owner, id);

CREATE TABLE notifications (
    id               TEXT PRIMARY KEY NOT NULL,
    owner            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video            TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
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
    -- Exactly one per terminal outcome per channel, however often the outcome is recorded.
    UNIQUE (video, cycle, event, channel_key)
);

CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_webhook ON notifications (webhook, id);

CREATE TABLE jobs (
    id          TEXT PRIMARY KEY NOT NULL,
    -- No foreign key: the queue stands alone (it may live beside another repository backend).
    video       TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('queued', 'running', 'dead')),
    run_at      INTEGER NOT NULL,
    lease_owner TEXT,
    -- Random per claim: proves the holder still owns the job after a reclaim.
    lease_token TEXT,
    lease_until INTEGER,
    deliveries  INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    -- An enqueue that arrived while the job ran (a user's retry racing the worker's last
    -- steps): when the run ends, a new job is queued for this time instead of the enqueue being
    -- lost.
    rerun_at    INTEGER,
    created_at  INTEGER NOT NULL
);

-- At most one live job per video; dead ones are kept for inspection.
CREATE UNIQUE INDEX jobs_live_video ON jobs (video) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_due ON jobs (status, run_at);
