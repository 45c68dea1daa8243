//! The identity admin API through `portico serve`: a tenant administrator's bearer token
//! lists and adds the tenant's users at `/api/identity/v1/` on the gateway host; a plain
//! user's token is refused, and so is a call without one.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use serde_json::Value;
use support::*;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
"#;
const HOST: &str = "acme-shop.eu1.portico.localhost";
const GATEWAY: &str = "Host: gateway.eu1.portico.localhost";
const PASSWORD: &str = "correct horse battery staple";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The JWT the shop's backend receives for `user` after a login on the shop's host.
fn webapp_token(portico: &Portico, user: &str) -> String {
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", portico.plain);
    let host = format!("Host: {HOST}");
    let form = format!("username={user}&password={}", PASSWORD.replace(' ', "+"));
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
    let cookie = format!("Cookie: SESSION={session}");
    let (status, authorization) = curl(&["-H", &host, "-H", &cookie, &url("/whoami")]);
    assert_eq!(status, 200, "{authorization}");
    authorization.strip_prefix("Bearer ").unwrap().to_string()
}

/// `token` exchanged (RFC 8693) by the tenant's client for a token of the `identity` API.
fn identity_api_token(portico: &Portico, client: &(String, String), token: &str) -> String {
    let url = format!("http://127.0.0.1:{}/uaa/oauth/token", portico.plain);
    let basic = format!("{}:{}", client.0, client.1);
    let form = format!(
        "grant_type={TOKEN_EXCHANGE}&subject_token={token}&subject_token_type=urn:ietf:params:oauth:token-type:access_token&audience=api:identity"
    );
    let (status, body) = curl(&["-H", GATEWAY, "-u", &basic, "-d", &form, &url]);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["access_token"].as_str().unwrap().to_string()
}

fn call(portico: &Portico, token: Option<&str>, method: &str, body: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:{}/api/identity/v1/users", portico.plain);
    let bearer = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut args = vec!["-X", method, "-H", GATEWAY];
    if let Some(bearer) = &bearer {
        args.extend(["-H", bearer.as_str()]);
    }
    if !body.is_empty() {
        args.extend(["-H", "Content-Type: application/json", "-d", body]);
    }
    args.push(&url);
    curl(&args)
}

#[test]
fn an_administrators_bearer_token_manages_users_on_the_gateway_host() {
    let portico = Portico::start(CONFIG, &[]);
    acme_shop_with_users(&portico, &[("ada", "admin"), ("uma", "user")], PASSWORD);
    let out = portico.admin(&[
        "client",
        "add",
        "--tenant",
        "acme",
        "--name",
        "console",
        "--grant",
        TOKEN_EXCHANGE,
    ]);
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .to_string()
    };
    let client = (value("client_id"), value("client_secret"));
    // The registry reaches the gateway shortly after the change.
    let host = format!("Host: {HOST}");
    let whoami = format!("http://127.0.0.1:{}/whoami", portico.plain);
    assert!(within(std::time::Duration::from_secs(10), || {
        curl(&["-H", &host, &whoami]).0 == 302
    })
    .is_some());

    let ada = identity_api_token(&portico, &client, &webapp_token(&portico, "ada"));
    let (status, users) = call(&portico, Some(&ada), "GET", "");
    assert_eq!(status, 200, "{users}");
    let users: Value = serde_json::from_str(&users).unwrap();
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ada", "uma"]);
    assert!(!users.to_string().contains("hash"), "{users}");

    let (status, added) = call(
        &portico,
        Some(&ada),
        "POST",
        &format!(r#"{{"name":"otto","role":"site-owner","password":"{PASSWORD}"}}"#),
    );
    assert_eq!(status, 201, "{added}");
    assert!(added.contains("\"site-owner\""), "{added}");
    // otto can sign in with the password he was given.
    webapp_token(&portico, "otto");

    let uma = identity_api_token(&portico, &client, &webapp_token(&portico, "uma"));
    let (status, body) = call(&portico, Some(&uma), "GET", "");
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(&portico, None, "GET", "");
    assert_eq!(status, 401, "{body}");
}
