//! Request-target validation (SPEC GW-10, RFC 3986 §3.3 and §3.4).
//!
//! The gateway forwards a target as received, so it must be well-formed on arrival:
//!
//! ```text
//! origin-form = absolute-path [ "?" query ]
//! path        = *( pchar / "/" )            ; starting with "/"
//! query       = *( pchar / "/" / "?" )
//! pchar       = unreserved / pct-encoded / sub-delims / ":" / "@"
//! ```
//!
//! On top of the grammar, a path may not contain a dot-segment (`.` or `..`, also
//! percent-encoded): resolving it would let a request step out of the route it matched.

use std::fmt;

/// Why a request target is rejected; the message tells the client what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the request target is empty; it must start with '/'")]
    Empty,
    #[error("the request target must start with '/' (or be exactly '*')")]
    NotOriginForm,
    #[error(
        "the request target contains '#'; a fragment is never sent to a server, \
         so remove it, or percent-encode it as %23 if it is data"
    )]
    Fragment,
    #[error(
        "the {component} contains {ch:?} which RFC 3986 does not allow unencoded; \
         percent-encode it as {}",
        percent_encode(*ch)
    )]
    Disallowed { component: Component, ch: char },
    #[error(
        "the {component} contains a '%' that is not followed by two hexadecimal digits; \
         percent-encode a literal '%' as %25"
    )]
    BadPercent { component: Component },
    #[error(
        "the path contains the dot-segment {segment:?}; \
         resolve '.' and '..' before sending the request"
    )]
    DotSegment { segment: String },
}

/// The part of the target an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Path,
    Query,
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Component::Path => "path",
            Component::Query => "query",
        })
    }
}

/// Checks an origin-form target (`path[?query]`) or the asterisk form `*`.
pub fn validate_target(target: &str) -> Result<(), TargetError> {
    if target == "*" {
        return Ok(());
    }
    if target.is_empty() {
        return Err(TargetError::Empty);
    }
    if !target.starts_with('/') {
        return Err(TargetError::NotOriginForm);
    }
    let (path, query) = match super::cut(target, b'?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    check_chars(path, Component::Path)?;
    // A dot segment needs a dot, plain or percent-encoded: most paths are spared the split.
    let dotted = path
        .bytes()
        .any(|b| b == b'.' || b == b'%')
        .then(|| path.split('/').find(|s| is_dot_segment(s)))
        .flatten();
    if let Some(segment) = dotted {
        return Err(TargetError::DotSegment {
            segment: segment.to_owned(),
        });
    }
    if let Some(query) = query {
        check_chars(query, Component::Query)?;
    }
    Ok(())
}

/// Checks every character of a path (pchar and `/`) or a query (also `?`).
fn check_chars(text: &str, component: Component) -> Result<(), TargetError> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return Err(TargetError::BadPercent { component });
                }
                i += 3;
                continue;
            }
            b'#' => return Err(TargetError::Fragment),
            b'/' => {}
            b'?' if component == Component::Query => {}
            b if is_pchar(b) => {}
            _ => {
                // Name the whole character, not its first byte, in the message.
                let ch = text
                    .get(i..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or('\u{FFFD}');
                return Err(TargetError::Disallowed { component, ch });
            }
        }
        i += 1;
    }
    Ok(())
}

/// pchar without pct-encoded (handled by the caller).
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            // unreserved
            b'-' | b'.' | b'_' | b'~'
            // sub-delims
            | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            | b':' | b'@'
        )
}

/// `.` or `..`, each dot possibly written `%2e` or `%2E`.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment;
    let mut dots = 0;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            rest = after;
        } else if rest.len() >= 3 && rest.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("%2e")) {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

/// `ch` as RFC 3986 percent-encoded UTF-8, e.g. `[` as `%5B`, `é` as `%C3%A9`.
fn percent_encode(ch: char) -> String {
    let mut utf8 = [0; 4];
    ch.encode_utf8(&mut utf8)
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_rfc_grammar() {
        for target in [
            "*",
            "/",
            "//",
            "/a/b/",
            "/a:b@c!$&'()*+,;=-._~",
            "/%41%7e/%2F",
            "/a?",
            "/a?b=c&d=/e?f:g@h",
            "/a/...",
            "/a/.b/..c/%2e%2e%2e",
        ] {
            assert_eq!(validate_target(target), Ok(()), "{target}");
        }
    }

    #[test]
    fn rejects_forms_other_than_origin_and_asterisk() {
        assert_eq!(validate_target(""), Err(TargetError::Empty));
        for target in ["a", "?a", "**", "http://x/", "*/"] {
            assert_eq!(
                validate_target(target),
                Err(TargetError::NotOriginForm),
                "{target}"
            );
        }
    }

    #[test]
    fn rejects_characters_outside_each_component() {
        use Component::*;
        let disallowed = |component, ch| Err(TargetError::Disallowed { component, ch });
        assert_eq!(validate_target("/a?x=[1]"), disallowed(Query, '['));
        assert_eq!(validate_target("/[a]"), disallowed(Path, '['));
        assert_eq!(validate_target("/a b"), disallowed(Path, ' '));
        assert_eq!(validate_target("/a?b c"), disallowed(Query, ' '));
        assert_eq!(validate_target("/é"), disallowed(Path, 'é'));
        assert_eq!(validate_target("/a\u{7f}"), disallowed(Path, '\u{7f}'));
        assert_eq!(validate_target("/a\"<>\\^`{|}"), disallowed(Path, '"'));
        assert_eq!(validate_target("/a#b"), Err(TargetError::Fragment));
        assert_eq!(validate_target("/a?b#c"), Err(TargetError::Fragment));
        assert_eq!(
            validate_target("/a%g0"),
            Err(TargetError::BadPercent { component: Path })
        );
        assert_eq!(
            validate_target("/a?%4"),
            Err(TargetError::BadPercent { component: Query })
        );
        assert_eq!(
            validate_target("/a%"),
            Err(TargetError::BadPercent { component: Path })
        );
    }

    #[test]
    fn rejects_dot_segments_in_any_spelling() {
        for (target, segment) in [
            ("/.", "."),
            ("/..", ".."),
            ("/a/./b", "."),
            ("/a/../b", ".."),
            ("/a/..", ".."),
            ("/a/%2e", "%2e"),
            ("/a/%2E%2e/b", "%2E%2e"),
            ("/a/.%2E?x", ".%2E"),
        ] {
            let expected = Err(TargetError::DotSegment {
                segment: segment.into(),
            });
            assert_eq!(validate_target(target), expected, "{target}");
        }
        // A dot-segment in the query is just data.
        assert_eq!(validate_target("/a?../b"), Ok(()));
    }

    #[test]
    fn messages_say_what_to_do() {
        let error = validate_target("/getDataByIds?idList=[1,2]").expect_err("raw '['");
        assert_eq!(
            error.to_string(),
            "the query contains '[' which RFC 3986 does not allow unencoded; \
             percent-encode it as %5B"
        );
        let error = validate_target("/ü").expect_err("non-ASCII");
        assert!(
            error.to_string().ends_with("percent-encode it as %C3%BC"),
            "{error}"
        );
        let error = validate_target("/a/%2e%2e/b").expect_err("dot-segment");
        assert!(error.to_string().contains("\"%2e%2e\""), "{error}");
    }
}
