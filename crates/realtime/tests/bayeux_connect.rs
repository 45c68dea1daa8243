//! The Bayeux checklist's points about `/meta/connect`: when it is answered at once, how
//! long it is held, what releases it, and how sessions without connects expire.
#![allow(clippy::unwrap_used)]

mod bayeux_support;

use bayeux_support::*;
use portico_realtime::bayeux::Endpoint;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn the_first_connect_and_a_connect_with_timeout_zero_are_answered_at_once() {
    let db = test_store().await;
    let options = portico_realtime::bayeux::BayeuxOptions {
        connect_timeout: Duration::from_secs(30),
        max_connect_timeout: Duration::from_secs(60),
        session_grace: Duration::from_secs(60),
    };
    let bayeux = engine_with(&db.store, Endpoint::Operations, options, fast_limits()).await;
    let id = handshake(&bayeux, ACME_TOKEN).await;
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        bayeux.process(messages(connect_message(&id)), &incoming()),
    )
    .await
    .expect("the first connect is not held");
    assert_eq!(first[0]["successful"], true);
    assert_eq!(first[0]["advice"]["timeout"], 30_000);
    let zero = json!({"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling", "advice": {"timeout": 0}});
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        bayeux.process(messages(zero), &incoming()),
    )
    .await
    .expect("a connect with advice.timeout 0 is not held");
    assert_eq!(reply[0]["successful"], true);
    // A plain connect now is held (the 30 s timeout is far away).
    let held = tokio::time::timeout(
        Duration::from_millis(300),
        bayeux.process(messages(connect_message(&id)), &incoming()),
    )
    .await;
    assert!(held.is_err(), "a later connect is held");
}

#[tokio::test]
async fn a_later_connect_is_held_until_an_event_comes() {
    let db = test_store().await;
    let options = portico_realtime::bayeux::BayeuxOptions {
        connect_timeout: Duration::from_secs(30),
        ..fast_options()
    };
    let bayeux = engine_with(&db.store, Endpoint::Operations, options, fast_limits()).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/42").await;
    let waiting = tokio::spawn({
        let bayeux = bayeux.clone();
        async move { connect(&bayeux, &id).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "held while nothing happens");
    bayeux.publish("acme", "/42", json!({"id": "op1"})).await;
    let reply = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event_data(&reply), vec![json!({"id": "op1"})]);
    assert_eq!(reply[0]["channel"], "/42");
    assert_eq!(reply.last().unwrap()["channel"], "/meta/connect");
}

#[tokio::test]
async fn a_held_connect_ends_at_its_timeout_and_the_client_timeout_is_clamped() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/42").await;
    let waiting = tokio::spawn({
        let bayeux = bayeux.clone();
        let id = id.clone();
        async move { connect(&bayeux, &id).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiting.is_finished());
    let reply = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0]["successful"], true);
    assert_eq!(reply[0]["advice"]["timeout"], 400);

    let greedy = json!({"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling", "advice": {"timeout": 3_600_000}});
    let reply = send(&bayeux, greedy).await;
    assert_eq!(
        reply[0]["advice"]["timeout"], 800,
        "clamped to max_connect_timeout"
    );
    assert_eq!(bayeux.max_hold(), Duration::from_millis(800));
}

#[tokio::test]
async fn a_new_connect_releases_the_outstanding_one() {
    let db = test_store().await;
    let options = portico_realtime::bayeux::BayeuxOptions {
        connect_timeout: Duration::from_secs(30),
        ..fast_options()
    };
    let bayeux = engine_with(&db.store, Endpoint::Operations, options, fast_limits()).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/42").await;
    let first = tokio::spawn({
        let bayeux = bayeux.clone();
        let id = id.clone();
        async move { connect(&bayeux, &id).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = tokio::spawn({
        let bayeux = bayeux.clone();
        let id = id.clone();
        async move { connect(&bayeux, &id).await }
    });
    let released = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0]["successful"], true);
    assert!(!second.is_finished(), "the newer connect is the one held");
    bayeux.publish("acme", "/42", json!(1)).await;
    let reply = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event_data(&reply), vec![json!(1)]);
}

#[tokio::test]
async fn a_session_without_connects_expires_after_its_timeout_and_the_grace() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/42").await;
    // 400 ms timeout + 300 ms grace; housekeeping looks every 100 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bayeux.session_count(), 1, "not before its time");
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if bayeux.session_count() == 0 {
            gone = true;
            break;
        }
    }
    assert!(gone, "expired within 5 s");
    assert_eq!(
        connect(&bayeux, &id).await[0]["error"],
        "402::Unknown client"
    );
    // The row is deleted right after the session leaves memory: wait for it (bounded).
    let mut row_gone = false;
    for _ in 0..50 {
        if db
            .store
            .bayeux_sessions("operations")
            .await
            .unwrap()
            .is_empty()
        {
            row_gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(row_gone, "its row went too, within 5 s");
}

#[tokio::test]
async fn a_held_connect_keeps_its_session_alive() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/42").await;
    for _ in 0..4 {
        let reply = connect(&bayeux, &id).await;
        assert_eq!(reply[0]["successful"], true, "{reply:?}");
    }
}

#[tokio::test]
async fn disconnect_releases_the_held_connect_and_later_messages_get_402() {
    let db = test_store().await;
    let options = portico_realtime::bayeux::BayeuxOptions {
        connect_timeout: Duration::from_secs(30),
        ..fast_options()
    };
    let bayeux = engine_with(&db.store, Endpoint::Operations, options, fast_limits()).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/42").await;
    let held = tokio::spawn({
        let bayeux = bayeux.clone();
        let id = id.clone();
        async move { connect(&bayeux, &id).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let bye = send(
        &bayeux,
        json!({"channel": "/meta/disconnect", "clientId": id, "id": "bye"}),
    )
    .await;
    assert_eq!(bye[0]["successful"], true);
    let released = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(released[0]["channel"], "/meta/connect");
    assert_eq!(released[0]["advice"]["reconnect"], "none");
    assert_eq!(
        connect(&bayeux, &id).await[0]["error"],
        "402::Unknown client"
    );
    assert_eq!(
        subscribe(&bayeux, &id, json!("/1")).await["error"],
        "402::Unknown client"
    );
}

#[tokio::test]
async fn shut_down_releases_held_connects() {
    let db = test_store().await;
    let options = portico_realtime::bayeux::BayeuxOptions {
        connect_timeout: Duration::from_secs(30),
        ..fast_options()
    };
    let bayeux = engine_with(&db.store, Endpoint::Operations, options, fast_limits()).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/42").await;
    let held = tokio::spawn({
        let bayeux = bayeux.clone();
        async move { connect(&bayeux, &id).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    bayeux.shut_down().await;
    let reply = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply[0]["successful"], true);
    assert_eq!(reply[0]["advice"]["reconnect"], "retry");
}

/// A firewall can swallow a held poll's connection, and the answer with it, without a word
/// to either side. A client that comes back late after an answer with events gets those
/// events again; one that comes back promptly got them, and gets each once.
#[tokio::test]
async fn an_answer_the_client_may_have_lost_is_handed_out_again_when_it_comes_back_late() {
    let db = test_store().await;
    let limits = portico_realtime::bayeux::BayeuxLimits {
        // Far above what a prompt reconnect takes, even with a slow store on a busy machine.
        redeliver_after: Duration::from_secs(2),
        ..fast_limits()
    };
    let options = portico_realtime::bayeux::BayeuxOptions {
        connect_timeout: Duration::from_secs(5),
        max_connect_timeout: Duration::from_secs(10),
        session_grace: Duration::from_secs(10),
    };
    let bayeux = engine_with(&db.store, Endpoint::Operations, options, limits).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/42").await;

    // Prompt: the next connect comes right after the answer; nothing is repeated.
    bayeux.publish("acme", "/42", json!({"id": "op1"})).await;
    assert_eq!(
        event_data(&connect(&bayeux, &id).await),
        vec![json!({"id": "op1"})]
    );
    bayeux.publish("acme", "/42", json!({"id": "op2"})).await;
    assert_eq!(
        event_data(&connect(&bayeux, &id).await),
        vec![json!({"id": "op2"})]
    );

    // Late: this answer is "lost"; the client's next connect comes after the limit, and
    // gets it again, ahead of what arrived meanwhile, in order.
    bayeux.publish("acme", "/42", json!({"id": "op3"})).await;
    assert_eq!(
        event_data(&connect(&bayeux, &id).await),
        vec![json!({"id": "op3"})]
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    bayeux.publish("acme", "/42", json!({"id": "op4"})).await;
    let again = tokio::time::timeout(Duration::from_secs(5), connect(&bayeux, &id))
        .await
        .expect("answered at once: something is waiting");
    assert_eq!(
        event_data(&again),
        vec![json!({"id": "op3"}), json!({"id": "op4"})]
    );
    // And promptly after that, nothing more.
    let quiet = tokio::time::timeout(Duration::from_millis(200), connect(&bayeux, &id)).await;
    assert!(quiet.is_err(), "held: nothing is waiting now");
}

/// A long poll whose client went away is dropped with its request: the session is then
/// idle, and expires like any other.
#[tokio::test]
async fn a_session_whose_held_connect_was_dropped_still_expires() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/42").await;
    let dropped = tokio::time::timeout(Duration::from_millis(100), connect(&bayeux, &id)).await;
    assert!(dropped.is_err(), "the connect was held, then dropped");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reply = connect(&bayeux, &id).await;
    assert_eq!(reply[0]["successful"], false);
    assert!(
        reply[0]["error"].as_str().unwrap().starts_with("402::"),
        "{reply:?}"
    );
}
