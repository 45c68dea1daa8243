//! Operations over the REST API: people create them, devices find their PENDING ones and
//! walk them through EXECUTING to SUCCESSFUL or FAILED; illegal moves are 422, a
//! completion happens once, and every change is published for the device.

#![allow(clippy::unwrap_used)]

mod rest_support;

use axum::http::{Method, StatusCode};
use portico_realtime::{Action, Kind};
use rest_support::Api;
use serde_json::json;

const OPERATIONS: &str = "/devicecontrol/operations";

#[tokio::test]
async fn an_operation_walks_from_pending_to_successful() {
    let api = Api::new().await;
    let device = api.accounts.add("acme", "device_1", "device");
    let id = api.device(&device, "press").await;
    api.notify.take();

    let reply = api
        .send(
            Method::POST,
            OPERATIONS,
            &[
                ("authorization", &api.admin),
                (
                    "content-type",
                    "application/vnd.com.nsn.cumulocity.operation+json;charset=UTF-8;ver=0.9",
                ),
            ],
            Some(
                json!({"deviceId": id, "description": "restart", "c8y_Restart": {}})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(reply
        .content_type()
        .starts_with("application/vnd.com.nsn.cumulocity.operation+json"));
    assert_eq!(reply.body["status"], "PENDING");
    assert_eq!(reply.body["deviceId"], id.as_str());
    assert_eq!(reply.body["c8y_Restart"], json!({}));
    let op = reply.body["id"].as_str().unwrap().to_string();
    let created = api.notify.take();
    assert_eq!(created.len(), 1);
    assert_eq!(
        (created[0].kind, created[0].action),
        (Kind::Operation, Action::Create)
    );
    assert_eq!(
        created[0].source, id,
        "an operation's change is about its device"
    );
    assert_eq!(created[0].data, reply.body);

    // The device finds it by agentId or deviceId and status.
    for query in [
        format!("agentId={id}&status=PENDING"),
        format!("deviceId={id}&status=PENDING"),
    ] {
        let list = api.get(&format!("{OPERATIONS}?{query}"), &device).await;
        assert!(list
            .content_type()
            .starts_with("application/vnd.com.nsn.cumulocity.operationCollection+json"));
        assert_eq!(list.body["operations"][0]["id"], op.as_str(), "{query}");
    }

    let path = format!("{OPERATIONS}/{op}");
    let executing = api
        .put(&path, &device, json!({"status": "EXECUTING"}))
        .await;
    assert_eq!(executing.status, StatusCode::OK, "{}", executing.body);
    assert_eq!(executing.body["status"], "EXECUTING");
    let pending = api
        .get(
            &format!("{OPERATIONS}?deviceId={id}&status=PENDING"),
            &device,
        )
        .await;
    assert_eq!(pending.body["operations"], json!([]));
    let done = api
        .put(
            &path,
            &device,
            json!({"status": "SUCCESSFUL", "c8y_Restart": {"took": "3s"}}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["status"], "SUCCESSFUL");
    assert_eq!(done.body["c8y_Restart"]["took"], "3s");
    let fetched = api.get(&path, &api.admin).await;
    assert_eq!(fetched.body["status"], "SUCCESSFUL");

    let changes = api.notify.take();
    assert_eq!(changes.len(), 2);
    assert!(changes
        .iter()
        .all(|c| c.action == Action::Update && c.source == id));
    assert_eq!(changes[1].data, done.body);
}

#[tokio::test]
async fn illegal_transitions_are_422_and_final_states_stay() {
    let api = Api::new().await;
    let id = api.device(&api.admin, "press").await;
    let create = || {
        api.post(
            OPERATIONS,
            &api.admin,
            json!({"deviceId": id, "c8y_Restart": {}}),
        )
    };
    let op = create().await.body["id"].as_str().unwrap().to_string();
    let path = format!("{OPERATIONS}/{op}");
    api.notify.take();

    let reply = api
        .put(&path, &api.admin, json!({"status": "SUCCESSFUL"}))
        .await;
    assert_eq!(
        reply.error(StatusCode::UNPROCESSABLE_ENTITY),
        "devicecontrol/validationError"
    );
    assert!(reply.body["message"].as_str().unwrap().contains("PENDING"));
    api.put(&path, &api.admin, json!({"status": "DONE"}))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert_eq!(
        api.put(&path, &api.admin, json!({"status": "EXECUTING"}))
            .await
            .status,
        StatusCode::OK
    );
    let failed = api
        .put(
            &path,
            &api.admin,
            json!({"status": "FAILED", "failureReason": "no power"}),
        )
        .await;
    assert_eq!(failed.status, StatusCode::OK);
    assert_eq!(failed.body["failureReason"], "no power");
    for next in ["PENDING", "EXECUTING", "SUCCESSFUL", "FAILED"] {
        api.put(&path, &api.admin, json!({"status": next}))
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(
        api.notify.take().len(),
        2,
        "refused updates publish nothing"
    );

    // A device may refuse an operation straight away.
    let refused = create().await.body["id"].as_str().unwrap().to_string();
    let reply = api
        .put(
            &format!("{OPERATIONS}/{refused}"),
            &api.admin,
            json!({"status": "FAILED", "failureReason": "busy"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "FAILED");

    api.put(
        &format!("{OPERATIONS}/987654321"),
        &api.admin,
        json!({"status": "EXECUTING"}),
    )
    .await
    .error(StatusCode::NOT_FOUND);
    api.post(OPERATIONS, &api.admin, json!({"c8y_Restart": {}}))
        .await
        .error(StatusCode::BAD_REQUEST);
    api.post(OPERATIONS, &api.admin, json!({"deviceId": "987654321"}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn of_concurrent_completions_one_wins() {
    let api = Api::new().await;
    let id = api.device(&api.admin, "press").await;
    let op = api
        .post(OPERATIONS, &api.admin, json!({"deviceId": id}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("{OPERATIONS}/{op}");
    api.put(&path, &api.admin, json!({"status": "EXECUTING"}))
        .await;
    let replies = futures_util::future::join_all((0..6).map(|i| {
        let status = if i % 2 == 0 { "SUCCESSFUL" } else { "FAILED" };
        api.put(&path, &api.admin, json!({"status": status}))
    }))
    .await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let refused = replies
        .iter()
        .filter(|r| r.status == StatusCode::UNPROCESSABLE_ENTITY)
        .count();
    assert_eq!((ok, refused), (1, 5));
}

#[tokio::test]
async fn devices_only_work_their_own_operations_and_cannot_create_any() {
    let api = Api::new().await;
    let device = api.accounts.add("acme", "device_1", "device");
    let other_tenant = api.accounts.add("globex", "admin", "admin");
    let mine = api.device(&device, "mine").await;
    let admins = api.device(&api.admin, "admins").await;
    let for_me = api
        .post(OPERATIONS, &api.admin, json!({"deviceId": mine}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let for_admins = api
        .post(OPERATIONS, &api.admin, json!({"deviceId": admins}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();

    let reply = api
        .post(OPERATIONS, &device, json!({"deviceId": mine}))
        .await;
    assert_eq!(
        reply.error(StatusCode::FORBIDDEN),
        "devicecontrol/Forbidden"
    );
    let listed = api.all_pages(OPERATIONS, "operations", &device, 5).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], for_me.as_str());
    let asked = api
        .get(&format!("{OPERATIONS}?deviceId={admins}"), &device)
        .await;
    assert_eq!(asked.body["operations"], json!([]));
    api.get(&format!("{OPERATIONS}/{for_admins}"), &device)
        .await
        .error(StatusCode::FORBIDDEN);
    api.put(
        &format!("{OPERATIONS}/{for_admins}"),
        &device,
        json!({"status": "EXECUTING"}),
    )
    .await
    .error(StatusCode::FORBIDDEN);
    // agentId and deviceId naming different devices match nothing.
    let both = api
        .get(
            &format!("{OPERATIONS}?agentId={mine}&deviceId={admins}"),
            &api.admin,
        )
        .await;
    assert_eq!(both.body["operations"], json!([]));
    assert_eq!(
        api.all_pages(OPERATIONS, "operations", &api.admin, 1)
            .await
            .len(),
        2
    );

    // Another tenant: nothing to see, nothing to change, no operations for our devices.
    assert!(api
        .all_pages(OPERATIONS, "operations", &other_tenant, 5)
        .await
        .is_empty());
    api.get(&format!("{OPERATIONS}/{for_me}"), &other_tenant)
        .await
        .error(StatusCode::NOT_FOUND);
    api.put(
        &format!("{OPERATIONS}/{for_me}"),
        &other_tenant,
        json!({"status": "EXECUTING"}),
    )
    .await
    .error(StatusCode::NOT_FOUND);
    api.post(OPERATIONS, &other_tenant, json!({"deviceId": mine}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY);
    api.get(&format!("{OPERATIONS}?status=WAITING"), &api.admin)
        .await
        .error(StatusCode::BAD_REQUEST);
}
