//! Device Connectivity (DC-1..DC-4): the device REST API (`rest`), the Bayeux
//! notification server (`bayeux`, `transport`) and operations, following the Cumulocity
//! device API so its public clients work unchanged.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod accounts;
pub mod bayeux;
pub mod change;
pub mod notifications;
pub mod rest;
pub mod transport;

pub use accounts::{Accounts, AuthError, Caller, DeviceCredentials};
pub use change::{Action, Change, Kind, Notify};
pub use notifications::Notifications;

use bayeux::{Bayeux, BayeuxLimits, BayeuxOptions, Endpoint};
use portico_store::{Store, StoreError};
use std::net::IpAddr;
use std::sync::Arc;
use transport::TransportOptions;

/// Where the two notification endpoints are served.
pub const OPERATIONS_BASE: &str = "/notification/operations";
pub const REALTIME_BASE: &str = "/notification/realtime";

#[derive(Debug, Clone, Default)]
pub struct RealtimeOptions {
    pub bayeux: BayeuxOptions,
    pub transport: TransportOptions,
    /// This node's name when several nodes share the database (OPS-2); `None` alone.
    pub node: Option<String>,
}

/// Device Connectivity as one in-process service: the REST API and both notification
/// endpoints, sharing the store and the callers' accounts. Cheap to clone.
#[derive(Clone)]
pub struct Realtime {
    operations: Bayeux,
    realtime: Bayeux,
    router: axum::Router,
}

impl Realtime {
    /// Opens both notification endpoints (restoring the sessions that outlived the last
    /// stop) and builds the routes.
    pub async fn open(
        store: Store,
        accounts: Arc<dyn Accounts>,
        options: RealtimeOptions,
    ) -> Result<Realtime, StoreError> {
        let open = |endpoint| {
            let (store, accounts, bayeux) =
                (store.clone(), accounts.clone(), options.bayeux.clone());
            let node = options.node.clone();
            async move {
                match node {
                    Some(node) => {
                        let limits = BayeuxLimits::default();
                        Bayeux::open_shared(store, endpoint, accounts, bayeux, limits, node).await
                    }
                    None => Bayeux::open(store, endpoint, accounts, bayeux).await,
                }
            }
        };
        let operations = open(Endpoint::Operations).await?;
        let realtime = open(Endpoint::Realtime).await?;
        let notify: Arc<dyn Notify> =
            Arc::new(Notifications::new(operations.clone(), realtime.clone()));
        let router = rest::router(store, accounts, notify)
            .merge(transport::router(
                OPERATIONS_BASE,
                operations.clone(),
                options.transport.clone(),
            ))
            .merge(transport::router(
                REALTIME_BASE,
                realtime.clone(),
                options.transport,
            ));
        Ok(Realtime {
            operations,
            realtime,
            router,
        })
    }

    /// The routes: the REST paths at the root, the notification endpoints at their bases.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Answers held connects and saves the sessions' positions, before the process ends.
    pub async fn shut_down(&self) {
        futures_util::future::join(self.operations.shut_down(), self.realtime.shut_down()).await;
    }
}

/// The caller's address, put into each request's extensions by whoever serves the
/// router (the gateway's request context), for login throttling.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);
