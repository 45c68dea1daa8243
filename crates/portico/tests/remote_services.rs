//! The Remote Services API through `portico serve`: a tenant administrator signed in on one
//! of the tenant's apps builds sites, devices and an endpoint; a plain user may not; the
//! endpoint trades its one-time code for credentials that get a token (RS-6, RS-9).

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use support::*;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
"#;
const HOST: &str = "acme-shop.eu1.portico.localhost";
const PASSWORD: &str = "correct horse battery staple";

/// Signs `user` in on the app; the cookie header to send and the CSRF token.
fn sign_in(portico: &Portico, user: &str) -> (String, String) {
    sign_in_on(portico.plain, HOST, user, PASSWORD)
}

/// A JSON call to the API on the app's host, in `who`'s session.
fn call(
    portico: &Portico,
    who: &(String, String),
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let url = format!(
        "http://127.0.0.1:{}/api/remoteservices/v1{path}",
        portico.plain
    );
    let origin = format!("Origin: http://{HOST}");
    let host = format!("Host: {HOST}");
    let xsrf = format!("X-XSRF-TOKEN: {}", who.1);
    let mut args = vec![
        "-X", method, "-H", &host, "-H", &who.0, "-H", &origin, "-H", &xsrf,
    ];
    if !body.is_empty() {
        args.extend(["-H", "Content-Type: application/json", "-d", body]);
    }
    args.push(&url);
    curl(&args)
}

#[test]
fn administrators_build_the_model_users_may_not_and_endpoints_register_once() {
    let portico = Portico::start(CONFIG, &[]);
    acme_shop_with_users(&portico, &[("ada", "admin"), ("uma", "user")], PASSWORD);
    let ada = sign_in(&portico, "ada");
    let uma = sign_in(&portico, "uma");

    let mut created = (0, String::new());
    let ready = within(std::time::Duration::from_secs(10), || {
        created = call(&portico, &ada, "POST", "/sites", r#"{"name":"plant"}"#);
        created.0 != 404 && created.0 != 503
    });
    assert!(ready.is_some(), "{created:?}");
    assert!(created.0 == 200 || created.0 == 201, "{created:?}");
    let (status, body) = call(
        &portico,
        &ada,
        "POST",
        "/devices",
        r#"{"name":"press-7","site":"plant"}"#,
    );
    assert!(status == 200 || status == 201, "{status} {body}");
    let (status, templates) = call(&portico, &uma, "GET", "/templates", "");
    assert_eq!(status, 200, "{templates}");
    assert!(templates.contains("\"ssh\""), "{templates}");
    // A plain user may read what is granted, not build.
    let (status, body) = call(&portico, &uma, "POST", "/sites", r#"{"name":"mine"}"#);
    assert_eq!(status, 403, "{body}");

    // An endpoint: its one-time code, traded once for credentials that get a token.
    let (status, body) = call(
        &portico,
        &ada,
        "POST",
        "/endpoints",
        r#"{"name":"ep-press","kind":"device","device":"press-7"}"#,
    );
    assert!(status == 200 || status == 201, "{status} {body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let code = created["registration_code"].as_str().unwrap();
    let register = format!(
        "http://127.0.0.1:{}/api/endpointregistration/v1/register",
        portico.plain
    );
    let gateway = "Host: gateway.eu1.portico.localhost";
    let form = format!(r#"{{"code":"{code}"}}"#);
    let json = "Content-Type: application/json";
    let (status, credentials) = curl(&["-H", gateway, "-H", json, "-d", &form, &register]);
    assert_eq!(status, 200, "{credentials}");
    let (again, _) = curl(&["-H", gateway, "-H", json, "-d", &form, &register]);
    assert_ne!(again, 200, "a registration code works once");
    let credentials: serde_json::Value = serde_json::from_str(&credentials).unwrap();
    let basic = format!(
        "{}:{}",
        credentials["client_id"].as_str().unwrap(),
        credentials["client_secret"].as_str().unwrap()
    );
    let token_url = format!("http://127.0.0.1:{}/uaa/oauth/token", portico.plain);
    let (status, token) = curl(&[
        "-H",
        gateway,
        "-u",
        &basic,
        "-d",
        "grant_type=client_credentials",
        &token_url,
    ]);
    assert_eq!(status, 200, "{token}");
    assert!(token.contains("access_token"), "{token}");
}
