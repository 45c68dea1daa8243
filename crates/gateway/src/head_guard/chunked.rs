//! Following a chunked request body (RFC 7230 §4.1) just far enough to know where it
//! ends, so that the guard knows where the next request head starts.

/// Longest chunk-size line (size and extensions) accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4096;

/// Follows a chunked body (RFC 7230 §4.1) just far enough to know where it ends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chunked {
    step: Step,
    /// Bytes of the current size line or trailer line seen so far.
    line: usize,
    size: u64,
    digits: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Step {
    #[default]
    Size,
    /// In a chunk extension, until the end of the line.
    Extension,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
}

impl Chunked {
    /// Consumes bytes of the body; returns how many belong to it and whether the body
    /// ended there.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, bool), String> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.step {
                Step::Data(remaining) => {
                    let take = remaining.min((input.len() - i) as u64);
                    i += take as usize;
                    self.step = if remaining == take {
                        Step::DataCr
                    } else {
                        Step::Data(remaining - take)
                    };
                    continue;
                }
                Step::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        self.digits += 1;
                        if self.digits > 16 {
                            return Err("Chunk size too large".into());
                        }
                        self.size =
                            self.size * 16 + u64::from((b as char).to_digit(16).unwrap_or(0));
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => self.step = Step::Extension,
                    b'\r' if self.digits > 0 => self.step = Step::SizeLf,
                    b'\n' if self.digits > 0 => self.end_size_line(),
                    _ => return Err("Malformed chunk size in a chunked body".into()),
                },
                Step::Extension => match b {
                    b'\r' => self.step = Step::SizeLf,
                    b'\n' => self.end_size_line(),
                    _ => {}
                },
                Step::SizeLf => match b {
                    b'\n' => self.end_size_line(),
                    _ => return Err("Malformed chunk size line in a chunked body".into()),
                },
                Step::DataCr => match b {
                    b'\r' => self.step = Step::DataLf,
                    b'\n' => self.step = Step::Size,
                    _ => return Err("Missing line break after chunk data".into()),
                },
                Step::DataLf => match b {
                    b'\n' => self.step = Step::Size,
                    _ => return Err("Missing line break after chunk data".into()),
                },
                Step::TrailerStart => match b {
                    b'\r' => self.step = Step::FinalLf,
                    b'\n' => return Ok((i + 1, true)),
                    _ => self.step = Step::TrailerLine,
                },
                Step::TrailerLine => match b {
                    b'\r' => self.step = Step::TrailerLf,
                    b'\n' => self.step = Step::TrailerStart,
                    _ => {}
                },
                Step::TrailerLf => match b {
                    b'\n' => self.step = Step::TrailerStart,
                    _ => return Err("Malformed trailer in a chunked body".into()),
                },
                Step::FinalLf => match b {
                    b'\n' => return Ok((i + 1, true)),
                    _ => return Err("Malformed end of a chunked body".into()),
                },
            }
            i += 1;
            if matches!(self.step, Step::Size | Step::Extension | Step::TrailerLine) {
                self.line += 1;
                if self.line > MAX_CHUNK_LINE {
                    return Err("A chunk-size or trailer line is too long".into());
                }
            }
        }
        Ok((i, false))
    }

    fn end_size_line(&mut self) {
        self.line = 0;
        self.step = if self.size == 0 {
            Step::TrailerStart
        } else {
            Step::Data(self.size)
        };
        self.size = 0;
        self.digits = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked_all(body: &[u8]) -> Result<(usize, bool), String> {
        Chunked::default().feed(body)
    }

    #[test]
    fn chunked_bodies_end_after_the_last_chunk_and_trailers() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1";
        assert_eq!(chunked_all(body), Ok((body.len() - 14, true)));
        assert_eq!(chunked_all(b"0\r\n\r\n"), Ok((5, true)));
        assert_eq!(chunked_all(b"4\r\nWi"), Ok((5, false)));
    }

    #[test]
    fn chunked_bodies_split_anywhere_give_the_same_answer() {
        let body = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
        for split in 0..body.len() {
            let mut c = Chunked::default();
            let (a, done_a) = c.feed(&body[..split]).unwrap();
            assert_eq!(a, split);
            assert!(!done_a);
            assert_eq!(c.feed(&body[split..]), Ok((body.len() - split, true)));
        }
    }

    #[test]
    fn malformed_chunks_are_refused() {
        assert!(chunked_all(b"x\r\n").is_err());
        assert!(chunked_all(b"\r\n").is_err());
        assert!(chunked_all(b"1\r\nab").is_err());
        assert!(chunked_all(b"11111111111111111\r\n").is_err());
    }
}
