//! Headers the gateway sets on web-app responses (SPEC GW-17..GW-20): the Cache-Control
//! rules, `X-Content-Type-Options`, `X-XSS-Protection`, and the default
//! Content-Security-Policy.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Version;

/// The Cache-Control added when neither the backend nor the app gives one (GW-17).
pub const DEFAULT_CACHE_CONTROL: HeaderValue =
    HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate");

const X_XSS_PROTECTION: HeaderName = HeaderName::from_static("x-xss-protection");

/// The response headers [`WebAppResponse::apply`] keeps when the backend sent them.
const BACKEND_MAY_SET: [&str; 4] = [
    "cache-control",
    "x-xss-protection",
    "content-security-policy",
    "content-security-policy-report-only",
];

/// Which of `names` (lower case) are in `headers`, learnt in one pass over the names: for
/// a message's handful of headers, cheaper than a hashed lookup for each. Compared as
/// text, most names differ from each of `names` in length alone; compared as
/// `HeaderName`s, every pair cost a look at both representations, about 90 instructions
/// per header for the nine hop-by-hop names.
pub(crate) fn present<const N: usize>(headers: &HeaderMap, names: &[&str; N]) -> [bool; N] {
    let mut found = [false; N];
    for name in headers.keys() {
        let name = name.as_str();
        if let Some(i) = names.iter().position(|n| *n == name) {
            found[i] = true;
        }
    }
    found
}

/// What the gateway knows about a web-app response's request.
#[derive(Debug, Clone)]
pub struct WebAppResponse {
    /// The app's configured Cache-Control, if not blank.
    pub cache_control: Option<HeaderValue>,
    /// The default Content-Security-Policy, which names the request's own static host
    /// (GW-20); see [`default_policy`].
    pub policy: Option<HeaderValue>,
    /// The client's HTTP version.
    pub client_version: Version,
}

impl WebAppResponse {
    /// Sets the gateway's headers on a web app's response headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let [cache_control, xss_protection, policy, report_only] =
            present(headers, &BACKEND_MAY_SET);
        // GW-17: the backend's Cache-Control, else the app's, else the built-in default.
        let backend_has_one = cache_control
            && headers
                .get_all(header::CACHE_CONTROL)
                .iter()
                .any(|v| !v.as_bytes().trim_ascii().is_empty());
        if !backend_has_one {
            let value = self.cache_control.clone().unwrap_or(DEFAULT_CACHE_CONTROL);
            headers.insert(header::CACHE_CONTROL, value);
        }
        // For HTTP/1.0 caches, which know no Cache-Control.
        if self.client_version == Version::HTTP_10 && has_no_cache(headers) {
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
        }
        // GW-18, GW-19: no content sniffing rescues a script or style of the wrong type.
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if !xss_protection {
            headers.insert(X_XSS_PROTECTION, HeaderValue::from_static("1; mode=block"));
        }
        // GW-20: an app that sets a policy of its own (enforced or report-only) keeps it.
        if !(policy || report_only) {
            if let Some(policy) = &self.policy {
                headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
            }
        }
    }
}

/// The default Content-Security-Policy of the pages of a web app whose shared assets come
/// from `static_host`, e.g. `static.eu1.portico.localhost:8443` (GW-20).
pub fn default_policy(static_host: &str) -> Option<HeaderValue> {
    let s = static_host;
    HeaderValue::try_from(format!(
        "default-src 'self' {s}; style-src * 'unsafe-inline'; script-src 'self' 'unsafe-inline' {s}; img-src * data:;"
    ))
    .ok()
}

fn has_no_cache(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|directive| directive.trim_ascii().eq_ignore_ascii_case(b"no-cache"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(cache_control: Option<&'static str>, version: Version) -> WebAppResponse {
        WebAppResponse {
            cache_control: cache_control.map(HeaderValue::from_static),
            policy: default_policy("static.eu1.portico.localhost:8443"),
            client_version: version,
        }
    }

    fn applied(web: &WebAppResponse, backend: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in backend {
            headers.append(*name, HeaderValue::from_static(value));
        }
        web.apply(&mut headers);
        headers
    }

    #[test]
    fn cache_control_comes_from_backend_then_app_then_default() {
        let h = applied(
            &web(Some("private"), Version::HTTP_11),
            &[("cache-control", "max-age=60")],
        );
        assert_eq!(h[header::CACHE_CONTROL], "max-age=60");
        let h = applied(
            &web(Some("private"), Version::HTTP_11),
            &[("cache-control", " ")],
        );
        assert_eq!(h[header::CACHE_CONTROL], "private");
        let h = applied(&web(Some("private"), Version::HTTP_11), &[]);
        assert_eq!(h[header::CACHE_CONTROL], "private");
        let h = applied(&web(None, Version::HTTP_11), &[]);
        assert_eq!(h[header::CACHE_CONTROL], DEFAULT_CACHE_CONTROL);
    }

    #[test]
    fn pragma_and_expires_only_for_http10_clients_of_no_cache_responses() {
        let h = applied(&web(None, Version::HTTP_10), &[]);
        assert_eq!(
            (&h[header::PRAGMA], &h[header::EXPIRES]),
            (
                &HeaderValue::from_static("no-cache"),
                &HeaderValue::from_static("0")
            )
        );
        let h = applied(&web(None, Version::HTTP_11), &[]);
        assert!(!h.contains_key(header::PRAGMA) && !h.contains_key(header::EXPIRES));
        let h = applied(
            &web(None, Version::HTTP_10),
            &[("cache-control", "max-age=60")],
        );
        assert!(!h.contains_key(header::PRAGMA));
    }

    #[test]
    fn security_headers_and_the_default_policy() {
        let h = applied(
            &web(None, Version::HTTP_11),
            &[("x-content-type-options", "sniff-away")],
        );
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h["x-xss-protection"], "1; mode=block");
        assert_eq!(
            h[header::CONTENT_SECURITY_POLICY],
            "default-src 'self' static.eu1.portico.localhost:8443; style-src * 'unsafe-inline'; \
             script-src 'self' 'unsafe-inline' static.eu1.portico.localhost:8443; img-src * data:;"
        );
        let own = applied(
            &web(None, Version::HTTP_11),
            &[("content-security-policy-report-only", "default-src 'none'")],
        );
        assert!(!own.contains_key(header::CONTENT_SECURITY_POLICY));
        let own = applied(
            &web(None, Version::HTTP_11),
            &[("content-security-policy", "default-src 'none'")],
        );
        assert_eq!(own[header::CONTENT_SECURITY_POLICY], "default-src 'none'");
    }
}
