use super::*;

const MAX: u32 = 64 * 1024;

fn all_frames() -> Vec<Frame> {
    vec![
        Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role: Role::Device,
            max_frame: MAX,
            keep_alive_ms: 20_000,
        }),
        Frame::Open {
            stream: 1,
            target: "mapping:3".into(),
            window: 256 * 1024,
        },
        Frame::Open {
            stream: 2,
            target: "10.0.0.7:22".into(),
            window: 0,
        },
        Frame::Data {
            stream: 1,
            payload: Bytes::from_static(b"hello over the tunnel"),
        },
        Frame::Window {
            stream: 1,
            credit: 4096,
        },
        Frame::Close { stream: 7 },
        Frame::Moved { stream: 9 },
        Frame::Reset {
            stream: 3,
            reason: ResetReason::Refused,
        },
        Frame::Reset {
            stream: 3,
            reason: ResetReason::TooManyStreams,
        },
        Frame::Ping { nonce: u64::MAX },
        Frame::Pong { nonce: 42 },
        Frame::GoAway {
            reason: GoAwayReason::Revoked,
        },
        Frame::GoAway {
            reason: GoAwayReason::KeepAliveTimeout,
        },
    ]
}

fn raw(kind: u8, stream: u32, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(kind);
    out.put_u32(stream);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.freeze()
}

fn decode_one(bytes: Bytes) -> Result<Vec<Frame>, DecodeError> {
    decode_message(bytes, MAX)
}

#[test]
fn every_frame_round_trips_alone_and_in_one_message() {
    let frames = all_frames();
    for frame in &frames {
        let bytes = encode_message(std::slice::from_ref(frame));
        assert_eq!(bytes.len(), frame.encoded_len());
        assert_eq!(decode_one(bytes).unwrap(), vec![frame.clone()]);
    }
    let message = encode_message(&frames);
    assert_eq!(decode_one(message).unwrap(), frames);
}

#[test]
fn every_reason_and_role_round_trips() {
    for code in 1..=7 {
        let reason = ResetReason::from_code(code).unwrap();
        assert_eq!(reason.code(), code);
    }
    for code in 1..=6 {
        let reason = GoAwayReason::from_code(code).unwrap();
        assert_eq!(reason.code(), code);
    }
    for code in 1..=3 {
        assert_eq!(Role::from_code(code).unwrap().code(), code);
    }
}

#[test]
fn stream_ids_never_collide_between_endpoint_and_relay() {
    assert!(Role::Device.opens(1) && Role::Service.opens(3));
    assert!(Role::Relay.opens(2) && !Role::Relay.opens(1));
    assert!(!Role::Device.opens(0) && !Role::Relay.opens(0));
}

#[test]
fn malformed_input_gets_a_typed_error() {
    let hello = |role: u8, max: u32, keep: u32| {
        let mut p = BytesMut::new();
        p.put_u16(1);
        p.put_u8(role);
        p.put_u32(max);
        p.put_u32(keep);
        raw(TYPE_HELLO, 0, &p)
    };
    let open = |window: u32, declared: u16, target: &[u8]| {
        let mut p = BytesMut::new();
        p.put_u32(window);
        p.put_u16(declared);
        p.put_slice(target);
        raw(TYPE_OPEN, 1, &p)
    };
    let cases: Vec<(Bytes, DecodeError)> = vec![
        (Bytes::new(), DecodeError::EmptyMessage),
        (
            Bytes::from_static(&[1, 0, 0]),
            DecodeError::Truncated {
                needed: 9,
                available: 3,
            },
        ),
        (raw(0x00, 0, &[]), DecodeError::UnknownType(0)),
        (raw(0x0b, 0, &[]), DecodeError::UnknownType(0x0b)),
        (raw(0xff, 0, &[0; 64]), DecodeError::UnknownType(0xff)),
        (
            {
                let mut b = BytesMut::from(&raw(TYPE_DATA, 1, b"abc")[..]);
                b.truncate(10);
                b.freeze()
            },
            DecodeError::Truncated {
                needed: 12,
                available: 10,
            },
        ),
        (
            raw(TYPE_DATA, 1, &vec![0; MAX as usize + 1]),
            DecodeError::PayloadTooLarge {
                len: MAX + 1,
                max: MAX,
            },
        ),
        (raw(TYPE_DATA, 1, &[]), DecodeError::EmptyData),
        (
            raw(TYPE_DATA, 0, b"x"),
            DecodeError::BadStreamId {
                frame: "data",
                stream: 0,
                expected: "a stream id other than 0",
            },
        ),
        (
            raw(TYPE_PING, 5, &[0; 8]),
            DecodeError::BadStreamId {
                frame: "ping",
                stream: 5,
                expected: "stream id 0",
            },
        ),
        (
            raw(TYPE_PONG, 0, &[0; 7]),
            DecodeError::BadLength {
                frame: "pong",
                len: 7,
            },
        ),
        (
            raw(TYPE_CLOSE, 1, &[0]),
            DecodeError::BadLength {
                frame: "close",
                len: 1,
            },
        ),
        (
            raw(TYPE_WINDOW, 1, &[0, 0, 0, 0]),
            DecodeError::BadWindow(0),
        ),
        (
            raw(TYPE_WINDOW, 1, &(MAX_WINDOW + 1).to_be_bytes()),
            DecodeError::BadWindow(MAX_WINDOW + 1),
        ),
        (raw(TYPE_RESET, 1, &[0]), DecodeError::UnknownResetReason(0)),
        (
            raw(TYPE_RESET, 1, &[99]),
            DecodeError::UnknownResetReason(99),
        ),
        (
            raw(TYPE_GO_AWAY, 0, &[0]),
            DecodeError::UnknownGoAwayReason(0),
        ),
        (
            raw(TYPE_GO_AWAY, 0, &[0; 2]),
            DecodeError::BadLength {
                frame: "go-away",
                len: 2,
            },
        ),
        (
            raw(TYPE_HELLO, 0, &[0; 12]),
            DecodeError::BadLength {
                frame: "hello",
                len: 12,
            },
        ),
        (hello(9, MAX, 1000), DecodeError::UnknownRole(9)),
        (hello(1, 1024, 1000), DecodeError::BadMaxFrame(1024)),
        (
            hello(1, MAX_MAX_FRAME + 1, 1000),
            DecodeError::BadMaxFrame(MAX_MAX_FRAME + 1),
        ),
        (hello(1, MAX, 0), DecodeError::BadKeepAlive(0)),
        (
            hello(1, MAX, MAX_KEEP_ALIVE_MS + 1),
            DecodeError::BadKeepAlive(MAX_KEEP_ALIVE_MS + 1),
        ),
        (
            open(1, 5, b"abc"),
            DecodeError::BadLength {
                frame: "open",
                len: 9,
            },
        ),
        (open(1, 0, b""), DecodeError::BadTarget),
        (open(1, 2, &[0xff, 0xfe]), DecodeError::BadTarget),
        (open(1, 4, b"a\nb:"), DecodeError::BadTarget),
        (
            open(MAX_WINDOW + 1, 3, b"a:1"),
            DecodeError::BadWindow(MAX_WINDOW + 1),
        ),
        (
            raw(TYPE_OPEN, 1, &[0; 4]),
            DecodeError::BadLength {
                frame: "open",
                len: 4,
            },
        ),
        (
            raw(TYPE_OPEN, 1, &vec![0; 6 + MAX_TARGET_LEN + 1]),
            DecodeError::BadLength {
                frame: "open",
                len: 6 + MAX_TARGET_LEN as u32 + 1,
            },
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(decode_one(bytes.clone()), Err(expected), "{bytes:?}");
    }
}

#[test]
fn a_bad_frame_after_good_ones_rejects_the_message() {
    let mut message = BytesMut::from(&encode_message(&all_frames())[..]);
    message.put_slice(&raw(0x42, 0, &[]));
    assert_eq!(
        decode_one(message.freeze()),
        Err(DecodeError::UnknownType(0x42))
    );
}

#[test]
fn a_huge_declared_length_is_refused_before_reading() {
    let mut header = BytesMut::new();
    header.put_u8(TYPE_DATA);
    header.put_u32(1);
    header.put_u32(u32::MAX);
    assert_eq!(
        decode_one(header.freeze()),
        Err(DecodeError::PayloadTooLarge {
            len: u32::MAX,
            max: MAX
        })
    );
}

#[test]
fn a_moved_frame_names_a_stream_and_carries_nothing() {
    assert_eq!(
        decode_one(raw(0x0a, 5, b"")).unwrap(),
        vec![Frame::Moved { stream: 5 }]
    );
    assert!(matches!(
        decode_one(raw(0x0a, 0, b"")),
        Err(DecodeError::BadStreamId { .. })
    ));
    assert!(matches!(
        decode_one(raw(0x0a, 5, b"x")),
        Err(DecodeError::BadLength { frame: "moved", .. })
    ));
}
