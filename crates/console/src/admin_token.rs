//! The bootstrap admin token: a random secret printed once by `portico serve` and kept
//! in the store only as a SHA-256 hash. It guards the registry API, for operators and automation.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A fresh token: `ptk_` and 32 random bytes in hex.
pub fn new_admin_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("ptk_{}", hex(&bytes))
}

/// The hash the store keeps. SHA-256 suffices: the token is 256 random bits, not a
/// password a person chose.
pub fn hash_admin_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two hashes without an early exit.
pub(crate) fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (new_admin_token(), new_admin_token());
        assert_ne!(a, b);
        assert!(a.starts_with("ptk_") && a.len() == 68);
        assert_eq!(hash_admin_token(&a), hash_admin_token(&a));
        assert!(same_hash(&hash_admin_token(&a), &hash_admin_token(&a)));
        assert!(!same_hash(&hash_admin_token(&a), &hash_admin_token(&b)));
    }
}
