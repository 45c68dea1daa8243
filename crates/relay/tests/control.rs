//! The control hub (`/ccf/`) over in-memory channels, with the REST API wired to it as in
//! `portico serve`: hello checks, `connect`/`permit` for sessions open at hello time and
//! as the API opens them, `disconnect` when a user ends a session and when it times out,
//! and revocation (through the API, and in the store behind the relay's back).

#![allow(clippy::unwrap_used)]

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use futures_util::{sink, stream};
use http_body_util::BodyExt;
use portico_relay::api::{
    remote_services_api_live, ApiOptions, Caller, CredentialIssuer, Credentials, IssueFuture,
    LiveEvents,
};
use portico_relay::live::{
    ChannelEnd, ControlChannelError, ControlHub, ControlOptions, LiveOptions, Relay,
};
use portico_store::{ConnectionSessionRecord, EndpointBinding, EndpointState, Store};
use portico_tunnel::control::{
    ControlMessage, DisconnectReason, Listener, RefusalReason, CONTROL_VERSION,
};
use portico_tunnel::{memory_pair, GoAwayReason, Role, Tunnel, TunnelConfig, TunnelError};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tower::ServiceExt;

const T: &str = "abc";
const LIMIT: Duration = Duration::from_secs(10);

struct NoIssuer;

impl CredentialIssuer for NoIssuer {
    fn issue<'a>(&'a self, _: &'a str, _: &'a str) -> IssueFuture<'a, Credentials> {
        Box::pin(async { Err(portico_relay::api::IssueError("not in this test".into())) })
    }
    fn revoke<'a>(&'a self, _: &'a str, _: &'a str) -> IssueFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

struct World {
    store: Store,
    hub: ControlHub,
    api: Router,
    _clock: Arc<AtomicI64>,
    _dir: tempfile::TempDir,
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// The support module's tenant (site `hq`, device `press-7` with endpoint `ep-press`,
/// Service Endpoints `ep-bob` (bound to bob) and `ep-hq` (bound to the site); applications
/// `ssh` (press.local:22) and DTT Reverse `tickets` (dialled by `ep-hq`), both assigned, and
/// an unassigned `ssh-spare`), and a pending `ep-new`.
async fn world() -> World {
    world_with(|_| {}).await
}

async fn world_with(tweak: impl FnOnce(&mut ControlOptions)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/p.db", dir.path().display()))
        .await
        .unwrap();
    support::tenant(&store, T).await;
    let mut pending = support::endpoint(T, "ep-new", EndpointBinding::Device("press-7".into()));
    pending.state = EndpointState::Pending;
    store.add_endpoint(&pending).await.unwrap();
    let clock = Arc::new(AtomicI64::new(now_ms()));
    let c = clock.clone();
    let clock_fn: portico_relay::api::Clock = Arc::new(move || c.load(Ordering::SeqCst));
    let relay = Arc::new(Relay::new(
        store.clone(),
        LiveOptions {
            clock: clock_fn.clone(),
            ..LiveOptions::default()
        },
    ));
    let mut options = ControlOptions {
        clock: clock_fn.clone(),
        recheck: Duration::from_millis(100),
        ..ControlOptions::default()
    };
    tweak(&mut options);
    let hub = ControlHub::new(store.clone(), relay, options);
    let live: Arc<dyn LiveEvents> = Arc::new(hub.clone());
    let api = remote_services_api_live(
        store.clone(),
        Arc::new(NoIssuer),
        ApiOptions {
            clock: clock_fn,
            ..ApiOptions::default()
        },
        Some(live),
    );
    World {
        store,
        hub,
        api,
        _clock: clock,
        _dir: dir,
    }
}

fn session(id: &str, application: &str, ends_ms: i64) -> ConnectionSessionRecord {
    ConnectionSessionRecord {
        tenant: T.into(),
        id: id.into(),
        user_name: "bob".into(),
        device: "press-7".into(),
        application: application.into(),
        started_ms: now_ms(),
        ends_ms,
        ended_ms: None,
        end_reason: None,
        bytes_up: 0,
        bytes_down: 0,
    }
}

/// The agent's end of a control channel.
struct Agent {
    to_relay: mpsc::UnboundedSender<String>,
    from_relay: mpsc::UnboundedReceiver<String>,
    task: JoinHandle<Result<ChannelEnd, ControlChannelError>>,
}

impl Agent {
    fn open(hub: &ControlHub, name: &str) -> Agent {
        let (to_relay, inbound) = mpsc::unbounded_channel::<String>();
        let (outbound, from_relay) = mpsc::unbounded_channel::<String>();
        let inbound = Box::pin(stream::unfold(inbound, |mut rx| async move {
            rx.recv().await.map(|m| (Ok::<_, Infallible>(m), rx))
        }));
        let outbound = Box::pin(sink::unfold(outbound, |tx, m: String| async move {
            let _ = tx.send(m);
            Ok::<_, Infallible>(tx)
        }));
        let (hub, name) = (hub.clone(), name.to_string());
        let task = tokio::spawn(async move { hub.serve(T, &name, inbound, outbound).await });
        Agent {
            to_relay,
            from_relay,
            task,
        }
    }

    fn say(&self, message: &ControlMessage) {
        self.to_relay.send(message.encode()).unwrap();
    }

    fn hello(&self, role: Role, name: &str) {
        self.say(&ControlMessage::Hello {
            version: CONTROL_VERSION,
            role,
            endpoint: name.into(),
            agent: "portico test".into(),
        });
    }

    /// The next message from the relay other than a keep-alive.
    async fn next(&mut self) -> ControlMessage {
        loop {
            let text = timeout(LIMIT, self.from_relay.recv())
                .await
                .expect("a control message in time")
                .expect("the channel is open");
            match ControlMessage::decode(text.as_bytes()).unwrap() {
                ControlMessage::KeepAlive { .. } => continue,
                other => return other,
            }
        }
    }

    /// Says hello as `role` and expects the welcome.
    async fn welcome(hub: &ControlHub, name: &str, role: Role) -> Agent {
        let mut agent = Agent::open(hub, name);
        agent.hello(role, name);
        assert!(matches!(
            agent.next().await,
            ControlMessage::Welcome {
                version: CONTROL_VERSION,
                keep_alive_secs: 20
            }
        ));
        agent
    }

    async fn ended(self) -> ChannelEnd {
        timeout(LIMIT, self.task).await.unwrap().unwrap().unwrap()
    }
}

fn connect_for(id: &str) -> Vec<Listener> {
    vec![Listener {
        id: 0,
        local_port: 2222,
        target: format!("session:{id}/listener:0"),
    }]
}

async fn call(api: &Router, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let mut request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    request.extensions_mut().insert(Caller {
        tenant: T.into(),
        subject: "bob".into(),
        role: "admin".into(),
    });
    let response = api.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// What a test agent says first.
type Say = Box<dyn Fn(&Agent)>;

#[tokio::test]
async fn hellos_that_do_not_fit_the_endpoint_are_refused() {
    let w = world().await;
    let cases: [(&str, Say, RefusalReason); 5] = [
        (
            "ep-press",
            Box::new(|a| a.hello(Role::Device, "ep-bob")),
            RefusalReason::Unauthorized,
        ),
        (
            "ep-press",
            Box::new(|a| a.hello(Role::Service, "ep-press")),
            RefusalReason::Unauthorized,
        ),
        (
            "ep-new",
            Box::new(|a| a.hello(Role::Device, "ep-new")),
            RefusalReason::Unauthorized,
        ),
        (
            "ep-press",
            Box::new(|a| {
                let hello = json!({"type": "hello", "version": 2, "role": "device",
                    "endpoint": "ep-press", "agent": "portico 9", "extra": 1});
                a.to_relay.send(hello.to_string()).unwrap();
            }),
            RefusalReason::UnsupportedVersion,
        ),
        (
            "ep-press",
            Box::new(|a| a.say(&ControlMessage::KeepAlive { nonce: 1 })),
            RefusalReason::Malformed,
        ),
    ];
    for (name, say, expected) in cases {
        let mut agent = Agent::open(&w.hub, name);
        say(&agent);
        match agent.next().await {
            ControlMessage::Refused { reason, .. } => assert_eq!(reason, expected, "{name}"),
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
        assert_eq!(agent.ended().await, ChannelEnd::Refused);
        assert!(!w.hub.is_connected(T, name));
    }
}

#[tokio::test]
async fn sessions_are_announced_at_hello_and_as_they_open_and_end() {
    let w = world().await;
    w.store
        .add_connection_session(&session("aa01", "ssh", now_ms() + 60_000))
        .await
        .unwrap();
    let mut bob = Agent::welcome(&w.hub, "ep-bob", Role::Service).await;
    match bob.next().await {
        ControlMessage::Connect {
            session,
            listeners,
            timeout_secs,
        } => {
            assert_eq!(session, "aa01");
            assert_eq!(listeners, connect_for("aa01"));
            assert!((59..=61).contains(&timeout_secs), "{timeout_secs}");
        }
        other => panic!("expected connect, got {other:?}"),
    }
    let mut press = Agent::welcome(&w.hub, "ep-press", Role::Device).await;
    match press.next().await {
        ControlMessage::Permit {
            session, targets, ..
        } => {
            assert_eq!(
                (session.as_str(), targets),
                ("aa01", vec!["press.local:22".to_string()])
            );
        }
        other => panic!("expected permit, got {other:?}"),
    }
    let mut hq = Agent::welcome(&w.hub, "ep-hq", Role::Service).await;

    // A DTT Reverse session opened through the API: the device listens, ep-hq dials.
    let (status, opened) = call(
        &w.api,
        Method::POST,
        "/connections",
        Some(json!({"device": "press-7", "application": "tickets"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let id = opened["id"].as_str().unwrap().to_string();
    match press.next().await {
        ControlMessage::Connect {
            session, listeners, ..
        } => {
            assert_eq!(
                (session.as_str(), listeners),
                (id.as_str(), connect_for(&id))
            );
        }
        other => panic!("expected connect, got {other:?}"),
    }
    match hq.next().await {
        ControlMessage::Permit {
            session, targets, ..
        } => {
            assert_eq!(
                (session.as_str(), targets),
                (id.as_str(), vec!["press.local:22".to_string()])
            );
        }
        other => panic!("expected permit, got {other:?}"),
    }

    // The user ends it: both sides hear it, the forward session's sides hear nothing.
    let (status, _) = call(&w.api, Method::DELETE, &format!("/connections/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    for agent in [&mut press, &mut hq] {
        assert_eq!(
            agent.next().await,
            ControlMessage::Disconnect {
                session: id.clone(),
                reason: DisconnectReason::Ended
            }
        );
    }

    // The ended session's timer is stopped; the forward session's still runs.
    for _ in 0..200 {
        if w.hub.timers() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w.hub.timers(), 1);

    // A reconnect of ep-bob replaces its channel and gets the open session again.
    let mut again = Agent::welcome(&w.hub, "ep-bob", Role::Service).await;
    assert!(
        matches!(again.next().await, ControlMessage::Connect { session, .. } if session == "aa01")
    );
    assert_eq!(bob.ended().await, ChannelEnd::ClosedByRelay);
}

#[tokio::test]
async fn sessions_time_out_on_schedule_and_are_audited() {
    let w = world().await;
    let mut bob = Agent::welcome(&w.hub, "ep-bob", Role::Service).await;
    let mut press = Agent::welcome(&w.hub, "ep-press", Role::Device).await;
    w.store
        .add_connection_session(&session("bb02", "ssh", now_ms() + 400))
        .await
        .unwrap();
    w.hub.sync_tenant(T).await;
    assert!(matches!(bob.next().await, ControlMessage::Connect { .. }));
    assert!(matches!(press.next().await, ControlMessage::Permit { .. }));
    for agent in [&mut bob, &mut press] {
        assert_eq!(
            agent.next().await,
            ControlMessage::Disconnect {
                session: "bb02".into(),
                reason: DisconnectReason::TimedOut
            }
        );
    }
    let ended = w
        .store
        .connection_session(T, "bb02")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.end_reason.as_deref(), Some("timeout"));
    let audit = w.store.audit(T, 10).await.unwrap();
    assert!(audit
        .iter()
        .any(|a| a.action == "connection.timeout" && a.object == "connection/bb02"));
}

#[tokio::test]
async fn a_revoked_endpoint_is_cut_at_once_and_its_sessions_end() {
    let w = world().await;
    w.store
        .add_connection_session(&session("cc03", "ssh", now_ms() + 60_000))
        .await
        .unwrap();
    let mut bob = Agent::welcome(&w.hub, "ep-bob", Role::Service).await;
    let mut press = Agent::welcome(&w.hub, "ep-press", Role::Device).await;
    assert!(matches!(bob.next().await, ControlMessage::Connect { .. }));
    assert!(matches!(press.next().await, ControlMessage::Permit { .. }));
    // ep-press's tunnel, to see it cut too.
    let (near, far) = memory_pair(16);
    w.hub
        .relay()
        .attach(T, "ep-press", "192.0.2.1:1", far, false)
        .await
        .unwrap();
    let (handle, _incoming) = Tunnel::new(near, Role::Device, TunnelConfig::default());

    let (status, _) = call(&w.api, Method::POST, "/endpoints/ep-press/revoke", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(matches!(
        press.next().await,
        ControlMessage::Refused {
            reason: RefusalReason::Revoked,
            ..
        }
    ));
    assert_eq!(press.ended().await, ChannelEnd::ClosedByRelay);
    let end = timeout(LIMIT, handle.closed()).await.unwrap();
    assert!(
        matches!(end, TunnelError::GoAway(GoAwayReason::Revoked)),
        "{end:?}"
    );
    // The device's session ended with it; the other side is told.
    assert_eq!(
        bob.next().await,
        ControlMessage::Disconnect {
            session: "cc03".into(),
            reason: DisconnectReason::Revoked
        }
    );
}

#[tokio::test]
async fn an_endpoint_revoked_behind_the_relays_back_is_cut_at_the_recheck() {
    let w = world().await;
    let mut hq = Agent::welcome(&w.hub, "ep-hq", Role::Service).await;
    w.store.revoke_endpoint(T, "ep-hq", now_ms()).await.unwrap();
    assert!(matches!(
        hq.next().await,
        ControlMessage::Refused {
            reason: RefusalReason::Revoked,
            ..
        }
    ));
    assert_eq!(hq.ended().await, ChannelEnd::ClosedByRelay);
    assert!(!w.hub.is_connected(T, "ep-hq"));
}

#[tokio::test]
async fn a_silent_agent_is_declared_dead_after_hearing_keep_alives() {
    let w = world_with(|o| {
        o.keep_alive = Duration::from_secs(1);
        o.dead_after = Duration::from_millis(2500);
    })
    .await;
    let mut agent = Agent::open(&w.hub, "ep-press");
    agent.hello(Role::Device, "ep-press");
    assert!(matches!(
        agent.next().await,
        ControlMessage::Welcome {
            keep_alive_secs: 1,
            ..
        }
    ));
    let text = timeout(LIMIT, agent.from_relay.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        ControlMessage::decode(text.as_bytes()).unwrap(),
        ControlMessage::KeepAlive { .. }
    ));
    assert_eq!(agent.ended().await, ChannelEnd::Dead);
    assert!(!w.hub.is_connected(T, "ep-press"));
}

/// In a cluster another node opens sessions and revokes endpoints and says so with the
/// `rs_sessions` notice: the hub here acts on the notice, not on its (here hour-long)
/// recheck.
#[tokio::test]
async fn another_nodes_notices_announce_sessions_and_cut_revoked_tunnels_here() {
    let w = world_with(|o| o.recheck = Duration::from_secs(3600)).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(w.hub.clone().follow_notices(shutdown.clone()));
    // A session open at hello: once it is announced, the hello's synchronisation is over.
    w.store
        .add_connection_session(&session("cc00", "ssh", now_ms() + 60_000))
        .await
        .unwrap();
    let mut bob = Agent::welcome(&w.hub, "ep-bob", Role::Service).await;
    match bob.next().await {
        ControlMessage::Connect { session, .. } => assert_eq!(session, "cc00"),
        other => panic!("expected connect, got {other:?}"),
    }
    let (near, far) = memory_pair(16);
    w.hub
        .relay()
        .attach(T, "ep-press", "192.0.2.7:40000", far, false)
        .await
        .unwrap();
    let (press, _incoming) = Tunnel::new(near, Role::Device, TunnelConfig::default());

    // Written by "another node", then told.
    w.store
        .add_connection_session(&session("cc01", "ssh", now_ms() + 60_000))
        .await
        .unwrap();
    w.store
        .notify(portico_relay::live::RS_SESSIONS, T)
        .await
        .unwrap();
    match bob.next().await {
        ControlMessage::Connect { session, .. } => assert_eq!(session, "cc01"),
        other => panic!("expected connect, got {other:?}"),
    }

    w.store
        .revoke_endpoint(T, "ep-press", now_ms())
        .await
        .unwrap();
    w.store
        .notify(portico_relay::live::RS_SESSIONS, T)
        .await
        .unwrap();
    let ended = timeout(LIMIT, press.closed()).await.unwrap();
    assert_eq!(ended, TunnelError::GoAway(GoAwayReason::Revoked));
    shutdown.cancel();
}
