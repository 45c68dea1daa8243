//! Adding, reading and removing single registry entries, on every test database.

#![allow(clippy::unwrap_used)]

mod common;

use common::{api, databases, tenant, webapp};
use portico_store::{Origin, Route, StoreError};

#[tokio::test]
async fn tenants_add_get_remove() {
    for db in databases().await {
        let store = db.open().await;
        assert_eq!(store.tenant("abc").await.unwrap(), None);
        store.add_tenant(&tenant("abc", Origin::Api)).await.unwrap();
        assert_eq!(
            store.tenant("abc").await.unwrap(),
            Some(tenant("abc", Origin::Api))
        );

        let e = store
            .add_tenant(&tenant("abc", Origin::File))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict { kind: "tenant", key, origin: Origin::Api } if key == "abc"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "tenant \"abc\" already exists (from api)");

        let e = store
            .add_tenant(&tenant("Big-Co", Origin::Api))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("tenant \"Big-Co\": name:")),
            "{e:?}"
        );

        let e = store.remove_tenant("nope", Origin::Api).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::NotFound { kind: "tenant", key } if key == "nope"),
            "{e:?}"
        );
        let e = store.remove_tenant("abc", Origin::File).await.unwrap_err();
        assert!(
            matches!(
                &e,
                StoreError::WrongOrigin {
                    kind: "tenant",
                    origin: Origin::Api,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "tenant \"abc\" comes from the api registrations and cannot be changed here"
        );

        store.remove_tenant("abc", Origin::Api).await.unwrap();
        assert_eq!(store.tenant("abc").await.unwrap(), None);
        db.finish(store).await;
    }
}

#[tokio::test]
async fn webapps_add_get_remove() {
    for db in databases().await {
        let store = db.open().await;
        store.add_tenant(&tenant("abc", Origin::Api)).await.unwrap();
        store
            .add_tenant(&tenant("def", Origin::File))
            .await
            .unwrap();

        let shop = webapp("shop", Some("xyz"), &["def", "abc"], Origin::Api);
        store.add_webapp(&shop).await.unwrap();
        let mut core = webapp("shop", None, &[], Origin::Builtin);
        core.cache_control = None;
        core.websockets.clear();
        store.add_webapp(&core).await.unwrap();
        assert_eq!(
            store.webapp("shop", Some("xyz")).await.unwrap(),
            Some(shop.clone())
        );
        assert_eq!(
            store.webapp("shop", None).await.unwrap(),
            Some(core.clone())
        );
        assert_eq!(store.webapp("shop", Some("other")).await.unwrap(), None);

        let e = store
            .add_webapp(&webapp("shop", Some("xyz"), &[], Origin::File))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict { kind: "webapp", key, origin: Origin::Api } if key == "shop-xyz"),
            "{e:?}"
        );

        let e = store
            .add_webapp(&webapp("other", None, &["abc", "ghost"], Origin::Api))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m == "webapp \"other\": tenants: tenant \"ghost\" is not registered"),
            "{e:?}"
        );
        let mut bad = webapp("other", None, &[], Origin::Api);
        bad.backend = "ftp://x".into();
        let e = store.add_webapp(&bad).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("webapp \"other\": backend:")),
            "{e:?}"
        );
        assert_eq!(store.webapp("other", None).await.unwrap(), None);

        // A subscribed tenant cannot go.
        let e = store.remove_tenant("def", Origin::File).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("still subscribed by webapp \"shop-xyz\"")),
            "{e:?}"
        );

        let e = store
            .remove_webapp("shop", Some("xyz"), Origin::File)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                StoreError::WrongOrigin {
                    kind: "webapp",
                    origin: Origin::Api,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = store
            .remove_webapp("nope", None, Origin::Api)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::NotFound { kind: "webapp", key } if key == "nope"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "webapp \"nope\" is not registered");

        store
            .remove_webapp("shop", Some("xyz"), Origin::Api)
            .await
            .unwrap();
        assert_eq!(store.webapp("shop", Some("xyz")).await.unwrap(), None);
        assert_eq!(store.webapp("shop", None).await.unwrap(), Some(core));
        store.remove_tenant("def", Origin::File).await.unwrap();
        db.finish(store).await;
    }
}

#[tokio::test]
async fn apis_add_get_remove_keep_route_order() {
    for db in databases().await {
        let store = db.open().await;
        store.add_tenant(&tenant("abc", Origin::Api)).await.unwrap();
        let mut iot = api("iot", Some("xyz"), 3, &["abc"], Origin::Api);
        iot.routes = (0..12)
            .map(|i| Route {
                pattern: format!("/r{}/**", (i * 7) % 12),
                methods: vec!["GET".into(); i % 3],
            })
            .collect();
        store.add_api(&iot).await.unwrap();
        let v10 = api("iot", Some("xyz"), 10, &[], Origin::File);
        store.add_api(&v10).await.unwrap();
        let core = api("iot", None, 3, &[], Origin::Builtin);
        store.add_api(&core).await.unwrap();

        let got = store.api("iot", Some("xyz"), 3).await.unwrap().unwrap();
        assert_eq!(
            got.routes, iot.routes,
            "routes keep their registration order"
        );
        assert_eq!(got, iot);
        assert_eq!(store.api("iot", Some("xyz"), 10).await.unwrap(), Some(v10));
        assert_eq!(store.api("iot", None, 3).await.unwrap(), Some(core));
        assert_eq!(store.api("iot", Some("xyz"), 4).await.unwrap(), None);

        let e = store
            .add_api(&api("iot", Some("xyz"), 3, &[], Origin::File))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict { kind: "api", key, origin: Origin::Api } if key == "iot-xyz/v3"),
            "{e:?}"
        );
        let e = store
            .add_api(&api("iot", Some("xyz"), 4, &["ghost"], Origin::Api))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("api \"iot-xyz/v4\": tenants: tenant \"ghost\"")),
            "{e:?}"
        );
        let e = store
            .add_api(&api("iot", None, 0, &[], Origin::Api))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("version")),
            "{e:?}"
        );

        let e = store.remove_tenant("abc", Origin::Api).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("api \"iot-xyz/v3\"")),
            "{e:?}"
        );
        let e = store
            .remove_api("iot", Some("xyz"), 3, Origin::File)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::WrongOrigin { kind: "api", key, origin: Origin::Api } if key == "iot-xyz/v3"),
            "{e:?}"
        );
        let e = store
            .remove_api("iot", Some("xyz"), 4, Origin::Api)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::NotFound { kind: "api", key } if key == "iot-xyz/v4"),
            "{e:?}"
        );

        store
            .remove_api("iot", Some("xyz"), 3, Origin::Api)
            .await
            .unwrap();
        assert_eq!(store.api("iot", Some("xyz"), 3).await.unwrap(), None);
        store.remove_tenant("abc", Origin::Api).await.unwrap();
        // Re-adding after removal works: nothing of the old rows is left behind.
        store.add_tenant(&tenant("abc", Origin::Api)).await.unwrap();
        store.add_api(&iot).await.unwrap();
        assert_eq!(store.api("iot", Some("xyz"), 3).await.unwrap(), Some(iot));
        db.finish(store).await;
    }
}

#[tokio::test]
async fn the_registry_is_sorted() {
    for db in databases().await {
        let store = db.open().await;
        for t in ["zed", "abc", "m1"] {
            store.add_tenant(&tenant(t, Origin::Api)).await.unwrap();
        }
        for (n, p) in [
            ("shop", Some("b")),
            ("ab", None),
            ("shop", None),
            ("shop", Some("a")),
        ] {
            store
                .add_webapp(&webapp(n, p, &["m1"], Origin::Api))
                .await
                .unwrap();
        }
        for (n, p, v) in [
            ("iot", Some("x"), 10),
            ("iot", Some("x"), 2),
            ("iot", None, 1),
            ("a", None, 1),
        ] {
            store
                .add_api(&api(n, p, v, &[], Origin::File))
                .await
                .unwrap();
        }
        let reg = store.registry().await.unwrap();
        reg.validate().unwrap();
        let names: Vec<_> = reg.tenants.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["abc", "m1", "zed"]);
        let keys: Vec<_> = reg.webapps.iter().map(|w| w.key()).collect();
        assert_eq!(keys, ["ab", "shop", "shop-a", "shop-b"]);
        let keys: Vec<_> = reg.apis.iter().map(|a| a.key()).collect();
        assert_eq!(keys, ["a/v1", "iot/v1", "iot-x/v2", "iot-x/v10"]);
        assert_eq!(
            reg.apis[0].routes,
            api("a", None, 1, &[], Origin::File).routes
        );
        db.finish(store).await;
    }
}
