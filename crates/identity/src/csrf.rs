//! CSRF tokens (ID-5): one random token per session, compared in constant time.

use subtle::ConstantTimeEq;

/// A new CSRF token: 256 random bits, base64url.
pub fn new_token() -> String {
    crate::secret::random_token(32)
}

/// Whether the token a request presented is the session's, in time independent of
/// where they differ. An empty presented token never matches.
pub fn tokens_match(expected: &str, presented: &str) -> bool {
    !presented.is_empty()
        && expected.len() == presented.len()
        && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_exactly() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(tokens_match(&a, &a.clone()));
        assert!(!tokens_match(&a, &b));
        assert!(!tokens_match(&a, &a[..42]));
        assert!(!tokens_match("", ""));
    }
}
