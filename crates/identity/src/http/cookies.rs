//! The cookies the login sets and the logout clears (ID-1, ID-5): `SESSION` (host-only),
//! `REGION-SESSION` (the region's domain), both HttpOnly, SameSite=Lax, Secure over TLS
//! and without an expiry (they end with the browser; the session's lifetimes are kept by
//! the server); `XSRF-TOKEN` is readable by page JavaScript.

use super::Caller;

pub const SESSION_COOKIE: &str = "SESSION";
pub const REGION_SESSION_COOKIE: &str = "REGION-SESSION";
pub const XSRF_COOKIE: &str = "XSRF-TOKEN";

fn cookie(name: &str, value: &str, domain: Option<&str>, http_only: bool, tls: bool) -> String {
    let mut c = format!("{name}={value}; Path=/");
    if let Some(d) = domain {
        c.push_str("; Domain=");
        c.push_str(d);
    }
    if http_only {
        c.push_str("; HttpOnly");
    }
    c.push_str("; SameSite=Lax");
    if tls {
        c.push_str("; Secure");
    }
    c
}

/// The `Set-Cookie` values that start a session.
pub fn login(caller: &Caller, session_id: &str, csrf_token: &str) -> Vec<String> {
    vec![
        cookie(SESSION_COOKIE, session_id, None, true, caller.tls),
        cookie(
            REGION_SESSION_COOKIE,
            session_id,
            Some(&caller.region_domain),
            true,
            caller.tls,
        ),
        cookie(XSRF_COOKIE, csrf_token, None, false, caller.tls),
    ]
}

/// The `Set-Cookie` values that remove the session's cookies.
pub fn logout(caller: &Caller) -> Vec<String> {
    [
        cookie(SESSION_COOKIE, "", None, true, caller.tls),
        cookie(
            REGION_SESSION_COOKIE,
            "",
            Some(&caller.region_domain),
            true,
            caller.tls,
        ),
        cookie(XSRF_COOKIE, "", None, false, caller.tls),
    ]
    .into_iter()
    .map(|c| format!("{c}; Max-Age=0"))
    .collect()
}
