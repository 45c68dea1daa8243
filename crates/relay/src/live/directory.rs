//! The endpoint directory: which endpoint is online, since when, from which address, and
//! the handle of its one tunnel. A newer connection of the same endpoint replaces the
//! older one (which is told `GoAway(replaced)`): an agent that reconnects after a network
//! change must not wait for the relay to notice its old tunnel is dead. Revoking an
//! endpoint cuts its tunnel at once (`GoAway(revoked)`, RS-9).
//!
//! Keys carry the tenant, and every lookup names it: one tenant's endpoint is never
//! found under another tenant's name.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use portico_store::EndpointBinding;
use portico_tunnel::lane::board::MoveBoard;
use portico_tunnel::{GoAwayReason, TunnelHandle};
use tokio_util::sync::CancellationToken;

use super::lanes::{LanePermit, Lanes};

/// An endpoint of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    pub tenant: String,
    pub name: String,
}

impl EndpointKey {
    pub fn new(tenant: &str, name: &str) -> EndpointKey {
        EndpointKey {
            tenant: tenant.to_string(),
            name: name.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    Device,
    Service,
}

impl From<&EndpointBinding> for EndpointKind {
    fn from(binding: &EndpointBinding) -> EndpointKind {
        match binding {
            EndpointBinding::Device(_) => EndpointKind::Device,
            EndpointBinding::ServiceSite(_) | EndpointBinding::ServiceUser(_) => {
                EndpointKind::Service
            }
        }
    }
}

/// What the directory tells about an online endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub key: EndpointKey,
    pub kind: EndpointKind,
    pub since_ms: i64,
    /// Where the tunnel came from, as the transport reports it (the peer's address).
    pub address: String,
    /// Which connection of the endpoint this is; a replaced one never removes its successor.
    pub connection: u64,
}

struct Entry {
    presence: Presence,
    handle: TunnelHandle,
    /// Cancelled when this tunnel leaves the directory: the endpoint's lanes end with it.
    cut: CancellationToken,
    /// The lanes the endpoint holds here ([`LanePermit`]).
    lanes_held: Arc<AtomicUsize>,
    /// The streams of this tunnel that may move to a lane, if the endpoint's agent moves
    /// streams (`portico_tunnel::lane::MOVES_OFFERED`).
    moves: Option<Arc<MoveBoard>>,
}

impl Entry {
    fn close(self, reason: GoAwayReason) {
        self.cut.cancel();
        self.handle.close(reason);
    }
}

/// A lane's place among its endpoint's lanes on this node ([`Directory::lane_permit`]).
pub struct LanePlace {
    pub permit: LanePermit,
    /// Ends the lane with the endpoint's tunnel here.
    pub cut: CancellationToken,
    /// The streams of that tunnel a lane may take over, if the endpoint's agent moves them.
    pub moves: Option<Arc<MoveBoard>>,
}

/// Why a lane of an endpoint is not accepted on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneRefusal {
    /// The endpoint's tunnel is not here (another node's, or gone): `421` before the upgrade.
    TunnelElsewhere,
    /// The endpoint holds `MAX_LANES_PER_ENDPOINT` lanes here: `429` before the upgrade.
    AtMaximum,
}

/// The online endpoints. Cheap operations under a `std` mutex never held across an await.
#[derive(Default)]
pub struct Directory {
    entries: Mutex<HashMap<EndpointKey, Entry>>,
    next_connection: AtomicU64,
    /// The idle dial lanes of the endpoints online here.
    lanes: Lanes,
}

impl Directory {
    pub fn new() -> Directory {
        Directory::default()
    }

    pub fn lanes(&self) -> &Lanes {
        &self.lanes
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<EndpointKey, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An entry leaves (its tunnel is closed or gone): its lanes end, and the pool forgets
    /// them. (A replaced entry's lanes end by its `cut` alone: the key now belongs to the
    /// newer tunnel, whose lanes may already be in the pool.)
    fn end_lanes(&self, entry: &Entry) {
        entry.cut.cancel();
        self.lanes.forget(&entry.presence.key);
    }

    /// Records `handle` as the endpoint's tunnel. An older tunnel of the same endpoint is
    /// closed with `GoAway(replaced)`. Returns the presence, whose `connection` number the
    /// caller gives back to [`Directory::remove`] when this tunnel ends.
    /// `moves`: the endpoint's agent moves streams from the tunnel to lanes.
    pub fn insert(
        &self,
        key: EndpointKey,
        kind: EndpointKind,
        address: &str,
        since_ms: i64,
        handle: TunnelHandle,
        moves: bool,
    ) -> Presence {
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed) + 1;
        let presence = Presence {
            key: key.clone(),
            kind,
            since_ms,
            address: address.to_string(),
            connection,
        };
        let entry = Entry {
            presence: presence.clone(),
            handle,
            cut: CancellationToken::new(),
            lanes_held: Arc::default(),
            moves: moves.then(Arc::default),
        };
        let older = self.entries().insert(key, entry);
        if let Some(older) = older {
            tracing::info!(
                tenant = %older.presence.key.tenant,
                endpoint = %older.presence.key.name,
                from = %older.presence.address,
                "endpoint reconnected; closing its older tunnel"
            );
            older.close(GoAwayReason::Replaced);
        }
        presence
    }

    /// Takes the endpoint's entry out if it is still connection `connection`.
    fn take(&self, key: &EndpointKey, connection: u64) -> Option<Entry> {
        let mut entries = self.entries();
        match entries.get(key) {
            Some(entry) if entry.presence.connection == connection => entries.remove(key),
            _ => None,
        }
    }

    /// Forgets the endpoint's tunnel if it is still connection `connection` (a tunnel that
    /// ended after being replaced leaves its successor alone).
    pub fn remove(&self, key: &EndpointKey, connection: u64) -> bool {
        match self.take(key, connection) {
            Some(entry) => {
                self.end_lanes(&entry);
                true
            }
            None => false,
        }
    }

    /// Closes the endpoint's tunnel with `reason` if it is still connection `connection`
    /// (in a cluster: the endpoint reconnected through another node).
    pub fn close_connection(
        &self,
        key: &EndpointKey,
        connection: u64,
        reason: GoAwayReason,
    ) -> bool {
        match self.take(key, connection) {
            Some(entry) => {
                self.end_lanes(&entry);
                entry.close(reason);
                true
            }
            None => false,
        }
    }

    /// Cuts the endpoint's tunnel at once with `GoAway(revoked)`; false when it was offline.
    pub fn revoke(&self, tenant: &str, endpoint: &str) -> bool {
        let removed = self.entries().remove(&EndpointKey::new(tenant, endpoint));
        match removed {
            Some(entry) => {
                self.end_lanes(&entry);
                entry.close(GoAwayReason::Revoked);
                true
            }
            None => false,
        }
    }

    /// Closes every tunnel with `GoAway(shutting down)` (the relay stops).
    pub fn shut_down(&self) {
        let drained: Vec<Entry> = self.entries().drain().map(|(_, e)| e).collect();
        for entry in drained {
            self.end_lanes(&entry);
            entry.close(GoAwayReason::ShuttingDown);
        }
    }

    /// The endpoint's presence, if online.
    pub fn presence(&self, tenant: &str, endpoint: &str) -> Option<Presence> {
        self.entries()
            .get(&EndpointKey::new(tenant, endpoint))
            .map(|e| e.presence.clone())
    }

    /// What ends the endpoint's lanes on this node: cancelled when its tunnel here goes
    /// (closed, replaced, revoked, the relay stopping). `None` when it has no tunnel here.
    pub fn cut(&self, tenant: &str, endpoint: &str) -> Option<CancellationToken> {
        self.entries()
            .get(&EndpointKey::new(tenant, endpoint))
            .map(|e| e.cut.clone())
    }

    /// A place for one more lane of the endpoint here, with what ends it and, if its agent
    /// moves streams, the board of its tunnel's streams a lane may take over.
    pub fn lane_permit(&self, tenant: &str, endpoint: &str) -> Result<LanePlace, LaneRefusal> {
        let entries = self.entries();
        let entry = entries
            .get(&EndpointKey::new(tenant, endpoint))
            .ok_or(LaneRefusal::TunnelElsewhere)?;
        let permit = LanePermit::take(&entry.lanes_held).ok_or(LaneRefusal::AtMaximum)?;
        Ok(LanePlace {
            permit,
            cut: entry.cut.clone(),
            moves: entry.moves.clone(),
        })
    }

    /// The handle of the endpoint's tunnel, if online.
    pub fn tunnel(&self, tenant: &str, endpoint: &str) -> Option<TunnelHandle> {
        self.tunnel_here(tenant, endpoint).map(|(handle, _)| handle)
    }

    /// The handle of the endpoint's tunnel and its connection number, if online here.
    pub fn tunnel_here(&self, tenant: &str, endpoint: &str) -> Option<(TunnelHandle, u64)> {
        self.entries()
            .get(&EndpointKey::new(tenant, endpoint))
            .map(|e| (e.handle.clone(), e.presence.connection))
    }

    /// If the endpoint's agent moves streams: the board of its tunnel's streams that may
    /// move, what ends the endpoint's lanes, and the tunnel's connection number. `None`
    /// when it does not, or has no tunnel here.
    pub fn moves(
        &self,
        tenant: &str,
        endpoint: &str,
    ) -> Option<(Arc<MoveBoard>, CancellationToken, u64)> {
        let entries = self.entries();
        let entry = entries.get(&EndpointKey::new(tenant, endpoint))?;
        let board = entry.moves.clone()?;
        Some((board, entry.cut.clone(), entry.presence.connection))
    }

    /// The tenant's online endpoints, by name.
    pub fn online(&self, tenant: &str) -> Vec<Presence> {
        let mut list: Vec<Presence> = self
            .entries()
            .values()
            .filter(|e| e.presence.key.tenant == tenant)
            .map(|e| e.presence.clone())
            .collect();
        list.sort_by(|a, b| a.key.name.cmp(&b.key.name));
        list
    }

    /// Every online endpoint of every tenant (the leases a node of a cluster holds).
    pub fn all(&self) -> Vec<Presence> {
        self.entries()
            .values()
            .map(|e| e.presence.clone())
            .collect()
    }
}
