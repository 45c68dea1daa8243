//! Logging in through the tenant's external OpenID provider (ID-6): `GET /login/oidc`
//! sends the browser to the provider, `GET /login/oidc/callback` takes it back, checks
//! what the provider says and starts the session as `POST /login` does.
//!
//! What the login needs between the two (state, nonce, PKCE verifier, where to return)
//! travels in a short-lived HttpOnly cookie: any node can finish a login another node
//! began, and nothing is kept for a browser that never comes back. Over TLS it is
//! `__Host-OIDC-LOGIN`, which the browser accepts only from this very host, so that a
//! sibling host of the region cannot plant a login of its own choosing; over plain HTTP
//! (local use) it is `OIDC-LOGIN`. A request carrying it twice with different values is
//! refused.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::login::{safe_return, see_other};
use super::{cookies, page, Caller};
use crate::oidc::{self, ExternalProvider, PendingLogin};
use crate::Identity;

const FLOW_COOKIE: &str = "OIDC-LOGIN";
const FLOW_COOKIE_TLS: &str = "__Host-OIDC-LOGIN";
/// How long a browser may take at the provider.
const FLOW_SECONDS: u32 = 600;

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    #[serde(rename = "return")]
    return_to: Option<String>,
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub async fn start(
    State(identity): State<Identity>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<StartQuery>,
) -> Response {
    let Some(provider) = provider(&identity, &caller).await else {
        return failure(
            StatusCode::NOT_FOUND,
            "No external login here",
            "This tenant does not log in through an external provider.",
        );
    };
    let return_to = safe_return(query.return_to.as_deref());
    match oidc::begin(&provider, &callback_url(&caller)).await {
        Ok((url, pending)) => {
            let value = format!("{}.{}", pending.encode(), hex(return_to.as_bytes()));
            see_other(&url, vec![flow_cookie(&caller, &value, FLOW_SECONDS)])
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot start an external login");
            failure(StatusCode::BAD_GATEWAY, "The login provider cannot be reached",
                "Portico could not reach your organisation's login provider. Try again shortly, or log in with a password.")
        }
    }
}

pub async fn callback(
    State(identity): State<Identity>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let refused = |detail: &str| {
        let mut response = failure(
            StatusCode::BAD_REQUEST,
            "The login did not complete",
            detail,
        );
        clear_flow(&mut response, &caller);
        response
    };
    if let Some(error) = query.error {
        tracing::info!(error = %error, "the external provider refused a login");
        return refused("Your organisation's login provider did not sign you in.");
    }
    let Some((pending, return_to)) = flow(&headers, &caller) else {
        return refused(
            "The login took too long or was started in another browser. Start it again.",
        );
    };
    let state_matches = query
        .state
        .as_deref()
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())));
    let (Some(code), true) = (query.code, state_matches) else {
        return refused("The answer of the login provider does not belong to this login.");
    };
    let Some(provider) = provider(&identity, &caller).await else {
        return refused("This tenant does not log in through an external provider.");
    };
    let who = match oidc::finish(&provider, &callback_url(&caller), pending, &code).await {
        Ok(who) => who,
        Err(e) => {
            tracing::warn!(error = %e, "an external login failed");
            return refused(
                "Portico could not confirm the login with your organisation's provider.",
            );
        }
    };
    match identity.login_external(caller.login_tenant(), &who).await {
        Ok(login) => {
            let mut set = cookies::login(
                &caller,
                login.session_id.as_str(),
                &login.session.csrf_token,
            );
            set.push(flow_cookie(&caller, "", 0));
            see_other(&return_to, set)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start a session for an external login");
            refused("Portico could not start your session.")
        }
    }
}

async fn provider(identity: &Identity, caller: &Caller) -> Option<ExternalProvider> {
    match identity.store().oidc_provider(caller.login_tenant()).await {
        Ok(record) => record.map(|r| ExternalProvider {
            issuer: r.issuer,
            client_id: r.client_id,
            client_secret: r.client_secret,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the tenant's external provider");
            None
        }
    }
}

/// Where the provider sends the browser back: this host, as the browser addressed it.
fn callback_url(caller: &Caller) -> String {
    let scheme = if caller.tls { "https" } else { "http" };
    format!("{scheme}://{}/login/oidc/callback", caller.host)
}

fn flow_cookie(caller: &Caller, value: &str, max_age: u32) -> String {
    if caller.tls {
        format!(
            "{FLOW_COOKIE_TLS}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}; Secure"
        )
    } else {
        format!(
            "{FLOW_COOKIE}={value}; Path=/login/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}"
        )
    }
}

fn clear_flow(response: &mut Response, caller: &Caller) {
    if let Ok(v) = flow_cookie(caller, "", 0).parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The login in flight and its return path, from the flow cookie (sent exactly once).
fn flow(headers: &HeaderMap, caller: &Caller) -> Option<(PendingLogin, String)> {
    let wanted = if caller.tls {
        FLOW_COOKIE_TLS
    } else {
        FLOW_COOKIE
    };
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == wanted)
        .map(|(_, value)| value);
    let value = values.next()?;
    if values.any(|other| other != value) {
        return None;
    }
    let (pending, return_hex) = value.rsplit_once('.')?;
    let return_to = String::from_utf8(unhex(return_hex)?).ok()?;
    Some((
        PendingLogin::decode(pending)?,
        safe_return(Some(&return_to)),
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 4096 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn failure(status: StatusCode, title: &str, detail: &str) -> Response {
    let mut response = (status, Html(page::error(title, detail))).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
