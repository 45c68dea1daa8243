//! The filtered lists of connection sessions and audit records, on SQLite and (when
//! `PORTICO_TEST_POSTGRES_URL` names a server) PostgreSQL: every filter is a bound
//! parameter, numbered the same way on both.

#![allow(clippy::unwrap_used)]

mod common;

use portico_store::{AuditFilter, AuditRecord, ConnectionFilter, ConnectionSessionRecord};

fn session(
    tenant: &str,
    id: &str,
    user: &str,
    device: &str,
    started_ms: i64,
) -> ConnectionSessionRecord {
    ConnectionSessionRecord {
        tenant: tenant.into(),
        id: id.into(),
        user_name: user.into(),
        device: device.into(),
        application: "ssh".into(),
        started_ms,
        ends_ms: started_ms + 1000,
        ended_ms: (id == "s1").then_some(started_ms + 10),
        end_reason: (id == "s1").then(|| "ended".into()),
        bytes_up: 0,
        bytes_down: 0,
    }
}

fn ids(list: &[ConnectionSessionRecord]) -> Vec<&str> {
    list.iter().map(|s| s.id.as_str()).collect()
}

#[tokio::test]
async fn sessions_and_audit_records_are_filtered_per_tenant() {
    for db in common::databases().await {
        let store = db.open().await;
        for s in [
            session("a", "s1", "uma", "press", 100),
            session("a", "s2", "uma", "mill", 200),
            session("a", "s3", "olga", "press", 300),
            session("b", "s4", "uma", "press", 250),
        ] {
            store.add_connection_session(&s).await.unwrap();
        }
        let all = ConnectionFilter {
            limit: 10,
            ..ConnectionFilter::default()
        };
        let list = |filter: ConnectionFilter| {
            let store = store.clone();
            async move { store.connection_sessions_where("a", &filter).await.unwrap() }
        };
        assert_eq!(ids(&list(all.clone()).await), ["s3", "s2", "s1"]);
        assert_eq!(
            ids(&list(ConnectionFilter {
                open_only: true,
                ..all.clone()
            })
            .await),
            ["s3", "s2"]
        );
        assert_eq!(
            ids(&list(ConnectionFilter {
                user: Some("uma".into()),
                device: Some("press".into()),
                ..all.clone()
            })
            .await),
            ["s1"]
        );
        assert_eq!(
            ids(&list(ConnectionFilter {
                since_ms: Some(200),
                until_ms: Some(300),
                ..all.clone()
            })
            .await),
            ["s2"]
        );
        assert_eq!(
            ids(&list(ConnectionFilter {
                limit: 2,
                ..all.clone()
            })
            .await),
            ["s3", "s2"]
        );
        // A filter value is data, never SQL.
        assert!(list(ConnectionFilter {
            user: Some("x' OR '1'='1".into()),
            ..all.clone()
        })
        .await
        .is_empty());

        for (tenant, id, actor, action) in [
            ("a", "a1", "ada", "site.add"),
            ("a", "a2", "uma", "connection.open"),
            ("b", "b1", "uma", "connection.open"),
        ] {
            store
                .add_audit(&AuditRecord {
                    tenant: tenant.into(),
                    id: id.into(),
                    at_ms: 1,
                    actor: actor.into(),
                    action: action.into(),
                    object: String::new(),
                    detail: String::new(),
                })
                .await
                .unwrap();
        }
        let audit = |actor: Option<&str>, action: Option<&str>| {
            let store = store.clone();
            let filter = AuditFilter {
                actor: actor.map(Into::into),
                action: action.map(Into::into),
                limit: 10,
            };
            async move {
                let records = store.audit_where("a", &filter).await.unwrap();
                records.into_iter().map(|r| r.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(audit(None, None).await, ["a2", "a1"]);
        assert_eq!(audit(Some("uma"), None).await, ["a2"]);
        assert_eq!(audit(None, Some("site.add")).await, ["a1"]);
        assert!(audit(Some("uma"), Some("site.add")).await.is_empty());
        db.finish(store).await;
    }
}
