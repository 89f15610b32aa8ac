-- Vidsnap's PostgreSQL schema: the same tables, columns and rules as migrations/sqlite/, in
-- PostgreSQL's own types.
--
-- Conventions: ids are UUIDv7 in `uuid` columns (PostgreSQL compares uuids byte by byte, so
-- `ORDER BY id` is creation order, as with SQLite's text); times are `timestamptz` (microsecond
-- precision, what SQLite keeps too); counters are `bigint` (they hold a u32, which `integer`
-- cannot). JSON values are `text`, like SQLite's, not `jsonb`: jsonb refuses the `\u0000`
-- escape serde_json writes for a NUL character and reorders keys, and nothing queries inside
-- them.

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    -- Lower-cased by the store before it gets here.
    email            text NOT NULL UNIQUE,
    password_hash    text,
    external_issuer  text,
    external_subject text,
    created_at       timestamptz NOT NULL,
    UNIQUE (external_issuer, external_subject)
);

CREATE TABLE refresh_tokens (
    token_sha256 text PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at   timestamptz NOT NULL,
    -- Set when the token is exchanged: a token is good once.
    used_at      timestamptz,
    created_at   timestamptz NOT NULL
);

CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    owner         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    prefix        text NOT NULL,
    secret_sha256 text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

CREATE INDEX api_keys_owner ON api_keys (owner, id);

CREATE TABLE videos (
    id           uuid PRIMARY KEY,
    owner        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    file_name    text NOT NULL,
    size         bigint,
    -- JSON `VideoOptions`.
    options      text NOT NULL,
    status       text NOT NULL CHECK (status IN
                     ('awaiting_upload', 'queued', 'processing', 'succeeded', 'failed', 'dead')),
    attempts     bigint NOT NULL,
    max_attempts bigint NOT NULL,
    cycle        bigint NOT NULL,
    -- JSON `Failure`.
    last_error   text,
    -- JSON ffprobe summary.
    probe        text,
    -- JSON `Outputs`.
    outputs      text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- The listing: one owner's videos, newest first, optionally of one status.
CREATE INDEX videos_owner ON videos (owner, id);
CREATE INDEX videos_owner_status ON videos (owner, status, id);
-- The sweep of videos whose job may have been lost.
CREATE INDEX videos_queued ON videos (updated_at) WHERE status = 'queued';

CREATE TABLE video_history (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    video   uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    status  text NOT NULL,
    at      timestamptz NOT NULL,
    attempt bigint NOT NULL,
    reason  text
);

CREATE INDEX video_history_video ON video_history (video, seq);

CREATE TABLE webhooks (
    id         uuid PRIMARY KEY,
    owner      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url        text NOT NULL,
    secret     text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE INDEX webhooks_owner ON webhooks (owner, id);

CREATE TABLE notifications (
    id               uuid PRIMARY KEY,
    owner            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video            uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    cycle            bigint NOT NULL,
    event            text NOT NULL,
    -- JSON `Channel`.
    channel          text NOT NULL,
    -- 'email', or 'webhook:<id>': what makes two notifications the same one.
    channel_key      text NOT NULL,
    -- Set for webhook deliveries: the delivery log's key, and deleting the webhook drops them.
    webhook          uuid REFERENCES webhooks (id) ON DELETE CASCADE,
    -- JSON event body, frozen at the outcome.
    payload          text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         bigint NOT NULL DEFAULT 0,
    last_error       text,
    last_status_code bigint,
    next_attempt_at  timestamptz NOT NULL,
    lease_owner      text,
    lease_until      timestamptz,
    created_at       timestamptz NOT NULL,
    delivered_at     timestamptz,
    -- Exactly one per terminal outcome per channel, however often the outcome is recorded.
    UNIQUE (video, cycle, event, channel_key)
);

-- Claims walk the pending ones oldest first.
CREATE INDEX notifications_pending ON notifications (id) WHERE status = 'pending';
CREATE INDEX notifications_webhook ON notifications (webhook, id);
-- The `video` foreign key's cascade, and `notifications_for`.
CREATE INDEX notifications_video ON notifications (video, id);

CREATE TABLE jobs (
    id          uuid PRIMARY KEY,
    -- No foreign key: the queue stands alone (it may live beside another repository backend).
    video       uuid NOT NULL,
    status      text NOT NULL CHECK (status IN ('queued', 'running', 'dead')),
    run_at      timestamptz NOT NULL,
    lease_owner text,
    -- Random per claim: proves the holder still owns the job after a reclaim.
    lease_token text,
    lease_until timestamptz,
    deliveries  bigint NOT NULL DEFAULT 0,
    last_error  text,
    -- An enqueue that arrived while the job ran (a user's retry racing the worker's last
    -- steps): when the run ends, a new job is queued for this time instead of the enqueue being
    -- lost.
    rerun_at    timestamptz,
    created_at  timestamptz NOT NULL
);

-- At most one live job per video; dead ones are kept for inspection.
CREATE UNIQUE INDEX jobs_live_video ON jobs (video) WHERE status IN ('queued', 'running');
-- Claims walk live jobs in line order (`run_at`, then id), bounded by `run_at <= now`.
CREATE INDEX jobs_due ON jobs (run_at, id) WHERE status IN ('queued', 'running');
