//! `GET /login` (the form), `POST /login` (checks the password, starts the session, sets
//! the cookies, sends the browser back), `GET|POST /logout`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::page::{self, LoginPage};
use super::{caller_session, cookies, Caller};
use crate::{Identity, LoginError};

#[derive(Debug, Default, Deserialize)]
pub struct FormQuery {
    #[serde(rename = "return")]
    return_to: Option<String>,
}

/// The login form fields. No `Debug`: it holds the password.
#[derive(Default, Deserialize)]
pub struct LoginFields {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(rename = "return")]
    return_to: Option<String>,
}

/// Where to send the browser after login: the `return` value when it is a path on this
/// host (not `//host`, not `/\host`, no scheme, no control characters), else `/`.
pub fn safe_return(value: Option<&str>) -> String {
    match value {
        Some(v)
            if v.starts_with('/')
                && !v.starts_with("//")
                && !v.starts_with("/\\")
                && !v.chars().any(|c| c.is_control() || c == '\\') =>
        {
            v.to_string()
        }
        _ => "/".to_string(),
    }
}

pub async fn form(
    State(identity): State<Identity>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<FormQuery>,
) -> Response {
    let return_to = safe_return(query.return_to.as_deref());
    // Already logged in here: straight back.
    if caller_session(&identity, &caller).await.is_some() {
        return see_other(&return_to, Vec::new());
    }
    render(
        &identity,
        &caller,
        StatusCode::OK,
        &return_to,
        "",
        None,
        None,
    )
    .await
}

pub async fn submit(
    State(identity): State<Identity>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    fields: Result<Form<LoginFields>, axum::extract::rejection::FormRejection>,
) -> Response {
    let fields = fields.map(|Form(f)| f).unwrap_or_default();
    let return_to = safe_return(fields.return_to.as_deref());
    // Login CSRF: a browser posting from another site says so in `Origin`.
    if !same_origin(&headers, &caller) {
        return (StatusCode::FORBIDDEN, "cross-site login refused").into_response();
    }
    let tenant = caller.login_tenant().to_string();
    let name = fields.username.trim().to_ascii_lowercase();
    match identity
        .login(&tenant, &name, &fields.password, caller.client)
        .await
    {
        Ok(login) => {
            let set = cookies::login(
                &caller,
                login.session_id.as_str(),
                &login.session.csrf_token,
            );
            see_other(&return_to, set)
        }
        Err(LoginError::WrongCredentials) => {
            let message = "Wrong user name or password.";
            render(
                &identity,
                &caller,
                StatusCode::UNAUTHORIZED,
                &return_to,
                &name,
                Some(message),
                None,
            )
            .await
        }
        Err(LoginError::Throttled { retry_after }) => {
            let minutes = retry_after.as_secs().div_ceil(60);
            let message = format!("Too many failed attempts. Try again in {minutes} minute(s).");
            render(
                &identity,
                &caller,
                StatusCode::TOO_MANY_REQUESTS,
                &return_to,
                &name,
                Some(&message),
                Some(retry_after.as_secs()),
            )
            .await
        }
        Err(LoginError::Failed(e)) => {
            tracing::error!(error = %e, "login failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(page::error(
                    "Login is unavailable",
                    "Portico cannot check logins right now. Try again shortly.",
                )),
            )
                .into_response()
        }
    }
}

/// `GET /logout`: the page with the logout button.
pub async fn logout_page() -> Response {
    let mut response = Html(page::logout()).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /logout`: ends the session, from this origin only.
pub async fn logout(
    State(identity): State<Identity>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    if !same_origin(&headers, &caller) {
        return (StatusCode::FORBIDDEN, "cross-site logout refused").into_response();
    }
    if let Some(id) = caller.session_id.as_deref() {
        if let Err(e) = identity.logout(id).await {
            tracing::error!(error = %e, "cannot end a session");
        }
    }
    see_other("/login", cookies::logout(&caller))
}

/// True when `Origin` is absent (not every client sends it) or names this host.
fn same_origin(headers: &HeaderMap, caller: &Caller) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let scheme = if caller.tls { "https" } else { "http" };
    origin.as_bytes() == format!("{scheme}://{}", caller.host).as_bytes()
}

#[allow(clippy::too_many_arguments)]
async fn render(
    identity: &Identity,
    caller: &Caller,
    status: StatusCode,
    return_to: &str,
    user_name: &str,
    message: Option<&str>,
    retry_after: Option<u64>,
) -> Response {
    let tenant = caller.login_tenant();
    let provider = match identity.store().oidc_provider(tenant).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the tenant's external provider");
            None
        }
    };
    let html = page::login(&LoginPage {
        tenant,
        return_to,
        user_name,
        message,
        external_provider: provider.as_ref().map(|p| p.issuer.as_str()),
    });
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}

pub(super) fn see_other(location: &str, set_cookies: Vec<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in set_cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::safe_return;

    #[test]
    fn only_paths_on_this_host_are_returned_to() {
        assert_eq!(safe_return(Some("/app/x?y=1")), "/app/x?y=1");
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "evil",
            "/a\r\nSet-Cookie: x",
            "",
        ] {
            assert_eq!(safe_return(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return(None), "/");
    }
}
