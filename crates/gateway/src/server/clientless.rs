//! Clientless browser access (RS-10): on `{tenant}-remote-{connection id}.{region}.{domain}`
//! every path but the core identity ones goes to the in-process service
//! [`CLIENTLESS_SERVICE`], which proxies it to the web server of the connection session's
//! device. The app label `remote` is reserved for this: no registered web app is looked up.
//!
//! The gateway's part: the tenant must be registered; the caller needs a session of the
//! host's tenant ([`Guard::DeviceWeb`]: 302 to `/login` on this host for pages, 401 for
//! AJAX and WebSocket handshakes); WebSocket upgrades are allowed on every path (with the
//! host's own origin); Portico's cookies never reach the device; and a device cannot set
//! cookies beyond its own host, nor shadow Portico's ([`harden_device_cookies`]).

use super::{is_upgrade, Dispatch, Gateway, Routed, TargetPath};
use crate::auth::enforce::Guard;
use crate::auth::{REGION_SESSION_COOKIE, SESSION_COOKIE, XSRF_COOKIE};
use crate::body::Body;
use crate::error::GatewayError;
use crate::metrics::RouteClass;
use crate::table::{RoutingTable, Target};
use http::{header, HeaderMap, HeaderValue, Request};
use std::sync::Arc;

/// The name of the clientless service among the in-process services.
pub const CLIENTLESS_SERVICE: &str = "clientless";
/// The reserved app label of clientless hosts.
pub const REMOTE_APP: &str = "remote";
/// The longest DNS label (RFC 1035 §2.3.4). `{tenant}-remote-{32 hex}` fits for tenant
/// names of up to 23 characters.
const MAX_LABEL: usize = 63;

impl Gateway {
    /// The clientless route for a web-app host, or `None` when the host is not one of its
    /// (`app` is not `remote` or no provider names a connection).
    pub(super) fn route_clientless(
        &self,
        request: &Request<Body>,
        table: &RoutingTable,
        (tenant, app, provider): (&str, &str, Option<&str>),
    ) -> Option<Result<Routed, GatewayError>> {
        let session = provider?;
        if app != REMOTE_APP {
            return None;
        }
        // A longer label resolves nowhere and fits no certificate; refusing it here too
        // keeps development hosts (`*.localhost`) as strict as production ones.
        let label = tenant.len() + REMOTE_APP.len() + session.len() + 2;
        if label > MAX_LABEL {
            return Some(Err(GatewayError::not_found(format!(
                "The host name's first label has {label} characters, more than DNS allows ({MAX_LABEL}): tenant \"{tenant}\" cannot open devices in the browser"
            ))));
        }
        if !self.inner.services.contains_key(CLIENTLESS_SERVICE) {
            return Some(Err(GatewayError::not_found(
                "Browser access to devices is not served by this Portico server",
            )));
        }
        if !table.has_tenant(tenant) {
            return Some(Err(GatewayError::not_found(format!(
                "Unknown tenant \"{tenant}\""
            ))));
        }
        Some(Ok(Routed::Forward(Dispatch {
            class: RouteClass::Webapp,
            target: Arc::new(Target::InProcess(CLIENTLESS_SERVICE.to_string())),
            path: TargetPath::AsSent,
            tenant: Some(tenant.to_string()),
            upgrade: is_upgrade(request.headers()),
            // The device's pages keep their own headers: they were not written for
            // Portico's content security policy.
            web: None,
            guard: Guard::DeviceWeb,
        })))
    }
}

/// Drops the device's `Set-Cookie` headers that reach beyond its host (a `Domain`
/// attribute would set them for every host of the region, Portico's apps included) or
/// that carry the name of one of Portico's own cookies.
pub fn harden_device_cookies(headers: &mut HeaderMap) {
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|value| allowed_cookie(value.as_bytes()))
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for value in kept {
        headers.append(header::SET_COOKIE, value);
    }
}

fn allowed_cookie(value: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let mut parts = value.split(';');
    let name = parts
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(name, _)| name.trim())
        .unwrap_or_default();
    let portico = [SESSION_COOKIE, REGION_SESSION_COOKIE, XSRF_COOKIE]
        .iter()
        .any(|own| own.eq_ignore_ascii_case(name));
    let domain = parts.any(|attribute| {
        let key = attribute.split('=').next().unwrap_or_default().trim();
        key.eq_ignore_ascii_case("domain")
    });
    !name.is_empty() && !portico && !domain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_cookies_stay_on_their_host() {
        let mut headers = HeaderMap::new();
        for cookie in [
            "plc=1; Path=/; HttpOnly",
            "wide=1; Path=/; Domain=eu1.example.org",
            "wide2=1;domain=.example.org",
            "SESSION=forged; Path=/",
            "xsrf-token=x",
            "lang=de",
        ] {
            headers.append(header::SET_COOKIE, HeaderValue::from_static(cookie));
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        harden_device_cookies(&mut headers);
        let kept: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(kept, ["plc=1; Path=/; HttpOnly", "lang=de"]);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html");
    }
}
