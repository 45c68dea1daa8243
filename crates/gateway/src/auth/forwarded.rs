//! What a backend learns of the caller (ID-4): on an authenticated registration, a bearer
//! token Portico minted for the caller and this backend, in place of whatever the client
//! sent in `Authorization`. Portico's own secrets (the session cookies, the CSRF cookie
//! and its echo) are never forwarded, whatever the registration's `auth`: a backend, and
//! in particular one of a public app by another provider, must not be able to act as the
//! user with them.

use super::{
    cookies, Authenticator, Caller, REGION_SESSION_COOKIE, SESSION_COOKIE, XSRF_COOKIE, XSRF_HEADER,
};
use crate::error::GatewayError;
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

/// Takes Portico's session secrets out of a request on its way to a backend.
pub(crate) fn strip_secrets(headers: &mut HeaderMap) {
    // Many requests carry neither header: they are looked for once, together.
    let [cookie, xsrf] = crate::headers::present(headers, &["cookie", XSRF_HEADER]);
    if cookie {
        cookies::remove(
            headers,
            &[SESSION_COOKIE, REGION_SESSION_COOKIE, XSRF_COOKIE],
        );
    }
    if xsrf {
        headers.remove(XSRF_HEADER);
    }
}

/// Sets `Authorization: Bearer <token for caller and audience>`, replacing the client's.
pub(crate) fn identify(
    headers: &mut HeaderMap,
    authenticator: &dyn Authenticator,
    caller: &Caller,
    audience: &str,
) -> Result<(), GatewayError> {
    let failed = || {
        GatewayError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The gateway could not issue the caller's token for the backend",
        )
    };
    let token = authenticator
        .forward_token(&caller.principal, audience)
        .map_err(|why| {
            tracing::error!(audience, reason = %why, "minting a forwarded token failed");
            failed()
        })?;
    let value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| failed())?;
    headers.remove(header::AUTHORIZATION);
    headers.insert(header::AUTHORIZATION, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_go_and_the_rest_stays() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("SESSION=s; theme=dark; REGION-SESSION=s; XSRF-TOKEN=x"),
        );
        h.insert(XSRF_HEADER, HeaderValue::from_static("x"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YTpi"),
        );
        strip_secrets(&mut h);
        assert_eq!(h[header::COOKIE], "theme=dark");
        assert!(!h.contains_key(XSRF_HEADER));
        assert_eq!(h[header::AUTHORIZATION], "Basic YTpi");
    }
}
