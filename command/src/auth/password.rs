//! Argon2id password hashes. Hashing costs tens of milliseconds of CPU by design, so it runs
//! on tokio's blocking pool, never on an async worker.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::CommandError;
use crate::values::Password;

/// The PHC string of `password` (argon2id, default parameters, random salt).
pub async fn hash_password(password: Password) -> Result<String, CommandError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|hash| hash.to_string())
            .map_err(CommandError::internal)
    })
    .await
    .map_err(CommandError::internal)?
}

/// Whether `password` matches the stored PHC string.
pub async fn verify_password(password: String, hash: String) -> Result<bool, CommandError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(CommandError::internal)?;
        Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .map_err(CommandError::internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hash = hash_password(Password::parse("correct horse battery").expect("valid")).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery".into(), hash.clone()).await.expect("verify"));
        assert!(!verify_password("wrong horse battery".into(), hash).await.expect("verify"));
    }
}
