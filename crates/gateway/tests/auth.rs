//! Who may pass, through a real gateway on loopback (ID-1..ID-5, GW-23): sessions on web
//! apps with the login redirect and the AJAX 401, bearer tokens on APIs with audience,
//! tenant and scopes, CSRF, the token a backend receives instead of the client's
//! credentials, and the core identity paths. WebSockets with sessions are in
//! `auth_websockets.rs`; the identity service is the test double of `support::auth_double`.

#![allow(clippy::unwrap_used)]

mod support;

use support::auth_double::*;
use support::*;

#[tokio::test]
async fn browsers_without_a_session_go_to_login_and_ajax_gets_401() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;

    let r = get(gw.addr, SHOP, "/reports/q1?x=1&y=2", &[]).await;
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some("/login?return=%2Freports%2Fq1%3Fx%3D1%26y%3D2")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));

    let r = get(
        gw.addr,
        SHOP,
        "/reports",
        &["X-Requested-With: XMLHttpRequest"],
    )
    .await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["status"], 401);
    assert!(r.header("location").is_none());

    // An unknown or ended session is no session.
    let r = get(gw.addr, SHOP, "/", &[&cookie("s-nobody")]).await;
    assert_eq!(r.status, 302);
    double.add("s-gone", "abc", "gus", &[], "c");
    double.end("s-gone");
    let r = get(gw.addr, SHOP, "/", &[&cookie("s-gone")]).await;
    assert_eq!(r.status, 302);

    let r = get(gw.addr, SHOP, "/", &[&cookie(ANN)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-backend"), Some("web"));
}

#[tokio::test]
async fn a_session_counts_only_on_its_own_tenants_hosts() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;

    // Olga's session (tenant other) on tenant abc's host is as if there were none.
    let r = get(gw.addr, SHOP, "/", &[&cookie(OLGA)]).await;
    assert_eq!(r.status, 302, "{r:?}");
    let r = get(
        gw.addr,
        SHOP,
        "/",
        &[&cookie(OLGA), "X-Requested-With: XMLHttpRequest"],
    )
    .await;
    assert_eq!(r.status, 401);
    let r = get(gw.addr, SHOP_OF_OTHER, "/", &[&cookie(OLGA)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Bearer fwd~other~olga~webapp:shop-xyz")
    );

    // REGION-SESSION serves when SESSION is missing, or belongs elsewhere.
    let r = get(
        gw.addr,
        SHOP,
        "/",
        &[&format!("Cookie: REGION-SESSION={ANN}")],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let both = format!("Cookie: SESSION={OLGA}; REGION-SESSION={ANN}");
    let r = get(gw.addr, SHOP, "/", &[&both]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Bearer fwd~abc~ann~webapp:shop-xyz")
    );

    // A web app's scopes: ann is no admin.
    let admin = "abc-admin.eu1.portico.localhost";
    let r = get(gw.addr, admin, "/", &[&cookie(ANN)]).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("insufficient_scope"), "{}", r.body);
    double.add("s-root", "abc", "root", &["role:admin"], "c");
    let r = get(gw.addr, admin, "/", &[&cookie("s-root")]).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn the_backend_gets_a_token_for_it_and_never_the_session_secrets() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;
    let cookies = format!("Cookie: theme=dark; SESSION={ANN}; XSRF-TOKEN={ANN_CSRF}; lang=de");
    let r = get(
        gw.addr,
        SHOP,
        "/page",
        &[
            &cookies,
            "Authorization: Basic YW5uOnB3",
            &format!("X-XSRF-TOKEN: {ANN_CSRF}"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Bearer fwd~abc~ann~webapp:shop-xyz"),
        "the client's Authorization is replaced"
    );
    assert_eq!(
        seen_header(&r, "cookie").as_deref(),
        Some("theme=dark; lang=de")
    );
    assert_eq!(seen_header(&r, "x-xsrf-token"), None);

    // An API call with a token: the backend gets a token for that API, not the client's.
    let token = "tok~abc~svc~~portico";
    let r = get(
        gw.addr,
        GATEWAY,
        "/api/iot-xyz/v3/assets",
        &[&bearer(token)],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Bearer fwd~abc~svc~api:iot-xyz")
    );
}

#[tokio::test]
async fn apis_need_a_valid_bearer_token_meant_for_them() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;
    let path = "/api/iot-xyz/v3/assets/7";

    let r = get(gw.addr, GATEWAY, path, &[]).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"portico\"")
    );
    let r = get(gw.addr, GATEWAY, path, &["Authorization: Basic YTpi"]).await;
    assert_eq!(r.status, 401);

    let r = get(gw.addr, GATEWAY, path, &[&bearer("forged")]).await;
    assert_eq!(r.status, 401, "{r:?}");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // The authenticator's Forbidden (no valid `ten`) is 403.
    let r = get(gw.addr, GATEWAY, path, &[&bearer("tok~~svc~~portico")]).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.json()["message"].as_str().unwrap().contains("ten"));

    // A token for another audience is not valid here: 401 invalid_token.
    let r = get(gw.addr, GATEWAY, path, &[&bearer("tok~abc~svc~~api:fleet")]).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    let r = get(
        gw.addr,
        GATEWAY,
        path,
        &[&bearer("tok~abc~svc~~webapp:shop-xyz")],
    )
    .await;
    assert_eq!(r.status, 401);

    // Its own audience, or Portico's, passes; on southgate too.
    for token in ["tok~abc~svc~~api:iot-xyz", "tok~abc~svc~~api:fleet,portico"] {
        for host in [GATEWAY, SOUTHGATE] {
            let r = get(gw.addr, host, path, &[&bearer(token)]).await;
            assert_eq!(r.status, 200, "{token} on {host}: {r:?}");
            assert_eq!(r.header("x-backend"), Some("api"));
        }
    }
    let r = get(gw.addr, SOUTHGATE, path, &[&bearer("forged")]).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn tokens_need_a_subscribed_tenant_and_the_apis_scopes() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;

    // Tenant other is not subscribed to iot.
    let r = get(
        gw.addr,
        GATEWAY,
        "/api/iot-xyz/v3/assets",
        &[&bearer("tok~other~svc~~portico")],
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("not subscribed"), "{}", r.body);

    // fleet needs fleet.write.
    let path = "/api/fleet/v1/trucks";
    let r = get(
        gw.addr,
        GATEWAY,
        path,
        &[&bearer("tok~abc~svc~fleet.read~portico")],
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("insufficient_scope"), "{}", r.body);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("fleet.write"),
        "{challenge}"
    );
    let token = "tok~other~svc~fleet.read,fleet.write~api:fleet";
    let r = get(gw.addr, GATEWAY, path, &[&bearer(token)]).await;
    assert_eq!(r.status, 200, "{r:?}");

    // On a web-app host, a token of tenant abc does not act for tenant other.
    let r = get(
        gw.addr,
        SHOP_OF_OTHER,
        path,
        &[&bearer("tok~abc~svc~fleet.write~portico")],
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = get(
        gw.addr,
        SHOP,
        path,
        &[&bearer("tok~abc~svc~fleet.write~portico")],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn a_web_apps_session_authorises_its_api_calls() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;
    let path = "/api/iot-xyz/v3/assets";

    let r = get(gw.addr, SHOP, path, &[&cookie(ANN)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Bearer fwd~abc~ann~api:iot-xyz")
    );
    assert_eq!(seen_header(&r, "cookie"), None);
    // Without a session an API call gets 401, never a redirect.
    let r = get(gw.addr, SHOP, path, &[]).await;
    assert_eq!(r.status, 401, "{r:?}");
    // The session of another tenant does not count; nor does a session on the gateway host.
    let r = get(gw.addr, SHOP, path, &[&cookie(OLGA)]).await;
    assert_eq!(r.status, 401);
    let r = get(gw.addr, GATEWAY, path, &[&cookie(ANN)]).await;
    assert_eq!(r.status, 401);
    // Ann lacks fleet.write.
    let r = get(gw.addr, SHOP, "/api/fleet/v1/trucks", &[&cookie(ANN)]).await;
    assert_eq!(r.status, 403, "{r:?}");
}

#[tokio::test]
async fn state_changing_requests_in_a_session_need_the_csrf_token_and_the_apps_origin() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;
    let own = format!("Origin: http://{SHOP}");
    let token = format!("X-XSRF-TOKEN: {ANN_CSRF}");
    let session = cookie(ANN);
    let post = |extra: Vec<String>| {
        let addr = gw.addr;
        async move {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            send(addr, "POST", SHOP, "/orders", &extra, "{}").await
        }
    };

    let r = post(vec![session.clone(), own.clone()]).await;
    assert_eq!(r.status, 403, "missing token: {r:?}");
    let r = post(vec![
        session.clone(),
        own.clone(),
        "X-XSRF-TOKEN: guessed".into(),
    ])
    .await;
    assert_eq!(r.status, 403, "wrong token: {r:?}");
    let r = post(vec![
        session.clone(),
        token.clone(),
        "Origin: http://evil.example".into(),
    ])
    .await;
    assert_eq!(r.status, 403, "foreign origin: {r:?}");
    let r = post(vec![session.clone(), token.clone()]).await;
    assert_eq!(r.status, 403, "no origin: {r:?}");

    let r = post(vec![session.clone(), token.clone(), own.clone()]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["method"], "POST");
    let r = post(vec![
        session.clone(),
        token.clone(),
        format!("Referer: http://{SHOP}/cart"),
    ])
    .await;
    assert_eq!(
        r.status, 200,
        "a Referer of the app serves without Origin: {r:?}"
    );
    for method in ["PUT", "PATCH", "DELETE"] {
        let r = send(gw.addr, method, SHOP, "/orders/1", &[&session, &own], "").await;
        assert_eq!(r.status, 403, "{method} without token");
    }

    // The same for the app's API calls in the session.
    let api = "/api/iot-xyz/v3/assets";
    let r = send(gw.addr, "POST", SHOP, api, &[&session, &own], "{}").await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = send(gw.addr, "POST", SHOP, api, &[&session, &own, &token], "{}").await;
    assert_eq!(r.status, 200, "{r:?}");

    // Bearer requests are exempt.
    let r = send(
        gw.addr,
        "POST",
        GATEWAY,
        api,
        &[&bearer("tok~abc~svc~~portico")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn registrations_without_auth_are_unchanged() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;
    let r = get(
        gw.addr,
        PUBLIC,
        "/page",
        &["Authorization: Basic YTpi", "Cookie: theme=dark"],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Basic YTpi")
    );
    assert_eq!(seen_header(&r, "cookie").as_deref(), Some("theme=dark"));
    let r = send(gw.addr, "POST", PUBLIC, "/form", &[], "x").await;
    assert_eq!(r.status, 200, "no CSRF check without a session: {r:?}");

    let r = get(
        gw.addr,
        GATEWAY,
        "/api/status/v1/now",
        &["Authorization: Bearer not-ours"],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        seen_header(&r, "authorization").as_deref(),
        Some("Bearer not-ours")
    );

    // Portico's session secrets are not a public app's business.
    let r = get(
        gw.addr,
        PUBLIC,
        "/page",
        &[&format!(
            "Cookie: SESSION={ANN}; theme=dark; XSRF-TOKEN={ANN_CSRF}"
        )],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(seen_header(&r, "cookie").as_deref(), Some("theme=dark"));
    assert_eq!(
        seen_header(&r, "authorization"),
        None,
        "no token is minted for a public app"
    );
}

#[tokio::test]
async fn without_identity_protected_registrations_answer_503() {
    let (web, api_backend, ws) = (backend("web").await, backend("api").await, ws_echo().await);
    let gw = start(&registry(web, api_backend, ws), |_| {}).await;
    let r = get(gw.addr, SHOP, "/", &[]).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("identity"), "{}", r.body);
    let r = get(gw.addr, GATEWAY, "/api/iot-xyz/v3/a", &[&bearer("x")]).await;
    assert_eq!(r.status, 503);
    let r = get(gw.addr, PUBLIC, "/", &[]).await;
    assert_eq!(r.status, 200);
    // Without the identity service, its core paths stay reserved.
    let r = get(gw.addr, SHOP, "/login", &[]).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn core_paths_reach_the_identity_service_with_the_session() {
    let double = Double::with_sessions();
    let gw = gateway(&double).await;

    let r = get(gw.addr, SHOP, "/login?return=%2Fx", &[&cookie(ANN)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = r.json();
    assert_eq!(seen["path"], "/login?return=%2Fx");
    assert_eq!(seen["tenant"], "abc");
    assert_eq!(seen["session"], ANN);
    assert_eq!(seen["subject"], "ann");
    assert_eq!(
        seen["cookie"],
        format!("SESSION={ANN}"),
        "the identity service sees the request as it came"
    );
    // Web-app headers apply to its pages.
    assert!(r.header("content-security-policy").is_some());

    let r = get(gw.addr, SHOP, "/logout", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["session"].is_null());
    // Another tenant's session is not handed on a tenant's host.
    let r = get(gw.addr, SHOP, "/login", &[&cookie(OLGA)]).await;
    assert!(r.json()["session"].is_null());

    for (host, path) in [
        (GATEWAY, "/.well-known/jwks.json"),
        (GATEWAY, "/uaa/oauth/token"),
        (SOUTHGATE, "/uaa/oauth/token"),
        (SHOP, "/oauth/authorize?client_id=c"),
    ] {
        let r = get(gw.addr, host, path, &[]).await;
        assert_eq!(r.status, 200, "{host}{path}: {r:?}");
        assert_eq!(r.json()["path"], path);
    }
    let r = get(gw.addr, GATEWAY, "/oauth/authorize", &[&cookie(OLGA)]).await;
    assert_eq!(
        r.json()["session"],
        OLGA,
        "the gateway host names no tenant"
    );
    let r = get(
        gw.addr,
        "nobody-shop-xyz.eu1.portico.localhost",
        "/login",
        &[],
    )
    .await;
    assert_eq!(r.status, 404, "an unknown tenant has no login page");
    let r = get(gw.addr, SOUTHGATE, "/inventory/x", &[]).await;
    assert_eq!(r.status, 404, "device paths are not identity's");
}
