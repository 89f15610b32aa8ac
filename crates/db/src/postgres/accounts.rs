//! Users and their credentials: passwords' users, external identities, refresh tokens, API keys.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use vidsnap_domain::{ApiKey, ApiKeyId, PortError, PortResult, User, UserId};

use super::{
    PgStore,
    codec::{self, now},
};
use crate::error::port_error;

pub(super) async fn create_user(store: &PgStore, user: &User) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, external_issuer, external_subject, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(user.id.as_uuid())
    .bind(user.email.to_lowercase())
    .bind(user.password_hash.as_deref())
    .bind(user.external_issuer.as_deref())
    .bind(user.external_subject.as_deref())
    .bind(user.created_at)
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    Ok(())
}

pub(super) async fn user(store: &PgStore, id: UserId) -> PortResult<User> {
    let row = sqlx::query("SELECT * FROM users WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_one(&store.pool)
        .await
        .map_err(port_error)?;
    codec::user(&row)
}

pub(super) async fn user_by_email(store: &PgStore, email: &str) -> PortResult<User> {
    let row = sqlx::query("SELECT * FROM users WHERE email = $1")
        .bind(email.to_lowercase())
        .fetch_one(&store.pool)
        .await
        .map_err(port_error)?;
    codec::user(&row)
}

/// Inserts on first sight and reads back either way, so two first requests racing each other
/// end with one user: the loser's insert waits for the winner's commit, then does nothing, and
/// its read (a new statement, a new snapshot) sees the winner's row. An e-mail already held by
/// another account is a `Conflict`.
pub(super) async fn external_user(
    store: &PgStore,
    issuer: &str,
    subject: &str,
    email: &str,
) -> PortResult<User> {
    let mut tx = store.pool.begin().await.map_err(port_error)?;
    sqlx::query(
        "INSERT INTO users (id, email, external_issuer, external_subject, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (external_issuer, external_subject) DO NOTHING",
    )
    .bind(UserId::new().as_uuid())
    .bind(email.to_lowercase())
    .bind(issuer)
    .bind(subject)
    .bind(now())
    .execute(&mut *tx)
    .await
    .map_err(port_error)?;
    let row =
        sqlx::query("SELECT * FROM users WHERE external_issuer = $1 AND external_subject = $2")
            .bind(issuer)
            .bind(subject)
            .fetch_one(&mut *tx)
            .await
            .map_err(port_error)?;
    tx.commit().await.map_err(port_error)?;
    codec::user(&row)
}

pub(super) async fn store_refresh_token(
    store: &PgStore,
    user: UserId,
    token_sha256: &str,
    expires_at: DateTime<Utc>,
) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_sha256, user_id, expires_at, created_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_sha256)
    .bind(user.as_uuid())
    .bind(expires_at)
    .bind(now())
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    Ok(())
}

/// One statement finds and spends the token: a concurrent exchange waits for the row lock, then
/// re-checks `used_at` on the committed row and finds nothing.
pub(super) async fn take_refresh_token(store: &PgStore, token_sha256: &str) -> PortResult<UserId> {
    let user: Uuid = sqlx::query_scalar(
        "UPDATE refresh_tokens SET used_at = $1
         WHERE token_sha256 = $2 AND used_at IS NULL AND expires_at > $1
         RETURNING user_id",
    )
    .bind(now())
    .bind(token_sha256)
    .fetch_one(&store.pool)
    .await
    .map_err(port_error)?;
    Ok(UserId::from_uuid(user))
}

/// Drops the rows of sessions that have expired since (their cookies are refused anyway).
pub(super) async fn revoke_session(
    store: &PgStore,
    id: &str,
    expires_at: DateTime<Utc>,
) -> PortResult<()> {
    let mut tx = store.pool.begin().await.map_err(port_error)?;
    sqlx::query("DELETE FROM revoked_sessions WHERE expires_at <= $1")
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(port_error)?;
    sqlx::query(
        "INSERT INTO revoked_sessions (id, expires_at) VALUES ($1, $2)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(expires_at)
    .execute(&mut *tx)
    .await
    .map_err(port_error)?;
    tx.commit().await.map_err(port_error)
}

pub(super) async fn session_revoked(store: &PgStore, id: &str) -> PortResult<bool> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM revoked_sessions WHERE id = $1")
        .bind(id)
        .fetch_optional(&store.pool)
        .await
        .map_err(port_error)?;
    Ok(found.is_some())
}

pub(super) async fn create_api_key(store: &PgStore, key: &ApiKey) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO api_keys
             (id, owner, name, prefix, secret_sha256, created_at, last_used_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(key.id.as_uuid())
    .bind(key.owner.as_uuid())
    .bind(&key.name)
    .bind(&key.prefix)
    .bind(&key.secret_sha256)
    .bind(key.created_at)
    .bind(key.last_used_at)
    .bind(key.revoked_at)
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    Ok(())
}

pub(super) async fn api_key_by_secret(store: &PgStore, secret_sha256: &str) -> PortResult<ApiKey> {
    let row = sqlx::query(
        "UPDATE api_keys SET last_used_at = $1
         WHERE secret_sha256 = $2 AND revoked_at IS NULL
         RETURNING *",
    )
    .bind(now())
    .bind(secret_sha256)
    .fetch_one(&store.pool)
    .await
    .map_err(port_error)?;
    codec::api_key(&row)
}

/// Newest first, revoked ones included (the list shows them as revoked).
pub(super) async fn api_keys(store: &PgStore, owner: UserId) -> PortResult<Vec<ApiKey>> {
    let rows = sqlx::query("SELECT * FROM api_keys WHERE owner = $1 ORDER BY id DESC")
        .bind(owner.as_uuid())
        .fetch_all(&store.pool)
        .await
        .map_err(port_error)?;
    codec::all(&rows, codec::api_key)
}

/// Idempotent: revoking a revoked key keeps its first revocation time.
pub(super) async fn revoke_api_key(store: &PgStore, owner: UserId, id: ApiKeyId) -> PortResult<()> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND owner = $3",
    )
    .bind(now())
    .bind(id.as_uuid())
    .bind(owner.as_uuid())
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    if done.rows_affected() == 0 {
        return Err(PortError::NotFound);
    }
    Ok(())
}
