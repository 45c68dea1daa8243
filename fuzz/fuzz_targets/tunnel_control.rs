//! The control-channel parser on arbitrary bytes: no panic, and whatever is accepted
//! survives a round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_tunnel::control::ControlMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = ControlMessage::decode(data) else {
        return;
    };
    let text = message.encode();
    let again = ControlMessage::decode(text.as_bytes()).expect("an encoded message parses");
    assert_eq!(again, message);
});
