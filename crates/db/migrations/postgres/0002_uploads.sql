-- Resumable upload sessions (tus, and later S3 multipart and AMQP chunks): one per video created
-- through them. The same table as migrations/sqlite/0002_uploads.sql, in PostgreSQL's types;
-- conventions as in 0001_init.sql.

CREATE TABLE uploads (
    id             uuid PRIMARY KEY,
    owner          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The video created with the session; deleting the video ends the session.
    video          uuid NOT NULL UNIQUE REFERENCES videos (id) ON DELETE CASCADE,
    total_bytes    bigint NOT NULL CHECK (total_bytes >= 0),
    -- Durably staged and acknowledged: where the next piece starts.
    uploaded_bytes bigint NOT NULL CHECK (uploaded_bytes >= 0 AND uploaded_bytes <= total_bytes),
    -- JSON object of the metadata the client sent (file name, processing options).
    metadata       text NOT NULL,
    -- JSON state of the staging backend (an S3 multipart upload id and its parts); opaque here.
    staging        text,
    -- The write lease: one writer per upload at a time, taken by compare-and-set (a single
    -- UPDATE; no transaction stays open while the bytes stream). A token whose `writer_until`
    -- has passed holds nothing (its writer stalled or died).
    writer_token   text,
    writer_until   timestamptz,
    -- Pushed forward by every write: only an idle session expires.
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE INDEX uploads_owner ON uploads (owner, id);
-- The scheduler's sweep of idle sessions.
CREATE INDEX uploads_expiry ON uploads (expires_at);
-- The scheduler's sweep of videos whose presigned upload was never used.
CREATE INDEX videos_awaiting_upload ON videos (created_at) WHERE status = 'awaiting_upload';
