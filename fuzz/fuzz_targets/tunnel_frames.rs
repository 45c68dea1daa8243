//! The tunnel frame decoder and the multiplexer behind it, on arbitrary bytes.
//!
//! Every input is first decoded as one message: no panic, and whatever decodes encodes back
//! to the same bytes (the codec has one wire form per frame). Then the input, cut into
//! messages at length bytes it carries, is fed to a multiplexer that already has a peer,
//! as a hostile peer would send it; between messages the local side reads, writes, closes,
//! moves and opens, so frames meet streams in every state. Errors are expected; panics and
//! broken invariants are not.
#![no_main]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use portico_tunnel::frame::{decode_message, encode_message, Frame, Hello, MIN_MAX_FRAME};
use portico_tunnel::mux::{Event, Mux, TunnelConfig};
use portico_tunnel::Role;

fuzz_target!(|data: &[u8]| {
    let message = Bytes::copy_from_slice(data);
    if let Ok(frames) = decode_message(message, MIN_MAX_FRAME) {
        assert!(!frames.is_empty());
        assert_eq!(&encode_message(&frames)[..], data);
    }
    drive_mux(data);
});

fn drive_mux(data: &[u8]) {
    let start = Instant::now();
    let config = TunnelConfig {
        max_frame: MIN_MAX_FRAME,
        max_streams: 8,
        outbound_limit: 64 * 1024,
        ..TunnelConfig::default()
    };
    let mut mux = Mux::new(Role::Device, config, start);
    let mut hello = BytesMut::new();
    Frame::Hello(Hello {
        version: 1,
        role: Role::Relay,
        max_frame: MIN_MAX_FRAME,
        keep_alive_ms: 1000,
    })
    .encode(&mut hello);
    if mux.handle_message(hello.freeze(), start).is_err() {
        panic!("a valid hello is refused");
    }
    let mut streams = Vec::new();
    let mut rest = data;
    let mut step = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        step += 1;
        let len = (len as usize * 3).min(tail.len());
        let (message, tail) = tail.split_at(len);
        rest = tail;
        let now = start + Duration::from_millis(step * 300);
        let events = match mux.handle_message(Bytes::copy_from_slice(message), now) {
            Ok(events) => events,
            Err(_) => return,
        };
        for event in events {
            if let Event::Opened { stream, .. } = event {
                if step % 3 == 0 {
                    mux.reset(stream, portico_tunnel::ResetReason::Refused);
                } else {
                    mux.accept(stream);
                    streams.push(stream);
                }
            }
        }
        act(
            &mut mux,
            &mut streams,
            step,
            message.first().copied().unwrap_or(0),
        );
        let _ = mux.poll_timers(now);
        // What the multiplexer sends must itself decode.
        while let Some(out) = mux.poll_transmit() {
            if decode_message(out, MIN_MAX_FRAME).is_err() {
                panic!("the multiplexer sent an undecodable message");
            }
        }
        assert_eq!(mux.queued_data(), 0);
    }
}

fn act(mux: &mut Mux, streams: &mut Vec<u32>, step: u64, choice: u8) {
    if let Ok(id) = mux.open("mapping:1") {
        if choice % 2 == 0 {
            streams.push(id);
        } else {
            mux.release(id);
        }
    }
    let mut buf = [0u8; 4096];
    for &id in streams.iter() {
        match (choice as u64 + step + u64::from(id)) % 5 {
            0 => {
                let _ = mux.read(id, &mut buf);
            }
            1 => {
                let _ = mux.write(id, &[0u8; 3000]);
            }
            2 => {
                let _ = mux.close(id);
            }
            3 => {
                let _ = mux.move_away(id);
                let _ = mux.moved_in(id);
            }
            _ => {}
        }
    }
    if choice % 7 == 0 {
        if let Some(id) = streams.pop() {
            mux.release(id);
        }
    }
}
