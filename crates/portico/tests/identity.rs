//! Signing in through `portico serve`: a web app registered with `auth = "session"` sends a
//! browser to the login page and an AJAX call gets 401; after login the backend receives a
//! JWT minted by Portico for the user, with the tenant claim; after logout the session is gone.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use base64::Engine;
use support::*;

/// Listeners on free loopback ports; the rest is the built-in defaults.
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
"#;

const HOST: &str = "acme-shop.eu1.portico.localhost";
const PASSWORD: &str = "correct horse battery staple";

fn cookie_value(headers: &str, name: &str) -> String {
    headers
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.trim().strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {headers}"))
        .to_string()
}

#[test]
fn a_session_web_app_takes_a_login_and_forwards_the_users_token() {
    let portico = Portico::start(CONFIG, &[]);
    let backend = backend("shop", 0);
    portico.admin(&["tenant", "add", "acme"]);
    let backend_url = format!("http://{backend}");
    portico.admin(&[
        "webapp",
        "add",
        "--name",
        "shop",
        "--backend",
        &backend_url,
        "--tenant",
        "acme",
        "--auth",
        "session",
    ]);
    portico.admin(&[
        "user",
        "add",
        "--tenant",
        "acme",
        "--name",
        "olga",
        "--role",
        "user",
        "--password",
        PASSWORD,
    ]);
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", portico.plain);
    let host = format!("Host: {HOST}");
    // The registry reaches the gateway within a second of the change.
    assert!(within(std::time::Duration::from_secs(10), || {
        curl(&["-H", &host, &url("/whoami")]).0 == 302
    })
    .is_some());

    // Not signed in: a browser is sent to the login page and back, an AJAX call gets 401.
    let (status, headers) = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        &host,
        &url("/whoami?x=1"),
    ]);
    assert_eq!(status, 302);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("location: /login?return=%2fwhoami%3fx%3d1"),
        "{headers}"
    );
    let (status, _) = curl(&[
        "-H",
        &host,
        "-H",
        "X-Requested-With: XMLHttpRequest",
        &url("/whoami"),
    ]);
    assert_eq!(status, 401);

    // A wrong password is refused; the right one starts a session.
    let (status, _) = curl(&[
        "-H",
        &host,
        "-d",
        "username=olga&password=wrong",
        &url("/login"),
    ]);
    assert_eq!(status, 401);
    let form = format!(
        "username=olga&password={}&return=/whoami",
        PASSWORD.replace(' ', "+")
    );
    let (status, headers) = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        &host,
        "-d",
        &form,
        &url("/login"),
    ]);
    assert_eq!(status, 303, "{headers}");
    let session = cookie_value(&headers, "SESSION");

    // Signed in: the backend gets Portico's JWT for olga of tenant acme, for this app.
    let cookie = format!("Cookie: SESSION={session}");
    let (status, authorization) = curl(&["-H", &host, "-H", &cookie, &url("/whoami")]);
    assert_eq!(status, 200, "{authorization}");
    let token = authorization
        .strip_prefix("Bearer ")
        .expect("a bearer token");
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["ten"], "acme");
    assert_eq!(claims["sub"], "olga");
    assert!(
        claims["aud"].to_string().contains("webapp:shop"),
        "{claims}"
    );
    // The token's key is published for backends to verify with.
    let (status, jwks) = curl(&[
        "-H",
        "Host: gateway.eu1.portico.localhost",
        &url("/.well-known/jwks.json"),
    ]);
    assert_eq!(status, 200);
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(jwks.contains(header["kid"].as_str().unwrap()), "{jwks}");

    // Logged out: the same cookie no longer passes.
    let (status, _) = curl(&["-H", &host, "-H", &cookie, "-X", "POST", &url("/logout")]);
    assert!(status == 303 || status == 302, "logout: {status}");
    assert!(within(std::time::Duration::from_secs(10), || {
        curl(&[
            "-H",
            &host,
            "-H",
            &cookie,
            "-H",
            "X-Requested-With: XMLHttpRequest",
            &url("/whoami"),
        ])
        .0 == 401
    })
    .is_some());
}
