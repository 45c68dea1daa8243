//! The lane message decoder (`portico_tunnel::lane`) on arbitrary bytes: no panic, exactly
//! one frame per accepted message, stream 1 only (but for `Moved`, which names the tunnel
//! stream a lane takes over), and what decodes encodes back to the same bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use portico_tunnel::lane::{decode, encode, LANE_STREAM};
use portico_tunnel::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode(Bytes::copy_from_slice(data)) {
        match &frame {
            Frame::Ping { .. } | Frame::Pong { .. } => {}
            Frame::Moved { stream } => assert_ne!(*stream, 0),
            Frame::Hello(_) | Frame::Window { .. } | Frame::GoAway { .. } => {
                panic!("a frame lanes do not carry was accepted")
            }
            other => assert_eq!(other.stream(), LANE_STREAM),
        }
        assert_eq!(&encode(&frame)[..], data);
    }
});
