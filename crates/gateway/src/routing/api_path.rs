//! API path parsing (SPEC GW-2, GW-3):
//! `/{api|services}/{apiName}[-{apiProvider}]/v{major}/{endpoint}`.
//!
//! The parse borrows from the raw path: `endpoint` is what the API backend receives after
//! its base path (GW-12), so it must be the bytes as received, never decoded or normalised.

/// The first path segment of an API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiPrefix {
    /// `/api/…`, from every host kind that routes APIs.
    Api,
    /// `/services/…`, the seed's "UI mashup API" form; routed only from web-app hosts (GW-2).
    Services,
}

/// An API call's path, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPath<'a> {
    pub prefix: ApiPrefix,
    /// `[a-z0-9]{1,63}`, as registered.
    pub name: &'a str,
    /// `None` for core APIs.
    pub provider: Option<&'a str>,
    /// At least 1; written without leading zeros.
    pub major: u32,
    /// Starts with `/`; exactly `/` when nothing (or only `/`) follows `v{major}`.
    pub endpoint: &'a str,
}

/// Parses a request path (without its query). `None` means the path is not an API call;
/// whether an API of that name and version exists is the registry's question.
pub fn parse_api_path(path: &str) -> Option<ApiPath<'_>> {
    let (prefix, rest) = if let Some(rest) = path.strip_prefix("/api/") {
        (ApiPrefix::Api, rest)
    } else if let Some(rest) = path.strip_prefix("/services/") {
        (ApiPrefix::Services, rest)
    } else {
        return None;
    };
    let (api, rest) = rest.split_once('/')?;
    let (name, provider) = match api.split_once('-') {
        Some((name, provider)) => (name, Some(provider)),
        None => (api, None),
    };
    if !is_name(name) || !provider.is_none_or(is_name) {
        return None;
    }
    // The version segment ends at the next `/` or at the end of the path; `endpoint`
    // keeps that `/` so that it is a suffix of the raw path.
    let (version, endpoint) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let major = parse_major(version)?;
    Some(ApiPath {
        prefix,
        name,
        provider,
        major,
        endpoint,
    })
}

/// API and provider names follow the registry's rule (`portico_store::model::is_name`).
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `v` and 1 to 9 decimal digits, no leading zero: one spelling per version, and
/// 999 999 999 fits a `u32` without an overflow check.
fn parse_major(segment: &str) -> Option<u32> {
    let digits = segment.strip_prefix('v')?;
    let well_formed = (1..=9).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> Option<(ApiPrefix, &str, Option<&str>, u32, &str)> {
        parse_api_path(path).map(|p| (p.prefix, p.name, p.provider, p.major, p.endpoint))
    }

    #[test]
    fn endpoint_is_the_raw_rest_of_the_path() {
        use ApiPrefix::*;
        assert_eq!(
            parts("/api/iot/v3/a/b"),
            Some((Api, "iot", None, 3, "/a/b"))
        );
        assert_eq!(parts("/api/iot/v3/a/"), Some((Api, "iot", None, 3, "/a/")));
        assert_eq!(parts("/api/iot/v3//a"), Some((Api, "iot", None, 3, "//a")));
        assert_eq!(
            parts("/api/iot/v3/a%2Fb%7E"),
            Some((Api, "iot", None, 3, "/a%2Fb%7E"))
        );
        assert_eq!(parts("/api/iot/v3/"), Some((Api, "iot", None, 3, "/")));
        assert_eq!(parts("/api/iot/v3"), Some((Api, "iot", None, 3, "/")));
        assert_eq!(
            parts("/services/am-p1/v12/x"),
            Some((Services, "am", Some("p1"), 12, "/x"))
        );
    }

    #[test]
    fn names_follow_the_registry_rule() {
        for path in [
            "/api//v1/x",
            "/api/-p/v1/x",
            "/api/iot-/v1/x",
            "/api/a-b-c/v1/x",
            "/api/IoT/v1/x",
            "/api/i%6Ft/v1/x",
        ] {
            assert_eq!(parse_api_path(path), None, "{path}");
        }
        let long = format!("/api/{}/v1", "a".repeat(64));
        assert_eq!(parse_api_path(&long), None);
    }

    #[test]
    fn major_versions() {
        assert_eq!(parts("/api/a/v999999999").map(|p| p.3), Some(999_999_999));
        for path in [
            "/api/a/v0",
            "/api/a/v01",
            "/api/a/v",
            "/api/a/V1",
            "/api/a/v+1",
            "/api/a/v1x",
            "/api/a/v1234567890",
            "/api/a/v١",
        ] {
            assert_eq!(parse_api_path(path), None, "{path}");
        }
    }

    #[test]
    fn other_paths_are_not_api_calls() {
        for path in [
            "",
            "/",
            "/api",
            "/api/",
            "/api/iot",
            "/api/iot/",
            "/apix/iot/v1",
            "api/iot/v1",
            "/API/iot/v1",
            "/services",
        ] {
            assert_eq!(parse_api_path(path), None, "{path}");
        }
    }
}
