//! Opening, change notification, settings and concurrency, on every test database.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{api, databases, tenant, webapp};
use portico_store::{Backend, Origin, Registry, Store, StoreError};

#[tokio::test]
async fn open_migrates_once_and_keeps_data() {
    for db in databases().await {
        let store = db.open().await;
        assert_eq!(
            store.backend(),
            if db.label == "SQLite" {
                Backend::Sqlite
            } else {
                Backend::Postgres
            }
        );
        store.ping().await.unwrap();
        store.add_tenant(&tenant("abc", Origin::Api)).await.unwrap();
        store.close().await;

        let store = db.open().await;
        store.ping().await.unwrap();
        assert_eq!(
            store.tenant("abc").await.unwrap(),
            Some(tenant("abc", Origin::Api))
        );
        db.finish(store).await;
    }
}

#[tokio::test]
async fn sqlite_creates_parent_directories_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/portico.db");
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(path.is_file());
    let mode: String = {
        // WAL is a property of the file: a plain connection sees it.
        let url = format!("sqlite://{}", path.display());
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(mode, "wal");
    store.close().await;

    let memory = Store::open("sqlite::memory:").await.unwrap();
    memory
        .add_tenant(&tenant("abc", Origin::Api))
        .await
        .unwrap();
    assert!(memory.tenant("abc").await.unwrap().is_some());
}

#[tokio::test]
async fn open_errors_mask_the_password() {
    let e = Store::open("postgres://portico:s3cret@127.0.0.1:1/db")
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
    assert!(
        msg.starts_with("cannot open the database postgres://portico:***@127.0.0.1:1/db: "),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"), "{msg}");
    let e = Store::open("mysql://x/y").await.unwrap_err();
    assert!(e.to_string().contains("unsupported database URL"), "{e}");
}

#[tokio::test]
async fn changes_are_signalled_after_each_write() {
    for db in databases().await {
        let store = db.open().await;
        let mut rx = store.changes();
        let start = *rx.borrow_and_update();

        store.add_tenant(&tenant("abc", Origin::Api)).await.unwrap();
        assert!(rx.has_changed().unwrap());
        let after_add = *rx.borrow_and_update();
        assert!(after_add > start);

        // Refused writes and reads are no change.
        assert!(store.add_tenant(&tenant("abc", Origin::Api)).await.is_err());
        assert!(store.remove_tenant("abc", Origin::File).await.is_err());
        store.registry().await.unwrap();
        assert!(!rx.has_changed().unwrap());

        // A clone shares the channel.
        let clone = store.clone();
        let waiter = tokio::spawn(async move {
            rx.changed().await.unwrap();
            *rx.borrow()
        });
        clone
            .add_webapp(&webapp("shop", None, &["abc"], Origin::Api))
            .await
            .unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(seen > after_add);

        let mut rx = store.changes();
        rx.mark_unchanged();
        for step in 0..5 {
            match step {
                0 => store
                    .add_api(&api("iot", None, 1, &[], Origin::Api))
                    .await
                    .unwrap(),
                1 => store.remove_api("iot", None, 1, Origin::Api).await.unwrap(),
                2 => store
                    .remove_webapp("shop", None, Origin::Api)
                    .await
                    .unwrap(),
                3 => store.remove_tenant("abc", Origin::Api).await.unwrap(),
                _ => store
                    .replace_origin(Origin::File, &Registry::default())
                    .await
                    .unwrap(),
            }
            assert!(rx.has_changed().unwrap(), "step {step}");
            rx.mark_unchanged();
        }
        db.finish(store).await;
    }
}

#[tokio::test]
async fn admin_token_hash_set_get_replace() {
    for db in databases().await {
        let store = db.open().await;
        assert_eq!(store.admin_token_hash().await.unwrap(), None);
        let first = "a".repeat(64);
        let second = "0123456789abcdef".repeat(4);
        store.set_admin_token_hash(&first).await.unwrap();
        assert_eq!(store.admin_token_hash().await.unwrap(), Some(first));
        store.set_admin_token_hash(&second).await.unwrap();
        assert_eq!(
            store.admin_token_hash().await.unwrap(),
            Some(second.clone())
        );
        let e = store.set_admin_token_hash("plain-token").await.unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{e:?}");
        assert_eq!(store.admin_token_hash().await.unwrap(), Some(second));
        db.finish(store).await;
    }
}

#[tokio::test]
async fn concurrent_adds_of_the_same_tenant_have_one_winner() {
    for db in databases().await {
        let store = db.open().await;
        for round in 0..20 {
            let name = format!("t{round}");
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let (store, name) = (store.clone(), name.clone());
                    tokio::spawn(async move { store.add_tenant(&tenant(&name, Origin::Api)).await })
                })
                .collect();
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await.unwrap());
            }
            assert_eq!(
                results.iter().filter(|r| r.is_ok()).count(),
                1,
                "{results:?}"
            );
            assert!(
                results
                    .iter()
                    .any(|r| matches!(r, Err(StoreError::Conflict { .. }))),
                "{results:?}"
            );
        }
        assert_eq!(store.registry().await.unwrap().tenants.len(), 20);
        db.finish(store).await;
    }
}

#[tokio::test]
async fn subscribing_and_removing_a_tenant_concurrently_never_both_succeed() {
    for db in databases().await {
        let store = db.open().await;
        for round in 0..10 {
            let name = format!("t{round}");
            store.add_tenant(&tenant(&name, Origin::Api)).await.unwrap();
            let (s1, s2, n1, n2) = (store.clone(), store.clone(), name.clone(), name.clone());
            let add = tokio::spawn(async move {
                s1.add_webapp(&webapp(
                    &format!("app{}", &n1[1..]),
                    None,
                    &[n1.as_str()],
                    Origin::Api,
                ))
                .await
            });
            let remove = tokio::spawn(async move { s2.remove_tenant(&n2, Origin::Api).await });
            let (add, remove) = (add.await.unwrap(), remove.await.unwrap());
            assert!(
                add.is_ok() != remove.is_ok(),
                "add {add:?}, remove {remove:?}"
            );
            store.registry().await.unwrap().validate().unwrap();
        }
        db.finish(store).await;
    }
}

#[tokio::test]
async fn readers_never_see_half_a_replace() {
    for db in databases().await {
        let store = db.open().await;
        let state = |n: usize| Registry {
            tenants: (0..n)
                .map(|i| tenant(&format!("t{i}"), Origin::File))
                .collect(),
            webapps: (0..n)
                .map(|i| webapp(&format!("w{i}"), None, &["t0"], Origin::File))
                .collect(),
            apis: (0..n)
                .map(|i| api(&format!("a{i}"), None, 1, &["t0"], Origin::File))
                .collect(),
        };
        let (small, big) = (state(2), state(8));
        store.replace_origin(Origin::File, &small).await.unwrap();
        let writer = {
            let (store, small, big) = (store.clone(), small.clone(), big.clone());
            tokio::spawn(async move {
                for i in 0..30 {
                    store
                        .replace_origin(Origin::File, if i % 2 == 0 { &big } else { &small })
                        .await
                        .unwrap();
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() || reads < 5 {
            let seen = store.registry().await.unwrap();
            let n = seen.tenants.len();
            assert!(n == 2 || n == 8, "half an update: {n} tenants");
            assert_eq!(seen, if n == 2 { small.clone() } else { big.clone() });
            reads += 1;
        }
        writer.await.unwrap();
        db.finish(store).await;
    }
}
