//! Measuring the parts of a `multipart/form-data` body while it streams past (GW-13), so
//! that one part over the file size limit fails the request. Nothing is buffered or
//! changed: the scanner only looks at the bytes on their way to the backend.
//!
//! The scanner splits the body at delimiter lines (RFC 2046 §5.1.1) and measures every
//! piece between two of them, part headers included. It errs on the side of counting
//! more, never less, than any backend's parser could see in one part:
//! - every part counts, with a file name or without one: whether a part is "a file" is the
//!   backend's reading of headers the gateway would otherwise have to parse exactly as the
//!   backend does, and frameworks hold field parts in memory, which makes big ones worse;
//! - only the strict forms `CRLF--boundary CRLF` and `CRLF--boundary--` split (a lenient
//!   parser that also splits elsewhere sees smaller parts, never bigger ones);
//! - the preamble and the epilogue are measured like parts;
//! - a `multipart/form-data` body whose boundary cannot be read with certainty (missing,
//!   repeated, over 70 characters, with escapes or control characters) is measured whole,
//!   as one part.

/// The `multipart/form-data` framing a request declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Not `multipart/form-data`: nothing to measure beyond the request size.
    NotMultipart,
    /// Parts delimited by this boundary.
    Boundary(Vec<u8>),
    /// `multipart/form-data` without a boundary the gateway can be sure of.
    Unreadable,
}

/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;

/// The framing of a request with these `Content-Type` values.
pub fn framing<'a>(content_types: impl Iterator<Item = &'a [u8]>) -> Framing {
    let values: Vec<&[u8]> = content_types.collect();
    let is_form = |v: &&[u8]| media_type(v).eq_ignore_ascii_case(b"multipart/form-data");
    match values.as_slice() {
        [] => Framing::NotMultipart,
        [one] if is_form(one) => boundary(one).map_or(Framing::Unreadable, Framing::Boundary),
        [_] => Framing::NotMultipart,
        // Two Content-Type headers: which one a backend reads is anyone's guess.
        many if many.iter().any(is_form) => Framing::Unreadable,
        _ => Framing::NotMultipart,
    }
}

fn media_type(value: &[u8]) -> &[u8] {
    let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    value[..end].trim_ascii()
}

/// The one `boundary` parameter of a Content-Type value, if it is unambiguous.
fn boundary(value: &[u8]) -> Option<Vec<u8>> {
    let mut found = None;
    for (name, param) in parameters(value)? {
        if name.eq_ignore_ascii_case(b"boundary") {
            if found.is_some() {
                return None;
            }
            found = Some(param);
        }
    }
    found.filter(|b| {
        !b.is_empty() && b.len() <= MAX_BOUNDARY && b.iter().all(|&c| (0x20..0x7f).contains(&c))
    })
}

/// The `name=value` parameters after the media type; `None` when they do not parse.
/// Quoted values with backslash escapes are refused: parsers disagree about them.
fn parameters(value: &[u8]) -> Option<Vec<(&[u8], Vec<u8>)>> {
    let start = value.iter().position(|&b| b == b';')?;
    let mut rest = &value[start..];
    let mut out = Vec::new();
    loop {
        rest = rest.trim_ascii_start();
        while let Some(after) = rest.strip_prefix(b";") {
            rest = after.trim_ascii_start();
        }
        if rest.is_empty() {
            return Some(out);
        }
        let eq = rest.iter().position(|&b| b == b'=' || b == b';')?;
        if rest[eq] != b'=' {
            return None;
        }
        let name = rest[..eq].trim_ascii();
        rest = rest[eq + 1..].trim_ascii_start();
        let param = if let Some(quoted) = rest.strip_prefix(b"\"") {
            let close = quoted.iter().position(|&b| b == b'"' || b == b'\\')?;
            if quoted[close] == b'\\' {
                return None;
            }
            rest = &quoted[close + 1..];
            quoted[..close].to_vec()
        } else {
            let end = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
            let token = rest[..end].trim_ascii();
            if token.iter().any(|&b| b <= b' ' || b == b'"' || b >= 0x7f) {
                return None;
            }
            rest = &rest[end..];
            token.to_vec()
        };
        let after = rest.trim_ascii_start();
        if !after.is_empty() && !after.starts_with(b";") {
            return None;
        }
        out.push((name, param));
    }
}

/// A part grew past the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartTooLarge;

/// Follows a multipart body fed in pieces of any size and measures its parts.
#[derive(Debug, Clone)]
pub struct PartScanner {
    /// `CRLF--boundary`; empty when the body is measured whole.
    delimiter: Box<[u8]>,
    /// Bytes of the delimiter line (delimiter and two more bytes) matched so far.
    matched: usize,
    /// The first byte after the delimiter: `\r` (a next part) or `-` (the close).
    after: u8,
    /// How many of the matched bytes are the CRLF imagined in front of the body, which
    /// lets a body start with `--boundary`.
    imagined: usize,
    /// Bytes of the current part seen, a partially matched delimiter included.
    part: u64,
    max_part: u64,
}

impl PartScanner {
    pub fn new(framing: &Framing, max_part: u64) -> PartScanner {
        let (delimiter, matched) = match framing {
            Framing::Boundary(b) => ([b"\r\n--", b.as_slice()].concat().into(), 2),
            _ => (Box::default(), 0),
        };
        PartScanner {
            delimiter,
            matched,
            after: 0,
            imagined: matched,
            part: 0,
            max_part,
        }
    }

    /// Takes the next bytes of the body.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), PartTooLarge> {
        if self.delimiter.is_empty() {
            self.part += data.len() as u64;
            return self.check(self.part);
        }
        let mut i = 0;
        while i < data.len() {
            if self.matched == 0 {
                // Outside a delimiter only a CR can start one: skip to it.
                match memchr::memchr(b'\r', &data[i..]) {
                    Some(offset) => {
                        self.part += offset as u64;
                        i += offset;
                    }
                    None => {
                        self.part += (data.len() - i) as u64;
                        break;
                    }
                }
            }
            let byte = data[i];
            i += 1;
            self.part += 1;
            self.step(byte)?;
        }
        let pending = (self.matched - self.imagined) as u64;
        self.check(self.part - pending)
    }

    /// The body ended: a delimiter left half-matched was part of the content.
    pub fn finish(&mut self) -> Result<(), PartTooLarge> {
        self.check(self.part)
    }

    fn step(&mut self, byte: u8) -> Result<(), PartTooLarge> {
        let len = self.delimiter.len();
        let fits = match self.matched {
            m if m < len => byte == self.delimiter[m],
            m if m == len => {
                self.after = byte;
                byte == b'\r' || byte == b'-'
            }
            _ => (self.after, byte) == (b'\r', b'\n') || (self.after, byte) == (b'-', b'-'),
        };
        if !fits {
            // The boundary holds no CR, so the only delimiter that can start inside a
            // failed match starts at this byte.
            self.matched = usize::from(byte == b'\r');
            self.imagined = 0;
            return Ok(());
        }
        self.matched += 1;
        if self.matched == len + 2 {
            let line = (len + 2 - self.imagined) as u64;
            self.check(self.part - line)?;
            self.part = 0;
            self.matched = 0;
            self.imagined = 0;
        }
        Ok(())
    }

    fn check(&self, size: u64) -> Result<(), PartTooLarge> {
        match size > self.max_part {
            true => Err(PartTooLarge),
            false => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing_of(v: &str) -> Framing {
        framing(std::iter::once(v.as_bytes()))
    }

    #[test]
    fn boundaries_are_read_only_when_unambiguous() {
        assert_eq!(
            framing_of("multipart/form-data; boundary=abc"),
            Framing::Boundary(b"abc".to_vec())
        );
        assert_eq!(
            framing_of("Multipart/Form-Data;BOUNDARY=\"a b;c\"; charset=utf-8"),
            Framing::Boundary(b"a b;c".to_vec())
        );
        assert_eq!(framing_of("application/json"), Framing::NotMultipart);
        assert_eq!(
            framing_of("multipart/mixed; boundary=a"),
            Framing::NotMultipart
        );
        for unreadable in [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=a; boundary=b",
            "multipart/form-data; boundary=\"a\\\"b\"",
            "multipart/form-data; boundary=\"open",
            "multipart/form-data; boundary=a b",
        ] {
            assert_eq!(framing_of(unreadable), Framing::Unreadable, "{unreadable}");
        }
        let long = format!("multipart/form-data; boundary={}", "x".repeat(71));
        assert_eq!(framing_of(&long), Framing::Unreadable);
        let two = [&b"multipart/form-data; boundary=a"[..], b"text/plain"];
        assert_eq!(framing(two.into_iter()), Framing::Unreadable);
    }

    /// Feeds `body` in pieces of `piece` bytes; the verdict of the whole body.
    fn verdict(body: &[u8], max: u64, piece: usize) -> Result<(), PartTooLarge> {
        let mut s = PartScanner::new(&Framing::Boundary(b"XyZ".to_vec()), max);
        for chunk in body.chunks(piece) {
            s.feed(chunk)?;
        }
        s.finish()
    }

    #[test]
    fn parts_are_measured_across_piece_borders() {
        // Two parts: 4+2+28 header bytes... measured exactly by their content length.
        let part = |content: &str| {
            format!("Content-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\n{content}")
        };
        let header_len = part("").len() as u64;
        let body = format!(
            "--XyZ\r\n{}\r\n--XyZ\r\n{}\r\n--XyZ--\r\n",
            part("0123456789"),
            part("01234")
        );
        for piece in 1..body.len() {
            assert_eq!(
                verdict(body.as_bytes(), header_len + 10, piece),
                Ok(()),
                "{piece}"
            );
            assert_eq!(
                verdict(body.as_bytes(), header_len + 9, piece),
                Err(PartTooLarge),
                "{piece}"
            );
        }
    }

    #[test]
    fn lookalike_delimiters_do_not_split() {
        // `--XyZa` and a bare-LF delimiter are content; the part stays whole.
        let body = "--XyZ\r\n0123\r\n--XyZa\n--XyZ\n4567\r\n--XyZ--";
        let content = "0123\r\n--XyZa\n--XyZ\n4567".len() as u64;
        assert_eq!(verdict(body.as_bytes(), content, 3), Ok(()));
        assert_eq!(verdict(body.as_bytes(), content - 1, 3), Err(PartTooLarge));
    }

    #[test]
    fn a_trailing_half_delimiter_counts_when_the_body_ends() {
        let body = b"--XyZ\r\nab\r\n--Xy";
        let mut s = PartScanner::new(&Framing::Boundary(b"XyZ".to_vec()), 2);
        assert_eq!(s.feed(body), Ok(()));
        assert_eq!(s.finish(), Err(PartTooLarge));
    }

    #[test]
    fn unreadable_bodies_are_measured_whole() {
        let mut s = PartScanner::new(&Framing::Unreadable, 10);
        assert_eq!(s.feed(b"--a\r\n12345"), Ok(()));
        assert_eq!(s.feed(b"678"), Err(PartTooLarge));
    }
}
