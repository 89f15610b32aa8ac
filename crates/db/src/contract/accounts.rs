//! Users, external identities, refresh tokens and API keys.

use vidsnap_domain::{ApiKey, ApiKeyId, PortError, Repository, UserId};

use super::{assert_not_found, new_user, now, seconds, user};

pub async fn emails_are_unique_ignoring_case(repo: &dyn Repository) {
    let alice = user("Alice@Example.com");
    repo.create_user(&alice).await.unwrap();

    let found = repo.user_by_email("ALICE@example.COM").await.unwrap();
    assert_eq!(found.id, alice.id);
    assert_eq!(
        found.email, "alice@example.com",
        "e-mails are stored lower-cased"
    );
    assert_eq!(found.password_hash, alice.password_hash);
    assert_eq!(found.created_at, alice.created_at);
    assert_eq!(repo.user(alice.id).await.unwrap(), found);

    let again = repo.create_user(&user("alice@EXAMPLE.com")).await;
    assert!(
        matches!(again, Err(PortError::Conflict(_))),
        "a taken e-mail in other case: {again:?}"
    );
    assert_not_found(repo.user(UserId::new()).await, "unknown user");
    assert_not_found(
        repo.user_by_email("nobody@example.com").await,
        "unknown e-mail",
    );
}

pub async fn external_users_are_created_once(repo: &dyn Repository) {
    let first = repo
        .external_user("https://idp.example", "sub-1", "Ext@Example.com")
        .await
        .unwrap();
    assert_eq!(first.email, "ext@example.com");
    assert_eq!(first.password_hash, None);
    assert_eq!(
        first.external_issuer.as_deref(),
        Some("https://idp.example")
    );
    assert_eq!(first.external_subject.as_deref(), Some("sub-1"));

    let second = repo
        .external_user("https://idp.example", "sub-1", "ext@example.com")
        .await
        .unwrap();
    assert_eq!(second, first, "the same identity is the same user");
    assert_eq!(repo.user(first.id).await.unwrap(), first);

    let other = repo
        .external_user("https://idp.example", "sub-2", "other@example.com")
        .await
        .unwrap();
    assert_ne!(other.id, first.id);
}

pub async fn refresh_tokens_are_single_use_and_expire(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    repo.store_refresh_token(alice.id, "sha-live", now() + seconds(3600))
        .await
        .unwrap();
    repo.store_refresh_token(alice.id, "sha-expired", now() - seconds(1))
        .await
        .unwrap();

    assert_eq!(repo.take_refresh_token("sha-live").await.unwrap(), alice.id);
    assert_not_found(repo.take_refresh_token("sha-live").await, "a used token");
    assert_not_found(
        repo.take_refresh_token("sha-expired").await,
        "an expired token",
    );
    assert_not_found(
        repo.take_refresh_token("sha-unknown").await,
        "an unknown token",
    );
}

pub async fn signed_out_sessions_stay_revoked(repo: &dyn Repository) {
    assert!(!repo.session_revoked("s-1").await.unwrap());
    repo.revoke_session("s-1", now() + seconds(3600))
        .await
        .unwrap();
    // Idempotent: a second sign-out of the same cookie.
    repo.revoke_session("s-1", now() + seconds(3600))
        .await
        .unwrap();
    assert!(repo.session_revoked("s-1").await.unwrap());
    assert!(!repo.session_revoked("s-2").await.unwrap());
    // A session that expired is forgotten by the next sign-out (its cookie is refused anyway).
    repo.revoke_session("s-old", now() - seconds(1))
        .await
        .unwrap();
    repo.revoke_session("s-2", now() + seconds(3600))
        .await
        .unwrap();
    assert!(!repo.session_revoked("s-old").await.unwrap());
    assert!(repo.session_revoked("s-1").await.unwrap());
    assert!(repo.session_revoked("s-2").await.unwrap());
}

pub async fn api_keys_work_until_revoked(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let bob = new_user(repo, "bob@example.com").await;
    let key = ApiKey {
        id: ApiKeyId::new(),
        owner: alice.id,
        name: "ci".to_owned(),
        prefix: "vs_abcd".to_owned(),
        secret_sha256: "sha-secret".to_owned(),
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
    };
    repo.create_api_key(&key).await.unwrap();
    let duplicate = ApiKey {
        id: ApiKeyId::new(),
        ..key.clone()
    };
    assert!(matches!(
        repo.create_api_key(&duplicate).await,
        Err(PortError::Conflict(_))
    ));

    let before = now();
    let used = repo.api_key_by_secret("sha-secret").await.unwrap();
    assert_eq!(used.id, key.id);
    assert_eq!(used.owner, alice.id);
    assert!(
        used.last_used_at.is_some_and(|at| at >= before),
        "the use is recorded: {:?}",
        used.last_used_at
    );
    assert_not_found(repo.api_key_by_secret("sha-other").await, "unknown secret");

    assert_eq!(repo.api_keys(alice.id).await.unwrap().len(), 1);
    assert!(repo.api_keys(bob.id).await.unwrap().is_empty());
    assert_not_found(
        repo.revoke_api_key(bob.id, key.id).await,
        "another user's key",
    );
    assert!(repo.api_key_by_secret("sha-secret").await.is_ok());

    repo.revoke_api_key(alice.id, key.id).await.unwrap();
    assert_not_found(repo.api_key_by_secret("sha-secret").await, "a revoked key");
    let listed = repo.api_keys(alice.id).await.unwrap();
    assert_eq!(listed.len(), 1, "revoked keys stay listed");
    let revoked_at = listed[0].revoked_at.expect("revocation time");
    repo.revoke_api_key(alice.id, key.id).await.unwrap();
    assert_eq!(
        repo.api_keys(alice.id).await.unwrap()[0].revoked_at,
        Some(revoked_at),
        "revoking again changes nothing"
    );
    assert_not_found(
        repo.revoke_api_key(alice.id, ApiKeyId::new()).await,
        "unknown key",
    );
}
