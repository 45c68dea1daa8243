//! Sessions survive a restart: a second engine on the same store knows the client and
//! hands it the notifications it had not been given, in order, once.
#![allow(clippy::unwrap_used)]

mod bayeux_support;

use bayeux_support::*;
use portico_realtime::bayeux::{BayeuxOptions, Endpoint};
use serde_json::json;
use std::time::Duration;

fn zero_connect(id: &str) -> serde_json::Value {
    json!({"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling", "advice": {"timeout": 0}})
}

/// For a crash the test waits out before restarting: a grace far longer than that wait,
/// so the session is restored however slowly the machine runs (grace itself is tested in
/// `a_session_past_its_grace_is_not_restored`).
async fn patient_engine(store: &portico_store::Store) -> portico_realtime::bayeux::Bayeux {
    let options = BayeuxOptions {
        session_grace: Duration::from_secs(30),
        ..fast_options()
    };
    engine_with(store, Endpoint::Operations, options, fast_limits()).await
}

#[tokio::test]
async fn a_session_survives_a_restart_with_its_queued_events_in_order() {
    let db = test_store().await;
    let first = engine(&db.store, Endpoint::Operations).await;
    let id = ready_session(&first, ACME_TOKEN, "/42").await;
    first.publish("acme", "/42", json!("handed out")).await;
    assert_eq!(
        event_data(&connect(&first, &id).await),
        vec![json!("handed out")]
    );
    // The client's next connect, at once, shows the answer arrived.
    assert!(event_data(&send(&first, zero_connect(&id)).await).is_empty());
    for i in 0..5 {
        first.publish("acme", "/42", json!(i)).await;
    }
    first.publish("acme", "/43", json!("not subscribed")).await;
    first.shut_down().await;
    drop(first);

    let second = engine(&db.store, Endpoint::Operations).await;
    assert_eq!(second.session_count(), 1);
    let reply = send(&second, zero_connect(&id)).await;
    assert_eq!(
        event_data(&reply),
        (0..5).map(|i| json!(i)).collect::<Vec<_>>()
    );
    assert_eq!(reply.last().unwrap()["successful"], true);
    // And it goes on: subscriptions came back too.
    second.publish("acme", "/42", json!("after")).await;
    assert_eq!(
        event_data(&send(&second, zero_connect(&id)).await),
        vec![json!("after")]
    );
}

#[tokio::test]
async fn events_published_while_the_session_was_not_in_memory_are_replayed() {
    // A crash: the first engine is never shut down, only its positions were flushed.
    let db = test_store().await;
    let first = patient_engine(&db.store).await;
    let id = ready_session(&first, ACME_TOKEN, "/*").await;
    first.publish("acme", "/1", json!("a")).await;
    first.publish("globex", "/1", json!("other tenant")).await;
    first.publish("acme", "/2", json!("b")).await;
    // Let housekeeping flush at least once (every 100 ms).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = patient_engine(&db.store).await;
    let reply = send(&second, zero_connect(&id)).await;
    assert_eq!(event_data(&reply), vec![json!("a"), json!("b")]);
    first.shut_down().await;
}

#[tokio::test]
async fn a_session_past_its_grace_is_not_restored() {
    let db = test_store().await;
    let options = BayeuxOptions {
        connect_timeout: Duration::from_millis(100),
        max_connect_timeout: Duration::from_millis(100),
        session_grace: Duration::from_millis(100),
    };
    let first = engine_with(
        &db.store,
        Endpoint::Operations,
        options.clone(),
        fast_limits(),
    )
    .await;
    let id = ready_session(&first, ACME_TOKEN, "/42").await;
    first.shut_down().await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = engine_with(&db.store, Endpoint::Operations, options, fast_limits()).await;
    assert_eq!(second.session_count(), 0);
    assert_eq!(
        send(&second, zero_connect(&id)).await[0]["error"],
        "402::Unknown client"
    );
    assert!(db
        .store
        .bayeux_sessions("operations")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_disconnected_session_stays_gone_after_a_restart() {
    let db = test_store().await;
    let first = engine(&db.store, Endpoint::Operations).await;
    let id = ready_session(&first, ACME_TOKEN, "/42").await;
    send(
        &first,
        json!({"channel": "/meta/disconnect", "clientId": id}),
    )
    .await;
    first.shut_down().await;
    let second = engine(&db.store, Endpoint::Operations).await;
    assert_eq!(second.session_count(), 0);
}

#[tokio::test]
async fn endpoints_keep_their_sessions_apart() {
    let db = test_store().await;
    let ops = engine(&db.store, Endpoint::Operations).await;
    let id = ready_session(&ops, ACME_TOKEN, "/42").await;
    ops.shut_down().await;
    let rt = engine(&db.store, Endpoint::Realtime).await;
    assert_eq!(rt.session_count(), 0);
    assert_eq!(
        send(&rt, zero_connect(&id)).await[0]["error"],
        "402::Unknown client"
    );
}

#[tokio::test]
async fn the_log_is_pruned_below_every_cursor() {
    let db = test_store().await;
    let ops = engine(&db.store, Endpoint::Operations).await;
    let id = ready_session(&ops, ACME_TOKEN, "/42").await;
    for i in 0..3 {
        ops.publish("acme", "/42", json!(i)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kept = db
        .store
        .bayeux_entries_after("operations", "acme", 0, 100)
        .await
        .unwrap();
    assert_eq!(kept.len(), 3, "still queued, so still logged");
    assert_eq!(event_data(&connect(&ops, &id).await).len(), 3);
    let mut pruned = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if db
            .store
            .bayeux_entries_after("operations", "acme", 0, 100)
            .await
            .unwrap()
            .is_empty()
        {
            pruned = true;
            break;
        }
    }
    assert!(pruned, "handed out everywhere, so pruned within 5 s");
    ops.shut_down().await;
}

/// An answer handed out just before a crash may never have reached the client (the crash
/// cut its connection): until the client's next connect confirms it, its events stay
/// behind the saved cursor, and the restarted server hands them out again.
#[tokio::test]
async fn an_answer_not_yet_confirmed_when_the_server_crashed_is_handed_out_again() {
    let db = test_store().await;
    let first = patient_engine(&db.store).await;
    let id = ready_session(&first, ACME_TOKEN, "/*").await;
    first.publish("acme", "/1", json!("confirmed")).await;
    assert_eq!(
        event_data(&connect(&first, &id).await),
        vec![json!("confirmed")]
    );
    first.publish("acme", "/1", json!("in flight")).await;
    // The client connected again at once: "confirmed" arrived. This answer is the last.
    assert_eq!(
        event_data(&connect(&first, &id).await),
        vec![json!("in flight")]
    );
    // Housekeeping saves the positions (every 100 ms); then the crash.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = patient_engine(&db.store).await;
    let reply = send(&second, zero_connect(&id)).await;
    assert_eq!(event_data(&reply), vec![json!("in flight")]);
    first.shut_down().await;
}
