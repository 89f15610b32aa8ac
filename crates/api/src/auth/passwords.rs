//! Argon2id password hashing, off the async threads (it is deliberately slow).

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};

/// Memory/time costs. The defaults follow OWASP's argon2id minimum (19 MiB, 2 passes); tests
/// configure cheaper ones.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
        }
    }
}

fn hasher(cost: PasswordCost) -> Result<Argon2<'static>, String> {
    let params =
        Params::new(cost.memory_kib, cost.iterations, 1, None).map_err(|e| e.to_string())?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A PHC string for `password`.
pub async fn hash(password: String, cost: PasswordCost) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        let argon = hasher(cost)?;
        argon
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether `password` matches `phc`. Unparseable hashes never match.
pub async fn verify(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .unwrap_or(false)
}
