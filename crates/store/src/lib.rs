//! Portico's data model and its persistence.
//!
//! [`Store`] keeps the registry (tenants, web apps, APIs) and the bootstrap settings in
//! SQLite or PostgreSQL, through one code path (sqlx's `Any` driver) and one set of
//! migrations (`migrations/`). [`registry_file`] reads the declarative registry file.
//! The identity service's tables (users, sessions, OAuth clients and grants, signing keys)
//! are in the same database, through the methods of `identity_store.rs`.
#![forbid(unsafe_code)]
// Tests may unwrap; the library code may not (workspace lint `clippy::unwrap_used`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod bayeux_store;
mod db;
mod device_store;
mod endpoint_leases;
mod error;
mod identity_store;
pub mod model;
mod notices;
mod queries;
pub mod registry_file;
mod registry_store;
mod remote_credentials;
mod remote_listing;
mod remote_store;

pub use bayeux_store::{BayeuxLogEntry, BayeuxSessionPosition, BayeuxSessionRecord};
pub use device_store::{
    merge_fragments, AlarmChange, AlarmFilter, AlarmRecord, DataFilter, DataKind, DataRecord,
    ExternalIdRecord, Fragments, ManagedObjectFilter, ManagedObjectRecord, NewDeviceRequestRecord,
    NewDeviceStatus, OperationChange, OperationFilter, OperationRecord, OperationStatus,
    OperationUpdate, Page,
};
pub use endpoint_leases::EndpointLease;
pub use error::{mask_password, StoreError};
pub use identity_store::{
    AuthorizationCodeRecord, CodeTake, ExternalAccount, OAuthClientRecord, OidcProviderRecord,
    RefreshTokenRecord, SessionRecord, SigningKeyRecord, UserRecord,
};
pub use model::*;
pub use notices::Notice;
pub use registry_store::REGISTRY_NOTICE;
pub use remote_credentials::{ClientStanding, EndpointClients};
pub use remote_listing::{AuditFilter, ConnectionFilter};
pub use remote_store::{
    ApplicationRecord, AssignmentRecord, AuditRecord, ConnectionSessionRecord, DeviceRecord,
    EndpointBinding, EndpointRecord, EndpointState, MemberRecord, PortMapping, SiteRecord,
};

use std::fmt;
use std::sync::Arc;

/// The database behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The registry's persistence. Cheap to clone: clones share the connection pool and
/// the [`Store::changes`] channel.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: sqlx::AnyPool,
    backend: Backend,
    changes: tokio::sync::watch::Sender<u64>,
    notices: notices::Notices,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}
