//! The live relay over in-memory tunnels (`support`): allowed streams carry bytes intact
//! both ways and are counted; every other stream is refused before the device sees it;
//! revocation and reconnection cut the older tunnel. Lanes and moves: `lanes.rs`.

#![allow(clippy::unwrap_used)]

mod support;

use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

use portico_tunnel::{memory_pair, GoAwayReason, Role, TunnelError, TunnelStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use support::*;

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
