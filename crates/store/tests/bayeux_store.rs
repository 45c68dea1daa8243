//! The Bayeux tables, on every test database: the notification log with its sequence,
//! pruning, and the saved client sessions — each kept per endpoint and tenant.

#![allow(clippy::unwrap_used)]

mod common;

use common::databases;
use portico_store::{BayeuxSessionPosition, BayeuxSessionRecord};

fn session(client_id: &str, tenant: &str, cursor: i64) -> BayeuxSessionRecord {
    BayeuxSessionRecord {
        endpoint: "operations".into(),
        client_id: client_id.into(),
        tenant: tenant.into(),
        user: "admin".into(),
        role: "admin".into(),
        subscriptions: vec!["/42".into(), "/*".into()],
        connect_timeout_ms: 25_000,
        last_seen_ms: 1_000,
        cursor,
        answered_seq: 0,
        answered_ms: 0,
        node: String::new(),
    }
}

#[tokio::test]
async fn another_node_reads_every_new_entry_and_loads_a_session_by_its_client_id() {
    for db in databases().await {
        let store = db.open().await;
        let a1 = store
            .bayeux_append("operations", "acme", "/1", r#"{"n":1}"#, 10)
            .await
            .unwrap();
        let b1 = store
            .bayeux_append("operations", "globex", "/1", r#"{"n":2}"#, 11)
            .await
            .unwrap();
        store
            .bayeux_append("realtime", "acme", "/events/1", "{}", 12)
            .await
            .unwrap();
        let all = store.bayeux_log_after("operations", 0, 10).await.unwrap();
        let seqs: Vec<(i64, &str)> = all.iter().map(|e| (e.seq, e.tenant.as_str())).collect();
        assert_eq!(seqs, vec![(a1, "acme"), (b1, "globex")]);
        assert_eq!(
            store
                .bayeux_log_after("operations", a1, 10)
                .await
                .unwrap()
                .len(),
            1
        );

        assert_eq!(
            store.bayeux_lowest_cursor("operations", 0).await.unwrap(),
            None
        );
        let mut answered = session("c1", "acme", 3);
        answered.answered_seq = 5;
        answered.answered_ms = 900;
        store.bayeux_save_session(&answered).await.unwrap();
        store
            .bayeux_save_session(&session("c2", "globex", 7))
            .await
            .unwrap();
        assert_eq!(
            store.bayeux_lowest_cursor("operations", 0).await.unwrap(),
            Some(3)
        );
        // Sessions not seen since the horizon hold nothing back.
        assert_eq!(
            store
                .bayeux_lowest_cursor("operations", 2_000)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store.bayeux_lowest_cursor("realtime", 0).await.unwrap(),
            None
        );

        // Positions are saved only by the node serving the session.
        let mut served = session("c3", "acme", 1);
        served.node = "node-2".into();
        store.bayeux_save_session(&served).await.unwrap();
        let position = |cursor| BayeuxSessionPosition {
            client_id: "c3".into(),
            tenant: "acme".into(),
            last_seen_ms: 2_000,
            cursor,
        };
        store
            .bayeux_save_node_positions("operations", "node-1", &[position(50)])
            .await
            .unwrap();
        store
            .bayeux_save_positions("operations", &[position(60)])
            .await
            .unwrap();
        let row = store
            .bayeux_session("operations", "c3")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((row.cursor, row.node.as_str()), (1, "node-2"));
        store
            .bayeux_save_node_positions("operations", "node-2", &[position(70)])
            .await
            .unwrap();
        let row = store
            .bayeux_session("operations", "c3")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.cursor, 70);
        assert_eq!(
            store
                .bayeux_node_sessions("operations", "node-2")
                .await
                .unwrap(),
            vec!["c3".to_string()]
        );
        let mut alone = store.bayeux_node_sessions("operations", "").await.unwrap();
        alone.sort();
        assert_eq!(alone, vec!["c1".to_string(), "c2".to_string()]);

        let loaded = store
            .bayeux_session("operations", "c1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded, answered);
        assert!(store
            .bayeux_session("realtime", "c1")
            .await
            .unwrap()
            .is_none());
        assert!(store
            .bayeux_session("operations", "nobody")
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn the_log_numbers_entries_per_endpoint_and_reads_them_per_tenant() {
    for db in databases().await {
        let store = db.open().await;
        assert_eq!(store.bayeux_last_seq("operations").await.unwrap(), 0);
        assert!(store.bayeux_last_seq("nonsense").await.is_err());
        let a1 = store
            .bayeux_append("operations", "acme", "/1", r#"{"n":1}"#, 10)
            .await
            .unwrap();
        let b1 = store
            .bayeux_append("operations", "globex", "/1", r#"{"n":2}"#, 11)
            .await
            .unwrap();
        let a2 = store
            .bayeux_append("operations", "acme", "/2", r#"{"n":3}"#, 12)
            .await
            .unwrap();
        let r1 = store
            .bayeux_append("realtime", "acme", "/alarms/1", "{}", 13)
            .await
            .unwrap();
        assert!(a1 < b1 && b1 < a2, "{a1} {b1} {a2}");
        assert_eq!(r1, 1, "each endpoint counts on its own");
        assert_eq!(store.bayeux_last_seq("operations").await.unwrap(), a2);

        let acme = store
            .bayeux_entries_after("operations", "acme", 0, 100)
            .await
            .unwrap();
        assert_eq!(acme.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![a1, a2]);
        assert_eq!(acme[1].channel, "/2");
        assert_eq!(acme[1].data, r#"{"n":3}"#);
        assert_eq!(acme[1].created_ms, 12);
        let after = store
            .bayeux_entries_after("operations", "acme", a1, 100)
            .await
            .unwrap();
        assert_eq!(after.len(), 1);
        let limited = store
            .bayeux_entries_after("operations", "acme", 0, 1)
            .await
            .unwrap();
        assert_eq!(limited[0].seq, a1);
        let globex = store
            .bayeux_entries_after("operations", "globex", 0, 100)
            .await
            .unwrap();
        assert_eq!(globex.len(), 1);
        assert_eq!(globex[0].tenant, "globex");
        db.finish(store).await;
    }
}

#[tokio::test]
async fn pruning_never_lets_a_sequence_number_come_back() {
    for db in databases().await {
        let store = db.open().await;
        for i in 0..5 {
            store
                .bayeux_append("operations", "acme", "/1", "1", 100 + i)
                .await
                .unwrap();
        }
        // Up to seq 2, and anything created before 104 (seq 4).
        assert_eq!(
            store.bayeux_prune_log("operations", 2, 103).await.unwrap(),
            3
        );
        let left = store
            .bayeux_entries_after("operations", "acme", 0, 100)
            .await
            .unwrap();
        assert_eq!(left.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(
            store.bayeux_prune_log("operations", 10, 0).await.unwrap(),
            2
        );
        let next = store
            .bayeux_append("operations", "acme", "/1", "1", 200)
            .await
            .unwrap();
        assert_eq!(next, 6);
        db.finish(store).await;
    }
}

#[tokio::test]
async fn concurrent_appends_get_distinct_numbers() {
    for db in databases().await {
        let store = db.open().await;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .bayeux_append("operations", "acme", "/1", "1", i)
                    .await
                    .unwrap()
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=20).collect::<Vec<i64>>());
        db.finish(store).await;
    }
}

#[tokio::test]
async fn sessions_are_saved_updated_and_deleted_per_tenant() {
    for db in databases().await {
        let store = db.open().await;
        store
            .bayeux_save_session(&session("c1", "acme", 0))
            .await
            .unwrap();
        store
            .bayeux_save_session(&session("c2", "globex", 0))
            .await
            .unwrap();
        let mut realtime = session("c3", "acme", 0);
        realtime.endpoint = "realtime".into();
        store.bayeux_save_session(&realtime).await.unwrap();
        let all = store.bayeux_sessions("operations").await.unwrap();
        assert_eq!(
            all,
            vec![session("c1", "acme", 0), session("c2", "globex", 0)]
        );
        assert_eq!(
            store
                .bayeux_tenant_sessions("operations", "acme")
                .await
                .unwrap()
                .len(),
            1
        );

        let mut changed = session("c1", "acme", 7);
        changed.subscriptions = vec!["/9".into()];
        changed.connect_timeout_ms = 5_000;
        store.bayeux_save_session(&changed).await.unwrap();
        // A row of another tenant is never overwritten through a known client id.
        store
            .bayeux_save_session(&session("c1", "globex", 99))
            .await
            .unwrap();
        let acme = store
            .bayeux_tenant_sessions("operations", "acme")
            .await
            .unwrap();
        assert_eq!(acme, vec![changed]);

        let positions = [
            BayeuxSessionPosition {
                client_id: "c1".into(),
                tenant: "acme".into(),
                last_seen_ms: 5_000,
                cursor: 9,
            },
            // The wrong tenant: skipped.
            BayeuxSessionPosition {
                client_id: "c2".into(),
                tenant: "acme".into(),
                last_seen_ms: 5_000,
                cursor: 9,
            },
            BayeuxSessionPosition {
                client_id: "gone".into(),
                tenant: "acme".into(),
                last_seen_ms: 5_000,
                cursor: 9,
            },
        ];
        store
            .bayeux_save_positions("operations", &positions)
            .await
            .unwrap();
        let all = store.bayeux_sessions("operations").await.unwrap();
        assert_eq!((all[0].last_seen_ms, all[0].cursor), (5_000, 9));
        assert_eq!((all[1].last_seen_ms, all[1].cursor), (1_000, 0));

        store
            .bayeux_delete_session("operations", "globex", "c1")
            .await
            .unwrap();
        assert_eq!(
            store.bayeux_sessions("operations").await.unwrap().len(),
            2,
            "wrong tenant: kept"
        );
        store
            .bayeux_delete_session("operations", "acme", "c1")
            .await
            .unwrap();
        assert_eq!(store.bayeux_sessions("operations").await.unwrap().len(), 1);

        assert_eq!(
            store
                .bayeux_delete_stale_sessions("operations", 1_001)
                .await
                .unwrap(),
            1
        );
        assert!(store
            .bayeux_sessions("operations")
            .await
            .unwrap()
            .is_empty());
        assert_eq!(store.bayeux_sessions("realtime").await.unwrap().len(), 1);
        db.finish(store).await;
    }
}
