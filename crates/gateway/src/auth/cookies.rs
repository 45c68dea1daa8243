//! The `Cookie` request header (RFC 6265 §4.2, §5.4): finding Portico's cookies in it and
//! taking them out before a request goes to a backend.
//!
//! Parsing is lenient, as browsers' own is: pairs are split at `;`, a pair without `=`
//! is skipped, surrounding whitespace is trimmed, and a value in double quotes loses its
//! quotes. Names are compared exactly (cookie names are case-sensitive). Bytes that are
//! not ASCII are kept as they are: only the cookies the gateway looks for need to be text.

use http::header::{self, HeaderMap, HeaderValue};

/// The `name=value` pairs of one `Cookie` header value, in order, as bytes.
pub fn pairs(value: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    value.split(|&b| b == b';').filter_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        let name = pair[..eq].trim_ascii();
        if name.is_empty() {
            return None;
        }
        Some((name, unquote(pair[eq + 1..].trim_ascii())))
    })
}

fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    }
}

/// The values of every cookie called `name` in the request's `Cookie` headers, in the
/// order sent (HTTP/2 may split them into several headers), that are text.
pub fn values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| pairs(v.as_bytes()))
        .filter(move |(n, _)| *n == name.as_bytes())
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .filter(|v| !v.is_empty())
}

/// The first value of the cookie `name`.
pub fn first<'a>(headers: &'a HeaderMap, name: &'a str) -> Option<&'a str> {
    values(headers, name).next()
}

/// The value of cookie `name` when the request carries exactly one value for it (sent
/// once, or several times alike). Two different values mean that someone planted one
/// (a sibling host of the region can set a cookie for the whole region): then neither
/// is trusted.
pub fn only<'a>(headers: &'a HeaderMap, name: &'a str) -> Option<&'a str> {
    let mut found = values(headers, name);
    let first = found.next()?;
    found.all(|other| other == first).then_some(first)
}

/// Removes every cookie whose name is in `names`, keeping the others (and their order)
/// in one `Cookie` header; no header remains when nothing does.
pub fn remove(headers: &mut HeaderMap, names: &[&str]) {
    let present = headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| pairs(v.as_bytes()))
        .any(|(n, _)| names.iter().any(|name| n == name.as_bytes()));
    if !present {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            let name = pair
                .iter()
                .position(|&b| b == b'=')
                .map_or(pair, |eq| pair[..eq].trim_ascii());
            if pair.is_empty() || names.iter().any(|n| name == n.as_bytes()) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    headers.remove(header::COOKIE);
    // The kept bytes come from valid header values, joined by "; ".
    if let Ok(value) = HeaderValue::from_bytes(&kept) {
        if !kept.is_empty() {
            headers.insert(header::COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn pairs_are_split_trimmed_and_unquoted() {
        let got: Vec<(&[u8], &[u8])> =
            pairs(b" a=1;b = \"two\" ;;noequals; =nameless;c=x=y;d=").collect();
        assert_eq!(
            got,
            [
                (&b"a"[..], &b"1"[..]),
                (b"b", b"two"),
                (b"c", b"x=y"),
                (b"d", b""),
            ]
        );
    }

    #[test]
    fn a_cookie_sent_with_two_different_values_is_trusted_in_neither() {
        assert_eq!(
            only(&headers(&["SESSION=a; x=1; SESSION=a"]), "SESSION"),
            Some("a")
        );
        assert_eq!(only(&headers(&["SESSION=a", "SESSION=b"]), "SESSION"), None);
        assert_eq!(only(&headers(&["x=1"]), "SESSION"), None);
    }

    #[test]
    fn values_come_from_every_cookie_header_and_names_are_exact() {
        let h = headers(&[
            "SESSION=one; session=lower",
            "REGION-SESSION=two; SESSION=three",
        ]);
        assert_eq!(values(&h, "SESSION").collect::<Vec<_>>(), ["one", "three"]);
        assert_eq!(first(&h, "REGION-SESSION"), Some("two"));
        assert_eq!(first(&h, "XSRF-TOKEN"), None);
        assert_eq!(first(&headers(&["SESSION="]), "SESSION"), None);
    }

    #[test]
    fn removing_keeps_the_other_cookies_in_order() {
        let mut h = headers(&["theme=dark; SESSION=s1", "XSRF-TOKEN=x; lang=de"]);
        remove(&mut h, &["SESSION", "XSRF-TOKEN"]);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "theme=dark; lang=de");

        let mut h = headers(&["SESSION=s1;REGION-SESSION=s1"]);
        remove(&mut h, &["SESSION", "REGION-SESSION"]);
        assert!(!h.contains_key(header::COOKIE));

        let mut h = headers(&["a=1;  b=2"]);
        remove(&mut h, &["SESSION"]);
        assert_eq!(
            h[header::COOKIE],
            "a=1;  b=2",
            "untouched when none is there"
        );
    }
}
