//! Signing in through `portico serve`: a web app registered with `auth = "session"` sends a
//! browser to the login page and an AJAX call gets 401; after login the backend receives a
//! JWT minted by Portico for the user, with the tenant claim; after logout the session is gone.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

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
    // The backend verifies it with the published keys alone.
    let claims = verify_with_jwks(&portico, token, "webapp:shop");
    assert_eq!(claims["ten"], "acme");
    assert_eq!(claims["sub"], "olga");

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

/// What a backend does with the token Portico forwards: fetch the published keys (JWKS)
/// from the gateway and verify signature, issuer, audience and expiry with them alone.
fn verify_with_jwks(portico: &Portico, token: &str, audience: &str) -> serde_json::Value {
    use jsonwebtoken::{decode, decode_header, jwk::JwkSet, Algorithm, DecodingKey, Validation};
    let gateway = "Host: gateway.eu1.portico.localhost";
    let url = format!("http://127.0.0.1:{}/.well-known/jwks.json", portico.plain);
    let (status, jwks) = curl(&["-H", gateway, &url]);
    assert_eq!(status, 200);
    let jwks: JwkSet = serde_json::from_str(&jwks).unwrap();
    let kid = decode_header(token).unwrap().kid.expect("a key id");
    let key = DecodingKey::from_jwk(jwks.find(&kid).expect("the key is published")).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[format!(
        "https://gateway.eu1.portico.localhost:{}",
        portico.tls
    )]);
    decode::<serde_json::Value>(token, &key, &validation)
        .unwrap_or_else(|e| panic!("the forwarded token does not verify: {e}"))
        .claims
}

/// A client registered with `portico admin client add`: (id, secret).
fn add_client(portico: &Portico, tenant: &str, grants: &[&str]) -> (String, String) {
    let mut args = vec!["client", "add", "--tenant", tenant, "--name", "robot"];
    for grant in grants {
        args.extend(["--grant", grant]);
    }
    let out = portico.admin(&args);
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .to_string()
    };
    (value("client_id"), value("client_secret"))
}

/// `POST /uaa/oauth/token` on the gateway host with the client's credentials.
fn token_request(
    portico: &Portico,
    client: &(String, String),
    form: &str,
) -> (u16, serde_json::Value) {
    let url = format!("http://127.0.0.1:{}/uaa/oauth/token", portico.plain);
    let basic = format!("{}:{}", client.0, client.1);
    let gateway = "Host: gateway.eu1.portico.localhost";
    let (status, body) = curl(&["-H", gateway, "-u", &basic, "-d", form, &url]);
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    (status, json)
}

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

#[test]
fn a_bearer_api_takes_portico_tokens_of_its_tenants_only() {
    let portico = Portico::start(CONFIG, &[]);
    let backend = backend("stock", 0);
    for tenant in ["acme", "globex"] {
        portico.admin(&["tenant", "add", tenant]);
    }
    let backend_url = format!("http://{backend}");
    portico.admin(&[
        "api",
        "add",
        "--name",
        "stock",
        "--version",
        "1",
        "--backend",
        &backend_url,
        "--route",
        "/**",
        "--tenant",
        "acme",
        "--auth",
        "bearer",
    ]);
    let acme = add_client(&portico, "acme", &["client_credentials", TOKEN_EXCHANGE]);
    let globex = add_client(&portico, "globex", &["client_credentials"]);
    let api = format!("http://127.0.0.1:{}/api/stock/v1/whoami", portico.plain);
    let gateway = "Host: gateway.eu1.portico.localhost";
    let call = |token: &str| {
        let bearer = format!("Authorization: Bearer {token}");
        curl(&["-H", gateway, "-H", &bearer, &api])
    };

    // Client credentials: a token for acme, accepted; the backend gets a token of its own.
    let (status, answer) = token_request(&portico, &acme, "grant_type=client_credentials");
    assert_eq!(status, 200, "{answer}");
    let token = answer["access_token"].as_str().unwrap().to_string();
    let mut forwarded = String::new();
    let passed = within(std::time::Duration::from_secs(10), || {
        let (status, body) = call(&token);
        forwarded = body;
        status == 200
    });
    assert!(passed.is_some(), "{forwarded}");
    let forwarded = forwarded
        .strip_prefix("Bearer ")
        .expect("a forwarded token");
    let claims = verify_with_jwks(&portico, forwarded, "api:stock");
    assert_eq!(claims["ten"], "acme");
    assert_eq!(claims["sub"], acme.0.as_str());

    // No token, a tampered one: 401. Another tenant's token: 403.
    assert_eq!(curl(&["-H", gateway, &api]).0, 401);
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(call(&String::from_utf8(tampered).unwrap()).0, 401);
    let (status, answer) = token_request(&portico, &globex, "grant_type=client_credentials");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(call(answer["access_token"].as_str().unwrap()).0, 403);

    // Token exchange (RFC 8693) to another audience: good there, not here.
    let form = format!(
        "grant_type={TOKEN_EXCHANGE}&subject_token={token}&subject_token_type=urn:ietf:params:oauth:token-type:access_token&audience=api:other"
    );
    let (status, answer) = token_request(&portico, &acme, &form);
    assert_eq!(status, 200, "{answer}");
    let exchanged = answer["access_token"].as_str().unwrap();
    assert_eq!(
        call(exchanged).0,
        401,
        "a token for api:other is not for api:stock"
    );
}

#[test]
fn an_unused_session_ends_after_the_inactive_timeout() {
    let config = format!("{CONFIG}\n[identity]\nsession_inactive_timeout = \"2s\"\n");
    let portico = shop_with_olga(&config);
    let headers = log_in_as_olga(&portico);
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", portico.plain);
    let host = format!("Host: {HOST}");
    let cookie = format!("Cookie: SESSION={}", cookie_value(&headers, "SESSION"));
    let ajax = || {
        let xhr = "X-Requested-With: XMLHttpRequest";
        curl(&["-H", &host, "-H", &cookie, "-H", xhr, &url("/whoami")]).0
    };
    assert!(within(std::time::Duration::from_secs(10), || ajax() == 200).is_some());
    // Used within the timeout, it lives on; left alone past it, it is gone.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(ajax(), 200);
    std::thread::sleep(std::time::Duration::from_millis(3500));
    assert_eq!(ajax(), 401);
}

/// A token signed with the server's own current key but with the claims given: what a
/// client holding an old or a foreign-made token would present. The key is read from the
/// server's store, as only a test may.
async fn forge(portico: &Portico, claims: serde_json::Value) -> String {
    let url = format!("sqlite://{}", portico.path("data/portico.db").display());
    let store = portico_store::Store::open(&url).await.unwrap();
    let keys = store.signing_keys().await.unwrap();
    store.close().await;
    let key = keys
        .iter()
        .find(|k| k.retired_ms.is_none())
        .expect("a signing key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    let encoding = jsonwebtoken::EncodingKey::from_ec_pem(key.private_key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
}

#[tokio::test]
async fn expired_and_tenantless_tokens_are_refused_by_the_real_server() {
    let portico = tokio::task::spawn_blocking(|| {
        let portico = Portico::start(CONFIG, &[]);
        let backend = format!("http://{}", backend("stock", 0));
        portico.admin(&["tenant", "add", "acme"]);
        portico.admin(&[
            "api",
            "add",
            "--name",
            "stock",
            "--version",
            "1",
            "--backend",
            &backend,
            "--route",
            "/**",
            "--tenant",
            "acme",
            "--auth",
            "bearer",
        ]);
        portico
    })
    .await
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let issuer = format!("https://gateway.eu1.portico.localhost:{}", portico.tls);
    let claims = |exp: u64, ten: Option<&str>| {
        let mut c = serde_json::json!({
            "iss": issuer, "sub": "robot", "aud": ["api:stock"], "iat": now - 60,
            "exp": exp, "jti": "test", "scope": "portico",
        });
        if let Some(ten) = ten {
            c["ten"] = ten.into();
        }
        c
    };
    let good = forge(&portico, claims(now + 600, Some("acme"))).await;
    let expired = forge(&portico, claims(now - 3600, Some("acme"))).await;
    let tenantless = forge(&portico, claims(now + 600, None)).await;
    let malformed_tenant = forge(&portico, claims(now + 600, Some("Not A Tenant!"))).await;

    let statuses = tokio::task::spawn_blocking(move || {
        let api = format!("http://127.0.0.1:{}/api/stock/v1/whoami", portico.plain);
        let call = |token: &str| {
            let bearer = format!("Authorization: Bearer {token}");
            curl(&[
                "-H",
                "Host: gateway.eu1.portico.localhost",
                "-H",
                &bearer,
                &api,
            ])
            .0
        };
        // The registration reaches the gateway within a second or so.
        let ready = within(std::time::Duration::from_secs(10), || call(&good) == 200);
        assert!(ready.is_some(), "a well-formed token is accepted");
        [call(&expired), call(&tenantless), call(&malformed_tenant)]
    })
    .await
    .unwrap();
    assert_eq!(statuses, [401, 403, 403], "expired, no ten, malformed ten");
}

#[test]
fn a_session_ends_at_its_maximum_lifetime_even_in_use() {
    let config = format!("{CONFIG}\n[identity]\nsession_max_lifetime = \"3s\"\n");
    let portico = shop_with_olga(&config);
    let headers = log_in_as_olga(&portico);
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", portico.plain);
    let host = format!("Host: {HOST}");
    let started = std::time::Instant::now();
    let cookie = format!("Cookie: SESSION={}", cookie_value(&headers, "SESSION"));
    let ajax = || {
        let xhr = "X-Requested-With: XMLHttpRequest";
        curl(&["-H", &host, "-H", &cookie, "-H", xhr, &url("/whoami")]).0
    };
    assert_eq!(ajax(), 200);
    // Used every half second, it still ends once 3 s have passed since the login.
    let mut last = 200;
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        last = ajax();
        if last != 200 {
            break;
        }
    }
    assert_eq!(last, 401);
    assert!(started.elapsed() >= std::time::Duration::from_secs(3));
}

/// `portico serve` with `config`, the session web app `shop` of tenant `acme` on a
/// reporting backend, and its user olga.
fn shop_with_olga(config: &str) -> Portico {
    let portico = Portico::start(config, &[]);
    acme_shop_with_users(&portico, &[("olga", "user")], PASSWORD);
    portico
}

/// Olga's login on the app: the response headers, with its cookies.
fn log_in_as_olga(portico: &Portico) -> String {
    let url = format!("http://127.0.0.1:{}/login", portico.plain);
    let host = format!("Host: {HOST}");
    let form = format!("username=olga&password={}", PASSWORD.replace(' ', "+"));
    let (status, headers) = curl(&["-D", "-", "-o", "/dev/null", "-H", &host, "-d", &form, &url]);
    assert_eq!(status, 303, "{headers}");
    headers
}
