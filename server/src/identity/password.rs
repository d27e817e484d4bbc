//! Password hashing with argon2id (PHC strings, parameters stored with each hash).
//!
//! Hashing costs ~20 ms of CPU and 19 MiB of memory by design, so callers on async threads go
//! through [`hash_blocking`]/[`verify_blocking`], which run on tokio's blocking pool, at most one
//! hash per CPU core at a time: a burst of logins queues instead of spawning a thread (and 19 MiB)
//! per request.

use std::sync::LazyLock;

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

use crate::error::{AppError, Result};

/// Shortest accepted password.
pub const MIN_PASSWORD_LEN: usize = 8;

/// A hash verified when the username does not exist, so a wrong username costs the same time as
/// a wrong password and response timing does not reveal which accounts exist.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash("yanshou-timing-equaliser").unwrap_or_default());

pub fn hash(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("argon2 hash: {e}")))
}

/// `true` when `password` matches `phc`. A malformed stored hash counts as a mismatch (and is
/// logged), never as a match.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "stored password hash is malformed");
            false
        }
    }
}

/// Permits for concurrent argon2 computations: one per core.
static HASHING: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, usize::from))
});

async fn hashing_permit() -> Result<tokio::sync::SemaphorePermit<'static>> {
    HASHING
        .acquire()
        .await
        .map_err(|e| AppError::Internal(format!("hashing semaphore closed: {e}")))
}

pub async fn hash_blocking(password: String) -> Result<String> {
    let _permit = hashing_permit().await?;
    tokio::task::spawn_blocking(move || hash(&password)).await?
}

/// Verify against `phc`, or against a dummy hash when there is no user (same cost either way).
pub async fn verify_blocking(password: String, phc: Option<String>) -> Result<bool> {
    let _permit = hashing_permit().await?;
    Ok(tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify(&password, &phc),
        None => {
            let _ = verify(&password, &DUMMY_HASH);
            false
        }
    })
    .await?)
}

/// Reject passwords too weak to protect an official's signature.
pub fn check_strength(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AppError::invalid_field(
            "password",
            format!("must have at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_argon2id_and_verifies() {
        let h = hash("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
    }

    #[test]
    fn malformed_stored_hash_never_matches() {
        assert!(!verify("anything", "not-a-phc-string"));
    }

    #[test]
    fn short_password_is_refused() {
        assert!(check_strength("1234567").is_err());
        assert!(check_strength("12345678").is_ok());
    }
}
