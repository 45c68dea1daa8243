//! An incremental reader of RFC 6455 frame headers (§5.2). The relay copies a WebSocket's
//! bytes untouched; this follows them to know where each frame ends, so that the gateway
//! can put its own pings and close frames between two frames and never inside one.
//! Payload bytes are only counted, never decoded or unmasked.

/// Opcodes the relay cares about (RFC 6455 §5.2, §5.5).
pub const OPCODE_CLOSE: u8 = 0x8;
pub const OPCODE_PING: u8 = 0x9;
pub const OPCODE_PONG: u8 = 0xA;

/// The longest frame header: 2 bytes, a 64-bit length and a masking key.
const MAX_HEADER: usize = 2 + 8 + 4;

/// One frame's header, as read off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// The three RSV bits (e.g. RSV1 for permessage-deflate), as the top bits of a nibble.
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

impl FrameHeader {
    /// Bytes this header took on the wire.
    pub fn header_len(&self) -> usize {
        header_len(self.payload_len_code(), self.mask.is_some())
    }

    fn payload_len_code(&self) -> u8 {
        match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 126,
            _ => 127,
        }
    }
}

fn header_len(len_code: u8, masked: bool) -> usize {
    let extended = match len_code {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + extended + if masked { 4 } else { 0 }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a header; `have` bytes of it are in `header`.
    Header { have: usize },
    /// Skipping the payload of `frame`.
    Payload { frame: FrameHeader, remaining: u64 },
}

/// What one call to [`FrameTracker::advance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input that were consumed.
    pub consumed: usize,
    /// The frame that ended with the last consumed byte, if one did.
    pub completed: Option<FrameHeader>,
}

/// Follows the frames of one direction of a WebSocket.
#[derive(Debug, Clone)]
pub struct FrameTracker {
    state: State,
    header: [u8; MAX_HEADER],
    frames: u64,
}

impl Default for FrameTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameTracker {
    pub fn new() -> FrameTracker {
        FrameTracker {
            state: State::Header { have: 0 },
            header: [0; MAX_HEADER],
            frames: 0,
        }
    }

    /// Whether the bytes seen so far end exactly between two frames.
    pub fn at_boundary(&self) -> bool {
        self.state == State::Header { have: 0 }
    }

    /// The frame being read now, once its header is complete.
    pub fn current(&self) -> Option<FrameHeader> {
        match self.state {
            State::Payload { frame, .. } => Some(frame),
            State::Header { .. } => None,
        }
    }

    /// Frames completed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Consumes `bytes` up to the end of the next frame that completes in them (so that a
    /// caller can act at that boundary), or all of them if none does.
    pub fn advance(&mut self, bytes: &[u8]) -> Progress {
        let mut pos = 0;
        loop {
            match self.state {
                State::Header { have } => {
                    // The common case: a whole header at a boundary, read in place.
                    let whole = if have == 0 {
                        whole_header(&bytes[pos..])
                    } else {
                        None
                    };
                    if let Some(len) = whole {
                        let frame = parse_header(&bytes[pos..pos + len]);
                        pos += len;
                        if let Some(done) = self.begin(frame, pos) {
                            return done;
                        }
                        continue;
                    }
                    if pos == bytes.len() {
                        return Progress {
                            consumed: pos,
                            completed: None,
                        };
                    }
                    let needed = if have < 2 {
                        2
                    } else {
                        header_len(self.header[1] & 0x7F, self.header[1] & 0x80 != 0)
                    };
                    let take = (needed - have).min(bytes.len() - pos);
                    self.header[have..have + take].copy_from_slice(&bytes[pos..pos + take]);
                    pos += take;
                    let have = have + take;
                    self.state = State::Header { have };
                    // With the first two bytes in, the header's full length is known.
                    let full = header_len(self.header[1] & 0x7F, self.header[1] & 0x80 != 0);
                    if have < 2 || have < full {
                        continue;
                    }
                    let frame = parse_header(&self.header[..have]);
                    if let Some(done) = self.begin(frame, pos) {
                        return done;
                    }
                }
                State::Payload { frame, remaining } => {
                    let available = (bytes.len() - pos) as u64;
                    if available < remaining {
                        self.state = State::Payload {
                            frame,
                            remaining: remaining - available,
                        };
                        return Progress {
                            consumed: bytes.len(),
                            completed: None,
                        };
                    }
                    // `remaining` is at most `available` here, which came from a usize.
                    pos += remaining as usize;
                    return self.complete(frame, pos);
                }
            }
        }
    }

    /// Starts on `frame`'s payload, having consumed its header; a frame without payload
    /// is complete at once.
    fn begin(&mut self, frame: FrameHeader, consumed: usize) -> Option<Progress> {
        if frame.payload_len == 0 {
            return Some(self.complete(frame, consumed));
        }
        self.state = State::Payload {
            frame,
            remaining: frame.payload_len,
        };
        None
    }

    fn complete(&mut self, frame: FrameHeader, consumed: usize) -> Progress {
        self.state = State::Header { have: 0 };
        self.frames += 1;
        Progress {
            consumed,
            completed: Some(frame),
        }
    }
}

/// The length of the header at the start of `bytes`, if all of it is there.
fn whole_header(bytes: &[u8]) -> Option<usize> {
    let second = *bytes.get(1)?;
    let len = header_len(second & 0x7F, second & 0x80 != 0);
    (bytes.len() >= len).then_some(len)
}

/// Reads a complete header.
fn parse_header(h: &[u8]) -> FrameHeader {
    let masked = h[1] & 0x80 != 0;
    let code = h[1] & 0x7F;
    let (payload_len, at) = match code {
        126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
        127 => (
            u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            10,
        ),
        n => (u64::from(n), 2),
    };
    let mask = masked.then(|| [h[at], h[at + 1], h[at + 2], h[at + 3]]);
    debug_assert_eq!(h.len(), header_len(code, masked));
    FrameHeader {
        fin: h[0] & 0x80 != 0,
        rsv: (h[0] >> 4) & 0x7,
        opcode: h[0] & 0x0F,
        mask,
        payload_len,
    }
}

/// Encodes a frame the gateway sends itself: a control frame with a short payload, masked
/// with `mask` when it goes to a server (RFC 6455 §5.3).
pub fn control_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    // Control frames carry at most 125 bytes (§5.5); callers pass less.
    let len = payload.len().min(125);
    let mut frame = Vec::with_capacity(2 + 4 + len);
    frame.push(0x80 | (opcode & 0x0F));
    frame.push(if mask.is_some() { 0x80 } else { 0 } | len as u8);
    match mask {
        Some(key) => {
            frame.extend_from_slice(&key);
            frame.extend(
                payload[..len]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[i % 4]),
            );
        }
        None => frame.extend_from_slice(&payload[..len]),
    }
    frame
}

/// The payload of a whole frame held in `frame` (header included), unmasked.
pub fn unmasked_payload(header: &FrameHeader, frame: &[u8]) -> Vec<u8> {
    let payload = frame.get(header.header_len()..).unwrap_or_default();
    match header.mask {
        Some(key) => payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect(),
        None => payload.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames as a peer would write them, with the header fields given.
    fn frame(opcode: u8, fin: bool, len: usize, mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match len {
            0..=125 => out.push(m | len as u8),
            126..=0xFFFF => {
                out.push(m | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(m | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        if let Some(key) = mask {
            out.extend_from_slice(&key);
        }
        out.extend(std::iter::repeat_n(0x5A, len));
        out
    }

    fn boundaries(tracker: &mut FrameTracker, bytes: &[u8], piece: usize) -> Vec<usize> {
        let mut ends = Vec::new();
        let mut offset = 0;
        for chunk in bytes.chunks(piece) {
            let mut pos = 0;
            while pos < chunk.len() {
                let p = tracker.advance(&chunk[pos..]);
                pos += p.consumed;
                if p.completed.is_some() {
                    ends.push(offset + pos);
                }
            }
            offset += chunk.len();
        }
        ends
    }

    #[test]
    fn finds_every_frame_end_whatever_the_read_sizes() {
        let frames = [
            frame(0x1, true, 0, None),
            frame(0x2, false, 125, Some([1, 2, 3, 4])),
            frame(0x0, true, 126, None),
            frame(0x2, true, 70_000, Some([9, 9, 9, 9])),
            frame(OPCODE_PING, true, 4, None),
            frame(0x1, true, 65_535, None),
        ];
        let mut expected = Vec::new();
        let mut bytes = Vec::new();
        for f in &frames {
            bytes.extend_from_slice(f);
            expected.push(bytes.len());
        }
        for piece in [1, 2, 3, 7, 13, 1000, bytes.len()] {
            let mut tracker = FrameTracker::new();
            assert_eq!(boundaries(&mut tracker, &bytes, piece), expected, "{piece}");
            assert!(tracker.at_boundary());
            assert_eq!(tracker.frames(), frames.len() as u64);
        }
    }

    #[test]
    fn reads_the_header_fields() {
        let bytes = frame(0x2, false, 70_000, Some([1, 2, 3, 4]));
        let mut tracker = FrameTracker::new();
        let p = tracker.advance(&bytes[..14]);
        assert_eq!(p.consumed, 14);
        assert_eq!(p.completed, None);
        assert!(!tracker.at_boundary());
        let header = tracker.current().unwrap();
        assert_eq!(
            header,
            FrameHeader {
                fin: false,
                rsv: 0,
                opcode: 0x2,
                mask: Some([1, 2, 3, 4]),
                payload_len: 70_000
            }
        );
        assert_eq!(header.header_len(), 14);
    }

    #[test]
    fn a_huge_declared_length_is_counted_not_allocated() {
        let mut tracker = FrameTracker::new();
        let mut header = vec![0x82, 127];
        header.extend_from_slice(&u64::MAX.to_be_bytes());
        let p = tracker.advance(&header);
        assert_eq!(p.consumed, 10);
        assert_eq!(tracker.current().unwrap().payload_len, u64::MAX);
        let p = tracker.advance(&[0; 4096]);
        assert_eq!(p.consumed, 4096);
        assert!(p.completed.is_none());
    }

    #[test]
    fn control_frames_are_encoded_and_read_back() {
        let key = [0xA1, 0xB2, 0xC3, 0xD4];
        for mask in [None, Some(key)] {
            let bytes = control_frame(OPCODE_CLOSE, &[0x03, 0xE9], mask);
            let mut tracker = FrameTracker::new();
            let p = tracker.advance(&bytes);
            assert_eq!(p.consumed, bytes.len());
            let header = p.completed.unwrap();
            assert_eq!(header.opcode, OPCODE_CLOSE);
            assert!(header.fin);
            assert_eq!(header.mask, mask);
            assert_eq!(unmasked_payload(&header, &bytes), vec![0x03, 0xE9]);
        }
    }
}
