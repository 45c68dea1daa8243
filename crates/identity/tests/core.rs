//! The identity service on a real store: logins and throttling, session lifetimes on one
//! and two nodes, signing-key rotation, and every OAuth grant.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::Duration;

use portico_identity::oauth::{
    ACCESS_TOKEN_TYPE, AUTHORIZATION_CODE, CLIENT_CREDENTIALS, REFRESH_TOKEN, TOKEN_EXCHANGE,
};
use portico_identity::{
    check_audience, AuthorizeError, AuthorizeRequest, ClientCredentials, Identity, IdentityConfig,
    LoginError, NewClient, Role, TokenError, TokenRequest,
};
use portico_store::Store;

const ISSUER: &str = "https://gateway.eu1.portico.localhost";
const PASSWORD: &str = "correct horse battery";
const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

struct Node {
    identity: Identity,
    _dir: Option<tempfile::TempDir>,
}

async fn node_with(config: IdentityConfig) -> (Node, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/portico.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let identity = Identity::open(store, config, ISSUER).await.unwrap();
    (
        Node {
            identity,
            _dir: Some(dir),
        },
        url,
    )
}

async fn second_node(url: &str, config: IdentityConfig) -> Node {
    let store = Store::open(url).await.unwrap();
    Node {
        identity: Identity::open(store, config, ISSUER).await.unwrap(),
        _dir: None,
    }
}

async fn with_alice(config: IdentityConfig) -> (Node, String) {
    let (node, url) = node_with(config).await;
    node.identity
        .add_user("abc", "alice", Role::User, PASSWORD)
        .await
        .unwrap();
    (node, url)
}

/// Waits for `f` to resolve, at most `limit`.
async fn within<F: std::future::Future>(limit: Duration, f: F) -> Option<F::Output> {
    tokio::time::timeout(limit, f).await.ok()
}

#[tokio::test]
async fn login_checks_the_password_and_throttles_the_account() {
    let (node, _) = with_alice(IdentityConfig::default()).await;
    let id = &node.identity;
    let login = id.login("abc", "alice", PASSWORD, CLIENT).await.unwrap();
    assert_eq!(login.session.user_name, "alice");
    assert_eq!(login.session.role, "user");
    assert_eq!(login.session_id.as_str().len(), 43, "256 bits, base64url");
    assert!(!format!("{login:?}").contains(login.session_id.as_str()));

    assert!(
        matches!(
            id.login("xyz", "alice", PASSWORD, CLIENT).await,
            Err(LoginError::WrongCredentials)
        ),
        "alice of abc is unknown in xyz"
    );
    for _ in 0..5 {
        assert!(matches!(
            id.login("abc", "alice", "wrong password", CLIENT).await,
            Err(LoginError::WrongCredentials)
        ));
    }
    match id.login("abc", "alice", PASSWORD, CLIENT).await {
        Err(LoginError::Throttled { retry_after }) => {
            assert!(
                retry_after > Duration::from_secs(14 * 60),
                "{retry_after:?}"
            )
        }
        other => panic!("expected throttling, got {other:?}"),
    }
}

#[tokio::test]
async fn a_session_lives_until_logout_and_ended_resolves_then() {
    let (node, _) = with_alice(IdentityConfig::default()).await;
    let id = &node.identity;
    let login = id.login("abc", "alice", PASSWORD, CLIENT).await.unwrap();
    let sid = login.session_id.as_str().to_string();
    let session = id.session(&sid).await.unwrap().unwrap();
    assert_eq!(session.tenant, "abc");
    assert_eq!(session.csrf_token, login.session.csrf_token);
    assert!(id.session("not-a-session").await.unwrap().is_none());

    let ended = tokio::spawn(id.session_ended(&sid));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!ended.is_finished(), "the session is live");
    assert!(id.logout(&sid).await.unwrap());
    assert!(within(Duration::from_secs(2), ended).await.is_some());
    assert!(id.session(&sid).await.unwrap().is_none());
    assert!(!id.logout(&sid).await.unwrap());
    // Waiting on an ended session returns at once.
    assert!(within(Duration::from_secs(1), id.session_ended(&sid))
        .await
        .is_some());
}

#[tokio::test]
async fn an_unused_session_expires_after_the_inactive_lifetime() {
    let config = IdentityConfig {
        session_inactive: Duration::from_millis(800),
        ..IdentityConfig::default()
    };
    let (node, _) = with_alice(config).await;
    let id = &node.identity;
    let sid = id
        .login("abc", "alice", PASSWORD, CLIENT)
        .await
        .unwrap()
        .session_id;
    // Used every 300 ms, it stays.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(id.session(sid.as_str()).await.unwrap().is_some());
    }
    // Left alone, it ends, and its waiter learns of it.
    let ended = id.session_ended(sid.as_str());
    assert!(within(Duration::from_secs(3), ended).await.is_some());
    assert!(id.session(sid.as_str()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_used_session_still_ends_at_the_absolute_lifetime() {
    let config = IdentityConfig {
        session_absolute: Duration::from_millis(1200),
        session_inactive: Duration::from_secs(60),
        ..IdentityConfig::default()
    };
    let (node, _) = with_alice(config).await;
    let id = &node.identity;
    let sid = id
        .login("abc", "alice", PASSWORD, CLIENT)
        .await
        .unwrap()
        .session_id;
    let ended = tokio::spawn(id.session_ended(sid.as_str()));
    let started = std::time::Instant::now();
    let mut live_until = Duration::ZERO;
    for _ in 0..20 {
        if id.session(sid.as_str()).await.unwrap().is_none() {
            break;
        }
        live_until = started.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(id.session(sid.as_str()).await.unwrap().is_none());
    assert!(live_until >= Duration::from_millis(800), "{live_until:?}");
    assert!(within(Duration::from_secs(2), ended).await.is_some());
}

#[tokio::test]
async fn a_second_node_sees_sessions_and_their_logout() {
    let config = IdentityConfig {
        session_cache: Duration::from_millis(300),
        ..IdentityConfig::default()
    };
    let (a, url) = with_alice(config.clone()).await;
    let b = second_node(&url, config).await;
    let sid = a
        .identity
        .login("abc", "alice", PASSWORD, CLIENT)
        .await
        .unwrap()
        .session_id;
    let on_b = b.identity.session(sid.as_str()).await.unwrap().unwrap();
    assert_eq!(on_b.user_name, "alice");

    let ended_on_b = tokio::spawn(b.identity.session_ended(sid.as_str()));
    a.identity.logout(sid.as_str()).await.unwrap();
    assert!(
        within(Duration::from_secs(3), ended_on_b).await.is_some(),
        "node b notices node a's logout within its cache time"
    );
    assert!(b.identity.session(sid.as_str()).await.unwrap().is_none());
}

#[tokio::test]
async fn the_last_use_is_written_back_for_other_nodes() {
    let config = IdentityConfig {
        session_inactive: Duration::from_millis(1500),
        session_cache: Duration::from_millis(200),
        session_write_back: Duration::from_millis(400),
        ..IdentityConfig::default()
    };
    let (a, url) = with_alice(config.clone()).await;
    let b = second_node(&url, config).await;
    let sid = a
        .identity
        .login("abc", "alice", PASSWORD, CLIENT)
        .await
        .unwrap()
        .session_id;
    // Used on node a only, for longer than the inactive lifetime.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(a.identity.session(sid.as_str()).await.unwrap().is_some());
    }
    assert!(
        b.identity
            .peek_session(sid.as_str())
            .await
            .unwrap()
            .is_some(),
        "node b sees the uses node a wrote back"
    );
    let stored = a.identity.store().users("abc").await.unwrap();
    assert_eq!(stored.len(), 1);
}

#[tokio::test]
async fn removing_a_user_ends_their_sessions() {
    let (node, _) = with_alice(IdentityConfig {
        session_cache: Duration::from_millis(100),
        ..IdentityConfig::default()
    })
    .await;
    let id = &node.identity;
    let sid = id
        .login("abc", "alice", PASSWORD, CLIENT)
        .await
        .unwrap()
        .session_id;
    id.remove_user("abc", "alice").await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(id.session(sid.as_str()).await.unwrap().is_none());
    assert!(matches!(
        id.login("abc", "alice", PASSWORD, CLIENT).await,
        Err(LoginError::WrongCredentials)
    ));
}

#[tokio::test]
async fn removing_a_user_ends_their_sessions_on_this_node_at_once() {
    // The default cache (5 s): only the node's own copies going away ends it this soon.
    let (node, _) = with_alice(IdentityConfig::default()).await;
    let id = &node.identity;
    let sid = id
        .login("abc", "alice", PASSWORD, CLIENT)
        .await
        .unwrap()
        .session_id;
    assert!(id.session(sid.as_str()).await.unwrap().is_some());
    id.remove_user("abc", "alice").await.unwrap();
    assert!(id.session(sid.as_str()).await.unwrap().is_none());
}

#[tokio::test]
async fn forwarded_tokens_carry_the_session_user_and_verify() {
    let (node, _) = with_alice(IdentityConfig::default()).await;
    let id = &node.identity;
    let session = id
        .login("abc", "alice", PASSWORD, CLIENT)
        .await
        .unwrap()
        .session;
    let jwt = id.session_token(&session, "webapp:shop").unwrap();
    let token = id.verify(&jwt).unwrap();
    assert_eq!(
        (token.subject.as_str(), token.tenant.as_str()),
        ("alice", "abc")
    );
    assert_eq!(token.scopes, ["portico", "role:user"]);
    assert_eq!(token.issuer, ISSUER);
    assert!(check_audience(&token, &["webapp:shop"]).is_ok());
    assert_eq!(
        check_audience(&token, &["api:iot"]).unwrap_err(),
        TokenError::WrongAudience
    );
    let jwks = id.jwks();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(id.openid_configuration()["issuer"], ISSUER);
}

#[tokio::test]
async fn after_a_rotation_old_tokens_verify_until_their_key_is_unpublished() {
    // Long enough for the second node to open and check the old token on a slow machine.
    let config = IdentityConfig {
        access_token_lifetime: Duration::from_secs(3),
        clock_skew: Duration::ZERO,
        ..IdentityConfig::default()
    };
    let (a, url) = with_alice(config.clone()).await;
    let id = &a.identity;
    let session = id
        .login("abc", "alice", PASSWORD, CLIENT)
        .await
        .unwrap()
        .session;
    let old = id.session_token(&session, "webapp:shop").unwrap();
    id.rotate_keys().await.unwrap();
    let new = id.session_token(&session, "webapp:shop").unwrap();
    let kid = |t: &str| jsonwebtoken_kid(t);
    assert_ne!(kid(&old), kid(&new), "the new key signs");
    assert!(id.verify(&old).is_ok(), "the old key still verifies");
    assert_eq!(id.jwks()["keys"].as_array().unwrap().len(), 2);

    // Another node loads the same keys from the store.
    let b = second_node(&url, config).await;
    assert!(b.identity.verify(&new).is_ok());
    assert!(b.identity.verify(&old).is_ok());

    // Once every token of the old key has expired, the key leaves the JWKS.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    id.maintain().await;
    let keys = id.jwks()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], kid(&new));
    assert!(matches!(
        id.verify(&old),
        Err(TokenError::UnknownKey | TokenError::Expired)
    ));
}

fn jsonwebtoken_kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_string()
}

async fn client(
    id: &Identity,
    tenant: &str,
    grants: &[&str],
    scopes: &[&str],
) -> ClientCredentials {
    id.register_client(&NewClient {
        tenant: tenant.into(),
        name: "test client".into(),
        confidential: true,
        grant_types: grants.iter().map(|g| g.to_string()).collect(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        redirect_uris: vec!["https://abc-shop.eu1.portico.localhost/callback".into()],
    })
    .await
    .unwrap()
}

fn request(grant: &str, c: &ClientCredentials) -> TokenRequest {
    TokenRequest {
        grant_type: grant.into(),
        client_id: Some(c.client_id.clone()),
        client_secret: c.client_secret.clone(),
        ..TokenRequest::default()
    }
}

#[tokio::test]
async fn client_credentials_need_an_active_client_of_the_tenant_and_its_secret() {
    let (node, _) = node_with(IdentityConfig::default()).await;
    let id = &node.identity;
    let c = client(
        id,
        "abc",
        &[CLIENT_CREDENTIALS],
        &["portico", "assets:read"],
    )
    .await;

    let answer = id
        .token(&request(CLIENT_CREDENTIALS, &c), None)
        .await
        .unwrap();
    assert_eq!(answer.token_type, "Bearer");
    assert_eq!(answer.expires_in, 1800);
    assert!(answer.refresh_token.is_none());
    let token = id.verify(&answer.access_token).unwrap();
    assert_eq!(token.subject, c.client_id);
    assert_eq!(token.tenant, "abc");
    assert_eq!(token.audiences, ["portico"]);
    assert_eq!(token.scopes, ["assets:read", "portico"]);

    let mut narrow = request(CLIENT_CREDENTIALS, &c);
    narrow.scope = Some("assets:read".into());
    narrow.audience = Some("api:iot-xyz".into());
    let token = id
        .verify(&id.token(&narrow, Some("abc")).await.unwrap().access_token)
        .unwrap();
    assert_eq!(
        (token.scopes.clone(), token.audiences.clone()),
        (
            vec!["assets:read".to_string()],
            vec!["api:iot-xyz".to_string()]
        )
    );

    let mut wide = request(CLIENT_CREDENTIALS, &c);
    wide.scope = Some("assets:write".into());
    assert_eq!(
        id.token(&wide, None).await.unwrap_err().error,
        "invalid_scope"
    );
    let mut wrong = request(CLIENT_CREDENTIALS, &c);
    wrong.client_secret = Some("guess".into());
    let e = id.token(&wrong, None).await.unwrap_err();
    assert_eq!((e.error, e.status()), ("invalid_client", 401));
    assert_eq!(
        id.token(&request(CLIENT_CREDENTIALS, &c), Some("xyz"))
            .await
            .unwrap_err()
            .error,
        "invalid_client",
        "on tenant xyz's host, tenant abc's client is unknown"
    );
    assert_eq!(
        id.token(&request(REFRESH_TOKEN, &c), None)
            .await
            .unwrap_err()
            .error,
        "unauthorized_client"
    );
    assert_eq!(
        id.token(&request("password", &c), None)
            .await
            .unwrap_err()
            .error,
        "unsupported_grant_type"
    );
    id.store()
        .set_oauth_client_active("abc", &c.client_id, false)
        .await
        .unwrap();
    assert_eq!(
        id.token(&request(CLIENT_CREDENTIALS, &c), None)
            .await
            .unwrap_err()
            .error,
        "invalid_client"
    );
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn authorize_request(c: &ClientCredentials) -> AuthorizeRequest {
    AuthorizeRequest {
        response_type: Some("code".into()),
        client_id: Some(c.client_id.clone()),
        redirect_uri: Some("https://abc-shop.eu1.portico.localhost/callback".into()),
        scope: None,
        state: Some("xyz 1".into()),
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
    }
}

fn code_of(location: &str) -> String {
    let query = location.split_once('?').unwrap().1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn authorization_code_with_pkce_then_refresh_with_rotation_and_reuse_detection() {
    let (node, _) = with_alice(IdentityConfig::default()).await;
    let id = &node.identity;
    let c = client(
        id,
        "abc",
        &[AUTHORIZATION_CODE, REFRESH_TOKEN],
        &["assets:read"],
    )
    .await;
    let session = id
        .login("abc", "alice", PASSWORD, CLIENT)
        .await
        .unwrap()
        .session;

    let location = id
        .authorize(&session, &authorize_request(&c))
        .await
        .unwrap();
    assert!(location.starts_with("https://abc-shop.eu1.portico.localhost/callback?code="));
    assert!(location.ends_with("&state=xyz%201"), "{location}");
    let code = code_of(&location);

    let mut exchange = request(AUTHORIZATION_CODE, &c);
    exchange.code = Some(code.clone());
    exchange.redirect_uri = Some("https://abc-shop.eu1.portico.localhost/callback".into());
    exchange.code_verifier = Some(VERIFIER.replace('d', "e"));
    assert_eq!(
        id.token(&exchange, None).await.unwrap_err().error,
        "invalid_grant",
        "wrong verifier"
    );
    // The failed attempt used the code up; a new one is needed.
    let code = code_of(
        &id.authorize(&session, &authorize_request(&c))
            .await
            .unwrap(),
    );
    exchange.code = Some(code);
    exchange.code_verifier = Some(VERIFIER.into());
    let answer = id.token(&exchange, None).await.unwrap();
    let token = id.verify(&answer.access_token).unwrap();
    assert_eq!(
        (token.subject.as_str(), token.tenant.as_str()),
        ("alice", "abc")
    );
    assert_eq!(token.scopes, ["assets:read", "portico", "role:user"]);
    assert_eq!(
        id.token(&exchange, None).await.unwrap_err().error,
        "invalid_grant",
        "a code is single use"
    );

    // Refresh: a new pair, the old refresh token revoked.
    let first = answer.refresh_token.unwrap();
    let mut refresh = request(REFRESH_TOKEN, &c);
    refresh.refresh_token = Some(first.clone());
    let second = id.token(&refresh, None).await.unwrap();
    let second_refresh = second.refresh_token.clone().unwrap();
    assert_ne!(second_refresh, first);
    assert_eq!(id.verify(&second.access_token).unwrap().subject, "alice");

    // Presenting the first one again revokes the whole chain, the second included.
    assert_eq!(
        id.token(&refresh, None).await.unwrap_err().error,
        "invalid_grant"
    );
    refresh.refresh_token = Some(second_refresh);
    assert_eq!(
        id.token(&refresh, None).await.unwrap_err().error,
        "invalid_grant"
    );
}

#[tokio::test]
async fn authorization_requests_are_checked_before_any_redirect() {
    let (node, _) = with_alice(IdentityConfig::default()).await;
    let id = &node.identity;
    let c = client(id, "abc", &[AUTHORIZATION_CODE], &["assets:read"]).await;
    let other = client(id, "xyz", &[AUTHORIZATION_CODE], &["assets:read"]).await;
    let session = id
        .login("abc", "alice", PASSWORD, CLIENT)
        .await
        .unwrap()
        .session;

    let mut r = authorize_request(&c);
    r.redirect_uri = Some("https://evil.example/".into());
    assert!(matches!(
        id.authorize(&session, &r).await,
        Err(AuthorizeError::Refused(_))
    ));
    assert!(
        matches!(
            id.authorize(&session, &authorize_request(&other)).await,
            Err(AuthorizeError::Refused(_))
        ),
        "a client of another tenant is unknown to abc's users"
    );
    let mut r = authorize_request(&c);
    r.code_challenge_method = Some("plain".into());
    match id.authorize(&session, &r).await {
        Err(AuthorizeError::Redirect(url)) => {
            assert!(
                url.contains("error=invalid_request") && url.contains("state=xyz%201"),
                "{url}"
            )
        }
        other => panic!("{other:?}"),
    }
    let mut r = authorize_request(&c);
    r.scope = Some("assets:write".into());
    assert!(
        matches!(id.authorize(&session, &r).await, Err(AuthorizeError::Redirect(u)) if u.contains("error=invalid_scope"))
    );
}

#[tokio::test]
async fn token_exchange_keeps_subject_and_tenant_and_narrows_to_the_request() {
    let (node, _) = with_alice(IdentityConfig::default()).await;
    let id = &node.identity;
    let session = id
        .login("abc", "alice", PASSWORD, CLIENT)
        .await
        .unwrap()
        .session;
    let presented = id.session_token(&session, "webapp:shop").unwrap();
    let backend = client(id, "abc", &[TOKEN_EXCHANGE], &[]).await;

    let mut r = request(TOKEN_EXCHANGE, &backend);
    r.subject_token = Some(presented.clone());
    r.subject_token_type = Some(ACCESS_TOKEN_TYPE.into());
    r.audience = Some("api:iot-xyz".into());
    r.scope = Some("role:user".into());
    let answer = id.token(&r, None).await.unwrap();
    assert_eq!(answer.issued_token_type, Some(ACCESS_TOKEN_TYPE));
    let token = id.verify(&answer.access_token).unwrap();
    assert_eq!(
        (token.subject.as_str(), token.tenant.as_str()),
        ("alice", "abc")
    );
    assert_eq!(token.audiences, ["api:iot-xyz"]);
    assert_eq!(token.scopes, ["role:user"]);
    assert_eq!(token.actor.as_deref(), Some(backend.client_id.as_str()));
    // It ends no later than the token it was exchanged for.
    assert!(token.expires_at <= id.verify(&presented).unwrap().expires_at);

    // The gateway-wide audience is not to be had by exchanging a narrower token.
    let mut everywhere = r.clone();
    everywhere.audience = None;
    assert_eq!(
        id.token(&everywhere, None).await.unwrap_err().error,
        "invalid_target"
    );

    let mut wider = r.clone();
    wider.scope = Some("role:admin".into());
    assert_eq!(
        id.token(&wider, None).await.unwrap_err().error,
        "invalid_scope"
    );
    let mut forged = r.clone();
    forged.subject_token = Some(format!("{presented}x"));
    assert_eq!(
        id.token(&forged, None).await.unwrap_err().error,
        "invalid_grant"
    );
    let foreign = client(id, "xyz", &[TOKEN_EXCHANGE], &[]).await;
    let mut cross = request(TOKEN_EXCHANGE, &foreign);
    cross.subject_token = Some(presented);
    cross.subject_token_type = Some(ACCESS_TOKEN_TYPE.into());
    assert_eq!(
        id.token(&cross, None).await.unwrap_err().error,
        "invalid_grant",
        "tenant xyz's client cannot exchange tenant abc's token"
    );
}

#[tokio::test]
async fn a_client_registered_with_role_scopes_does_not_lift_its_users() {
    let (node, _) = with_alice(IdentityConfig::default()).await;
    let id = &node.identity;
    let c = client(
        id,
        "abc",
        &[AUTHORIZATION_CODE],
        &["assets:read", "role:admin"],
    )
    .await;
    let session = id
        .login("abc", "alice", PASSWORD, CLIENT)
        .await
        .unwrap()
        .session;
    for asked in [None, Some("assets:read role:admin")] {
        let mut authorize = authorize_request(&c);
        authorize.scope = asked.map(str::to_string);
        let location = id.authorize(&session, &authorize).await;
        let Ok(location) = location else {
            // Asking for a scope beyond the user's role may be refused outright.
            continue;
        };
        let mut exchange = request(AUTHORIZATION_CODE, &c);
        exchange.code = Some(code_of(&location));
        exchange.redirect_uri = Some("https://abc-shop.eu1.portico.localhost/callback".into());
        exchange.code_verifier = Some(VERIFIER.into());
        let answer = id.token(&exchange, None).await.unwrap();
        let token = id.verify(&answer.access_token).unwrap();
        assert!(
            !token.has_scope("role:admin"),
            "alice is a user, whatever the client may ask: {:?}",
            token.scopes
        );
        assert!(token.has_scope("role:user"));
    }
}
