//! The identity router, driven request by request (`tower::ServiceExt::oneshot`) with the
//! `Caller` the gateway would insert.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use axum::body::Body;
use axum::Router;
use base64::Engine;
use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use portico_identity::http::{router, Caller};
use portico_identity::oauth::{AUTHORIZATION_CODE, CLIENT_CREDENTIALS};
use portico_identity::{Identity, IdentityConfig, NewClient, Role};
use portico_store::{OidcProviderRecord, Store};
use tower::ServiceExt;

const ISSUER: &str = "https://gateway.eu1.portico.localhost";
const PASSWORD: &str = "correct horse battery";
const HOST: &str = "abc-shop.eu1.portico.localhost";

struct Fixture {
    identity: Identity,
    app: Router,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/p.db", dir.path().display()))
        .await
        .unwrap();
    let identity = Identity::open(store, IdentityConfig::default(), ISSUER)
        .await
        .unwrap();
    identity
        .add_user("abc", "alice", Role::User, PASSWORD)
        .await
        .unwrap();
    Fixture {
        app: router(identity.clone()),
        identity,
        _dir: dir,
    }
}

fn caller(tls: bool, session_id: Option<&str>) -> Caller {
    Caller {
        tenant: Some("abc".into()),
        host: HOST.into(),
        tls,
        client: IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 3)),
        session_id: session_id.map(Into::into),
        region_domain: "eu1.portico.localhost".into(),
    }
}

impl Fixture {
    async fn send(&self, mut request: Request<Body>, caller: Caller) -> Response<Body> {
        request.extensions_mut().insert(caller);
        self.app.clone().oneshot(request).await.unwrap()
    }

    async fn login(&self, tls: bool, password: &str, return_to: &str) -> Response<Body> {
        let body = format!(
            "username=alice&password={}&return={}",
            password.replace(' ', "+"),
            urlencode(return_to)
        );
        let request = Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.send(request, caller(tls, None)).await
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn text(response: Response<Body>) -> String {
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

fn set_cookies(response: &Response<Body>) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn location(response: &Response<Body>) -> &str {
    response.headers()[header::LOCATION].to_str().unwrap()
}

fn cookie_value(cookies: &[String], name: &str) -> String {
    cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_login_page_is_a_form_with_the_return_url() {
    let f = fixture().await;
    let response = f
        .send(
            Request::get("/login?return=%2Fapp%3Fx%3D1")
                .body(Body::empty())
                .unwrap(),
            caller(true, None),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = text(response).await;
    assert!(
        html.contains("<form method=\"post\" action=\"/login\">"),
        "{html}"
    );
    assert!(
        html.contains("name=\"return\" value=\"/app?x=1\""),
        "{html}"
    );
    assert!(!html.contains("/login/oidc"), "no external provider yet");

    f.identity
        .store()
        .set_oidc_provider(&OidcProviderRecord {
            tenant: "abc".into(),
            issuer: "https://idp.example".into(),
            client_id: "portico".into(),
            client_secret: "s".into(),
            created_ms: 0,
        })
        .await
        .unwrap();
    let html = text(
        f.send(
            Request::get("/login").body(Body::empty()).unwrap(),
            caller(true, None),
        )
        .await,
    )
    .await;
    assert!(
        html.contains("/login/oidc?return="),
        "the provider's button is offered"
    );
}

#[tokio::test]
async fn a_login_sets_the_session_cookies_and_returns_to_the_app() {
    let f = fixture().await;
    let response = f.login(true, PASSWORD, "/app/page?x=1").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/app/page?x=1");
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    let find = |name: &str| {
        cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap()
    };
    let session = find("SESSION");
    let region = find("REGION-SESSION");
    let xsrf = find("XSRF-TOKEN");
    for c in [session, region] {
        assert!(
            c.contains("; HttpOnly") && c.contains("; SameSite=Lax") && c.contains("; Secure"),
            "{c}"
        );
    }
    assert!(
        !session.contains("Domain="),
        "SESSION is host-only: {session}"
    );
    assert!(
        region.contains("; Domain=eu1.portico.localhost"),
        "{region}"
    );
    assert!(
        !xsrf.contains("HttpOnly"),
        "page JavaScript reads XSRF-TOKEN: {xsrf}"
    );
    for c in &cookies {
        assert!(
            !c.contains("Max-Age") && !c.contains("Expires"),
            "no expiry: {c}"
        );
    }
    let id = cookie_value(&cookies, "SESSION");
    assert_eq!(cookie_value(&cookies, "REGION-SESSION"), id);
    let session = f.identity.session(&id).await.unwrap().unwrap();
    assert_eq!(session.user_name, "alice");
    assert_eq!(cookie_value(&cookies, "XSRF-TOKEN"), session.csrf_token);

    // Over plain HTTP the cookies are not Secure.
    let plain = f.login(false, PASSWORD, "/").await;
    assert!(set_cookies(&plain).iter().all(|c| !c.contains("Secure")));
}

#[tokio::test]
async fn foreign_return_urls_are_not_followed() {
    let f = fixture().await;
    for evil in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let response = f.login(true, PASSWORD, evil).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/", "{evil}");
    }
}

#[tokio::test]
async fn wrong_passwords_get_the_form_again_then_429() {
    let f = fixture().await;
    for _ in 0..5 {
        let response = f.login(true, "wrong password", "/").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookies(&response).is_empty());
        let html = text(response).await;
        assert!(html.contains("Wrong user name or password.") && html.contains("<form"));
    }
    let response = f.login(true, PASSWORD, "/").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 900, "{retry}");
    assert!(set_cookies(&response).is_empty());
}

#[tokio::test]
async fn a_cross_site_login_post_is_refused() {
    let f = fixture().await;
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ORIGIN, "https://evil.example")
        .body(Body::from(format!(
            "username=alice&password={}",
            PASSWORD.replace(' ', "+")
        )))
        .unwrap();
    assert_eq!(
        f.send(request, caller(true, None)).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn logout_ends_the_session_and_clears_the_cookies() {
    let f = fixture().await;
    let id = cookie_value(&set_cookies(&f.login(true, PASSWORD, "/").await), "SESSION");
    let response = f
        .send(
            Request::post("/logout").body(Body::empty()).unwrap(),
            caller(true, Some(&id)),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 3);
    assert!(
        cookies.iter().all(|c| c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    assert!(f.identity.session(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_link_or_another_site_cannot_log_a_user_out() {
    let f = fixture().await;
    let id = cookie_value(&set_cookies(&f.login(true, PASSWORD, "/").await), "SESSION");
    // A GET (an image, a link) only shows the button.
    let page = f
        .send(
            Request::get("/logout").body(Body::empty()).unwrap(),
            caller(true, Some(&id)),
        )
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(text(page)
        .await
        .contains("method=\"post\" action=\"/logout\""));
    // A POST from another origin is refused.
    let foreign = Request::post("/logout")
        .header(header::ORIGIN, "https://evil-app.eu1.portico.localhost")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        f.send(foreign, caller(true, Some(&id))).await.status(),
        StatusCode::FORBIDDEN
    );
    assert!(f.identity.session(&id).await.unwrap().is_some());
}

#[tokio::test]
async fn the_token_endpoint_takes_basic_or_form_credentials_and_answers_rfc_6749_errors() {
    let f = fixture().await;
    let c = f
        .identity
        .register_client(&NewClient {
            tenant: "abc".into(),
            name: "machine".into(),
            confidential: true,
            grant_types: vec![CLIENT_CREDENTIALS.into()],
            scopes: vec!["portico".into()],
            redirect_uris: vec![],
        })
        .await
        .unwrap();
    let secret = c.client_secret.clone().unwrap();
    let token_request = |body: String, basic: Option<String>| {
        let mut r = Request::post("/uaa/oauth/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(b) = basic {
            r = r.header(header::AUTHORIZATION, format!("Basic {b}"));
        }
        r.body(Body::from(body)).unwrap()
    };
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.client_id, secret));

    let response = f
        .send(
            token_request("grant_type=client_credentials".into(), Some(basic)),
            caller(true, None),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let json: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(json["token_type"], "Bearer");
    let token = f
        .identity
        .verify(json["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(token.tenant, "abc");

    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        c.client_id, secret
    );
    let response = f.send(token_request(body, None), caller(false, None)).await;
    assert_eq!(response.status(), StatusCode::OK);

    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{}:nope", c.client_id));
    let response = f
        .send(
            token_request("grant_type=client_credentials".into(), Some(wrong)),
            caller(true, None),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    let json: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(json["error"], "invalid_client");
    assert!(json["error_description"].is_string());

    let response = f
        .send(
            token_request(
                format!(
                    "grant_type=password&client_id={}&client_secret={secret}",
                    c.client_id
                ),
                None,
            ),
            caller(true, None),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let json: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(json["error"], "unsupported_grant_type");

    let response = f
        .send(
            token_request(
                "grant_type=client_credentials&grant_type=client_credentials".into(),
                None,
            ),
            caller(true, None),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let json: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(json["error"], "invalid_request");
}

#[tokio::test]
async fn authorize_sends_strangers_to_login_and_users_to_the_client_with_a_code() {
    let f = fixture().await;
    let c = f
        .identity
        .register_client(&NewClient {
            tenant: "abc".into(),
            name: "browser app".into(),
            confidential: false,
            grant_types: vec![AUTHORIZATION_CODE.into()],
            scopes: vec!["portico".into()],
            redirect_uris: vec![format!("https://{HOST}/callback")],
        })
        .await
        .unwrap();
    let path = format!(
        "/oauth/authorize?response_type=code&client_id={}&state=s1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        c.client_id
    );
    let response = f
        .send(
            Request::get(&path).body(Body::empty()).unwrap(),
            caller(true, None),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/login?return=%2Foauth%2Fauthorize%3F"));

    let id = cookie_value(&set_cookies(&f.login(true, PASSWORD, "/").await), "SESSION");
    let response = f
        .send(
            Request::get(&path).body(Body::empty()).unwrap(),
            caller(true, Some(&id)),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to = location(&response);
    assert!(
        to.starts_with(&format!("https://{HOST}/callback?code=")),
        "{to}"
    );
    assert!(to.ends_with("&state=s1"), "{to}");

    // A session of another tenant is ignored: login first.
    let mut other = caller(true, Some(&id));
    other.tenant = Some("xyz".into());
    let response = f
        .send(Request::get(&path).body(Body::empty()).unwrap(), other)
        .await;
    assert!(location(&response).starts_with("/login?"));

    let unknown = path.replace(&c.client_id, "nobody");
    let response = f
        .send(
            Request::get(&unknown).body(Body::empty()).unwrap(),
            caller(true, Some(&id)),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "no redirect for an unknown client"
    );
}

#[tokio::test]
async fn the_well_known_documents_describe_the_issuer_and_its_keys() {
    let f = fixture().await;
    let response = f
        .send(
            Request::get("/.well-known/openid-configuration")
                .body(Body::empty())
                .unwrap(),
            caller(true, None),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let meta: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(meta["issuer"], ISSUER);
    assert_eq!(meta["token_endpoint"], format!("{ISSUER}/uaa/oauth/token"));
    assert_eq!(meta["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));

    let response = f
        .send(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .unwrap(),
            caller(true, None),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let jwks: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str()),
        (Some("EC"), Some("ES256"))
    );
    assert!(key.get("d").is_none());
}
