use super::*;
use crate::frame::encode_message;

/// Small frames and the initial window only, so the tests see credit run out.
fn config() -> TunnelConfig {
    TunnelConfig {
        keep_alive: Duration::from_secs(20),
        dead_after: Duration::from_secs(45),
        outbound_limit: 8 * 1024 * 1024,
        max_frame: 64 * 1024,
        receive_window: INITIAL_WINDOW,
        ..TunnelConfig::default()
    }
}

/// A relay and a device endpoint that exchanged hellos.
fn pair(now: Instant) -> (Mux, Mux) {
    let mut relay = Mux::new(Role::Relay, config(), now);
    let mut device = Mux::new(Role::Device, config(), now);
    pump(&mut relay, &mut device, now);
    pump(&mut device, &mut relay, now);
    (relay, device)
}

/// Delivers everything `from` has queued to `to`.
fn pump(from: &mut Mux, to: &mut Mux, now: Instant) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..10_000 {
        let Some(message) = from.poll_transmit() else {
            return events;
        };
        events.extend(to.handle_message(message, now).unwrap());
    }
    panic!("the queue did not drain");
}

fn read_all(mux: &mut Mux, id: StreamId) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 7000];
    while let Some(n) = mux.read(id, &mut buf).unwrap() {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn feed(mux: &mut Mux, frames: &[Frame], now: Instant) -> Result<Vec<Event>, ProtocolError> {
    mux.handle_message(encode_message(frames), now)
}

#[test]
fn open_and_data_go_out_without_a_round_trip() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let id = relay.open("mapping:3").unwrap();
    assert_eq!(id, 2);
    assert_eq!(relay.write(id, b"GET / HTTP/1.1\r\n").unwrap(), 16);
    // One message carries the open and its data.
    let message = relay.poll_transmit().unwrap();
    assert!(relay.poll_transmit().is_none());
    let events = device.handle_message(message, now).unwrap();
    assert_eq!(
        events,
        vec![
            Event::Opened {
                stream: 2,
                target: "mapping:3".into()
            },
            Event::Readable(2)
        ]
    );
    device.accept(id);
    assert_eq!(read_all(&mut device, id), b"GET / HTTP/1.1\r\n");
}

#[test]
fn stream_ids_follow_the_role() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    assert_eq!(
        [relay.open("a:1").unwrap(), relay.open("a:1").unwrap()],
        [2, 4]
    );
    assert_eq!(
        [device.open("b:1").unwrap(), device.open("b:1").unwrap()],
        [1, 3]
    );
    let events = pump(&mut relay, &mut device, now);
    assert_eq!(events.len(), 2);
    let events = pump(&mut device, &mut relay, now);
    assert_eq!(events.len(), 2);
}

#[test]
fn writes_beyond_credit_wait_for_a_grant() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let id = relay.open("mapping:1").unwrap();
    let big = vec![7u8; INITIAL_WINDOW as usize + 1000];
    assert_eq!(relay.write(id, &big).unwrap(), INITIAL_WINDOW as usize);
    assert_eq!(relay.write(id, &big).unwrap(), 0, "no credit left");
    pump(&mut relay, &mut device, now);
    device.accept(id);
    // Reading grants credit back once half the window is consumed.
    let got = read_all(&mut device, id);
    assert_eq!(got.len(), INITIAL_WINDOW as usize);
    let events = pump(&mut device, &mut relay, now);
    assert!(events.contains(&Event::Writable(id)), "{events:?}");
    assert_eq!(relay.write(id, &big[..1000]).unwrap(), 1000);
}

#[test]
fn a_stalled_stream_does_not_block_another() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let stalled = relay.open("mapping:1").unwrap();
    let busy = relay.open("mapping:2").unwrap();
    let chunk = vec![1u8; 32 * 1024];
    // The stalled stream's reader never reads: its writer stops at the window.
    let mut sent_stalled = 0;
    for _ in 0..100 {
        sent_stalled += relay.write(stalled, &chunk).unwrap();
    }
    assert_eq!(sent_stalled, INITIAL_WINDOW as usize);
    // The busy one moves 4 MiB meanwhile.
    let mut received = 0;
    for _ in 0..1000 {
        if received >= 4 * 1024 * 1024 {
            break;
        }
        relay.write(busy, &chunk).unwrap();
        pump(&mut relay, &mut device, now);
        received += read_all(&mut device, busy).len();
        pump(&mut device, &mut relay, now);
    }
    assert!(received >= 4 * 1024 * 1024, "busy stream moved {received}");
    // The stalled stream's data waits at the receiver, bounded by its window.
    assert_eq!(
        read_all(&mut device, stalled).len(),
        INITIAL_WINDOW as usize
    );
}

#[test]
fn sending_beyond_credit_is_a_protocol_error() {
    let now = Instant::now();
    let (_relay, mut device) = pair(now);
    let open = Frame::Open {
        stream: 2,
        target: "x:1".into(),
        window: 1000,
    };
    feed(&mut device, &[open], now).unwrap();
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    for _ in 0..(INITIAL_WINDOW / (64 * 1024)) {
        let data = Frame::Data {
            stream: 2,
            payload: chunk.clone(),
        };
        feed(&mut device, &[data], now).unwrap();
    }
    let one_more = Frame::Data {
        stream: 2,
        payload: Bytes::from_static(b"x"),
    };
    assert_eq!(
        feed(&mut device, &[one_more], now),
        Err(ProtocolError::FlowControl(2))
    );
}

#[test]
fn the_opener_credit_comes_from_the_open_frame() {
    let now = Instant::now();
    let (_relay, mut device) = pair(now);
    let open = Frame::Open {
        stream: 2,
        target: "x:1".into(),
        window: 10,
    };
    feed(&mut device, &[open], now).unwrap();
    device.accept(2);
    assert_eq!(device.write(2, &[0; 100]).unwrap(), 10);
}

#[test]
fn half_close_leaves_the_other_direction_open() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let id = relay.open("mapping:1").unwrap();
    relay.write(id, b"request").unwrap();
    relay.close(id).unwrap();
    assert_eq!(relay.write(id, b"more"), Err(StreamError::WriteClosed));
    pump(&mut relay, &mut device, now);
    device.accept(id);
    let mut buf = [0u8; 64];
    assert_eq!(device.read(id, &mut buf).unwrap(), Some(7));
    assert_eq!(device.read(id, &mut buf).unwrap(), Some(0), "end of stream");
    device.write(id, b"response").unwrap();
    device.close(id).unwrap();
    pump(&mut device, &mut relay, now);
    assert_eq!(read_all(&mut relay, id), b"response");
    // Both closed: releasing sends nothing and forgets the stream.
    relay.release(id);
    device.release(id);
    assert!(!relay.has_outbound() && !device.has_outbound());
    assert_eq!(relay.stream_count() + device.stream_count(), 0);
}

#[test]
fn a_refused_open_resets_the_stream_with_its_reason() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let id = relay.open("10.9.9.9:25").unwrap();
    relay.write(id, b"HELO").unwrap();
    pump(&mut relay, &mut device, now);
    device.reset(id, ResetReason::Refused);
    let events = pump(&mut device, &mut relay, now);
    assert_eq!(
        events,
        vec![Event::Reset {
            stream: id,
            reason: ResetReason::Refused
        }]
    );
    let mut buf = [0u8; 8];
    assert_eq!(
        relay.read(id, &mut buf),
        Err(StreamError::Reset(ResetReason::Refused))
    );
    assert_eq!(
        relay.write(id, b"x"),
        Err(StreamError::Reset(ResetReason::Refused))
    );
    relay.release(id);
    assert!(!relay.has_outbound(), "a reset stream is not reset again");
}

#[test]
fn a_moved_direction_ends_after_its_data_and_a_stream_moved_both_ways_is_forgotten_cleanly() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let id = device.open("session:1/listener:0").unwrap();
    device.write(id, b"on the tunnel").unwrap();
    device.move_away(id).unwrap();
    assert_eq!(device.write(id, b"more"), Err(StreamError::WriteClosed));
    pump(&mut device, &mut relay, now);
    relay.accept(id);
    assert_eq!(read_all(&mut relay, id), b"on the tunnel");
    assert!(relay.moved_in(id));
    relay.write(id, b"answer").unwrap();
    relay.move_away(id).unwrap();
    pump(&mut relay, &mut device, now);
    assert_eq!(read_all(&mut device, id), b"answer");
    assert!(device.moved_in(id));
    // Moved both ways: releasing resets nothing.
    relay.release(id);
    device.release(id);
    assert!(!relay.has_outbound() && !device.has_outbound());
    assert_eq!(relay.stream_count() + device.stream_count(), 0);
}

#[test]
fn a_close_is_not_taken_for_a_move_and_data_after_a_move_is_refused() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let id = device.open("session:1/listener:0").unwrap();
    device.close(id).unwrap();
    pump(&mut device, &mut relay, now);
    assert_eq!(read_all(&mut relay, id), b"");
    assert!(!relay.moved_in(id));

    let id = device.open("session:1/listener:0").unwrap();
    pump(&mut device, &mut relay, now);
    let payload = Bytes::from_static(b"x");
    let late = [
        Frame::Moved { stream: id },
        Frame::Data {
            stream: id,
            payload,
        },
    ];
    assert_eq!(
        feed(&mut relay, &late, now),
        Err(ProtocolError::DataAfterClose(id))
    );
}

#[test]
fn dropping_an_unfinished_stream_cancels_it() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let id = relay.open("mapping:1").unwrap();
    pump(&mut relay, &mut device, now);
    relay.release(id);
    let events = pump(&mut relay, &mut device, now);
    assert_eq!(
        events,
        vec![Event::Reset {
            stream: id,
            reason: ResetReason::Cancelled
        }]
    );
}

#[test]
fn a_stream_reset_before_its_open_left_is_never_mentioned() {
    let now = Instant::now();
    let (mut relay, _device) = pair(now);
    let id = relay.open("mapping:1").unwrap();
    relay.write(id, b"data").unwrap();
    relay.reset(id, ResetReason::Cancelled);
    assert!(relay.poll_transmit().is_none());
    assert_eq!(relay.queued_data(), 0);
}

#[test]
fn late_frames_for_a_finished_stream_are_dropped() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let id = relay.open("mapping:1").unwrap();
    pump(&mut relay, &mut device, now);
    device.reset(id, ResetReason::Unreachable);
    // Data the relay wrote before it saw the reset.
    let late = Frame::Data {
        stream: id,
        payload: Bytes::from_static(b"late"),
    };
    assert_eq!(feed(&mut device, &[late], now), Ok(vec![]));
}

#[test]
fn too_many_streams_are_reset() {
    let now = Instant::now();
    let small = TunnelConfig {
        max_streams: 1,
        ..config()
    };
    let mut relay = Mux::new(Role::Relay, config(), now);
    let mut device = Mux::new(Role::Device, small, now);
    pump(&mut relay, &mut device, now);
    pump(&mut device, &mut relay, now);
    let first = relay.open("a:1").unwrap();
    let second = relay.open("a:1").unwrap();
    let events = pump(&mut relay, &mut device, now);
    assert_eq!(events.len(), 1);
    let events = pump(&mut device, &mut relay, now);
    assert_eq!(
        events,
        vec![Event::Reset {
            stream: second,
            reason: ResetReason::TooManyStreams
        }]
    );
    assert_ne!(first, second);
    assert_eq!(device.open("b:1"), Err(OpenError::TooManyStreams));
}

#[test]
fn impossible_states_are_protocol_errors() {
    let now = Instant::now();
    let hello = |version, role| {
        Frame::Hello(Hello {
            version,
            role,
            max_frame: 16 * 1024,
            keep_alive_ms: 1000,
        })
    };
    let open = |stream| Frame::Open {
        stream,
        target: "t:1".into(),
        window: 1,
    };
    let data = |stream| Frame::Data {
        stream,
        payload: Bytes::from_static(b"x"),
    };
    let relay_hello = hello(PROTOCOL_VERSION, Role::Relay);
    let cases: Vec<(Vec<Frame>, ProtocolError)> = vec![
        (vec![Frame::Ping { nonce: 1 }], ProtocolError::HelloExpected),
        (
            vec![relay_hello.clone(), relay_hello.clone()],
            ProtocolError::DuplicateHello,
        ),
        (
            vec![hello(2, Role::Relay)],
            ProtocolError::UnsupportedVersion(2),
        ),
        (
            vec![hello(PROTOCOL_VERSION, Role::Service)],
            ProtocolError::RoleConflict {
                ours: Role::Device,
                peer: Role::Service,
            },
        ),
        (
            vec![relay_hello.clone(), open(1)],
            ProtocolError::WrongParity(1),
        ),
        (
            vec![relay_hello.clone(), open(4), open(2)],
            ProtocolError::DuplicateOpen(2),
        ),
        (
            vec![relay_hello.clone(), open(2), open(2)],
            ProtocolError::DuplicateOpen(2),
        ),
        (
            vec![relay_hello.clone(), data(2)],
            ProtocolError::UnknownStream(2),
        ),
        (
            vec![relay_hello.clone(), data(1)],
            ProtocolError::UnknownStream(1),
        ),
        (
            vec![
                relay_hello.clone(),
                open(2),
                Frame::Close { stream: 2 },
                data(2),
            ],
            ProtocolError::DataAfterClose(2),
        ),
        (
            vec![
                relay_hello.clone(),
                open(2),
                Frame::Window {
                    stream: 2,
                    credit: MAX_WINDOW,
                },
            ],
            ProtocolError::WindowOverflow(2),
        ),
    ];
    for (frames, expected) in cases {
        let mut device = Mux::new(Role::Device, config(), now);
        assert_eq!(feed(&mut device, &frames, now), Err(expected), "{frames:?}");
        assert!(matches!(
            device.handle_message(Bytes::from_static(&[0xee; 9]), now),
            Err(ProtocolError::Decode(_))
        ));
    }
    assert_eq!(
        ProtocolError::UnsupportedVersion(9).go_away_reason(),
        GoAwayReason::UnsupportedVersion
    );
}

#[test]
fn pings_when_quiet_and_is_dead_after_silence() {
    let start = Instant::now();
    let (mut relay, mut device) = pair(start);
    let at = |secs| start + Duration::from_secs(secs);
    assert!(matches!(relay.poll_timers(at(1)), Liveness::Alive { .. }));
    assert!(relay.poll_transmit().is_none(), "no ping before it is due");
    let Liveness::Alive { next_check } = relay.poll_timers(at(20)) else {
        panic!("dead too early");
    };
    assert_eq!(next_check, at(40));
    // The device answers the ping, which keeps the relay's view of it alive.
    let message = relay.poll_transmit().unwrap();
    device.handle_message(message, at(20)).unwrap();
    let pong = device.poll_transmit().unwrap();
    assert_eq!(
        crate::frame::decode_message(pong.clone(), MIN_MAX_FRAME).unwrap(),
        vec![Frame::Pong { nonce: 1 }]
    );
    relay.handle_message(pong, at(21)).unwrap();
    assert!(matches!(relay.poll_timers(at(60)), Liveness::Alive { .. }));
    // Then silence.
    assert_eq!(
        relay.poll_timers(at(66)),
        Liveness::Dead {
            silent_for: Duration::from_secs(45)
        }
    );
}

#[test]
fn pings_as_often_as_the_peer_asks() {
    let now = Instant::now();
    let mut relay = Mux::new(Role::Relay, config(), now);
    let eager = Frame::Hello(Hello {
        version: PROTOCOL_VERSION,
        role: Role::Device,
        max_frame: MIN_MAX_FRAME,
        keep_alive_ms: 5000,
    });
    feed(&mut relay, &[eager], now).unwrap();
    let _hello = relay.poll_transmit();
    relay.poll_timers(now + Duration::from_secs(5));
    assert!(
        relay.poll_transmit().is_some(),
        "ping at the peer's interval"
    );
}

#[test]
fn an_accepted_stream_gets_the_larger_configured_window() {
    let now = Instant::now();
    let wide = TunnelConfig {
        receive_window: 4 * INITIAL_WINDOW,
        ..config()
    };
    let mut relay = Mux::new(Role::Relay, config(), now);
    let mut device = Mux::new(Role::Device, wide, now);
    pump(&mut relay, &mut device, now);
    pump(&mut device, &mut relay, now);
    let id = relay.open("a:1").unwrap();
    pump(&mut relay, &mut device, now);
    device.accept(id);
    pump(&mut device, &mut relay, now);
    let big = vec![0u8; 8 * INITIAL_WINDOW as usize];
    assert_eq!(relay.write(id, &big).unwrap(), 4 * INITIAL_WINDOW as usize);
}

#[test]
fn data_is_split_to_the_peers_frame_size_and_packed_into_messages() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let id = relay.open("a:1").unwrap();
    relay.write(id, &[5u8; 200_000]).unwrap();
    let mut messages = 0;
    while let Some(message) = relay.poll_transmit() {
        assert!(message.len() <= config().max_message);
        for frame in crate::frame::decode_message(message.clone(), 64 * 1024).unwrap() {
            assert!(frame.encoded_len() <= 64 * 1024 + crate::frame::HEADER_LEN);
        }
        device.handle_message(message, now).unwrap();
        messages += 1;
    }
    assert!(messages >= 1);
    assert_eq!(read_all(&mut device, id), vec![5u8; 200_000]);
}

#[test]
fn a_sent_message_buffer_carries_the_next_message_unless_it_is_far_too_large() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let id = relay.open("a:1").unwrap();
    let mut spares = Vec::new();
    relay.write(id, &[1u8; 100_000]).unwrap();
    let first = relay.poll_transmit_in(&mut spares).unwrap();
    let first_at = first.as_ptr();
    device.handle_message(first.clone(), now).unwrap();
    assert_eq!(read_all(&mut device, id), vec![1u8; 100_000]);
    // What the writer does once the transport has let go of the message.
    spares.push(first.try_into_mut().unwrap());

    relay.write(id, &[2u8; 100_000]).unwrap();
    let second = relay.poll_transmit_in(&mut spares).unwrap();
    assert_eq!(
        second.as_ptr(),
        first_at,
        "the spare buffer is written over"
    );
    assert!(spares.is_empty());
    device.handle_message(second, now).unwrap();
    assert_eq!(read_all(&mut device, id), vec![2u8; 100_000]);

    // A small message (a keep-alive, a `Close`) does not keep a bulk-sized buffer alive.
    let mut spares = vec![BytesMut::with_capacity(256 * 1024)];
    assert!(super::take_spare(&mut spares, 4 * 1024).is_none());
    assert!(spares.is_empty(), "the large spare was let go");
}

#[test]
fn a_full_outgoing_queue_makes_writers_wait() {
    let now = Instant::now();
    let tight = TunnelConfig {
        outbound_limit: 32 * 1024,
        ..config()
    };
    let mut relay = Mux::new(Role::Relay, tight, now);
    let id = relay.open("a:1").unwrap();
    assert_eq!(relay.write(id, &[0; 100_000]).unwrap(), 32 * 1024);
    assert_eq!(relay.write(id, &[0; 10]).unwrap(), 0);
    while relay.poll_transmit().is_some() {}
    assert_eq!(relay.write(id, &[0; 10]).unwrap(), 10);
}

#[test]
fn going_away_refuses_new_streams() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    relay.go_away(GoAwayReason::Revoked);
    assert_eq!(relay.open("a:1"), Err(OpenError::GoingAway));
    let events = pump(&mut relay, &mut device, now);
    assert_eq!(events, vec![Event::GoAway(GoAwayReason::Revoked)]);
}

#[test]
fn a_quiet_stream_overtakes_a_bulk_one_and_finds_room_in_a_full_queue() {
    let now = Instant::now();
    let mut small_queue = config();
    small_queue.outbound_limit = 128 * 1024;
    small_queue.max_message = 70 * 1024;
    let mut relay = Mux::new(Role::Relay, small_queue.clone(), now);
    let mut device = Mux::new(Role::Device, small_queue, now);
    pump(&mut relay, &mut device, now);
    pump(&mut device, &mut relay, now);
    let bulk = relay.open("a:1").unwrap();
    let quiet = relay.open("a:2").unwrap();
    // The bulk stream fills the queue to its limit.
    assert_eq!(
        relay.write(bulk, &vec![7u8; 1024 * 1024]).unwrap(),
        128 * 1024
    );
    assert_eq!(
        relay.write(bulk, &[7u8; 10]).unwrap(),
        0,
        "the bulk stream waits"
    );
    // The quiet stream still gets its bytes in.
    assert_eq!(relay.write(quiet, b"ls -l\n").unwrap(), 6);
    // And they leave after at most one frame of the bulk stream.
    let mut order = Vec::new();
    while let Some(message) = relay.poll_transmit() {
        for frame in crate::frame::decode_message(message, 64 * 1024).unwrap() {
            if let Frame::Data { stream, .. } = frame {
                order.push(stream);
            }
        }
    }
    let quiet_at = order.iter().position(|s| *s == quiet).unwrap();
    assert!(
        quiet_at <= 1,
        "the quiet stream's data left at {quiet_at}: {order:?}"
    );
    assert_eq!(relay.queued_data(), 0);
}

#[test]
fn bytes_written_whole_are_framed_without_a_copy_and_read_back_as_slices() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let id = relay.open("mapping:3").unwrap();
    let sent = Bytes::from(
        (0..100 * 1024)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    // The peer accepts 64 KiB frames: two frames, both slices of `sent`.
    assert_eq!(relay.write_bytes(id, &sent).unwrap(), sent.len());
    let queued: Vec<_> = relay.stream_out[&id]
        .frames
        .iter()
        .filter_map(|frame| match frame {
            Frame::Data { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[0].as_ptr(), sent.as_ptr());
    assert_eq!(queued[1].as_ptr(), sent[64 * 1024..].as_ptr());
    pump(&mut relay, &mut device, now);
    // Read back in pieces of at most `max`, each a slice of the message it came in.
    let first = device.read_bytes(id, 1000).unwrap().unwrap();
    assert_eq!(first.len(), 1000);
    let second = device.read_bytes(id, usize::MAX).unwrap().unwrap();
    assert_eq!(second.as_ptr(), first[1000..].as_ptr());
    let mut got = [first, second].concat();
    for _ in 0..100 {
        let Some(piece) = device.read_bytes(id, usize::MAX).unwrap() else {
            break;
        };
        assert!(!piece.is_empty(), "the stream is still open");
        got.extend_from_slice(&piece);
    }
    assert!(
        got == sent,
        "the bytes came back in another order or changed"
    );
    // Nothing more until the writer closes; then the end of the stream.
    relay.close(id).unwrap();
    pump(&mut relay, &mut device, now);
    assert_eq!(
        device.read_bytes(id, usize::MAX).unwrap(),
        Some(Bytes::new())
    );
}

#[test]
fn reads_by_slices_grant_credit_back_once_half_the_window_is_read() {
    let now = Instant::now();
    let (mut relay, mut device) = pair(now);
    let id = relay.open("mapping:3").unwrap();
    let big = Bytes::from(vec![1u8; INITIAL_WINDOW as usize + 5000]);
    // Only the initial window is taken; the rest waits for credit.
    assert_eq!(
        relay.write_bytes(id, &big).unwrap(),
        INITIAL_WINDOW as usize
    );
    assert_eq!(relay.write_bytes(id, &big.slice(1..)).unwrap(), 0);
    pump(&mut relay, &mut device, now);
    // Pieces of at most 10,000 bytes never cross the 64 KiB frames, so after 131,072
    // bytes (two frames) exactly half the window has been read: one grant of that much.
    // Reading on to 200,000 grants nothing more.
    let mut read = 0;
    for _ in 0..100 {
        let piece = device.read_bytes(id, 10_000).unwrap().unwrap();
        assert!(!piece.is_empty(), "a window's worth was sent");
        read += piece.len();
        if read >= 200_000 {
            break;
        }
    }
    pump(&mut device, &mut relay, now);
    assert_eq!(
        relay.streams[&id].send_credit,
        u64::from(INITIAL_WINDOW / 2)
    );
    assert_eq!(relay.write_bytes(id, &big.slice(..5000)).unwrap(), 5000);
}
