//! `POST /uaa/oauth/token` (form-encoded; client authentication by HTTP Basic or by
//! `client_id`/`client_secret` fields; errors as RFC 6749 §5.2 JSON) and
//! `GET /oauth/authorize` (needs a session; else the login page first).

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form, Json};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use super::{caller_session, page, Caller};
use crate::oauth::{AuthorizeError, AuthorizeRequest, OAuthError, TokenRequest};
use crate::Identity;

pub async fn token(
    State(identity): State<Identity>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let Ok(Form(mut request)) = form else {
        return error(
            &OAuthError {
                error: "invalid_request",
                description:
                    "the body must be application/x-www-form-urlencoded, each parameter once".into(),
            },
            false,
        );
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    if let Some(credentials) = basic {
        let Some((id, secret)) = basic_credentials(credentials) else {
            return error(&invalid_client(), true);
        };
        if request.client_secret.is_some() || request.client_id.as_deref().is_some_and(|c| c != id)
        {
            return error(
                &OAuthError {
                    error: "invalid_request",
                    description: "use one client authentication method".into(),
                },
                true,
            );
        }
        request.client_id = Some(id);
        request.client_secret = Some(secret);
    }
    match identity.token(&request, caller.tenant.as_deref()).await {
        Ok(answer) => (no_store(), Json(answer)).into_response(),
        Err(e) => error(&e, basic.is_some()),
    }
}

fn invalid_client() -> OAuthError {
    OAuthError {
        error: "invalid_client",
        description: "client authentication failed".into(),
    }
}

/// `id:secret` from base64, each form-urlencoded (RFC 6749 §2.3.1).
fn basic_credentials(b64: &str) -> Option<(String, String)> {
    let decoded = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

fn error(e: &OAuthError, basic: bool) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (
        status,
        no_store(),
        Json(json!({ "error": e.error, "error_description": e.description })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED && basic {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"portico\""),
        );
    }
    response
}

pub async fn authorize(
    State(identity): State<Identity>,
    Extension(caller): Extension<Caller>,
    uri: axum::http::Uri,
    query: Result<Query<AuthorizeRequest>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(request)) = query else {
        return refused("The authorization request is malformed.");
    };
    let Some(session) = caller_session(&identity, &caller).await else {
        let back = uri
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_else(|| "/oauth/authorize".into());
        return redirect(&format!("/login?return={}", page::percent_encode(&back)));
    };
    match identity.authorize(&session, &request).await {
        Ok(location) | Err(AuthorizeError::Redirect(location)) => redirect(&location),
        Err(AuthorizeError::Refused(why)) => refused(&why),
        Err(AuthorizeError::Server(e)) => {
            tracing::error!(error = %e, "authorization endpoint failure");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(page::error(
                    "Try again",
                    "Portico cannot authorize right now.",
                )),
            )
                .into_response()
        }
    }
}

fn refused(why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(page::error("Authorization refused", why)),
    )
        .into_response()
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, v),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => refused("The redirect URI cannot be used."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let b64 = STANDARD.encode("my%20client:s%3Acret+x");
        assert_eq!(
            basic_credentials(&b64),
            Some(("my client".to_string(), "s:cret x".to_string()))
        );
        assert_eq!(basic_credentials("!!"), None);
        assert_eq!(basic_credentials(&STANDARD.encode("nocolon")), None);
    }
}
