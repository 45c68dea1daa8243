//! Who calls the device API. Portico's identity service is not a dependency of this
//! crate: the binary hands in an [`Accounts`] that checks credentials and issues device
//! users, so this crate stays testable with a fake one.

use futures_util::future::BoxFuture;
use std::net::IpAddr;
use std::time::Duration;

/// The role of a device's own user: it may do the device flow in its tenant.
pub const DEVICE_ROLE: &str = "device";
/// The role of the bootstrap user a device uses before it has credentials: it may only
/// ask for them (`POST /devicecontrol/deviceCredentials`).
pub const BOOTSTRAP_ROLE: &str = "device-bootstrap";

/// An authenticated caller. Everything it reads or writes is in `tenant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
    pub user: String,
    /// Portico's role name: `device`, `device-bootstrap`, or a person's role (`operator`,
    /// `admin`, `site-owner`, `user`).
    pub role: String,
}

impl Caller {
    /// A device's own user (as opposed to a person or an operator's tool).
    pub fn is_device(&self) -> bool {
        self.role == DEVICE_ROLE
    }

    /// The bootstrap user, which may only fetch device credentials.
    pub fn is_bootstrap(&self) -> bool {
        self.role == BOOTSTRAP_ROLE
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "the request has no credentials: send HTTP Basic tenant/user:password or a Bearer token"
    )]
    Missing,
    #[error("{0}")]
    Invalid(String),
    #[error("too many failed attempts; retry in {} s", retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    #[error("cannot check credentials now: {0}")]
    Unavailable(String),
}

/// Credentials issued to a device whose registration an operator accepted.
#[derive(Debug, Clone)]
pub struct DeviceCredentials {
    pub tenant: String,
    pub username: String,
    pub password: String,
}

pub trait Accounts: Send + Sync + 'static {
    /// Checks an `Authorization` header value: `Basic base64(tenant/user:password)` (as
    /// Cumulocity devices send it) or `Bearer <JWT>` from `/uaa/oauth/token`.
    fn authenticate<'a>(
        &'a self,
        authorization: &'a str,
        client: IpAddr,
    ) -> BoxFuture<'a, Result<Caller, AuthError>>;

    /// Makes (or replaces) the device user `device_{external_id}` in `tenant` with a
    /// fresh random password, and returns its credentials.
    fn issue_device_credentials<'a>(
        &'a self,
        tenant: &'a str,
        external_id: &'a str,
    ) -> BoxFuture<'a, Result<DeviceCredentials, AuthError>>;
}
