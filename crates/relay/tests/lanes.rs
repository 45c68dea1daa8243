//! Lanes at the live relay over in-memory tunnels and lanes (`support`): a stream on a
//! connection of its own, its refusals and ends, and streams moving from the tunnel to a
//! lane (docs/tunnel.md, "Lanes").

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use portico_relay::live::{EndpointKey, LaneRefusal};
use portico_tunnel::lane::{self, LaneIo, LaneUse};
use portico_tunnel::Frame;
use portico_tunnel::{ResetReason, Role, TunnelStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use support::*;

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
