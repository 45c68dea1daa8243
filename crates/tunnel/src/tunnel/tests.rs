use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use super::*;
use crate::frame::{decode_message, encode_message, Frame, Hello, PROTOCOL_VERSION};

const LIMIT: Duration = Duration::from_secs(60);

fn tunnels(config: TunnelConfig) -> ((TunnelHandle, Incoming), (TunnelHandle, Incoming)) {
    let (a, b) = memory_pair(64);
    (
        Tunnel::new(a, Role::Relay, config.clone()),
        Tunnel::new(b, Role::Device, config),
    )
}

/// Deterministic bytes that differ per stream and per direction.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `send` and closes, while reading the peer's bytes to the end; returns those.
async fn exchange(stream: TunnelStream, send: Vec<u8>) -> Vec<u8> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = async move {
        writer.write_all(&send).await.unwrap();
        writer.shutdown().await.unwrap();
        writer
    };
    let read = async move {
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        (reader, got)
    };
    let (writer, (reader, got)) = tokio::join!(write, read);
    // Dropped only now, after both closes, so the stream ends cleanly.
    drop(reader.unsplit(writer));
    got
}

#[tokio::test]
async fn eight_streams_move_four_mib_each_way_intact() {
    const SIZE: usize = 4 * 1024 * 1024;
    let ((relay, _relay_incoming), (_device, mut device_incoming)) =
        tunnels(TunnelConfig::default());
    let device_side = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let offer = device_incoming.next().await.unwrap();
            let index: u64 = offer
                .target()
                .trim_start_matches("mapping:")
                .parse()
                .unwrap();
            let stream = offer.accept();
            tasks.push(tokio::spawn(async move {
                let got = exchange(stream, pattern(1000 + index, SIZE)).await;
                assert!(got == pattern(index, SIZE), "stream {index}: data differs");
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    let mut tasks = Vec::new();
    for index in 0..8u64 {
        let stream = relay.open(&format!("mapping:{index}")).unwrap();
        tasks.push(tokio::spawn(async move {
            let got = exchange(stream, pattern(index, SIZE)).await;
            assert!(
                got == pattern(1000 + index, SIZE),
                "stream {index}: data differs"
            );
        }));
    }
    timeout(LIMIT, async {
        for task in tasks {
            task.await.unwrap();
        }
        device_side.await.unwrap();
    })
    .await
    .expect("transfers finish");
    assert_eq!(relay.stream_count(), 0, "finished streams are forgotten");
}

#[tokio::test]
async fn a_refused_open_fails_the_opener_with_the_reason() {
    let ((relay, _ri), (_device, mut device_incoming)) = tunnels(TunnelConfig::default());
    let policy = tokio::spawn(async move {
        let offer = device_incoming.next().await.unwrap();
        assert_eq!(offer.target(), "10.1.2.3:25");
        offer.refuse(ResetReason::Refused);
    });
    let mut stream = relay.open("10.1.2.3:25").unwrap();
    // Data goes out before the answer: opening costs no round trip.
    stream.write_all(b"EHLO relay\r\n").await.unwrap();
    let mut buf = [0u8; 16];
    let error = timeout(LIMIT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    let inner = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<StreamError>());
    assert_eq!(inner, Some(&StreamError::Reset(ResetReason::Refused)));
    policy.await.unwrap();
}

#[tokio::test]
async fn an_offer_dropped_undecided_is_refused() {
    let ((relay, _ri), (_device, mut device_incoming)) = tunnels(TunnelConfig::default());
    let mut stream = relay.open("mapping:9").unwrap();
    drop(device_incoming.next().await.unwrap());
    let mut buf = [0u8; 4];
    let error = timeout(LIMIT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn half_close_lets_the_answer_come_back() {
    let ((relay, _ri), (_device, mut device_incoming)) = tunnels(TunnelConfig::default());
    let server = tokio::spawn(async move {
        let mut stream = device_incoming.next().await.unwrap().accept();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        assert_eq!(request, b"ticket #42");
        stream.write_all(b"accepted #42").await.unwrap();
        stream.shutdown().await.unwrap();
        // Keep the stream until the client closed too: dropping earlier would abort it.
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
    });
    let mut stream = relay.open("mapping:1").unwrap();
    stream.write_all(b"ticket #42").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    timeout(LIMIT, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, b"accepted #42");
    timeout(LIMIT, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_stalled_reader_does_not_block_another_stream() {
    let config = TunnelConfig {
        receive_window: INITIAL_WINDOW_USIZE as u32,
        ..TunnelConfig::default()
    };
    let ((relay, _ri), (_device, mut device_incoming)) = tunnels(config);
    let mut stalled = relay.open("mapping:stalled").unwrap();
    let busy = relay.open("mapping:busy").unwrap();
    let _stalled_peer = device_incoming.next().await.unwrap().accept();
    let busy_peer = device_incoming.next().await.unwrap().accept();
    // The stalled stream's writer fills its window and then waits.
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0usize;
    for _ in 0..64 {
        match timeout(Duration::from_millis(200), stalled.write(&chunk)).await {
            Ok(n) => written += n.unwrap(),
            Err(_) => break,
        }
    }
    assert_eq!(written, INITIAL_WINDOW_USIZE, "writes beyond credit wait");
    // Meanwhile the other stream moves 8 MiB both ways.
    let size = 8 * 1024 * 1024;
    let peer = tokio::spawn(exchange(busy_peer, pattern(2, size)));
    let got = timeout(LIMIT, exchange(busy, pattern(1, size)))
        .await
        .unwrap();
    assert!(got == pattern(2, size));
    assert!(timeout(LIMIT, peer).await.unwrap().unwrap() == pattern(1, size));
}

const INITIAL_WINDOW_USIZE: usize = crate::mux::INITIAL_WINDOW as usize;

fn short_timings() -> TunnelConfig {
    TunnelConfig {
        keep_alive: Duration::from_millis(50),
        dead_after: Duration::from_millis(400),
        ..TunnelConfig::default()
    }
}

#[tokio::test]
async fn a_silent_peer_is_declared_dead_and_every_stream_fails() {
    let (ours, mut theirs) = memory_pair(64);
    let (handle, mut incoming) = Tunnel::new(ours, Role::Relay, short_timings());
    // The peer says hello and then nothing, like a connection a firewall blackholed.
    let hello = Frame::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Role::Device,
        max_frame: 16 * 1024,
        keep_alive_ms: 50,
    });
    theirs.send(encode_message(&[hello])).await.unwrap();
    let mut stream = handle.open("mapping:1").unwrap();
    let error = timeout(LIMIT, handle.closed()).await.unwrap();
    assert!(matches!(error, TunnelError::PeerDead { .. }), "{error:?}");
    let mut buf = [0u8; 4];
    let failed = stream.read(&mut buf).await.unwrap_err();
    assert_eq!(failed.kind(), io::ErrorKind::ConnectionAborted);
    assert!(stream.write(b"x").await.is_err());
    assert!(incoming.next().await.is_none());
    assert!(matches!(
        handle.open("mapping:2"),
        Err(OpenStreamError::Ended(TunnelError::PeerDead { .. }))
    ));
    // The peer was pinged while it was silent, and told why the tunnel ends.
    let mut seen = Vec::new();
    // The transport ends when the tunnel closes it; bounded anyway.
    for _ in 0..10_000 {
        let Ok(Some(Ok(message))) = timeout(Duration::from_secs(5), theirs.next()).await else {
            break;
        };
        seen.extend(decode_message(message, 1024 * 1024).unwrap());
    }
    assert!(
        seen.iter().any(|f| matches!(f, Frame::Ping { .. })),
        "{seen:?}"
    );
    assert!(
        seen.contains(&Frame::GoAway {
            reason: GoAwayReason::KeepAliveTimeout
        }),
        "{seen:?}"
    );
}

#[tokio::test]
async fn idle_tunnels_keep_each_other_alive() {
    let config = TunnelConfig {
        keep_alive: Duration::from_millis(50),
        dead_after: Duration::from_secs(1),
        ..TunnelConfig::default()
    };
    let ((relay, _ri), (device, _di)) = tunnels(config);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(relay.error(), None);
    assert_eq!(device.error(), None);
    assert_eq!(device.peer_role(), Some(Role::Relay));
}

#[tokio::test]
async fn garbage_from_the_peer_ends_the_tunnel_with_a_reason() {
    let (ours, mut theirs) = memory_pair(64);
    let (handle, _incoming) = Tunnel::new(ours, Role::Device, TunnelConfig::default());
    theirs
        .send(Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 0, 0]))
        .await
        .unwrap();
    let error = timeout(LIMIT, handle.closed()).await.unwrap();
    assert!(
        matches!(error, TunnelError::Protocol(ProtocolError::Decode(_))),
        "{error:?}"
    );
    let mut seen = Vec::new();
    // The transport ends when the tunnel closes it; bounded anyway.
    for _ in 0..10_000 {
        let Ok(Some(Ok(message))) = timeout(Duration::from_secs(5), theirs.next()).await else {
            break;
        };
        seen.extend(decode_message(message, 1024 * 1024).unwrap());
    }
    assert_eq!(
        seen.last(),
        Some(&Frame::GoAway {
            reason: GoAwayReason::ProtocolError
        })
    );
}

#[tokio::test]
async fn a_forged_open_reaches_the_policy_check_as_a_plain_offer() {
    // A hostile relay-side peer sends an open the endpoint never asked for: it surfaces as
    // an offer with its target, so the endpoint's policy can refuse it.
    let (ours, mut theirs) = memory_pair(64);
    let (_handle, mut incoming) = Tunnel::new(ours, Role::Device, TunnelConfig::default());
    let frames = [
        Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: Role::Relay,
            max_frame: 16 * 1024,
            keep_alive_ms: 20_000,
        }),
        Frame::Open {
            stream: 2,
            target: "169.254.169.254:80".into(),
            window: 1024,
        },
    ];
    theirs.send(encode_message(&frames)).await.unwrap();
    let offer = timeout(LIMIT, incoming.next()).await.unwrap().unwrap();
    assert_eq!(offer.target(), "169.254.169.254:80");
    offer.refuse(ResetReason::Refused);
    let mut seen = Vec::new();
    for _ in 0..10 {
        let message = timeout(LIMIT, theirs.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.extend(decode_message(message, 1024 * 1024).unwrap());
        if seen.iter().any(|f| matches!(f, Frame::Reset { .. })) {
            break;
        }
    }
    assert!(
        seen.contains(&Frame::Reset {
            stream: 2,
            reason: ResetReason::Refused
        }),
        "{seen:?}"
    );
}

#[tokio::test]
async fn closing_tells_the_peer_why() {
    let ((relay, _ri), (device, mut device_incoming)) = tunnels(TunnelConfig::default());
    let _stream = relay.open("mapping:1").unwrap();
    let _offer = timeout(LIMIT, device_incoming.next())
        .await
        .unwrap()
        .unwrap();
    relay.close(GoAwayReason::Revoked);
    assert_eq!(
        relay.error(),
        Some(TunnelError::Closed(GoAwayReason::Revoked))
    );
    let error = timeout(LIMIT, device.closed()).await.unwrap();
    assert_eq!(error, TunnelError::GoAway(GoAwayReason::Revoked));
    // The endpoint's log says it in words an operator searches for.
    assert_eq!(
        error.to_string(),
        "the peer ended the tunnel: the endpoint was revoked"
    );
}

#[tokio::test]
async fn a_dropped_transport_ends_the_tunnel() {
    let (ours, theirs) = memory_pair(4);
    let (handle, _incoming) = Tunnel::new(ours, Role::Service, TunnelConfig::default());
    drop(theirs);
    let error = timeout(LIMIT, handle.closed()).await.unwrap();
    assert!(
        matches!(
            error,
            TunnelError::TransportClosed | TunnelError::Transport(_)
        ),
        "{error:?}"
    );
}
