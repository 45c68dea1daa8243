//! Who may handshake, what each endpoint's channels are, how patterns match, and that a
//! tenant's notifications reach only its own sessions.
#![allow(clippy::unwrap_used)]

mod bayeux_support;

use bayeux_support::*;
use portico_realtime::bayeux::channel::{check_subscription, ChannelPattern};
use portico_realtime::bayeux::{ConnectionType, Endpoint, Incoming};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};

#[tokio::test]
async fn the_handshake_takes_the_ext_token_or_the_authorization_header() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    // Basic in ext.
    handshake(&bayeux, ACME_TOKEN).await;
    // A JWT in ext is a Bearer token.
    handshake(&bayeux, ACME_JWT).await;
    // The HTTP header when ext has none.
    let mut bare = handshake_message("");
    bare.as_object_mut().unwrap().remove("ext");
    let with_header = Incoming {
        authorization: Some(format!("Basic {GLOBEX_TOKEN}")),
        client: IpAddr::V4(Ipv4Addr::LOCALHOST),
        connection_type: ConnectionType::LongPolling,
    };
    let reply = bayeux.process(messages(bare.clone()), &with_header).await;
    assert_eq!(reply[0]["successful"], true, "{reply:?}");
    assert_eq!(bayeux.session_count(), 3);

    let reply = send(&bayeux, bare).await;
    assert_eq!(reply[0]["error"], "401::Unauthorized");
    assert_eq!(reply[0]["advice"]["reconnect"], "none");
    let reply = send(&bayeux, handshake_message("d3Jvbmc6Y3JlZHM=")).await;
    assert_eq!(reply[0]["error"], "401::Unauthorized");
    assert_eq!(reply[0]["successful"], false);
    let reply = send(&bayeux, handshake_message(BOOTSTRAP_TOKEN)).await;
    assert!(reply[0]["error"].as_str().unwrap().starts_with("403::"));
    assert_eq!(
        bayeux.session_count(),
        3,
        "no session for a refused handshake"
    );
}

#[tokio::test]
async fn a_tenant_never_sees_another_tenants_notifications() {
    let db = test_store().await;
    let bayeux = engine(&db.store, Endpoint::Operations).await;
    let acme = ready_session(&bayeux, ACME_TOKEN, "/*").await;
    let globex = ready_session(&bayeux, GLOBEX_TOKEN, "/*").await;
    bayeux.publish("acme", "/100", json!("for acme")).await;
    bayeux.publish("globex", "/100", json!("for globex")).await;
    let zero = |id: &str| json!({"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling", "advice": {"timeout": 0}});
    assert_eq!(
        event_data(&send(&bayeux, zero(&acme)).await),
        vec![json!("for acme")]
    );
    assert_eq!(
        event_data(&send(&bayeux, zero(&globex)).await),
        vec![json!("for globex")]
    );
    let rt = engine(&db.store, Endpoint::Realtime).await;
    let acme = ready_session(&rt, ACME_TOKEN, "/measurements/*").await;
    rt.publish("globex", "/measurements/1", json!("secret"))
        .await;
    assert!(event_data(&send(&rt, zero(&acme)).await).is_empty());
}

#[tokio::test]
async fn each_endpoint_offers_its_own_channels() {
    let db = test_store().await;
    let ops = engine(&db.store, Endpoint::Operations).await;
    let id = handshake(&ops, ACME_TOKEN).await;
    for ok in ["/12345", "/*", "/device-7"] {
        assert_eq!(
            subscribe(&ops, &id, json!(ok)).await["successful"],
            true,
            "{ok}"
        );
    }
    for refused in ["/**", "/a/b", "/measurements/1"] {
        let reply = subscribe(&ops, &id, json!(refused)).await;
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("403::{refused}::")),
            "{reply:?}"
        );
    }
    let rt = engine(&db.store, Endpoint::Realtime).await;
    let id = handshake(&rt, ACME_TOKEN).await;
    for kind in [
        "measurements",
        "events",
        "alarms",
        "operations",
        "managedobjects",
    ] {
        for target in ["1", "*"] {
            let channel = format!("/{kind}/{target}");
            assert_eq!(
                subscribe(&rt, &id, json!(channel)).await["successful"],
                true,
                "{channel}"
            );
        }
    }
    for refused in [
        "/12345",
        "/*",
        "/foo/1",
        "/alarms/**",
        "/alarms/1/2",
        "/alarms",
    ] {
        let reply = subscribe(&rt, &id, json!(refused)).await;
        assert_eq!(reply["successful"], false, "{refused}");
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .contains("realtime endpoint"),
            "{reply:?}"
        );
    }
    // One bad pattern refuses the whole message.
    let id = handshake(&rt, ACME_TOKEN).await;
    let reply = subscribe(&rt, &id, json!(["/alarms/9", "/nope/9"])).await;
    assert_eq!(reply["successful"], false);
    rt.publish("acme", "/alarms/9", json!(1)).await;
    let zero = json!({"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling", "advice": {"timeout": 0}});
    assert!(event_data(&send(&rt, zero).await).is_empty());
}

#[test]
fn channel_names_are_validated() {
    for good in [
        "/a",
        "/a/b",
        "/a/*",
        "/a/**",
        "/*",
        "/**",
        "/meta/connect",
        "/x-y_z.1/(2)",
    ] {
        assert!(ChannelPattern::parse(good).is_ok(), "{good}");
    }
    let long = format!("/{}", "a".repeat(300));
    for bad in [
        "",
        "a",
        "/",
        "//",
        "/a/",
        "/a//b",
        "/a/*/b",
        "/a*",
        "/a/***",
        "/a b",
        "/ä",
        long.as_str(),
    ] {
        assert!(ChannelPattern::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn wildcards_match_one_segment_or_any_depth_but_never_the_parent() {
    let one = ChannelPattern::parse("/foo/*").unwrap();
    let deep = ChannelPattern::parse("/foo/**").unwrap();
    let exact = ChannelPattern::parse("/foo/bar").unwrap();
    assert!(one.matches("/foo/bar"));
    assert!(!one.matches("/foo/bar/baz"));
    assert!(!one.matches("/foo"));
    assert!(!one.matches("/foobar/x"));
    assert!(deep.matches("/foo/bar"));
    assert!(deep.matches("/foo/bar/baz/qux"));
    assert!(!deep.matches("/foo"));
    assert!(!deep.matches("/other/bar"));
    assert!(exact.matches("/foo/bar"));
    assert!(!exact.matches("/foo/bar/baz"));
    assert!(!exact.matches("/foo"));
    assert!(ChannelPattern::parse("/*").unwrap().matches("/42"));
    assert!(!ChannelPattern::parse("/*").unwrap().matches("/42/1"));
    assert!(!one.matches("/foo/"));
    assert!(ChannelPattern::parse("/meta/**").unwrap().is_meta());
    assert!(ChannelPattern::parse("/service/x").unwrap().is_service());
    assert!(!ChannelPattern::parse("/services").unwrap().is_service());
    let ops = Endpoint::Operations;
    assert!(check_subscription(ops, &ChannelPattern::parse("/1").unwrap()).is_ok());
    assert!(check_subscription(ops, &ChannelPattern::parse("/1/2").unwrap()).is_err());
}

#[tokio::test]
async fn notifications_publish_operations_and_realtime_changes() {
    use portico_realtime::{Action, Change, Kind, Notifications, Notify};
    let db = test_store().await;
    let ops = engine(&db.store, Endpoint::Operations).await;
    let rt = engine(&db.store, Endpoint::Realtime).await;
    let device = ready_session(&ops, ACME_TOKEN, "/77").await;
    let watcher = ready_session(&rt, ACME_TOKEN, "/operations/77").await;
    let measurements = handshake(&rt, ACME_TOKEN).await;
    subscribe(&rt, &measurements, json!("/measurements/*")).await;
    connect(&rt, &measurements).await;
    let notify = Notifications::new(ops.clone(), rt.clone());
    let operation = json!({"id": "5", "deviceId": "77", "status": "PENDING"});
    notify
        .publish(Change {
            tenant: "acme".into(),
            kind: Kind::Operation,
            action: Action::Create,
            source: "77".into(),
            data: operation.clone(),
        })
        .await;
    notify
        .publish(Change {
            tenant: "acme".into(),
            kind: Kind::Operation,
            action: Action::Update,
            source: "77".into(),
            data: json!({"id": "5", "status": "EXECUTING"}),
        })
        .await;
    notify
        .publish(Change {
            tenant: "acme".into(),
            kind: Kind::Measurement,
            action: Action::Create,
            source: "77".into(),
            data: json!({"id": "m1"}),
        })
        .await;
    let reply = connect(&ops, &device).await;
    assert_eq!(
        event_data(&reply),
        vec![operation.clone()],
        "only the new operation"
    );
    assert_eq!(reply[0]["channel"], "/77");
    let reply = connect(&rt, &watcher).await;
    assert_eq!(
        event_data(&reply),
        vec![
            json!({"realtimeAction": "CREATE", "data": operation}),
            json!({"realtimeAction": "UPDATE", "data": {"id": "5", "status": "EXECUTING"}}),
        ]
    );
    let reply = connect(&rt, &measurements).await;
    assert_eq!(
        event_data(&reply),
        vec![json!({"realtimeAction": "CREATE", "data": {"id": "m1"}})]
    );
    assert_eq!(reply[0]["channel"], "/measurements/77");
}

/// A device's own user follows only the managed objects it owns, as on the REST API: not
/// another device of its tenant, not a wildcard; a person of the tenant follows any.
#[tokio::test]
async fn a_device_subscribes_only_to_what_it_owns() {
    let db = test_store().await;
    let document = serde_json::Map::new();
    let mine = db
        .store
        .create_managed_object("acme", "device_7", &document, 1)
        .await
        .unwrap()
        .id;
    let theirs = db
        .store
        .create_managed_object("acme", "device_8", &document, 1)
        .await
        .unwrap()
        .id;
    for endpoint in [Endpoint::Operations, Endpoint::Realtime] {
        let bayeux = engine(&db.store, endpoint).await;
        let channel = |id: String| match endpoint {
            Endpoint::Operations => format!("/{id}"),
            Endpoint::Realtime => format!("/operations/{id}"),
        };
        let device = handshake(&bayeux, ACME_DEVICE_TOKEN).await;
        let own = subscribe(&bayeux, &device, json!(channel(mine.to_string()))).await;
        assert_eq!(own["successful"], true, "{own}");
        for refused in [
            channel(theirs.to_string()),
            channel("*".into()),
            channel("999999".into()),
        ] {
            let reply = subscribe(&bayeux, &device, json!(refused)).await;
            assert_eq!(reply["successful"], false, "{refused}: {reply}");
            let error = reply["error"].as_str().unwrap();
            assert!(
                error.starts_with("403::") && error.contains("owns"),
                "{error}"
            );
        }
        // A person of the tenant may follow any device, and all of them.
        let person = handshake(&bayeux, ACME_TOKEN).await;
        for allowed in [channel(theirs.to_string()), channel("*".into())] {
            let reply = subscribe(&bayeux, &person, json!(allowed)).await;
            assert_eq!(reply["successful"], true, "{allowed}: {reply}");
        }
        bayeux.shut_down().await;
    }
}
