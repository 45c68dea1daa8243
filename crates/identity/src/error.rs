//! The identity crate's error type. Messages never contain a secret.

use portico_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value given by an administrator or a user was refused; the message says why.
    #[error("{0}")]
    Invalid(String),
    #[error("internal error: {0}")]
    Internal(String),
}
