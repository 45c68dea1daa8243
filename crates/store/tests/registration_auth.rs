//! The `auth` and `scopes` of registrations as the store keeps and checks them, on every
//! test database: session web apps and bearer APIs with their scopes round-trip, the other
//! kind's value and scopes without a signed-in caller are refused with the entry named.

#![allow(clippy::unwrap_used)]

mod common;

use common::{api, databases, tenant, webapp};
use portico_store::{Auth, Origin, Registry, StoreError};

fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn session_web_apps_and_bearer_apis_keep_their_scopes() {
    for db in databases().await {
        let store = db.open().await;
        store.add_tenant(&tenant("abc", Origin::Api)).await.unwrap();
        let mut shop = webapp("shop", Some("xyz"), &["abc"], Origin::Api);
        shop.auth = Auth::Session;
        shop.scopes = scopes(&["role:admin", "portico"]);
        store.add_webapp(&shop).await.unwrap();
        let mut iot = api("iot", Some("xyz"), 3, &["abc"], Origin::Api);
        iot.auth = Auth::Bearer;
        iot.scopes = scopes(&["iot.read"]);
        store.add_api(&iot).await.unwrap();
        let public = api("status", None, 1, &["abc"], Origin::Api);
        store.add_api(&public).await.unwrap();

        assert_eq!(
            store.webapp("shop", Some("xyz")).await.unwrap(),
            Some(shop.clone())
        );
        assert_eq!(store.api("iot", Some("xyz"), 3).await.unwrap(), Some(iot));
        let stored = store.api("status", None, 1).await.unwrap().unwrap();
        assert_eq!((stored.auth, stored.scopes.len()), (Auth::None, 0));
        db.finish(store).await;
    }
}

#[tokio::test]
async fn auth_of_the_other_kind_and_scopes_without_auth_are_refused() {
    for db in databases().await {
        let store = db.open().await;
        store.add_tenant(&tenant("abc", Origin::Api)).await.unwrap();

        let mut wrong = webapp("shop", None, &["abc"], Origin::Api);
        wrong.auth = Auth::Bearer;
        let e = store.add_webapp(&wrong).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.starts_with("webapp \"shop\": auth: \"bearer\" is for APIs")),
            "{e:?}"
        );
        let mut wrong = api("iot", None, 1, &["abc"], Origin::Api);
        wrong.auth = Auth::Session;
        let e = store.add_api(&wrong).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.starts_with("api \"iot/v1\": auth: \"session\" is for web apps")),
            "{e:?}"
        );
        let mut public = api("iot", None, 1, &["abc"], Origin::Api);
        public.scopes = scopes(&["iot.read"]);
        let e = store.add_api(&public).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.starts_with("api \"iot/v1\": scopes: scopes need auth")),
            "{e:?}"
        );
        let mut spaced = webapp("shop", None, &["abc"], Origin::Api);
        spaced.auth = Auth::Session;
        spaced.scopes = scopes(&["read write"]);
        let e = store.add_webapp(&spaced).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("\"read write\" is not a scope")),
            "{e:?}"
        );

        // A whole registry is checked by the same rules, and nothing of it is written.
        let mut file = Registry {
            tenants: vec![tenant("def", Origin::File)],
            ..Default::default()
        };
        let mut bad = webapp("portal", None, &[], Origin::File);
        bad.auth = Auth::Bearer;
        file.webapps.push(bad);
        let e = store.replace_origin(Origin::File, &file).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("webapp \"portal\": auth:")),
            "{e:?}"
        );
        let registry = store.registry().await.unwrap();
        assert!(registry.webapps.is_empty() && registry.apis.is_empty());
        db.finish(store).await;
    }
}
