//! The other hosts of a Remote Services deployment, derived from the tunnel host (GW-6):
//! `backend = https://wss.eu1.vpnrts.example.com` gives the token endpoint
//! `https://connectivity.eu1.vpnrts.example.com/uaa/oauth/token` and the gateway API
//! `https://gateway.eu1.example.com`. The configuration's `token_url` and `api` override.

use crate::config::BackendUrl;
use crate::token::TOKEN_PATH;

/// The token endpoint: a leading `wss.` label becomes `connectivity.`; any other host is
/// used as it is. Port and path prefix are the backend's.
pub fn token_url(backend: &BackendUrl) -> BackendUrl {
    let host = match backend.host().strip_prefix("wss.") {
        Some(rest) if !rest.is_empty() => format!("connectivity.{rest}"),
        _ => backend.host().to_string(),
    };
    backend.sibling(&host, format!("{}{}", backend.base_path(), TOKEN_PATH))
}

/// The gateway API host: `wss.{region}.vpnrts.{domain}` becomes `gateway.{region}.{domain}`.
/// A host of another shape is used as it is (a single-host installation), with the
/// backend's port and no path.
pub fn api_url(backend: &BackendUrl) -> BackendUrl {
    let labels: Vec<&str> = backend.host().split('.').collect();
    let host = match labels.as_slice() {
        ["wss", region, "vpnrts", domain @ ..] if !domain.is_empty() && !region.is_empty() => {
            format!("gateway.{region}.{}", domain.join("."))
        }
        _ => backend.host().to_string(),
    };
    backend.sibling(&host, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> BackendUrl {
        BackendUrl::parse(text).unwrap()
    }

    #[test]
    fn the_token_endpoint_is_on_the_connectivity_host() {
        let t = token_url(&url("https://wss.eu1.vpnrts.example.com"));
        assert_eq!(
            t.to_string(),
            "https://connectivity.eu1.vpnrts.example.com:443/uaa/oauth/token"
        );
        assert_eq!(t.path_url(""), "/uaa/oauth/token");
        let t = token_url(&url("https://wss.eu1.vpnrts.example.com:8443/rs/"));
        assert_eq!(
            t.to_string(),
            "https://connectivity.eu1.vpnrts.example.com:8443/rs/uaa/oauth/token"
        );
        let t = token_url(&url("https://localhost:9443"));
        assert_eq!(t.to_string(), "https://localhost:9443/uaa/oauth/token");
        // `wss` must be a whole label.
        let t = token_url(&url("https://wssx.example.com"));
        assert_eq!(t.host(), "wssx.example.com");
    }

    #[test]
    fn the_api_is_on_the_gateway_host() {
        let a = api_url(&url("https://wss.eu1.vpnrts.example.com"));
        assert_eq!(a.to_string(), "https://gateway.eu1.example.com:443");
        let a = api_url(&url("https://wss.us2.vpnrts.corp.example.co.uk:8443/x"));
        assert_eq!(a.to_string(), "https://gateway.us2.corp.example.co.uk:8443");
        assert_eq!(a.path_url("/api/x"), "/api/x");
        for other in [
            "https://rs.example.com",
            "https://wss.eu1.example.com",
            "https://wss.eu1.vpnrts",
        ] {
            let a = api_url(&url(other));
            assert_eq!(a.host(), url(other).host(), "{other}");
        }
        assert_eq!(api_url(&url("https://127.0.0.1:9443")).host(), "127.0.0.1");
    }
}
