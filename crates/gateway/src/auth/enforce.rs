//! The authorisation phase: after routing has found a registration, before anything is
//! forwarded. It decides who the caller is, whether the registration lets them in, and
//! answers the refusals: 302 to the login page, 401, 403, or 503 without identity.

use super::{
    cookies, csrf, Authenticator, Principal, Rule, SessionId, SessionInfo, TokenRejection,
    GATEWAY_AUDIENCE, REGION_SESSION_COOKIE, SESSION_COOKIE,
};
use crate::body::{empty, Body};
use crate::error::GatewayError;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use portico_store::Auth;
use std::sync::Arc;

/// What a routed request is held to.
#[derive(Debug, Clone)]
pub(crate) enum Guard {
    /// A registration's rule. `api` when the target is an API (no login redirects).
    Registration { rule: Arc<Rule>, api: bool },
    /// A core identity path: the caller's session, if any, is looked up and passed on;
    /// nothing is required.
    IdentityCore,
    /// A device's web interface on a clientless host (`{tenant}-remote-{id}`): a session
    /// of the host's tenant as for a `session` web app. Device pages cannot echo Portico's
    /// CSRF token, so state-changing requests and WebSocket handshakes are held to the
    /// host's own origin only; the service checks the session is the user's.
    DeviceWeb,
}

/// Who the request is forwarded for.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub principal: Principal,
    /// Set when a session authorised the request.
    pub session: Option<SessionId>,
}

/// A request the phase does not let through.
pub(crate) enum Denial {
    Refused(GatewayError),
    /// A browser without a session, sent to the login page (ID-2).
    SignIn(Response<Body>),
}

impl From<GatewayError> for Denial {
    fn from(e: GatewayError) -> Denial {
        Denial::Refused(e)
    }
}

/// Where the request arrived, as the phase needs it.
pub(crate) struct Arrival<'a> {
    /// The tenant the host names (web-app hosts).
    pub tenant: Option<&'a str>,
    pub tls: bool,
    /// The `Host` the client addressed.
    pub host: &'a str,
    pub upgrade: bool,
}

/// Session ids longer than this are not ids Portico issued; they are not looked up.
const MAX_SESSION_ID: usize = 256;

/// Characters of the return URL left as they are: the unreserved ones (RFC 3986 §2.3).
const RETURN_URL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Decides whether `request` may pass `guard`; `Ok(Some(caller))` when it passes as
/// someone, `Ok(None)` when it passes anonymously.
pub(crate) async fn authorize(
    authenticator: Option<&dyn Authenticator>,
    guard: &Guard,
    request: &Parts,
    arrival: &Arrival<'_>,
) -> Result<Option<Caller>, Denial> {
    let (rule, api) = match guard {
        Guard::IdentityCore => {
            let Some(authenticator) = authenticator else {
                return Ok(None);
            };
            let found = find_session(authenticator, &request.headers, arrival.tenant).await;
            return Ok(found.map(|(id, info)| Caller {
                principal: info.principal,
                session: Some(id),
            }));
        }
        Guard::Registration { rule, api } => (rule, *api),
        Guard::DeviceWeb => {
            let Some(authenticator) = authenticator else {
                return Err(GatewayError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "A device's web interface requires signing in, but this Portico server runs without its identity service",
                )
                .into());
            };
            return device_web(authenticator, request, arrival).await;
        }
    };
    if rule.is_open() {
        return Ok(None);
    }
    let Some(authenticator) = authenticator else {
        return Err(GatewayError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This registration requires signing in, but this Portico server runs without its identity service",
        )
        .into());
    };
    match (rule.auth, api) {
        (Auth::Bearer, _) | (_, true) => api_call(authenticator, rule, request, arrival).await,
        _ => web_page(authenticator, rule, request, arrival).await,
    }
}

/// A web app with `auth = "session"`: a session of the host's tenant, or the way to one.
async fn web_page(
    authenticator: &dyn Authenticator,
    rule: &Rule,
    request: &Parts,
    arrival: &Arrival<'_>,
) -> Result<Option<Caller>, Denial> {
    let Some((id, info)) = find_session(authenticator, &request.headers, arrival.tenant).await
    else {
        return Err(sign_in(request, arrival));
    };
    let missing = info.principal.missing_scopes(&rule.scopes);
    if !missing.is_empty() {
        return Err(GatewayError::new(
            StatusCode::FORBIDDEN,
            format!(
                "insufficient_scope: this web application needs the scopes {}",
                missing.join(", ")
            ),
        )
        .into());
    }
    check_forgery(request, arrival, &info)?;
    Ok(Some(Caller {
        principal: info.principal,
        session: Some(id),
    }))
}

/// A device's web interface: a session of the host's tenant, or the way to one; the
/// host's own origin on state-changing requests and WebSocket handshakes.
async fn device_web(
    authenticator: &dyn Authenticator,
    request: &Parts,
    arrival: &Arrival<'_>,
) -> Result<Option<Caller>, Denial> {
    let Some((id, info)) = find_session(authenticator, &request.headers, arrival.tenant).await
    else {
        return Err(sign_in(request, arrival));
    };
    if arrival.upgrade || csrf::changes_state(&request.method) {
        let own = csrf::own_origin(arrival.tls, arrival.host);
        csrf::check_origin(&request.headers, &own)
            .map_err(|why| GatewayError::new(StatusCode::FORBIDDEN, why))?;
    }
    Ok(Some(Caller {
        principal: info.principal,
        session: Some(id),
    }))
}

/// An API with `auth = "bearer"`: a bearer token, or on a web-app host the app's session.
async fn api_call(
    authenticator: &dyn Authenticator,
    rule: &Rule,
    request: &Parts,
    arrival: &Arrival<'_>,
) -> Result<Option<Caller>, Denial> {
    let headers = &request.headers;
    if let Some(token) = bearer_token(headers) {
        let principal = verified(authenticator, rule, token, arrival.tenant)?;
        return Ok(Some(Caller {
            principal,
            session: None,
        }));
    }
    if arrival.tenant.is_some() {
        if let Some((id, info)) = find_session(authenticator, headers, arrival.tenant).await {
            insufficient_scope(rule, &info.principal)?;
            check_forgery(request, arrival, &info)?;
            return Ok(Some(Caller {
                principal: info.principal,
                session: Some(id),
            }));
        }
    }
    Err(unauthorized(
        "This API needs a token: send Authorization: Bearer <access token>",
        None,
    )
    .into())
}

/// The principal of a presented token, once it is valid for this API and tenant.
fn verified(
    authenticator: &dyn Authenticator,
    rule: &Rule,
    token: &str,
    host_tenant: Option<&str>,
) -> Result<Principal, GatewayError> {
    let verified = authenticator
        .verify_token(token)
        .map_err(|rejection| match rejection {
            TokenRejection::Unauthorized(why) => unauthorized(&why, Some("invalid_token")),
            TokenRejection::Forbidden(why) => GatewayError::new(StatusCode::FORBIDDEN, why),
        })?;
    let for_us = verified
        .audiences
        .iter()
        .any(|a| *a == rule.audience || a == GATEWAY_AUDIENCE);
    if !for_us {
        return Err(unauthorized(
            &format!("The token is not meant for {}", rule.audience),
            Some("invalid_token"),
        ));
    }
    let principal = verified.principal;
    if let Some(host_tenant) = host_tenant.filter(|t| *t != principal.tenant) {
        return Err(GatewayError::new(
            StatusCode::FORBIDDEN,
            format!(
                "The token belongs to tenant \"{}\", not to tenant \"{host_tenant}\" of this host",
                principal.tenant
            ),
        ));
    }
    if !rule.serves(&principal.tenant) {
        return Err(GatewayError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Tenant \"{}\" is not subscribed to {}",
                principal.tenant, rule.audience
            ),
        ));
    }
    insufficient_scope(rule, &principal)?;
    Ok(principal)
}

/// 403 `insufficient_scope` (RFC 6750 §3.1) unless `principal` holds every scope of `rule`.
fn insufficient_scope(rule: &Rule, principal: &Principal) -> Result<(), GatewayError> {
    let missing = principal.missing_scopes(&rule.scopes);
    if missing.is_empty() {
        return Ok(());
    }
    let challenge = format!(
        "Bearer realm=\"portico\", error=\"insufficient_scope\", scope=\"{}\"",
        quotable(&rule.scopes.join(" "))
    );
    let mut err = GatewayError::new(
        StatusCode::FORBIDDEN,
        format!(
            "insufficient_scope: {} needs the scopes {}",
            rule.audience,
            missing.join(", ")
        ),
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        err = err.with_header(header::WWW_AUTHENTICATE, value);
    }
    Err(err)
}

/// CSRF (ID-5): state-changing requests need the session's token and the app's origin;
/// WebSocket handshakes need the origin.
fn check_forgery(
    request: &Parts,
    arrival: &Arrival<'_>,
    session: &SessionInfo,
) -> Result<(), GatewayError> {
    let forbidden = |why: &str| GatewayError::new(StatusCode::FORBIDDEN, why);
    let own = csrf::own_origin(arrival.tls, arrival.host);
    if arrival.upgrade {
        return csrf::check_origin(&request.headers, &own).map_err(forbidden);
    }
    if csrf::changes_state(&request.method) {
        csrf::check_token(&request.headers, &session.csrf_token).map_err(forbidden)?;
        csrf::check_origin(&request.headers, &own).map_err(forbidden)?;
    }
    Ok(())
}

/// The session in `SESSION`, else in `REGION-SESSION`, that is live and, where the host
/// names a tenant, of that tenant; another tenant's session counts as none.
async fn find_session(
    authenticator: &dyn Authenticator,
    headers: &HeaderMap,
    tenant: Option<&str>,
) -> Option<(SessionId, SessionInfo)> {
    let host_only = cookies::only(headers, SESSION_COOKIE);
    let region = cookies::only(headers, REGION_SESSION_COOKIE).filter(|r| Some(*r) != host_only);
    for id in [host_only, region].into_iter().flatten() {
        if id.len() > MAX_SESSION_ID {
            continue;
        }
        let Some(info) = authenticator.session(id).await else {
            continue;
        };
        if tenant.is_none_or(|t| t == info.principal.tenant) {
            return Some((SessionId::new(id), info));
        }
        tracing::debug!(
            session_tenant = %info.principal.tenant,
            host_tenant = ?tenant,
            "a session of another tenant was ignored"
        );
    }
    None
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive), if the request
/// has exactly one such header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// No session: a browser goes to the login page and comes back after; AJAX requests
/// and WebSocket handshakes, which cannot follow a login page, get 401.
fn sign_in(request: &Parts, arrival: &Arrival<'_>) -> Denial {
    let ajax = request
        .headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"XMLHttpRequest"));
    if ajax || arrival.upgrade {
        return Denial::Refused(GatewayError::new(
            StatusCode::UNAUTHORIZED,
            "Sign in first: this web application needs a Portico session",
        ));
    }
    let original = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!(
        "/login?return={}",
        utf8_percent_encode(original, RETURN_URL)
    );
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Denial::SignIn(response)
}

/// 401 with a Bearer challenge (RFC 6750 §3), with an error code when credentials were
/// presented.
fn unauthorized(why: &str, error: Option<&str>) -> GatewayError {
    let challenge = match error {
        Some(code) => format!(
            "Bearer realm=\"portico\", error=\"{code}\", error_description=\"{}\"",
            quotable(why)
        ),
        None => "Bearer realm=\"portico\"".to_string(),
    };
    let err = GatewayError::new(StatusCode::UNAUTHORIZED, why);
    match HeaderValue::from_str(&challenge) {
        Ok(value) => err.with_header(header::WWW_AUTHENTICATE, value),
        Err(_) => err.with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"portico\""),
        ),
    }
}

/// Text that can go inside a quoted-string of a challenge: printable ASCII without `"`
/// and `\`, which RFC 6750 §3 excludes from its attribute values.
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '\'',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn bearer_tokens_are_read_from_one_authorization_header() {
        assert_eq!(bearer_token(&with_auth("Bearer abc.def")), Some("abc.def"));
        assert_eq!(bearer_token(&with_auth("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&with_auth("Basic YTpi")), None);
        assert_eq!(bearer_token(&with_auth("Bearer ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
        let mut two = with_auth("Bearer a");
        two.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(bearer_token(&two), None);
    }

    #[test]
    fn challenges_quote_safely() {
        assert_eq!(quotable("a \"b\" \\ é"), "a 'b' ' '");
        let err = unauthorized("bad \"token\"", Some("invalid_token"));
        assert_eq!(
            err.headers[0].1,
            "Bearer realm=\"portico\", error=\"invalid_token\", error_description=\"bad 'token'\""
        );
    }

    #[test]
    fn the_return_url_is_percent_encoded() {
        let (request, ()) = http::Request::get("/reports/q1?x=1&y=/z")
            .body(())
            .unwrap()
            .into_parts();
        let arrival = Arrival {
            tenant: Some("abc"),
            tls: false,
            host: "abc-shop.eu1.portico.localhost",
            upgrade: false,
        };
        let Denial::SignIn(response) = sign_in(&request, &arrival) else {
            panic!("a browser is sent to the login page");
        };
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(
            response.headers()[header::LOCATION],
            "/login?return=%2Freports%2Fq1%3Fx%3D1%26y%3D%2Fz"
        );
    }
}
