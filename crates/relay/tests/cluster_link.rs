//! Two relays of one cluster on one database (SQLite here: the leases work on either): a
//! Device Endpoint attached to node 2 and a Service Endpoint attached to node 1. A stream
//! the Service Endpoint opens on node 1 crosses the link to node 2 and reaches the device;
//! its bytes are counted once. A node that does not know the cluster secret is refused,
//! and a tunnel that ends gives its lease up.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use portico_relay::api::system_clock;
use portico_relay::live::link::{self, HandshakeError, LinkError, LinkPeers, LinkSecret};
use portico_relay::live::{Cluster, ClusterOptions, LiveOptions, Relay};
use portico_store::{ConnectionSessionRecord, EndpointBinding, Store};
use portico_tunnel::{memory_pair, Role, Tunnel, TunnelConfig, TunnelHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use support::LIMIT;

const SECRET: &[u8] = b"a cluster secret of more than thirty-two bytes";

fn now() -> i64 {
    (system_clock())()
}

/// Tenant `abc` of the support module, a Service Endpoint `ep-alice` bound to the user
/// alice, and alice's open session `5e55` of `ssh` to `press-7`.
async fn model(store: &Store) {
    support::tenant(store, "abc").await;
    let alice = EndpointBinding::ServiceUser("alice".into());
    let service = support::endpoint("abc", "ep-alice", alice);
    store.add_endpoint(&service).await.unwrap();
    let open = ConnectionSessionRecord {
        started_ms: now(),
        ends_ms: now() + 60_000,
        ..support::session("abc", "5e55", "ssh")
    };
    store.add_connection_session(&open).await.unwrap();
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
    let (handle, incoming) = Tunnel::new(near, role, TunnelConfig::default());
    support::echo_press(incoming);
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
    let service = attach(&one, "ep-alice", Role::Service).await;
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
