//! The Bayeux checklist, point by point, driven through `Bayeux::process`.
#![allow(clippy::unwrap_used)]

mod bayeux_support;

use bayeux_support::*;
use portico_realtime::bayeux::{ConnectionType, Endpoint, Incoming};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

#[tokio::test]
async fn a_single_object_or_an_array_in_an_array_out() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let one = send(&bayeux, handshake_message(ACME_TOKEN)).await;
    assert_eq!(one.len(), 1);
    let two = send(
        &bayeux,
        json!([handshake_message(ACME_TOKEN), handshake_message(ACME_TOKEN)]),
    )
    .await;
    assert_eq!(two.len(), 2);
    assert!(two.iter().all(|r| r["successful"] == true));
    assert!(portico_realtime::bayeux::Bayeux::parse(b"[1]").is_err());
    assert!(portico_realtime::bayeux::Bayeux::parse(b"not json").is_err());
}

#[tokio::test]
async fn the_handshake_needs_a_version_connection_types_and_a_shared_type() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let mut no_version = handshake_message(ACME_TOKEN);
    no_version.as_object_mut().unwrap().remove("version");
    let reply = send(&bayeux, no_version).await;
    assert_eq!(reply[0]["successful"], false);
    assert!(
        reply[0]["error"].as_str().unwrap().starts_with("400::"),
        "{reply:?}"
    );

    let mut no_types = handshake_message(ACME_TOKEN);
    no_types
        .as_object_mut()
        .unwrap()
        .remove("supportedConnectionTypes");
    let reply = send(&bayeux, no_types).await;
    assert_eq!(reply[0]["successful"], false);
    assert!(reply[0]["error"].is_string());

    let mut carrier_pigeon = handshake_message(ACME_TOKEN);
    carrier_pigeon["supportedConnectionTypes"] = json!(["carrier-pigeon"]);
    let reply = send(&bayeux, carrier_pigeon).await;
    assert_eq!(reply[0]["successful"], false);
    assert!(reply[0]["error"]
        .as_str()
        .unwrap()
        .starts_with("301::carrier-pigeon::"));
    assert_eq!(
        reply[0]["supportedConnectionTypes"],
        json!(["long-polling", "callback-polling", "websocket"])
    );
    assert!(reply[0].get("clientId").is_none());
    assert_eq!(bayeux.session_count(), 0);

    for t in ["long-polling", "callback-polling", "websocket"] {
        let mut m = handshake_message(ACME_TOKEN);
        m["supportedConnectionTypes"] = json!(["carrier-pigeon", t]);
        let reply = send(&bayeux, m).await;
        assert_eq!(reply[0]["successful"], true, "{t}");
        assert_eq!(reply[0]["version"], "1.0");
        assert_eq!(
            reply[0]["advice"],
            json!({"reconnect": "retry", "interval": 0, "timeout": 400})
        );
    }
}

#[tokio::test]
async fn client_ids_hold_128_random_bits_and_are_never_reused() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let mut seen = HashSet::new();
    for _ in 0..200 {
        let id = handshake(&bayeux, ACME_TOKEN).await;
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(seen.insert(id));
    }
}

#[tokio::test]
async fn every_reply_echoes_the_id_and_says_whether_it_succeeded() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let id = handshake(&bayeux, ACME_TOKEN).await;
    let requests = json!([
        {"channel": "/meta/subscribe", "clientId": id, "subscription": "/42", "id": "1"},
        {"channel": "/meta/unsubscribe", "clientId": id, "subscription": "/42", "id": 2},
        {"channel": "/service/ping", "clientId": id, "data": {}, "id": "3"},
        {"channel": "/42", "clientId": id, "data": {}, "id": "4"},
        {"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling", "id": "5"},
        {"channel": "/meta/disconnect", "clientId": id, "id": "6"},
        {"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling", "id": "7"},
        {"channel": "/meta/nonsense", "clientId": id, "id": "8"},
    ]);
    let reply = send(&bayeux, requests).await;
    let ids: Vec<Value> = reply.iter().map(|r| r["id"].clone()).collect();
    assert_eq!(
        ids,
        vec![
            json!("1"),
            json!(2),
            json!("3"),
            json!("4"),
            json!("5"),
            json!("6"),
            json!("7"),
            json!("8")
        ]
    );
    assert!(
        reply.iter().all(|r| r["successful"].is_boolean()),
        "{reply:?}"
    );
    let ok: Vec<bool> = reply.iter().map(|r| r["successful"] == true).collect();
    assert_eq!(ok, vec![true, true, true, false, true, true, false, false]);
}

#[tokio::test]
async fn an_unknown_client_is_told_to_handshake() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    for m in [
        connect_message("0123456789abcdef0123456789abcdef"),
        json!({"channel": "/meta/subscribe", "clientId": "nope", "subscription": "/1"}),
        json!({"channel": "/meta/unsubscribe", "clientId": "nope", "subscription": "/1"}),
        json!({"channel": "/meta/disconnect", "clientId": "nope"}),
        json!({"channel": "/service/x", "clientId": "nope", "data": 1}),
    ] {
        let reply = send(&bayeux, m).await;
        assert_eq!(reply[0]["successful"], false);
        assert_eq!(reply[0]["error"], "402::Unknown client");
        assert_eq!(
            reply[0]["advice"],
            json!({"reconnect": "handshake", "interval": 0})
        );
    }
}

#[tokio::test]
async fn queued_events_come_in_order_in_one_reply() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/*").await;
    for i in 0..5 {
        bayeux
            .publish("acme", &format!("/{}", i % 2), json!(i))
            .await;
    }
    let reply = connect(&bayeux, &id).await;
    assert_eq!(
        event_data(&reply),
        (0..5).map(|i| json!(i)).collect::<Vec<_>>()
    );
    assert_eq!(reply.len(), 6);
    assert_eq!(reply[5]["channel"], "/meta/connect");
}

#[tokio::test]
async fn subscribe_and_unsubscribe_take_a_string_or_an_array_and_echo_it() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Realtime).await;
    let id = handshake(&bayeux, ACME_TOKEN).await;
    connect(&bayeux, &id).await;
    let one = subscribe(&bayeux, &id, json!("/alarms/7")).await;
    assert_eq!(
        (one["successful"].clone(), one["subscription"].clone()),
        (json!(true), json!("/alarms/7"))
    );
    let many = subscribe(&bayeux, &id, json!(["/events/7", "/measurements/*"])).await;
    assert_eq!(
        many["subscription"],
        json!(["/events/7", "/measurements/*"])
    );
    let un = send(
        &bayeux,
        json!({"channel": "/meta/unsubscribe", "clientId": id, "subscription": ["/events/7"]}),
    )
    .await;
    assert_eq!(
        (un[0]["successful"].clone(), un[0]["subscription"].clone()),
        (json!(true), json!(["/events/7"]))
    );
    bayeux.publish("acme", "/events/7", json!("unwanted")).await;
    bayeux.publish("acme", "/measurements/9", json!("m")).await;
    bayeux.publish("acme", "/alarms/7", json!("a")).await;
    assert_eq!(
        event_data(&connect(&bayeux, &id).await),
        vec![json!("m"), json!("a")]
    );
    let empty = subscribe(&bayeux, &id, json!([])).await;
    assert_eq!(empty["successful"], false);
}

#[tokio::test]
async fn nobody_subscribes_to_meta_and_service_is_never_broadcast() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/*").await;
    for channel in [
        "/meta/connect",
        "/meta/**",
        "/meta/*",
        "/service/x",
        "/service/**",
    ] {
        let reply = subscribe(&bayeux, &id, json!(channel)).await;
        assert_eq!(reply["successful"], false, "{channel}");
        assert!(
            reply["error"].as_str().unwrap().starts_with("403::"),
            "{reply:?}"
        );
    }
    let service = send(
        &bayeux,
        json!({"channel": "/service/echo", "clientId": id, "data": {"x": 1}}),
    )
    .await;
    assert_eq!(service[0]["successful"], true);
    let broadcast = send(
        &bayeux,
        json!({"channel": "/42", "clientId": id, "data": {"x": 1}}),
    )
    .await;
    assert_eq!(broadcast[0]["successful"], false);
    assert!(broadcast[0]["error"]
        .as_str()
        .unwrap()
        .starts_with("403::/42::"));
    let meta = send(
        &bayeux,
        json!({"channel": "/meta/whatever", "clientId": id, "data": 1}),
    )
    .await;
    assert_eq!(meta[0]["successful"], false);
    // The server refuses to publish on /service and /meta itself.
    bayeux.publish("acme", "/service/echo", json!(1)).await;
    bayeux.publish("acme", "/meta/connect", json!(1)).await;
    let reply = send(&bayeux, json!({"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling", "advice": {"timeout": 0}})).await;
    assert!(event_data(&reply).is_empty(), "{reply:?}");
}

#[tokio::test]
async fn several_messages_are_processed_in_order_and_answered_in_one_array() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let id = handshake(&bayeux, ACME_TOKEN).await;
    bayeux.publish("acme", "/5", json!("before")).await;
    let reply = send(
        &bayeux,
        json!([
            {"channel": "/meta/subscribe", "clientId": id, "subscription": "/5", "id": "a"},
            {"channel": "/meta/unsubscribe", "clientId": id, "subscription": "/5", "id": "b"},
            {"channel": "/meta/subscribe", "clientId": id, "subscription": "/5", "id": "c"},
            {"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling", "id": "d"},
        ]),
    )
    .await;
    let ids: Vec<&str> = reply.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    assert!(reply.iter().all(|r| r["successful"] == true));
    assert!(
        event_data(&reply).is_empty(),
        "published before the subscription"
    );
}

#[tokio::test]
async fn too_many_messages_in_one_request_are_refused() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let many: Vec<Value> = (0..101).map(|_| handshake_message(ACME_TOKEN)).collect();
    let reply = send(&bayeux, Value::Array(many)).await;
    assert_eq!(reply.len(), 101);
    assert!(reply.iter().all(|r| r["successful"] == false));
    assert_eq!(bayeux.session_count(), 0);
}

#[tokio::test]
async fn ext_is_accepted_on_every_message() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let ext = json!({"com.cumulocity.authn": {"token": ACME_TOKEN}, "other": [1, 2]});
    let id = handshake(&bayeux, ACME_TOKEN).await;
    let reply = send(
        &bayeux,
        json!([
            {"channel": "/meta/subscribe", "clientId": id, "subscription": "/5", "ext": ext},
            {"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling", "ext": ext},
            {"channel": "/service/x", "clientId": id, "data": 1, "ext": ext},
            {"channel": "/meta/unsubscribe", "clientId": id, "subscription": "/5", "ext": ext},
            {"channel": "/meta/disconnect", "clientId": id, "ext": ext},
        ]),
    )
    .await;
    assert!(reply.iter().all(|r| r["successful"] == true), "{reply:?}");
}

#[tokio::test]
async fn sessions_are_not_tied_to_a_connection() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/42").await;
    bayeux.publish("acme", "/42", json!("x")).await;
    // The next request comes over another transport, from another address.
    let elsewhere = Incoming {
        authorization: None,
        client: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        connection_type: ConnectionType::WebSocket,
    };
    let reply = bayeux
        .process(messages(connect_message(&id)), &elsewhere)
        .await;
    assert_eq!(event_data(&reply), vec![json!("x")]);
}

#[tokio::test]
async fn a_session_whose_queue_overflows_must_handshake_again() {
    let db = test_store().await;
    let limits = portico_realtime::bayeux::BayeuxLimits {
        max_queue: 3,
        ..fast_limits()
    };
    let bayeux = engine_with(&db.store, Endpoint::Operations, fast_options(), limits).await;
    let id = ready_session(&bayeux, ACME_TOKEN, "/42").await;
    for i in 0..4 {
        bayeux.publish("acme", "/42", json!(i)).await;
    }
    assert_eq!(
        connect(&bayeux, &id).await[0]["error"],
        "402::Unknown client"
    );
}
