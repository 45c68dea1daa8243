//! The control hub of a node in a cluster: connection sessions opened or ended and
//! endpoints revoked through *any* node reach the endpoints attached *here*. The API of
//! the node where the change was made sends the notice `rs_sessions` (payload: the tenant)
//! through the database; every node (that one included) hears it and synchronises that
//! tenant's control channels with the store, and cuts that tenant's tunnels whose endpoint
//! is no longer registered. When notices may have been missed (a resync, or this receiver
//! fell behind), every tenant held here is synchronised.

use std::collections::BTreeSet;

use portico_store::{EndpointState, Notice};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::{locked, ControlHub};

/// The notice's topic: a tenant's connection sessions or endpoints changed.
pub const RS_SESSIONS: &str = "rs_sessions";

impl ControlHub {
    /// Acts on the cluster's `rs_sessions` notices until `shutdown`.
    pub async fn follow_notices(self, shutdown: CancellationToken) {
        let mut notices = self.inner.store.notices();
        loop {
            let notice = tokio::select! {
                () = shutdown.cancelled() => return,
                notice = notices.recv() => notice,
            };
            match notice {
                Ok(Notice { topic, payload }) if topic == RS_SESSIONS => {
                    self.catch_up(&payload).await;
                }
                Ok(notice) if notice.is_resync() => self.catch_up_all().await,
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "notices missed; synchronising every tenant");
                    self.catch_up_all().await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Brings the tenant's channels and tunnels here in line with the store.
    async fn catch_up(&self, tenant: &str) {
        self.cut_unregistered(tenant).await;
        self.sync_tenant(tenant).await;
    }

    async fn catch_up_all(&self) {
        let mut tenants: BTreeSet<String> = locked(&self.inner.channels)
            .keys()
            .map(|k| k.tenant.clone())
            .collect();
        tenants.extend(
            self.inner
                .relay
                .directory()
                .all()
                .into_iter()
                .map(|p| p.key.tenant),
        );
        for tenant in tenants {
            self.catch_up(&tenant).await;
        }
    }

    /// Cuts the tenant's tunnels (and channels) here whose endpoint was revoked or removed
    /// through another node (RS-9).
    async fn cut_unregistered(&self, tenant: &str) {
        for presence in self.inner.relay.directory().online(tenant) {
            let endpoint = self.inner.store.endpoint(tenant, &presence.key.name).await;
            match endpoint {
                Ok(Some(e)) if e.state == EndpointState::Registered => {}
                Ok(_) => self.revoke(tenant, &presence.key.name),
                Err(error) => {
                    tracing::warn!(tenant, endpoint = %presence.key.name, %error, "could not check an endpoint");
                }
            }
        }
    }
}
