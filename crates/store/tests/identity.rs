//! The identity tables, on every test database: users, sessions, OAuth clients, signing
//! keys, authorization codes, refresh tokens and external providers.

#![allow(clippy::unwrap_used)]

mod common;

use common::databases;
use portico_store::{
    AuthorizationCodeRecord, CodeTake, ExternalAccount, OAuthClientRecord, OidcProviderRecord,
    RefreshTokenRecord, SessionRecord, SigningKeyRecord, StoreError, UserRecord,
};

fn user(tenant: &str, name: &str) -> UserRecord {
    UserRecord {
        tenant: tenant.into(),
        name: name.into(),
        role: "user".into(),
        password_hash: Some(format!("$argon2id$v=19$m=19456,t=2,p=1$salt${name}")),
        external: None,
        created_ms: 1_000,
    }
}

fn session(id_hash: &str, tenant: &str, user_name: &str) -> SessionRecord {
    SessionRecord {
        id_hash: id_hash.into(),
        tenant: tenant.into(),
        user_name: user_name.into(),
        role: "user".into(),
        created_ms: 1_000,
        last_used_ms: 1_000,
        csrf_token: "csrf".into(),
        ended_ms: None,
    }
}

fn client(tenant: &str, id: &str) -> OAuthClientRecord {
    OAuthClientRecord {
        client_id: id.into(),
        tenant: tenant.into(),
        secret_hash: Some("ab".repeat(32)),
        name: format!("client {id}"),
        grant_types: vec!["client_credentials".into(), "refresh_token".into()],
        scopes: vec!["portico".into(), "assets:read".into()],
        redirect_uris: vec!["https://abc-shop.eu1.portico.localhost/cb".into()],
        active: true,
        created_ms: 1_000,
    }
}

fn refresh(hash: &str, chain: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: hash.into(),
        chain_id: chain.into(),
        client_id: "c1".into(),
        tenant: "abc".into(),
        subject: "alice".into(),
        scopes: vec!["portico".into()],
        created_ms: 1_000,
        expires_ms: 50_000,
        revoked: false,
    }
}

#[tokio::test]
async fn users_are_kept_per_tenant() {
    for db in databases().await {
        let store = db.open().await;
        store.add_user(&user("abc", "alice")).await.unwrap();
        store.add_user(&user("xyz", "alice")).await.unwrap();
        store.add_user(&user("abc", "bob")).await.unwrap();
        let e = store.add_user(&user("abc", "alice")).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Exists { kind: "user", key } if key == "abc/alice"),
            "{e:?}"
        );

        let names: Vec<String> = store
            .users("abc")
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(store.users("xyz").await.unwrap().len(), 1);
        assert_eq!(
            store.user("abc", "alice").await.unwrap(),
            Some(user("abc", "alice"))
        );
        assert_eq!(store.user("nope", "alice").await.unwrap(), None);

        store
            .set_user_password("xyz", "alice", "$argon2id$new")
            .await
            .unwrap();
        assert_eq!(
            store
                .user("xyz", "alice")
                .await
                .unwrap()
                .unwrap()
                .password_hash
                .as_deref(),
            Some("$argon2id$new")
        );
        assert_eq!(
            store.user("abc", "alice").await.unwrap(),
            Some(user("abc", "alice")),
            "the other tenant's alice keeps her password"
        );
        assert!(matches!(
            store.set_user_password("abc", "carol", "x").await,
            Err(StoreError::NotFound { kind: "user", .. })
        ));

        // Removing a user ends their sessions, and only theirs.
        store
            .add_session(&session("h1", "abc", "alice"))
            .await
            .unwrap();
        store
            .add_session(&session("h2", "xyz", "alice"))
            .await
            .unwrap();
        store.remove_user("abc", "alice", 5_000).await.unwrap();
        assert_eq!(store.user("abc", "alice").await.unwrap(), None);
        assert_eq!(
            store.session("h1").await.unwrap().unwrap().ended_ms,
            Some(5_000)
        );
        assert_eq!(store.session("h2").await.unwrap().unwrap().ended_ms, None);
        assert!(matches!(
            store.remove_user("abc", "alice", 6_000).await,
            Err(StoreError::NotFound { .. })
        ));
        db.finish(store).await;
    }
}

#[tokio::test]
async fn external_users_are_found_by_issuer_and_subject() {
    for db in databases().await {
        let store = db.open().await;
        let mut u = user("abc", "carol");
        u.password_hash = None;
        u.external = Some(ExternalAccount {
            issuer: "https://idp.example".into(),
            subject: "s-42".into(),
        });
        store.add_user(&u).await.unwrap();
        assert_eq!(
            store
                .user_by_external("abc", "https://idp.example", "s-42")
                .await
                .unwrap(),
            Some(u.clone())
        );
        assert_eq!(
            store
                .user_by_external("xyz", "https://idp.example", "s-42")
                .await
                .unwrap(),
            None,
            "another tenant does not see the link"
        );
        let mut twin = u.clone();
        twin.name = "carol2".into();
        assert!(matches!(
            store.add_user(&twin).await,
            Err(StoreError::Exists { .. })
        ));
        db.finish(store).await;
    }
}

#[tokio::test]
async fn sessions_are_touched_forward_and_ended_once() {
    for db in databases().await {
        let store = db.open().await;
        store
            .add_session(&session("h1", "abc", "alice"))
            .await
            .unwrap();
        assert_eq!(
            store.session("h1").await.unwrap(),
            Some(session("h1", "abc", "alice"))
        );
        assert_eq!(store.session("h9").await.unwrap(), None);

        store.touch_session("h1", 3_000).await.unwrap();
        store.touch_session("h1", 2_000).await.unwrap();
        assert_eq!(
            store.session("h1").await.unwrap().unwrap().last_used_ms,
            3_000,
            "an older use does not move the time back"
        );
        assert!(store.end_session("h1", 4_000).await.unwrap());
        assert!(!store.end_session("h1", 4_500).await.unwrap());
        store.touch_session("h1", 9_000).await.unwrap();
        let ended = store.session("h1").await.unwrap().unwrap();
        assert_eq!((ended.ended_ms, ended.last_used_ms), (Some(4_000), 3_000));

        store
            .add_session(&session("h2", "abc", "bob"))
            .await
            .unwrap();
        store.touch_session("h2", 10_000).await.unwrap();
        assert_eq!(store.purge_sessions(8_000).await.unwrap(), 1);
        assert_eq!(store.session("h1").await.unwrap(), None);
        assert!(store.session("h2").await.unwrap().is_some());
        db.finish(store).await;
    }
}

#[tokio::test]
async fn oauth_clients_have_unique_ids_and_tenant_scoped_changes() {
    for db in databases().await {
        let store = db.open().await;
        store.add_oauth_client(&client("abc", "c1")).await.unwrap();
        store.add_oauth_client(&client("xyz", "c2")).await.unwrap();
        assert!(matches!(
            store.add_oauth_client(&client("xyz", "c1")).await,
            Err(StoreError::Exists { .. })
        ));
        assert_eq!(
            store.oauth_client("c1").await.unwrap(),
            Some(client("abc", "c1"))
        );
        let ids: Vec<String> = store
            .oauth_clients("abc")
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.client_id)
            .collect();
        assert_eq!(ids, ["c1"]);

        assert!(
            matches!(
                store.set_oauth_client_active("xyz", "c1", false).await,
                Err(StoreError::NotFound { .. })
            ),
            "tenant xyz cannot change tenant abc's client"
        );
        store
            .set_oauth_client_active("abc", "c1", false)
            .await
            .unwrap();
        assert!(!store.oauth_client("c1").await.unwrap().unwrap().active);

        store
            .add_refresh_token(&refresh("r1", "chain"))
            .await
            .unwrap();
        assert!(store.remove_oauth_client("xyz", "c1").await.is_err());
        store.remove_oauth_client("abc", "c1").await.unwrap();
        assert_eq!(store.oauth_client("c1").await.unwrap(), None);
        assert!(
            store.refresh_token("r1").await.unwrap().unwrap().revoked,
            "a removed client's refresh tokens are revoked"
        );
        db.finish(store).await;
    }
}

#[tokio::test]
async fn signing_keys_retire_and_are_purged_after_publication() {
    for db in databases().await {
        let store = db.open().await;
        let key = |kid: &str, created_ms| SigningKeyRecord {
            kid: kid.into(),
            algorithm: "ES256".into(),
            private_key_pem: format!(
                "-----BEGIN PRIVATE KEY-----\n{kid}\n-----END PRIVATE KEY-----\n"
            ),
            created_ms,
            retired_ms: None,
            publish_until_ms: None,
        };
        store.add_signing_key(&key("k1", 1_000)).await.unwrap();
        store.add_signing_key(&key("k2", 2_000)).await.unwrap();
        let kids: Vec<String> = store
            .signing_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(kids, ["k2", "k1"], "newest first");

        store.retire_signing_key("k1", 2_000, 5_000).await.unwrap();
        store.retire_signing_key("k1", 3_000, 9_000).await.unwrap();
        let k1 = store.signing_keys().await.unwrap().pop().unwrap();
        assert_eq!(
            (k1.retired_ms, k1.publish_until_ms),
            (Some(2_000), Some(5_000))
        );
        assert_eq!(k1.private_key_pem, key("k1", 1_000).private_key_pem);

        assert_eq!(store.purge_signing_keys(5_000).await.unwrap(), 0);
        assert_eq!(store.purge_signing_keys(5_001).await.unwrap(), 1);
        assert_eq!(store.signing_keys().await.unwrap().len(), 1);
        db.finish(store).await;
    }
}

#[tokio::test]
async fn an_authorization_code_is_taken_once() {
    for db in databases().await {
        let store = db.open().await;
        let code = AuthorizationCodeRecord {
            code_hash: "ch".into(),
            client_id: "c1".into(),
            tenant: "abc".into(),
            user_name: "alice".into(),
            code_challenge: "challenge".into(),
            redirect_uri: "https://abc-shop.eu1.portico.localhost/cb".into(),
            scopes: vec!["portico".into(), "role:user".into()],
            expires_ms: 61_000,
            used: false,
        };
        store.add_authorization_code(&code).await.unwrap();
        let taken = store.take_authorization_code("ch").await.unwrap();
        let used = AuthorizationCodeRecord {
            used: true,
            ..code.clone()
        };
        assert_eq!(taken, CodeTake::Taken(used.clone()));
        assert_eq!(
            store.take_authorization_code("ch").await.unwrap(),
            CodeTake::AlreadyUsed(used)
        );
        assert_eq!(
            store.take_authorization_code("other").await.unwrap(),
            CodeTake::Unknown
        );
        assert_eq!(store.purge_authorization_codes(61_001).await.unwrap(), 1);
        db.finish(store).await;
    }
}

#[tokio::test]
async fn refresh_rotation_revokes_the_chain_on_reuse() {
    for db in databases().await {
        let store = db.open().await;
        store
            .add_refresh_token(&refresh("r1", "chain"))
            .await
            .unwrap();
        store
            .add_refresh_token(&refresh("o1", "other"))
            .await
            .unwrap();
        assert!(store
            .rotate_refresh_token("r1", &refresh("r2", "chain"))
            .await
            .unwrap());
        assert!(store.refresh_token("r1").await.unwrap().unwrap().revoked);
        assert!(!store.refresh_token("r2").await.unwrap().unwrap().revoked);

        // r1 presented again: nothing new is stored and r2 is revoked too.
        assert!(!store
            .rotate_refresh_token("r1", &refresh("r3", "chain"))
            .await
            .unwrap());
        assert_eq!(store.refresh_token("r3").await.unwrap(), None);
        assert!(store.refresh_token("r2").await.unwrap().unwrap().revoked);
        assert!(
            !store.refresh_token("o1").await.unwrap().unwrap().revoked,
            "other chains are untouched"
        );

        store.revoke_refresh_chain("other").await.unwrap();
        assert!(store.refresh_token("o1").await.unwrap().unwrap().revoked);
        assert_eq!(store.purge_refresh_tokens(50_001).await.unwrap(), 3);
        db.finish(store).await;
    }
}

#[tokio::test]
async fn concurrent_rotations_of_one_token_let_only_one_through() {
    for db in databases().await {
        let store = db.open().await;
        store
            .add_refresh_token(&refresh("r1", "chain"))
            .await
            .unwrap();
        let (a2, b2) = (refresh("a2", "chain"), refresh("b2", "chain"));
        let (a, b) = tokio::join!(
            store.rotate_refresh_token("r1", &a2),
            store.rotate_refresh_token("r1", &b2),
        );
        let wins = [a.unwrap(), b.unwrap()];
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
        db.finish(store).await;
    }
}

#[tokio::test]
async fn each_tenant_has_at_most_one_external_provider() {
    for db in databases().await {
        let store = db.open().await;
        let provider = |issuer: &str| OidcProviderRecord {
            tenant: "abc".into(),
            issuer: issuer.into(),
            client_id: "portico".into(),
            client_secret: "s3cret".into(),
            created_ms: 1_000,
        };
        store
            .set_oidc_provider(&provider("https://a.example"))
            .await
            .unwrap();
        store
            .set_oidc_provider(&provider("https://b.example"))
            .await
            .unwrap();
        assert_eq!(
            store.oidc_provider("abc").await.unwrap(),
            Some(provider("https://b.example"))
        );
        assert_eq!(store.oidc_provider("xyz").await.unwrap(), None);
        assert!(
            !format!("{:?}", provider("x")).contains("s3cret"),
            "no secret in Debug output"
        );
        assert!(store.remove_oidc_provider("abc").await.unwrap());
        assert!(!store.remove_oidc_provider("abc").await.unwrap());
        db.finish(store).await;
    }
}
