//! Users and their credentials: passwords' users, external identities, refresh tokens, API keys.

use chrono::{DateTime, Utc};
use vidsnap_domain::{ApiKey, ApiKeyId, PortError, PortResult, User, UserId};

use super::{
    SqliteStore,
    codec::{self, micros, now},
};
use crate::error::port_error;

pub(super) async fn create_user(store: &SqliteStore, user: &User) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, external_issuer, external_subject, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(user.id.to_string())
    .bind(user.email.to_lowercase())
    .bind(user.password_hash.as_deref())
    .bind(user.external_issuer.as_deref())
    .bind(user.external_subject.as_deref())
    .bind(micros(user.created_at))
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    Ok(())
}

pub(super) async fn user(store: &SqliteStore, id: UserId) -> PortResult<User> {
    let row = sqlx::query("SELECT * FROM users WHERE id = ?")
        .bind(id.to_string())
        .fetch_one(&store.pool)
        .await
        .map_err(port_error)?;
    codec::user(&row)
}

pub(super) async fn user_by_email(store: &SqliteStore, email: &str) -> PortResult<User> {
    let row = sqlx::query("SELECT * FROM users WHERE email = ?")
        .bind(email.to_lowercase())
        .fetch_one(&store.pool)
        .await
        .map_err(port_error)?;
    codec::user(&row)
}

/// Inserts on first sight and reads back either way, so two first requests racing each other
/// end with one user. An e-mail already held by another account is a `Conflict`.
pub(super) async fn external_user(
    store: &SqliteStore,
    issuer: &str,
    subject: &str,
    email: &str,
) -> PortResult<User> {
    let mut tx = store.write().await?;
    sqlx::query(
        "INSERT INTO users (id, email, external_issuer, external_subject, created_at)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (external_issuer, external_subject) DO NOTHING",
    )
    .bind(UserId::new().to_string())
    .bind(email.to_lowercase())
    .bind(issuer)
    .bind(subject)
    .bind(micros(now()))
    .execute(&mut *tx)
    .await
    .map_err(port_error)?;
    let row = sqlx::query("SELECT * FROM users WHERE external_issuer = ? AND external_subject = ?")
        .bind(issuer)
        .bind(subject)
        .fetch_one(&mut *tx)
        .await
        .map_err(port_error)?;
    tx.commit().await.map_err(port_error)?;
    codec::user(&row)
}

pub(super) async fn store_refresh_token(
    store: &SqliteStore,
    user: UserId,
    token_sha256: &str,
    expires_at: DateTime<Utc>,
) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_sha256, user_id, expires_at, created_at)
         VALUES (?, ?, ?, ?)",
    )
    .bind(token_sha256)
    .bind(user.to_string())
    .bind(micros(expires_at))
    .bind(micros(now()))
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    Ok(())
}

/// One statement finds and spends the token, so two concurrent exchanges cannot both succeed.
pub(super) async fn take_refresh_token(
    store: &SqliteStore,
    token_sha256: &str,
) -> PortResult<UserId> {
    let at = micros(now());
    let user: String = sqlx::query_scalar(
        "UPDATE refresh_tokens SET used_at = ?1
         WHERE token_sha256 = ?2 AND used_at IS NULL AND expires_at > ?1
         RETURNING user_id",
    )
    .bind(at)
    .bind(token_sha256)
    .fetch_one(&store.pool)
    .await
    .map_err(port_error)?;
    user.parse()
        .map_err(|e| crate::error::corrupt("refresh_tokens.user_id", e))
}

/// Drops the rows of sessions that have expired since (their cookies are refused anyway).
pub(super) async fn revoke_session(
    store: &SqliteStore,
    id: &str,
    expires_at: DateTime<Utc>,
) -> PortResult<()> {
    let mut tx = store.pool.begin().await.map_err(port_error)?;
    sqlx::query("DELETE FROM revoked_sessions WHERE expires_at <= ?")
        .bind(micros(now()))
        .execute(&mut *tx)
        .await
        .map_err(port_error)?;
    sqlx::query(
        "INSERT INTO revoked_sessions (id, expires_at) VALUES (?, ?)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(micros(expires_at))
    .execute(&mut *tx)
    .await
    .map_err(port_error)?;
    tx.commit().await.map_err(port_error)
}

pub(super) async fn session_revoked(store: &SqliteStore, id: &str) -> PortResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM revoked_sessions WHERE id = ?")
        .bind(id)
        .fetch_optional(&store.pool)
        .await
        .map_err(port_error)?;
    Ok(found.is_some())
}

pub(super) async fn create_api_key(store: &SqliteStore, key: &ApiKey) -> PortResult<()> {
    sqlx::query(
        "INSERT INTO api_keys
             (id, owner, name, prefix, secret_sha256, created_at, last_used_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(key.id.to_string())
    .bind(key.owner.to_string())
    .bind(&key.name)
    .bind(&key.prefix)
    .bind(&key.secret_sha256)
    .bind(micros(key.created_at))
    .bind(key.last_used_at.map(micros))
    .bind(key.revoked_at.map(micros))
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    Ok(())
}

pub(super) async fn api_key_by_secret(
    store: &SqliteStore,
    secret_sha256: &str,
) -> PortResult<ApiKey> {
    let row = sqlx::query(
        "UPDATE api_keys SET last_used_at = ?
         WHERE secret_sha256 = ? AND revoked_at IS NULL
         RETURNING *",
    )
    .bind(micros(now()))
    .bind(secret_sha256)
    .fetch_one(&store.pool)
    .await
    .map_err(port_error)?;
    codec::api_key(&row)
}

/// Newest first, revoked ones included (the list shows them as revoked).
pub(super) async fn api_keys(store: &SqliteStore, owner: UserId) -> PortResult<Vec<ApiKey>> {
    let rows = sqlx::query("SELECT * FROM api_keys WHERE owner = ? ORDER BY id DESC")
        .bind(owner.to_string())
        .fetch_all(&store.pool)
        .await
        .map_err(port_error)?;
    codec::all(&rows, codec::api_key)
}

/// Idempotent: revoking a revoked key keeps its first revocation time.
pub(super) async fn revoke_api_key(
    store: &SqliteStore,
    owner: UserId,
    id: ApiKeyId,
) -> PortResult<()> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND owner = ?",
    )
    .bind(micros(now()))
    .bind(id.to_string())
    .bind(owner.to_string())
    .execute(&store.pool)
    .await
    .map_err(port_error)?;
    if done.rows_affected() == 0 {
        return Err(PortError::NotFound);
    }
    Ok(())
}
