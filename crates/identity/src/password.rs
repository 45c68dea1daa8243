//! Local passwords (ID-7): argon2id with a random salt, in PHC string form. Hashing is
//! deliberately slow, so it runs on the blocking thread pool.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::IdentityError;

/// Shortest accepted password.
pub const MIN_LENGTH: usize = 10;
/// Longest accepted password: bounds the hashing work an attacker can ask for.
pub const MAX_LENGTH: usize = 1024;

/// Checks the password policy: `MIN_LENGTH` to `MAX_LENGTH` characters.
pub fn check_policy(password: &str) -> Result<(), IdentityError> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(IdentityError::Invalid(format!(
            "the password is too short: use at least {MIN_LENGTH} characters"
        )));
    }
    if password.len() > MAX_LENGTH {
        return Err(IdentityError::Invalid(format!(
            "the password is too long: at most {MAX_LENGTH} bytes"
        )));
    }
    Ok(())
}

/// Hashings at once, per process: each takes 19 MiB and a core for a while, so a burst
/// of logins waits its turn instead of exhausting memory and the blocking pool.
fn hashing_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        tokio::sync::Semaphore::new(2 * cores)
    })
}

/// The argon2id PHC string of `password` (default parameters: 19 MiB, 2 passes).
pub async fn hash(password: &str) -> Result<String, IdentityError> {
    let password = password.to_owned();
    let _permit = hashing_permits()
        .acquire()
        .await
        .map_err(|e| IdentityError::Internal(format!("password hashing stopped: {e}")))?;
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| IdentityError::Internal(format!("password hashing stopped: {e}")))?
}

fn hash_now(password: &str) -> Result<String, IdentityError> {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let salt = SaltString::encode_b64(&bytes)
        .map_err(|e| IdentityError::Internal(format!("cannot encode a salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| IdentityError::Internal(format!("cannot hash a password: {e}")))
}

/// Whether `password` matches the PHC string `phc`; a malformed `phc` never matches.
pub async fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_LENGTH {
        return false;
    }
    let (password, phc) = (password.to_owned(), phc.to_owned());
    let Ok(_permit) = hashing_permits().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || verify_now(&password, &phc))
        .await
        .unwrap_or(false)
}

fn verify_now(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_salted_argon2id_and_verify() {
        let a = hash("correct horse battery").await.unwrap();
        let b = hash("correct horse battery").await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse battery", &a).await);
        assert!(!verify("correct horse batterY", &a).await);
        assert!(!verify("correct horse battery", "not a hash").await);
    }

    #[test]
    fn the_policy_wants_ten_characters() {
        assert!(check_policy("short").is_err());
        assert!(check_policy("0123456789").is_ok());
        assert!(check_policy(&"x".repeat(MAX_LENGTH + 1)).is_err());
    }
}
