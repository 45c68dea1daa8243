//! Credentials for a registered endpoint. The identity service makes them (an OAuth
//! client of the tenant with the client-credentials grant); the relay only asks for them
//! through this trait, so that it does not depend on the identity crate and tests can
//! use a simple issuer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// What an endpoint authenticates with at `/uaa/oauth/token`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot issue endpoint credentials: {0}")]
pub struct IssueError(pub String);

pub type IssueFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, IssueError>> + Send + 'a>>;

pub trait CredentialIssuer: Send + Sync + 'static {
    /// New credentials for `endpoint` of `tenant`.
    fn issue<'a>(&'a self, tenant: &'a str, endpoint: &'a str) -> IssueFuture<'a, Credentials>;

    /// Withdraws the credentials of a revoked endpoint, so that it gets no new token.
    fn revoke<'a>(&'a self, tenant: &'a str, client_id: &'a str) -> IssueFuture<'a, ()>;
}
