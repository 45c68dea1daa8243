//! The WebSocket frame tracker on arbitrary bytes read in arbitrary pieces: no panic, and
//! it finds the same frames, ending at the same offsets, as a whole-buffer parse does, no
//! matter how the bytes are cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_gateway::websocket::frames::{FrameHeader, FrameTracker};

/// Frames of `bytes` parsed in one go: (end offset, header) of each complete frame.
fn reference(bytes: &[u8]) -> Vec<(usize, FrameHeader)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        let Some(&[b0, b1]) = bytes
            .get(pos..pos + 2)
            .map(|s| <&[u8; 2]>::try_from(s).unwrap())
        else {
            return out;
        };
        let code = b1 & 0x7F;
        let masked = b1 & 0x80 != 0;
        let ext = match code {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + ext + if masked { 4 } else { 0 };
        let Some(header) = bytes.get(pos..pos + header_len) else {
            return out;
        };
        let payload_len = match code {
            126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
            127 => u64::from_be_bytes(header[2..10].try_into().unwrap()),
            n => u64::from(n),
        };
        let mask = masked.then(|| header[2 + ext..2 + ext + 4].try_into().unwrap());
        let end = ((pos + header_len) as u64).saturating_add(payload_len);
        if end > bytes.len() as u64 {
            return out;
        }
        pos = end as usize;
        out.push((
            pos,
            FrameHeader {
                fin: b0 & 0x80 != 0,
                rsv: (b0 >> 4) & 7,
                opcode: b0 & 0x0F,
                mask,
                payload_len,
            },
        ));
    }
}

fuzz_target!(|data: &[u8]| {
    // The first bytes choose the read sizes; the rest is the stream.
    let Some((&cuts, rest)) = data.split_first() else {
        return;
    };
    let cuts = usize::from(cuts % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(cuts);
    let sizes: Vec<usize> = if sizes.is_empty() {
        vec![stream.len().max(1)]
    } else {
        sizes.iter().map(|&s| usize::from(s) + 1).collect()
    };

    let mut tracker = FrameTracker::new();
    let mut found = Vec::new();
    let mut offset = 0usize;
    let mut step = 0usize;
    while offset < stream.len() {
        let size = sizes[step % sizes.len()].min(stream.len() - offset);
        step += 1;
        let chunk = &stream[offset..offset + size];
        let mut pos = 0;
        while pos < chunk.len() {
            let p = tracker.advance(&chunk[pos..]);
            assert!(p.consumed <= chunk.len() - pos);
            assert!(p.consumed > 0, "no progress on a non-empty input");
            pos += p.consumed;
            match p.completed {
                Some(header) => {
                    assert!(tracker.at_boundary());
                    found.push((offset + pos, header));
                }
                None => assert_eq!(pos, chunk.len(), "stopped early without completing a frame"),
            }
        }
        offset += size;
    }
    let expected = reference(stream);
    assert_eq!(found, expected);
    assert_eq!(tracker.frames(), expected.len() as u64);
    // Between frames exactly when the last complete frame ends the stream.
    let last_end = expected.last().map_or(0, |(end, _)| *end);
    assert_eq!(tracker.at_boundary(), last_end == stream.len());
});
