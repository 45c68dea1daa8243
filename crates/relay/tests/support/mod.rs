//! The live relay over in-memory tunnels, for `live.rs` and `lanes.rs`: a store with two
//! tenants, a fake Device Endpoint that accepts `host:port` opens and echoes, a fake Service
//! Endpoint that opens `session:{id}/listener:{n}`, and the relay between them. The
//! tenant's records and the echoing endpoint serve `cluster_link.rs` and `control.rs` too.
#![allow(clippy::unwrap_used, dead_code)]

use std::io;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portico_relay::live::{LiveOptions, Relay};
use portico_store::{
    ApplicationRecord, AssignmentRecord, ConnectionSessionRecord, DeviceRecord, EndpointBinding,
    EndpointRecord, EndpointState, PortMapping, SiteRecord, Store,
};
use portico_tunnel::{
    memory_pair, Incoming, ResetReason, Role, Tunnel, TunnelConfig, TunnelHandle, TunnelStream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

pub const T0: i64 = 1_000_000;
pub const LIMIT: Duration = Duration::from_secs(20);

pub struct World {
    pub store: Store,
    pub relay: Relay,
    pub clock: Arc<AtomicI64>,
    _dir: tempfile::TempDir,
}

pub fn endpoint(tenant: &str, name: &str, binding: EndpointBinding) -> EndpointRecord {
    EndpointRecord {
        tenant: tenant.into(),
        name: name.into(),
        binding,
        state: EndpointState::Registered,
        code_hash: None,
        code_expires_ms: None,
        client_id: Some(format!("{tenant}-{name}")),
        created_ms: 0,
        registered_ms: Some(0),
        revoked_ms: None,
    }
}

pub fn app(tenant: &str, name: &str, template: &str, target: Option<&str>) -> ApplicationRecord {
    ApplicationRecord {
        tenant: tenant.into(),
        name: name.into(),
        template: template.into(),
        label: String::new(),
        mappings: vec![PortMapping {
            local_port: 2222,
            target_host: "press.local".into(),
            target_port: 22,
        }],
        target_endpoint: target.map(Into::into),
        session_timeout_s: 60,
        created_ms: 0,
    }
}

pub fn session(tenant: &str, id: &str, application: &str) -> ConnectionSessionRecord {
    ConnectionSessionRecord {
        tenant: tenant.into(),
        id: id.into(),
        user_name: "alice".into(),
        device: "press-7".into(),
        application: application.into(),
        started_ms: T0,
        ends_ms: T0 + 60_000,
        ended_ms: None,
        end_reason: None,
        bytes_up: 0,
        bytes_down: 0,
    }
}

/// A tenant with a site `hq`, a device `press-7` with endpoint `ep-press`, a service
/// endpoint `ep-hq` on the site, an assigned `ssh` application (press.local:22), an
/// assigned DTT Reverse application dialled by `ep-hq`, and an unassigned `ssh-spare`.
pub async fn tenant(store: &Store, t: &str) {
    store
        .add_site(&SiteRecord {
            tenant: t.into(),
            name: "hq".into(),
            parent: None,
            created_ms: 0,
        })
        .await
        .unwrap();
    store
        .add_device(&DeviceRecord {
            tenant: t.into(),
            name: "press-7".into(),
            site: "hq".into(),
            description: String::new(),
            created_ms: 0,
        })
        .await
        .unwrap();
    for ep in [
        endpoint(t, "ep-press", EndpointBinding::Device("press-7".into())),
        endpoint(t, "ep-hq", EndpointBinding::ServiceSite("hq".into())),
        endpoint(t, "ep-bob", EndpointBinding::ServiceUser("bob".into())),
    ] {
        store.add_endpoint(&ep).await.unwrap();
    }
    for a in [
        app(t, "ssh", "ssh", None),
        app(t, "tickets", "dtt-reverse", Some("ep-hq")),
        app(t, "ssh-spare", "ssh", None),
    ] {
        store.add_application(&a).await.unwrap();
    }
    for a in ["ssh", "tickets"] {
        store
            .add_assignment(&AssignmentRecord {
                tenant: t.into(),
                application: a.into(),
                device: "press-7".into(),
                created_ms: 0,
            })
            .await
            .unwrap();
    }
}

pub async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/p.db", dir.path().display()))
        .await
        .unwrap();
    tenant(&store, "abc").await;
    tenant(&store, "xyz").await;
    let clock = Arc::new(AtomicI64::new(T0 + 1_000));
    let c = clock.clone();
    let relay = Relay::new(
        store.clone(),
        LiveOptions {
            clock: Arc::new(move || c.load(Ordering::SeqCst)),
            tunnel: TunnelConfig::default(),
            recheck: Duration::from_millis(50),
        },
    );
    World {
        store,
        relay,
        clock,
        _dir: dir,
    }
}

/// A fake endpoint's answers to the streams the relay opens on its tunnel: it accepts and
/// echoes opens of `press.local:22` and refuses anything else (its own RS-7 list). Returns
/// every target it was asked, in order.
pub fn echo_press(mut incoming: Incoming) -> Arc<Mutex<Vec<String>>> {
    let opened = Arc::new(Mutex::new(Vec::new()));
    let seen = opened.clone();
    tokio::spawn(async move {
        while let Some(stream) = incoming.next().await {
            seen.lock().unwrap().push(stream.target().to_string());
            if stream.target() != "press.local:22" {
                stream.refuse(ResetReason::Refused);
                continue;
            }
            tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(stream.accept());
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    opened
}

/// A fake endpoint: its tunnel handle, and the targets the relay opened on it.
pub struct FakeEndpoint {
    pub handle: TunnelHandle,
    pub opened: Arc<Mutex<Vec<String>>>,
}

impl World {
    /// Connects a fake endpoint of `role` that answers as [`echo_press`] does.
    pub async fn connect(&self, tenant: &str, name: &str, role: Role) -> FakeEndpoint {
        let (handle, incoming) = self.attach(tenant, name, role, false).await;
        let opened = echo_press(incoming);
        FakeEndpoint { handle, opened }
    }

    /// Attaches an endpoint's tunnel (`moves`: as an agent that moves streams to lanes)
    /// and waits for both hellos: an established tunnel, as an agent has once it is online.
    pub async fn attach(
        &self,
        tenant: &str,
        name: &str,
        role: Role,
        moves: bool,
    ) -> (TunnelHandle, Incoming) {
        let (near, far) = memory_pair(64);
        self.relay
            .attach(tenant, name, "192.0.2.7:40000", far, moves)
            .await
            .unwrap();
        let (handle, incoming) = Tunnel::new(near, role, TunnelConfig::default());
        let relay_side = self.relay.directory().tunnel(tenant, name).unwrap();
        for _ in 0..200 {
            if handle.peer_role().is_some() && relay_side.peer_role().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(handle.peer_role(), Some(Role::Relay));
        assert_eq!(relay_side.peer_role(), Some(role));
        (handle, incoming)
    }

    pub async fn add_session(&self, s: ConnectionSessionRecord) {
        self.store.add_connection_session(&s).await.unwrap();
    }

    /// The session's byte counts once the relay reported them (bounded wait).
    pub async fn counted(&self, tenant: &str, id: &str, want: (i64, i64)) -> (i64, i64) {
        let mut seen = (0, 0);
        for _ in 0..200 {
            let s = self
                .store
                .connection_session(tenant, id)
                .await
                .unwrap()
                .unwrap();
            seen = (s.bytes_up, s.bytes_down);
            if seen == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        seen
    }
}

/// Writes `data` and reads the echo to the end, both at once.
pub async fn echo_through(stream: TunnelStream, data: Vec<u8>) -> io::Result<Vec<u8>> {
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        w.write_all(&data).await?;
        w.shutdown().await
    });
    let mut back = Vec::new();
    let read = r.read_to_end(&mut back).await;
    writer.await.unwrap()?;
    read.map(|_| back)
}

/// Opens `target` from `from` and expects the relay to refuse it.
pub async fn assert_refused(from: &FakeEndpoint, target: &str) {
    let mut stream = from.handle.open(target).unwrap();
    let _ = stream.write_all(b"hello").await;
    let mut buf = [0u8; 16];
    let error = timeout(LIMIT, stream.read(&mut buf))
        .await
        .unwrap()
        .expect_err(target);
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{target}");
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}
