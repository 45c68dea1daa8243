//! The live relay over in-memory tunnels: a fake Device Endpoint that accepts `host:port`
//! opens and echoes, a fake Service Endpoint that opens `session:{id}/listener:{n}`, and
//! the relay between them with a store. Allowed streams carry bytes intact both ways and
//! are counted; every other stream is refused before the device sees it; revocation and
//! reconnection cut the older tunnel.

#![allow(clippy::unwrap_used)]

use std::io;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use portico_relay::live::{EndpointKey, LaneRefusal, LiveOptions, Relay};
use portico_store::{
    ApplicationRecord, AssignmentRecord, ConnectionSessionRecord, DeviceRecord, EndpointBinding,
    EndpointRecord, EndpointState, PortMapping, SiteRecord, Store,
};
use portico_tunnel::lane::{self, LaneIo, LaneUse};
use portico_tunnel::Frame;
use portico_tunnel::{
    memory_pair, GoAwayReason, Incoming, ResetReason, Role, Tunnel, TunnelConfig, TunnelError,
    TunnelHandle, TunnelStream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const T0: i64 = 1_000_000;
const LIMIT: Duration = Duration::from_secs(20);

struct World {
    store: Store,
    relay: Relay,
    clock: Arc<AtomicI64>,
    _dir: tempfile::TempDir,
}

fn endpoint(tenant: &str, name: &str, binding: EndpointBinding) -> EndpointRecord {
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

fn app(tenant: &str, name: &str, template: &str, target: Option<&str>) -> ApplicationRecord {
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

fn session(tenant: &str, id: &str, application: &str) -> ConnectionSessionRecord {
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
async fn tenant(store: &Store, t: &str) {
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

async fn world() -> World {
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

/// A fake endpoint: its tunnel handle, and the targets the relay opened on it.
struct FakeEndpoint {
    handle: TunnelHandle,
    opened: Arc<Mutex<Vec<String>>>,
}

impl World {
    /// Connects a fake endpoint of `role`, which accepts and echoes opens of `press.local:22`
    /// and refuses anything else (its own RS-7 list), recording every target it was asked.
    async fn connect(&self, tenant: &str, name: &str, role: Role) -> FakeEndpoint {
        let (handle, mut incoming) = self.attach(tenant, name, role, false).await;
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
        FakeEndpoint { handle, opened }
    }

    /// Attaches an endpoint's tunnel (`moves`: as an agent that moves streams to lanes)
    /// and waits for both hellos: an established tunnel, as an agent has once it is online.
    async fn attach(
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

    async fn add_session(&self, s: ConnectionSessionRecord) {
        self.store.add_connection_session(&s).await.unwrap();
    }

    /// The session's byte counts once the relay reported them (bounded wait).
    async fn counted(&self, tenant: &str, id: &str, want: (i64, i64)) -> (i64, i64) {
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
async fn echo_through(stream: TunnelStream, data: Vec<u8>) -> io::Result<Vec<u8>> {
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
async fn assert_refused(from: &FakeEndpoint, target: &str) {
    let mut stream = from.handle.open(target).unwrap();
    let _ = stream.write_all(b"hello").await;
    let mut buf = [0u8; 16];
    let error = timeout(LIMIT, stream.read(&mut buf))
        .await
        .unwrap()
        .expect_err(target);
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{target}");
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn an_allowed_stream_carries_a_mebibyte_both_ways_and_is_counted() {
    let w = world().await;
    w.add_session(session("abc", "5e55", "ssh")).await;
    let device = w.connect("abc", "ep-press", Role::Device).await;
    let service = w.connect("abc", "ep-hq", Role::Service).await;
    let presence = w.relay.directory().presence("abc", "ep-press").unwrap();
    assert_eq!(presence.address, "192.0.2.7:40000");
    assert_eq!(presence.since_ms, T0 + 1_000);

    let data = pattern(1 << 20);
    let stream = service.handle.open("session:5e55/listener:0").unwrap();
    let back = timeout(LIMIT, echo_through(stream, data.clone()))
        .await
        .unwrap()
        .unwrap();
    assert!(back == data, "the echo differs from what was sent");
    assert_eq!(*device.opened.lock().unwrap(), vec!["press.local:22"]);
    let n = 1 << 20;
    assert_eq!(w.counted("abc", "5e55", (n, n)).await, (n, n));
}

#[tokio::test]
async fn dtt_reverse_streams_go_from_the_device_to_the_target_service_endpoint() {
    let w = world().await;
    w.add_session(session("abc", "7e7", "tickets")).await;
    let device = w.connect("abc", "ep-press", Role::Device).await;
    // The service endpoint is the dialler here: the fake accepts press.local:22 either way.
    let service = w.connect("abc", "ep-hq", Role::Service).await;
    let stream = device.handle.open("session:7e7/listener:0").unwrap();
    let back = timeout(LIMIT, echo_through(stream, pattern(70_000)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, pattern(70_000));
    assert_eq!(*service.opened.lock().unwrap(), vec!["press.local:22"]);
    // Service to device is up, device to service is down, whoever opened.
    assert_eq!(
        w.counted("abc", "7e7", (70_000, 70_000)).await,
        (70_000, 70_000)
    );
    // The service side may not open a reverse session's listener, nor the device a forward one.
    w.add_session(session("abc", "f0", "ssh")).await;
    assert_refused(&service, "session:7e7/listener:0").await;
    assert_refused(&device, "session:f0/listener:0").await;
}

#[tokio::test]
async fn everything_else_is_refused_before_the_device_sees_it() {
    let w = world().await;
    w.add_session(session("abc", "a1", "ssh")).await;
    w.add_session(session("xyz", "b2", "ssh")).await;
    let mut ended = session("abc", "c3", "ssh");
    ended.ended_ms = Some(T0 + 500);
    w.add_session(ended).await;
    let mut short = session("abc", "d4", "ssh");
    short.ends_ms = T0 + 2_000;
    w.add_session(short).await;
    w.add_session(session("abc", "e5", "ssh-spare")).await;
    let mut bobs = session("abc", "f6", "ssh");
    bobs.user_name = "carol".into();
    w.add_session(bobs).await;

    let device = w.connect("abc", "ep-press", Role::Device).await;
    let service = w.connect("abc", "ep-hq", Role::Service).await;
    let bob = w.connect("abc", "ep-bob", Role::Service).await;
    // The target of another tenant's session: its endpoint is online too.
    let _other_device = w.connect("xyz", "ep-press", Role::Device).await;

    for forged in [
        "press.local:22",
        "mapping:0",
        "session:a1/listener:1",
        "session:a1/listener:00",
        "session:a1/listener:0/../1",
    ] {
        assert_refused(&service, forged).await;
    }
    assert_refused(&service, "session:b2/listener:0").await; // another tenant's session
    assert_refused(&service, "session:c3/listener:0").await; // ended
    assert_refused(&service, "session:e5/listener:0").await; // application not assigned
    assert_refused(&bob, "session:f6/listener:0").await; // another user's endpoint
    w.clock.store(T0 + 2_000, Ordering::SeqCst);
    assert_refused(&service, "session:d4/listener:0").await; // timed out
    assert!(device.opened.lock().unwrap().is_empty());

    // The same service endpoint still gets an allowed stream through.
    let stream = service.handle.open("session:a1/listener:0").unwrap();
    let back = timeout(LIMIT, echo_through(stream, b"ok".to_vec()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"ok");
}

/// Sends a line and reads its echo, so the stream is known to be joined.
async fn round_trip(stream: &mut TunnelStream) {
    stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    timeout(LIMIT, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping");
}

/// Reads until the stream fails (bounded): what the relay's cut looks like to an endpoint.
async fn cut(stream: &mut TunnelStream) -> io::ErrorKind {
    let mut buf = [0u8; 64];
    for _ in 0..1000 {
        match timeout(LIMIT, stream.read(&mut buf)).await.unwrap() {
            Ok(0) => return io::ErrorKind::UnexpectedEof,
            Ok(_) => continue,
            Err(error) => return error.kind(),
        }
    }
    panic!("the stream was not cut");
}

#[tokio::test]
async fn running_streams_end_when_their_session_ends_or_times_out() {
    let w = world().await;
    let mut short = session("abc", "d4", "ssh");
    short.ends_ms = T0 + 1_000 + 300; // 300 ms after the world's clock
    w.add_session(short).await;
    w.add_session(session("abc", "a1", "ssh")).await;
    let _device = w.connect("abc", "ep-press", Role::Device).await;
    let service = w.connect("abc", "ep-hq", Role::Service).await;

    let mut timing_out = service.handle.open("session:d4/listener:0").unwrap();
    let mut ending = service.handle.open("session:a1/listener:0").unwrap();
    round_trip(&mut timing_out).await;
    round_trip(&mut ending).await;
    assert!(w
        .store
        .end_connection_session("abc", "a1", T0 + 1_100, "ended")
        .await
        .unwrap());
    assert_eq!(cut(&mut ending).await, io::ErrorKind::ConnectionReset);
    assert_eq!(cut(&mut timing_out).await, io::ErrorKind::ConnectionReset);
    // What moved before the cut is counted.
    assert_eq!(w.counted("abc", "a1", (4, 4)).await, (4, 4));
    assert_eq!(w.counted("abc", "d4", (4, 4)).await, (4, 4));
}

#[tokio::test]
async fn a_stream_whose_dialler_is_offline_is_unreachable() {
    let w = world().await;
    w.add_session(session("abc", "a1", "ssh")).await;
    let service = w.connect("abc", "ep-hq", Role::Service).await;
    let mut stream = service.handle.open("session:a1/listener:0").unwrap();
    let mut buf = [0u8; 4];
    let error = timeout(LIMIT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn revoking_the_device_endpoint_ends_its_tunnel_at_once() {
    let w = world().await;
    let device = w.connect("abc", "ep-press", Role::Device).await;
    assert!(w.relay.directory().presence("abc", "ep-press").is_some());
    // Another tenant's endpoint of the same name is a different endpoint.
    assert!(!w.relay.revoke("xyz", "ep-press"));
    assert!(w.relay.revoke("abc", "ep-press"));
    let why = timeout(LIMIT, device.handle.closed()).await.unwrap();
    assert_eq!(why, TunnelError::GoAway(GoAwayReason::Revoked));
    assert!(w.relay.directory().presence("abc", "ep-press").is_none());
    assert!(!w.relay.revoke("abc", "ep-press"));
}

#[tokio::test]
async fn a_second_connection_of_the_same_endpoint_replaces_the_first() {
    let w = world().await;
    w.add_session(session("abc", "a1", "ssh")).await;
    let first = w.connect("abc", "ep-press", Role::Device).await;
    let before = w.relay.directory().presence("abc", "ep-press").unwrap();
    let second = w.connect("abc", "ep-press", Role::Device).await;
    let why = timeout(LIMIT, first.handle.closed()).await.unwrap();
    assert_eq!(why, TunnelError::GoAway(GoAwayReason::Replaced));
    // The first tunnel's end must not take the second one out of the directory.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = w.relay.directory().presence("abc", "ep-press").unwrap();
    assert_ne!(after.connection, before.connection);
    assert_eq!(w.relay.directory().online("abc").len(), 1);
    assert!(w.relay.directory().online("xyz").is_empty());

    let service = w.connect("abc", "ep-hq", Role::Service).await;
    let stream = service.handle.open("session:a1/listener:0").unwrap();
    let back = timeout(LIMIT, echo_through(stream, b"still here".to_vec()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"still here");
    assert_eq!(*second.opened.lock().unwrap(), vec!["press.local:22"]);
    assert!(second.handle.error().is_none());
}

#[tokio::test]
async fn only_registered_endpoints_attach() {
    let w = world().await;
    let (_near, far) = memory_pair(4);
    assert!(w
        .relay
        .attach("abc", "nobody", "x", far, false)
        .await
        .is_err());
    w.store
        .revoke_endpoint("abc", "ep-press", T0)
        .await
        .unwrap();
    let (_near, far) = memory_pair(4);
    assert!(w
        .relay
        .attach("abc", "ep-press", "x", far, false)
        .await
        .is_err());
}

// --- Lanes: one stream on a WebSocket of its own -------------------------------------------

/// Parks a dial lane of `endpoint` at the relay; returns the agent's end.
async fn dial_lane(w: &World, tenant: &str, endpoint: &str) -> lane::BoxLane {
    let (agent, relay_end) = lane::memory_pair();
    w.relay
        .lane(tenant, endpoint, LaneUse::Dial, relay_end)
        .await;
    agent
}

/// Opens an open lane of `endpoint` at the relay with `target`; returns the agent's end.
async fn open_lane(w: &Arc<World>, tenant: &str, endpoint: &str, target: &str) -> lane::BoxLane {
    let (mut agent, relay_end) = lane::memory_pair();
    let (w, tenant, endpoint) = (w.clone(), tenant.to_string(), endpoint.to_string());
    tokio::spawn(async move {
        w.relay
            .lane(&tenant, &endpoint, LaneUse::Open, relay_end)
            .await
    });
    agent.send(lane::open(target)).await.unwrap();
    agent
}

/// The next frame on a lane, pings skipped (bounded wait).
async fn next_frame(lane: &mut lane::BoxLane) -> Option<Frame> {
    loop {
        match timeout(LIMIT, lane.next()).await.unwrap() {
            Some(Ok(message)) => match lane::decode(message).unwrap() {
                Frame::Ping { .. } => continue,
                frame => return Some(frame),
            },
            _ => return None,
        }
    }
}

/// Session `5e55` (SSH) from ep-hq to ep-press, both online (while the returned endpoints
/// are held), and a stream on lanes: the device's dial lane has received the `Open` of the
/// service's open lane. Returns the endpoints, then the device's and the service's lane.
async fn stream_on_lanes(
    w: &Arc<World>,
) -> (FakeEndpoint, FakeEndpoint, lane::BoxLane, lane::BoxLane) {
    w.add_session(session("abc", "5e55", "ssh")).await;
    let device = w.connect("abc", "ep-press", Role::Device).await;
    let service = w.connect("abc", "ep-hq", Role::Service).await;
    let mut device_lane = dial_lane(w, "abc", "ep-press").await;
    let service_lane = open_lane(w, "abc", "ep-hq", "session:5e55/listener:0").await;
    assert!(matches!(
        next_frame(&mut device_lane).await,
        Some(Frame::Open { .. })
    ));
    (device, service, device_lane, service_lane)
}

#[tokio::test]
async fn a_stream_on_lanes_goes_from_the_service_lane_to_a_device_lane_and_is_counted() {
    let w = Arc::new(world().await);
    w.add_session(session("abc", "5e55", "ssh")).await;
    let device = w.connect("abc", "ep-press", Role::Device).await;
    let _service = w.connect("abc", "ep-hq", Role::Service).await;
    let mut device_lane = dial_lane(&w, "abc", "ep-press").await;
    let key = EndpointKey::new("abc", "ep-press");
    assert_eq!(w.relay.directory().lanes().idle_count(&key), 1);

    let mut service_lane = open_lane(&w, "abc", "ep-hq", "session:5e55/listener:0").await;
    service_lane
        .send(lane::data(b"ping from hq"))
        .await
        .unwrap();
    service_lane
        .send(lane::encode(&Frame::Close { stream: 1 }))
        .await
        .unwrap();

    // The device is asked on its lane, not on its tunnel, with the mapping's target.
    let Some(Frame::Open { target, .. }) = next_frame(&mut device_lane).await else {
        panic!("no Open on the device's lane");
    };
    assert_eq!(target, "press.local:22");
    assert!(device.opened.lock().unwrap().is_empty());
    assert_eq!(w.relay.directory().lanes().idle_count(&key), 0);
    let mut device_io = LaneIo::new(device_lane, None);
    let mut got = Vec::new();
    timeout(LIMIT, device_io.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"ping from hq");
    device_io.write_all(b"pong from the press").await.unwrap();
    device_io.shutdown().await.unwrap();

    let mut service_io = LaneIo::new(service_lane, None);
    let mut back = Vec::new();
    timeout(LIMIT, service_io.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"pong from the press");
    assert_eq!(w.counted("abc", "5e55", (12, 19)).await, (12, 19));
}

#[tokio::test]
async fn a_lane_stream_without_a_device_lane_goes_on_the_device_tunnel() {
    let w = Arc::new(world().await);
    w.add_session(session("abc", "5e55", "ssh")).await;
    let device = w.connect("abc", "ep-press", Role::Device).await;
    let _service = w.connect("abc", "ep-hq", Role::Service).await;
    let service_lane = open_lane(&w, "abc", "ep-hq", "session:5e55/listener:0").await;
    let mut io = LaneIo::new(service_lane, None);
    io.write_all(b"echo me").await.unwrap();
    io.shutdown().await.unwrap();
    let mut back = Vec::new();
    timeout(LIMIT, io.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"echo me");
    assert_eq!(*device.opened.lock().unwrap(), vec!["press.local:22"]);
}

#[tokio::test]
async fn lane_streams_are_refused_like_tunnel_streams() {
    let w = Arc::new(world().await);
    w.add_session(session("abc", "5e55", "ssh")).await;
    w.add_session(session("xyz", "0f0f", "ssh")).await;
    let _device = w.connect("abc", "ep-press", Role::Device).await;
    let _service = w.connect("abc", "ep-hq", Role::Service).await;
    let mut device_lane = dial_lane(&w, "abc", "ep-press").await;
    for target in [
        "session:0f0f/listener:0", // another tenant's session
        "session:5e55/listener:9", // no such mapping
        "press.local:22",          // not a session target
    ] {
        let mut lane = open_lane(&w, "abc", "ep-hq", target).await;
        assert_eq!(
            next_frame(&mut lane).await,
            Some(Frame::Reset {
                stream: 1,
                reason: ResetReason::Refused
            }),
            "{target}"
        );
    }
    // The device's lane was never asked.
    assert!(timeout(Duration::from_millis(200), device_lane.next())
        .await
        .is_err());
}

#[tokio::test]
async fn lanes_are_refused_without_a_tunnel_and_cut_with_it() {
    let w = Arc::new(world().await);
    // No tunnel on this relay: the lane is closed at once.
    let mut early = dial_lane(&w, "abc", "ep-press").await;
    assert!(next_frame(&mut early).await.is_none());

    let (_device, _service, mut device_lane, service_lane) = stream_on_lanes(&w).await;
    let mut service_io = LaneIo::new(service_lane, None);
    service_io.write_all(b"typing").await.unwrap();
    // Revoking the device endpoint ends the running lane stream at once, both lanes.
    assert!(w.relay.revoke("abc", "ep-press"));
    let mut buf = [0u8; 16];
    let ended = timeout(LIMIT, service_io.read(&mut buf)).await.unwrap();
    assert!(!matches!(ended, Ok(n) if n > 0), "{ended:?}");
    loop {
        match timeout(LIMIT, device_lane.next()).await.unwrap() {
            None | Some(Err(_)) => break,
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn an_endpoint_holds_at_most_its_share_of_lanes() {
    let w = Arc::new(world().await);
    let _device = w.connect("abc", "ep-press", Role::Device).await;
    assert_eq!(w.relay.lane_welcome("abc", "ep-press"), Ok(()));
    assert_eq!(
        w.relay.lane_welcome("abc", "nobody"),
        Err(LaneRefusal::TunnelElsewhere)
    );
    let mut held = Vec::new();
    for _ in 0..portico_relay::live::lanes::MAX_LANES_PER_ENDPOINT {
        held.push(dial_lane(&w, "abc", "ep-press").await);
    }
    assert_eq!(
        w.relay.lane_welcome("abc", "ep-press"),
        Err(LaneRefusal::AtMaximum)
    );
    // Beyond the maximum a lane is closed at once.
    let mut refused = dial_lane(&w, "abc", "ep-press").await;
    assert!(next_frame(&mut refused).await.is_none());
    // A lane that ends gives its place back.
    drop(held.pop());
    let mut freed = false;
    for _ in 0..200 {
        if w.relay.lane_welcome("abc", "ep-press") == Ok(()) {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(freed, "the place of a closed lane was not given back");
}

#[tokio::test]
async fn a_lane_stream_ends_on_both_lanes_when_one_side_vanishes() {
    let w = Arc::new(world().await);
    let (_device, _service, device_lane, mut service_lane) = stream_on_lanes(&w).await;
    // The device's agent goes away without a Reset (its connection dropped).
    drop(device_lane);
    assert!(next_frame(&mut service_lane).await.is_none());
}

// --- Moving a stream from the tunnel to a lane ----------------------------------------------

/// Reads `stream` to its end on the tunnel, which must be a `Moved`, then `lane` to its
/// `Close`.
async fn read_moved(stream: &mut TunnelStream, lane: &mut LaneIo) -> Vec<u8> {
    let mut got = Vec::new();
    timeout(LIMIT, stream.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(stream.moved_in(), "the tunnel's part ended with a Moved");
    timeout(LIMIT, lane.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    got
}

#[tokio::test]
async fn a_stream_the_service_opened_on_its_tunnel_moves_to_its_open_lane_intact_and_counted() {
    let w = Arc::new(world().await);
    w.add_session(session("abc", "5e55", "ssh")).await;
    let _device = w.connect("abc", "ep-press", Role::Device).await;
    let (service, _incoming) = w.attach("abc", "ep-hq", Role::Service, true).await;
    let mut stream = service.open("session:5e55/listener:0").unwrap();
    stream.write_all(b"on the tunnel, ").await.unwrap();
    let mut echoed = vec![0u8; 15];
    timeout(LIMIT, stream.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();

    // The agent's lane names the stream in its first frame; then the agent's direction
    // ends on the tunnel and goes on on the lane.
    let (mut agent_lane, relay_end) = lane::memory_pair();
    let relay = w.clone();
    tokio::spawn(async move {
        relay
            .relay
            .lane("abc", "ep-hq", LaneUse::Open, relay_end)
            .await
    });
    agent_lane.send(lane::moved(stream.id())).await.unwrap();
    stream.move_away().unwrap();
    let mut lane = LaneIo::new(agent_lane, None);
    lane.write_all(b"then on the lane").await.unwrap();
    lane.shutdown().await.unwrap();

    // The echo comes on the tunnel up to the relay's Moved, then on the lane.
    let rest = read_moved(&mut stream, &mut lane).await;
    assert_eq!(
        [echoed, rest].concat(),
        b"on the tunnel, then on the lane".to_vec()
    );
    assert_eq!(w.counted("abc", "5e55", (31, 31)).await, (31, 31));
    // Moved both ways: the tunnel forgets the stream without a reset.
    drop(stream);
    for _ in 0..200 {
        if service.stream_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(service.stream_count(), 0);
}

#[tokio::test]
async fn the_relay_moves_a_stream_it_opened_on_the_device_tunnel_to_the_next_dial_lane() {
    let w = Arc::new(world().await);
    w.add_session(session("abc", "5e55", "ssh")).await;
    let (_device, mut device_incoming) = w.attach("abc", "ep-press", Role::Device, true).await;
    let service = w.connect("abc", "ep-hq", Role::Service).await;
    let mut opened = service.handle.open("session:5e55/listener:0").unwrap();
    opened.write_all(b"first ").await.unwrap();
    // No dial lane at hand: the relay opens the stream on the device's tunnel.
    let offer = timeout(LIMIT, device_incoming.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offer.target(), "press.local:22");
    let mut dialled = offer.accept();
    let mut first = [0u8; 6];
    timeout(LIMIT, dialled.read_exact(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&first, b"first ");

    // The device's next dial lane takes the stream over: its first frame names it.
    let mut device_lane = dial_lane(&w, "abc", "ep-press").await;
    assert_eq!(
        next_frame(&mut device_lane).await,
        Some(Frame::Moved {
            stream: dialled.id()
        })
    );
    dialled.move_away().unwrap();
    let mut lane = LaneIo::new(device_lane, None);
    opened.write_all(b"second").await.unwrap();
    opened.shutdown().await.unwrap();
    assert_eq!(read_moved(&mut dialled, &mut lane).await, b"second");
    lane.write_all(b"the answer").await.unwrap();
    lane.shutdown().await.unwrap();
    let mut answer = Vec::new();
    timeout(LIMIT, opened.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, b"the answer");
    assert_eq!(w.counted("abc", "5e55", (12, 10)).await, (12, 10));
}
