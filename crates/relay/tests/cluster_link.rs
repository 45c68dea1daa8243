//! Two relays of one cluster on one database (SQLite here: the leases work on either): a
//! Device Endpoint attached to node 2 and a Service Endpoint attached to node 1. A stream
//! the Service Endpoint opens on node 1 crosses the link to node 2 and reaches the device;
//! its bytes are counted once. A node that does not know the cluster secret is refused,
//! and a tunnel that ends gives its lease up.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use portico_relay::api::system_clock;
use portico_relay::live::link::{self, HandshakeError, LinkError, LinkPeers, LinkSecret};
use portico_relay::live::{Cluster, ClusterOptions, LiveOptions, Relay};
use portico_store::{
    ApplicationRecord, AssignmentRecord, ConnectionSessionRecord, DeviceRecord, EndpointBinding,
    EndpointRecord, EndpointState, PortMapping, SiteRecord, Store,
};
use portico_tunnel::{memory_pair, ResetReason, Role, Tunnel, TunnelConfig, TunnelHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const SECRET: &[u8] = b"a cluster secret of more than thirty-two bytes";
const LIMIT: Duration = Duration::from_secs(20);

fn now() -> i64 {
    (system_clock())()
}

async fn model(store: &Store) {
    let t = "abc";
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
    for (name, binding) in [
        ("ep-press", EndpointBinding::Device("press-7".into())),
        ("ep-bob", EndpointBinding::ServiceUser("alice".into())),
    ] {
        store
            .add_endpoint(&EndpointRecord {
                tenant: t.into(),
                name: name.into(),
                binding,
                state: EndpointState::Registered,
                code_hash: None,
                code_expires_ms: None,
                client_id: Some(format!("{t}-{name}")),
                created_ms: 0,
                registered_ms: Some(0),
                revoked_ms: None,
            })
            .await
            .unwrap();
    }
    store
        .add_application(&ApplicationRecord {
            tenant: t.into(),
            name: "ssh".into(),
            template: "ssh".into(),
            label: String::new(),
            mappings: vec![PortMapping {
                local_port: 2222,
                target_host: "press.local".into(),
                target_port: 22,
            }],
            target_endpoint: None,
            session_timeout_s: 60,
            created_ms: 0,
        })
        .await
        .unwrap();
    store
        .add_assignment(&AssignmentRecord {
            tenant: t.into(),
            application: "ssh".into(),
            device: "press-7".into(),
            created_ms: 0,
        })
        .await
        .unwrap();
    store
        .add_connection_session(&ConnectionSessionRecord {
            tenant: t.into(),
            id: "5e55".into(),
            user_name: "alice".into(),
            device: "press-7".into(),
            application: "ssh".into(),
            started_ms: now(),
            ends_ms: now() + 60_000,
            ended_ms: None,
            end_reason: None,
            bytes_up: 0,
            bytes_down: 0,
        })
        .await
        .unwrap();
}

/// A node: its relay and its link listener, running until the test ends.
async fn node(store: &Store, name: &str, shutdown: &CancellationToken) -> Arc<Relay> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = ClusterOptions {
        node: name.into(),
        link_address: listener.local_addr().unwrap().to_string(),
        secret: SECRET.to_vec(),
    };
    let cluster = Arc::new(Cluster::new(
        store.clone(),
        options,
        system_clock(),
        TunnelConfig::default(),
    ));
    cluster.start().await.unwrap();
    let relay = Arc::new(Relay::clustered(
        store.clone(),
        LiveOptions::default(),
        cluster.clone(),
    ));
    tokio::spawn(link::serve(
        listener,
        relay.directory().clone(),
        cluster.secret().clone(),
        TunnelConfig::default(),
        shutdown.clone(),
    ));
    relay
}

/// Attaches a fake endpoint that echoes opens of `press.local:22`.
async fn attach(relay: &Relay, name: &str, role: Role) -> TunnelHandle {
    let (near, far) = memory_pair(64);
    relay
        .attach("abc", name, "192.0.2.7:40000", far, false)
        .await
        .unwrap();
    let (handle, mut incoming) = Tunnel::new(near, role, TunnelConfig::default());
    tokio::spawn(async move {
        while let Some(stream) = incoming.next().await {
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
    handle
}

#[tokio::test]
async fn a_stream_crosses_the_link_to_the_node_holding_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/p.db", dir.path().display()))
        .await
        .unwrap();
    model(&store).await;
    let shutdown = CancellationToken::new();
    let one = node(&store, "node-1", &shutdown).await;
    let two = node(&store, "node-2", &shutdown).await;
    let device = attach(&two, "ep-press", Role::Device).await;
    let service = attach(&one, "ep-bob", Role::Service).await;
    let lease = store
        .endpoint_lease("abc", "ep-press", now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.node, "node-2");
    assert!(
        one.directory().tunnel("abc", "ep-press").is_none(),
        "the device is not on node 1"
    );

    let data: Vec<u8> = (0..200_000).map(|i| (i % 251) as u8).collect();
    let stream = service.open("session:5e55/listener:0").unwrap();
    let (mut r, mut w) = tokio::io::split(stream);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    tokio::time::timeout(LIMIT, r.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(back, data, "the echo came back intact across the link");

    // Counted once, on node 1 where the opening endpoint is attached.
    let mut counted = (0, 0);
    for _ in 0..200 {
        let s = store
            .connection_session("abc", "5e55")
            .await
            .unwrap()
            .unwrap();
        counted = (s.bytes_up, s.bytes_down);
        if counted == (200_000, 200_000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(counted, (200_000, 200_000));

    // The device's tunnel ends: its lease goes with it, and the service's next stream is
    // unreachable.
    device.close(portico_tunnel::GoAwayReason::ShuttingDown);
    let mut gone = false;
    for _ in 0..200 {
        if store
            .endpoint_lease("abc", "ep-press", now())
            .await
            .unwrap()
            .is_none()
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "the lease was given up");
    let mut stream = service.open("session:5e55/listener:0").unwrap();
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(LIMIT, stream.read(&mut buf))
        .await
        .unwrap();
    assert!(read.is_err(), "no stream to an offline device: {read:?}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_node_without_the_cluster_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/p.db", dir.path().display()))
        .await
        .unwrap();
    model(&store).await;
    let shutdown = CancellationToken::new();
    let two = node(&store, "node-2", &shutdown).await;
    let _device = attach(&two, "ep-press", Role::Device).await;
    let address = store
        .endpoint_lease("abc", "ep-press", now())
        .await
        .unwrap()
        .unwrap()
        .link_address;

    let stranger = LinkPeers::new(
        LinkSecret::new(b"another secret, just as long as the right one"),
        TunnelConfig::default(),
    );
    let refused = stranger.open(&address, "abc/ep-press/press.local:22").await;
    assert!(
        matches!(
            refused,
            Err(LinkError::Handshake {
                error: HandshakeError::WrongSecret,
                ..
            })
        ),
        "{:?}",
        refused.err()
    );

    let member = LinkPeers::new(LinkSecret::new(SECRET), TunnelConfig::default());
    let mut stream = member
        .open(&address, "abc/ep-press/press.local:22")
        .await
        .unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tokio::time::timeout(LIMIT, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping");
    shutdown.cancel();
}
