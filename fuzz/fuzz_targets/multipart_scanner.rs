//! The multipart part scanner on arbitrary bodies fed in arbitrary pieces, checked
//! against a plain reference: split the body at every strict delimiter line, and a
//! body fails exactly when one of its pieces is over the limit. Also the Content-Type
//! reading: a boundary it accepts is 1 to 70 visible ASCII characters.
//!
//! Input: a limit byte, a piece-size byte, a Content-Type value, a NUL, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_gateway::limits::multipart::{framing, Framing, PartScanner};

/// Whether every piece between strict delimiter lines is at most `max` bytes.
fn reference_ok(body: &[u8], framing: &Framing, max: u64) -> bool {
    let Framing::Boundary(boundary) = framing else {
        return body.len() as u64 <= max;
    };
    // The CRLF imagined in front lets a body start with `--boundary`.
    let text = [b"\r\n", body].concat();
    let delimiter = [b"\r\n--", boundary.as_slice()].concat();
    let line = delimiter.len() + 2;
    let (mut start, mut i) = (2usize, 0usize);
    while i + line <= text.len() {
        let tail = &text[i + delimiter.len()..i + line];
        if text[i..].starts_with(&delimiter) && (tail == b"\r\n" || tail == b"--") {
            if i.saturating_sub(start) as u64 > max {
                return false;
            }
            i += line;
            start = i;
        } else {
            i += 1;
        }
    }
    (text.len().saturating_sub(start)) as u64 <= max
}

fuzz_target!(|data: &[u8]| {
    let [limit, pieces, rest @ ..] = data else {
        return;
    };
    let Some(nul) = rest.iter().position(|&b| b == 0) else {
        return;
    };
    let (content_type, body) = (&rest[..nul], &rest[nul + 1..]);
    let mut framing = framing(std::iter::once(content_type));
    if let Framing::Boundary(b) = &framing {
        assert!(
            !b.is_empty() && b.len() <= 70,
            "boundary length {}",
            b.len()
        );
        assert!(
            b.iter().all(|&c| (0x20..0x7f).contains(&c)),
            "boundary {b:?}"
        );
    }
    if framing == Framing::NotMultipart {
        framing = Framing::Boundary(b"ab-".to_vec());
    }
    let max = u64::from(*limit);
    let sizes = [1 + usize::from(pieces & 7), 1 + usize::from(pieces >> 3)];
    let mut scanner = PartScanner::new(&framing, max);
    let (mut at, mut turn, mut ok) = (0, 0, true);
    while ok && at < body.len() {
        let end = (at + sizes[turn % 2]).min(body.len());
        ok = scanner.feed(&body[at..end]).is_ok();
        at = end;
        turn += 1;
    }
    let ok = ok && scanner.finish().is_ok();
    assert_eq!(
        ok,
        reference_ok(body, &framing, max),
        "limit {max}, pieces {sizes:?}"
    );
});
