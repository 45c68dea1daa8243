//! Ant-style path patterns (SPEC GW-9, seed 003 "URL Patterns").
//!
//! A pattern and a path are compared after one leading `/` is stripped from each, split
//! on `/` keeping empty segments (so `""` and `"/"` are the same path). In a segment, `?`
//! matches one character and `*` zero or more; a segment that is exactly `**` matches zero
//! or more whole segments, and `**` inside a longer segment acts like `*`.
//!
//! Matching is the classic greedy wildcard algorithm applied twice: to segments, with
//! `**` as the star, and within a segment, with `*` as the star. Backtracking only to the
//! most recent star is enough because every other token consumes exactly one item, so the
//! work is bounded by (pattern items × path items) at each level, never exponential.

use std::borrow::Cow;
use std::cmp::Ordering;

/// A compiled pattern. Construction never fails: every string is a pattern.
#[derive(Debug, Clone)]
pub struct AntPattern {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: zero or more whole segments.
    AnySegments,
    /// No wildcard: compared as a string.
    Literal(String),
    /// At least one `*` or `?`.
    Glob(Vec<Token>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`
    AnyChar,
    /// `*`, or a run of them.
    AnyChars,
}

impl AntPattern {
    /// Compiles `pattern`. Its literal parts are normalised like paths
    /// ([`decode_unreserved`]), so `/%7Euser` and `/~user` are the same pattern.
    pub fn new(pattern: &str) -> AntPattern {
        let normalised = decode_unreserved(pattern);
        let body = normalised.strip_prefix('/').unwrap_or(&normalised);
        AntPattern {
            source: pattern.to_owned(),
            segments: body.split('/').map(compile_segment).collect(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `path` (without query) matches. Pass the path through
    /// [`decode_unreserved`] first, as the gateway matches on that form (GW-10).
    pub fn matches(&self, path: &str) -> bool {
        let body = path.strip_prefix('/').unwrap_or(path);
        let mut pat = 0;
        let mut seg = SegmentCursor::START;
        // Where to resume after the latest `**`: the pattern index after it, and the
        // path position it has swallowed up to.
        let mut backtrack: Option<(usize, SegmentCursor)> = None;
        loop {
            match self.segments.get(pat) {
                Some(Segment::AnySegments) => {
                    pat += 1;
                    backtrack = Some((pat, seg));
                    continue;
                }
                Some(pattern) => {
                    if let Some((text, next)) = seg.split(body) {
                        if segment_matches(pattern, text) {
                            pat += 1;
                            seg = next;
                            continue;
                        }
                    }
                }
                None if seg.is_end() => return true,
                None => {}
            }
            // Mismatch: let the latest `**` swallow one more segment, or give up.
            let Some((resume, swallowed)) = backtrack else {
                return false;
            };
            let Some((_, next)) = swallowed.split(body) else {
                return false;
            };
            backtrack = Some((resume, next));
            pat = resume;
            seg = next;
        }
    }

    /// How specific the pattern is; greater is more specific (GW-9).
    pub fn specificity(&self) -> Specificity {
        let mut s = Specificity {
            any_segments: 0,
            wildcards: 0,
            literal_chars: 0,
        };
        for segment in &self.segments {
            match segment {
                Segment::AnySegments => s.any_segments += 1,
                Segment::Literal(text) => s.literal_chars += text.chars().count(),
                Segment::Glob(tokens) => {
                    for token in tokens {
                        match token {
                            Token::Char(_) => s.literal_chars += 1,
                            Token::AnyChar | Token::AnyChars => s.wildcards += 1,
                        }
                    }
                }
            }
        }
        s
    }
}

/// Ranks patterns that match the same path (GW-9): fewer `**` segments first, then fewer
/// `*`/`?`, then more literal characters. Equal ranks fall back to registration order,
/// which is the caller's to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Specificity {
    any_segments: usize,
    wildcards: usize,
    literal_chars: usize,
}

impl Ord for Specificity {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .any_segments
            .cmp(&self.any_segments)
            .then(other.wildcards.cmp(&self.wildcards))
            .then(self.literal_chars.cmp(&other.literal_chars))
    }
}

impl PartialOrd for Specificity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn compile_segment(segment: &str) -> Segment {
    if segment == "**" {
        return Segment::AnySegments;
    }
    if !segment.contains(['*', '?']) {
        return Segment::Literal(segment.to_owned());
    }
    let mut tokens = Vec::with_capacity(segment.len());
    for c in segment.chars() {
        let token = match c {
            '?' => Token::AnyChar,
            '*' => Token::AnyChars,
            c => Token::Char(c),
        };
        // `**` inside a segment is just `*`; collapsing keeps the star count honest.
        if !(token == Token::AnyChars && tokens.last() == Some(&Token::AnyChars)) {
            tokens.push(token);
        }
    }
    Segment::Glob(tokens)
}

fn segment_matches(pattern: &Segment, text: &str) -> bool {
    match pattern {
        Segment::AnySegments => true,
        Segment::Literal(literal) => literal == text,
        Segment::Glob(tokens) => glob_matches(tokens, text),
    }
}

/// The greedy wildcard match within one segment; positions in `text` are byte offsets
/// on character boundaries.
fn glob_matches(tokens: &[Token], text: &str) -> bool {
    let next_char = |at: usize| text.get(at..).and_then(|rest| rest.chars().next());
    let (mut tok, mut at) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        match tokens.get(tok) {
            Some(Token::AnyChars) => {
                tok += 1;
                backtrack = Some((tok, at));
                continue;
            }
            Some(&token) => {
                if let Some(c) = next_char(at) {
                    if token == Token::AnyChar || token == Token::Char(c) {
                        tok += 1;
                        at += c.len_utf8();
                        continue;
                    }
                }
            }
            None if at == text.len() => return true,
            None => {}
        }
        let Some((resume, swallowed)) = backtrack else {
            return false;
        };
        let Some(c) = next_char(swallowed) else {
            return false;
        };
        backtrack = Some((resume, swallowed + c.len_utf8()));
        tok = resume;
        at = swallowed + c.len_utf8();
    }
}

/// A position in the `/`-separated segments of a path body: the byte offset where the
/// next segment starts, or the end once the last segment has been taken. The body ""
/// has one (empty) segment, and "a/" has two.
#[derive(Debug, Clone, Copy)]
struct SegmentCursor(Option<usize>);

impl SegmentCursor {
    const START: SegmentCursor = SegmentCursor(Some(0));

    fn is_end(self) -> bool {
        self.0.is_none()
    }

    /// The segment at the cursor and the cursor after it.
    fn split(self, body: &str) -> Option<(&str, SegmentCursor)> {
        let start = self.0?;
        let rest = body.get(start..)?;
        Some(match rest.find('/') {
            Some(len) => (&rest[..len], SegmentCursor(Some(start + len + 1))),
            None => (rest, SegmentCursor(None)),
        })
    }
}

/// Normalises a path for matching (RFC 3986 §6.2.2): decodes percent-encoded unreserved
/// characters (`ALPHA DIGIT - . _ ~`) and upper-cases the hex digits of every other
/// escape. Everything else stays encoded, so `%2F` never becomes a separator and `%2A`
/// never becomes a wildcard. Borrows when there is nothing to change.
pub fn decode_unreserved(path: &str) -> Cow<'_, str> {
    let bytes = path.as_bytes();
    let needs_work = bytes.windows(3).any(|w| {
        w[0] == b'%'
            && hex_value(w[1]).is_some()
            && hex_value(w[2]).is_some()
            && (is_unreserved(decode_pair(w[1], w[2])) || w[1..].iter().any(u8::is_ascii_lowercase))
    });
    if !needs_work {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(pct) = rest.find('%') {
        out.push_str(&rest[..pct]);
        rest = &rest[pct..];
        match rest.as_bytes() {
            [b'%', hi, lo, ..] if hex_value(*hi).is_some() && hex_value(*lo).is_some() => {
                let byte = decode_pair(*hi, *lo);
                if is_unreserved(byte) {
                    out.push(char::from(byte));
                } else {
                    out.push('%');
                    out.push(char::from(hi.to_ascii_uppercase()));
                    out.push(char::from(lo.to_ascii_uppercase()));
                }
                rest = &rest[3..];
            }
            // A stray `%` is left as it is; GW-10 validation rejects it before matching.
            _ => {
                out.push('%');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// Both digits must already be known to be hex.
fn decode_pair(hi: u8, lo: u8) -> u8 {
    (hex_value(hi).unwrap_or(0) << 4) | hex_value(lo).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        AntPattern::new(pattern).matches(path)
    }

    #[test]
    fn question_mark_is_one_character() {
        assert!(m("/a?c", "/abc"));
        assert!(m("/a?c", "/aéc"));
        assert!(!m("/a?c", "/ac"));
        assert!(!m("/a?c", "/a/c"));
    }

    #[test]
    fn star_stays_within_a_segment() {
        assert!(m("/a*", "/a"));
        assert!(m("/*b*", "/xxbyy"));
        assert!(m("/a*b*c", "/abbbc"));
        assert!(!m("/a*", "/a/b"));
        assert!(m("/a**b", "/ab"));
        assert!(!m("/a**b", "/a/b"));
        assert!(m("/*.j?p", "/x.jsp"));
        assert!(!m("/*.j?p", "/x.jsp.bak"));
    }

    #[test]
    fn double_star_spans_segments() {
        assert!(m("/a/**", "/a"));
        assert!(m("/a/**", "/a/"));
        assert!(m("/a/**", "/a/b/c"));
        assert!(!m("/a/**", "/ab"));
        assert!(m("/**/b/**/d", "/a/b/c/d"));
        assert!(m("/**/**", ""));
        assert!(!m("/a/**/b", "/a/c"));
    }

    #[test]
    fn empty_segments_count() {
        assert!(m("", "/"));
        assert!(m("/", ""));
        assert!(!m("/", "/a"));
        assert!(m("/a//b", "/a//b"));
        assert!(!m("/a/b", "/a//b"));
        assert!(m("/a/", "/a/"));
        assert!(!m("/a/", "/a"));
    }

    #[test]
    fn pathological_patterns_stay_polynomial() {
        // An exponential backtracker takes ages on each of these; the greedy one is instant.
        let path = "/a".repeat(300);
        assert!(!m("/**/a/**/a/**/a/**/a/**/a/**/b", &path));
        assert!(m("/**/a/**/a/**/a/**/a/**/a/**", &path));
        let segment = format!("/{}", "a".repeat(3000));
        assert!(!m("/*a*a*a*a*a*a*a*a*a*b", &segment));
        assert!(m("/*a*a*a*a*a*a*a*a*a*", &segment));
    }

    #[test]
    fn specificity_follows_gw9() {
        let s = |p: &str| AntPattern::new(p).specificity();
        assert!(s("/a/*/c") > s("/a/**"));
        assert!(s("/a/*/*") > s("/**"));
        assert!(s("/a/b") > s("/a/?"));
        assert!(s("/a/?") == s("/a/*"));
        assert!(s("/abc/*") > s("/ab/*"));
        assert!(s("/x**y") == s("/x*y"));
        assert!(s("/**/abcdef") < s("/*/*/x"));
    }

    #[test]
    fn patterns_are_normalised_like_paths() {
        let p = AntPattern::new("/%7Euser/%2f");
        assert_eq!(p.as_str(), "/%7Euser/%2f");
        assert!(p.matches(&decode_unreserved("/~user/%2F")));
        assert!(p.matches(&decode_unreserved("/%7euser/%2f")));
        assert!(!AntPattern::new("/*").matches(&decode_unreserved("/a%2Fb/c")));
        assert!(AntPattern::new("/*").matches(&decode_unreserved("/a%2Fb")));
    }

    #[test]
    fn decode_unreserved_only_touches_unreserved() {
        assert!(matches!(decode_unreserved("/a/b%2Fc%20"), Cow::Borrowed(_)));
        assert_eq!(decode_unreserved("/%41%7e%2D%2e%5F%30"), "/A~-._0");
        assert_eq!(decode_unreserved("/%2f%3a%2A%3F"), "/%2F%3A%2A%3F");
        assert_eq!(decode_unreserved("/%zz%4%%41"), "/%zz%4%A");
        assert_eq!(decode_unreserved("é%41é"), "éAé");
    }
}
