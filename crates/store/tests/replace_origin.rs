//! `Store::replace_origin`, on every test database.

#![allow(clippy::unwrap_used)]

mod common;

use common::{api, databases, tenant, webapp};
use portico_store::{Origin, Registry, StoreError};

fn file_registry() -> Registry {
    Registry {
        tenants: vec![tenant("abc", Origin::File), tenant("def", Origin::File)],
        webapps: vec![webapp("shop", Some("xyz"), &["abc", "api1"], Origin::File)],
        apis: vec![api("iot", Some("xyz"), 3, &["def"], Origin::File)],
    }
}

#[tokio::test]
async fn replace_origin_replaces_only_its_origin() {
    for db in databases().await {
        let store = db.open().await;
        store
            .add_tenant(&tenant("api1", Origin::Api))
            .await
            .unwrap();
        store
            .add_webapp(&webapp("manual", None, &["api1"], Origin::Api))
            .await
            .unwrap();
        store
            .replace_origin(
                Origin::Builtin,
                &Registry {
                    webapps: vec![webapp("console", None, &[], Origin::Builtin)],
                    ..Default::default()
                },
            )
            .await
            .unwrap();

        // Entries are stored with the given origin, whatever they say. A file web app
        // may subscribe a tenant made through the API.
        let mut entries = file_registry();
        entries.tenants[0].origin = Origin::Api;
        store.replace_origin(Origin::File, &entries).await.unwrap();
        let reg = store.registry().await.unwrap();
        let summary: Vec<_> = reg
            .tenants
            .iter()
            .map(|t| (t.name.as_str(), t.origin))
            .collect();
        assert_eq!(
            summary,
            [
                ("abc", Origin::File),
                ("api1", Origin::Api),
                ("def", Origin::File)
            ]
        );
        let summary: Vec<_> = reg.webapps.iter().map(|w| (w.key(), w.origin)).collect();
        assert_eq!(
            summary,
            [
                ("console".into(), Origin::Builtin),
                ("manual".into(), Origin::Api),
                ("shop-xyz".into(), Origin::File)
            ]
        );
        assert_eq!(
            store.api("iot", Some("xyz"), 3).await.unwrap(),
            Some(file_registry().apis[0].clone())
        );

        // A second load replaces the first: removed entries go, the others stay.
        let second = Registry {
            tenants: vec![tenant("abc", Origin::File)],
            webapps: vec![webapp("shop", Some("xyz"), &["abc"], Origin::File)],
            apis: vec![api("iot", Some("xyz"), 4, &[], Origin::File)],
        };
        store.replace_origin(Origin::File, &second).await.unwrap();
        let reg = store.registry().await.unwrap();
        assert_eq!(
            reg.tenants
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["abc", "api1"]
        );
        assert_eq!(
            store
                .webapp("shop", Some("xyz"))
                .await
                .unwrap()
                .unwrap()
                .tenants,
            ["abc"]
        );
        assert_eq!(
            reg.apis.iter().map(|a| a.key()).collect::<Vec<_>>(),
            ["iot-xyz/v4"]
        );
        assert_eq!(reg.webapps.len(), 3);

        // An empty load removes everything of that origin only.
        store
            .replace_origin(Origin::File, &Registry::default())
            .await
            .unwrap();
        let reg = store.registry().await.unwrap();
        assert_eq!(reg.tenants, [tenant("api1", Origin::Api)]);
        assert_eq!(
            reg.webapps.iter().map(|w| w.key()).collect::<Vec<_>>(),
            ["console", "manual"]
        );
        assert!(reg.apis.is_empty());
        db.finish(store).await;
    }
}

#[tokio::test]
async fn replace_origin_conflict_changes_nothing() {
    for db in databases().await {
        let store = db.open().await;
        store
            .add_tenant(&tenant("api1", Origin::Api))
            .await
            .unwrap();
        store
            .replace_origin(Origin::File, &file_registry())
            .await
            .unwrap();
        store
            .add_api(&api("iot", Some("xyz"), 5, &[], Origin::Api))
            .await
            .unwrap();
        let before = store.registry().await.unwrap();
        let mut changes = store.changes();
        changes.mark_unchanged();

        for (kind, key, entries) in [
            (
                "tenant",
                "api1",
                Registry {
                    tenants: vec![tenant("api1", Origin::File)],
                    ..Default::default()
                },
            ),
            (
                "api",
                "iot-xyz/v5",
                Registry {
                    apis: vec![api("iot", Some("xyz"), 5, &[], Origin::File)],
                    ..Default::default()
                },
            ),
        ] {
            let e = store
                .replace_origin(Origin::File, &entries)
                .await
                .unwrap_err();
            assert!(
                matches!(&e, StoreError::Conflict { kind: k, key: got, origin: Origin::Api } if *k == kind && got == key),
                "{e:?}"
            );
        }
        let e = store
            .replace_origin(
                Origin::Builtin,
                &Registry {
                    webapps: vec![webapp("shop", Some("xyz"), &[], Origin::Builtin)],
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "webapp \"shop-xyz\" already exists (from file)"
        );
        assert_eq!(store.registry().await.unwrap(), before);
        assert!(
            !changes.has_changed().unwrap(),
            "a refused replace is no change"
        );
        db.finish(store).await;
    }
}

#[tokio::test]
async fn replace_origin_refuses_invalid_results() {
    for db in databases().await {
        let store = db.open().await;
        store
            .replace_origin(Origin::File, &file_registry_without_api_tenant())
            .await
            .unwrap();
        store
            .add_webapp(&webapp("manual", None, &["def"], Origin::Api))
            .await
            .unwrap();
        let before = store.registry().await.unwrap();

        // Dropping a tenant that an API-made web app still subscribes.
        let mut next = file_registry_without_api_tenant();
        next.tenants.retain(|t| t.name != "def");
        next.apis.clear();
        let e = store.replace_origin(Origin::File, &next).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m == "webapp \"manual\": tenants: tenant \"def\" is not registered"),
            "{e:?}"
        );
        // An entry that is invalid on its own, a duplicate, a dangling reference.
        let mut bad = file_registry_without_api_tenant();
        bad.webapps[0].backend = "nope".into();
        let e = store.replace_origin(Origin::File, &bad).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("backend")),
            "{e:?}"
        );
        let mut dup = file_registry_without_api_tenant();
        dup.tenants.push(tenant("abc", Origin::File));
        let e = store.replace_origin(Origin::File, &dup).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("registered twice")),
            "{e:?}"
        );
        let mut dangling = file_registry_without_api_tenant();
        dangling.apis[0].tenants.push("ghost".into());
        let e = store
            .replace_origin(Origin::File, &dangling)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("\"ghost\" is not registered")),
            "{e:?}"
        );

        assert_eq!(store.registry().await.unwrap(), before);

        // Reloading the same file is fine although "def" is deleted and re-inserted
        // under the API-made web app that subscribes it (deferred foreign keys).
        store
            .replace_origin(Origin::File, &file_registry_without_api_tenant())
            .await
            .unwrap();
        assert_eq!(store.registry().await.unwrap(), before);
        assert_eq!(
            store.webapp("manual", None).await.unwrap().unwrap().tenants,
            ["def"]
        );
        db.finish(store).await;
    }
}

fn file_registry_without_api_tenant() -> Registry {
    let mut r = file_registry();
    r.webapps[0].tenants = vec!["abc".into()];
    r
}
