//! The tunnel frame decoder on arbitrary bytes: no panic, and whatever decodes encodes
//! back to the same bytes (the codec has one wire form per frame).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_tunnel::frame::{decode_message, encode_message, MIN_MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let message = bytes::Bytes::copy_from_slice(data);
    let Ok(frames) = decode_message(message, MIN_MAX_FRAME) else {
        return;
    };
    assert!(!frames.is_empty());
    assert_eq!(&encode_message(&frames)[..], data);
});
