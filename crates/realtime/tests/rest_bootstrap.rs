//! The device bootstrap over the REST API: an operator registers a serial, the device
//! polls with the bootstrap user, gets 404 until the operator accepts, then its
//! credentials once.

#![allow(clippy::unwrap_used)]

mod rest_support;

use axum::http::StatusCode;
use portico_store::NewDeviceStatus;
use rest_support::{basic, Api};
use serde_json::json;

const CREDENTIALS: &str = "/devicecontrol/deviceCredentials";

#[tokio::test]
async fn a_device_gets_credentials_once_after_acceptance() {
    let api = Api::new().await;
    let bootstrap = api
        .accounts
        .add("management", "devicebootstrap", "device-bootstrap");

    // Nothing registered yet: 404, as for a request not yet accepted.
    let reply = api
        .post(CREDENTIALS, &bootstrap, json!({"id": "SN-42"}))
        .await;
    assert_eq!(
        reply.error(StatusCode::NOT_FOUND),
        "devicecontrol/Not Found"
    );

    let reply = api
        .post(
            "/devicecontrol/newDeviceRequests",
            &api.admin,
            json!({"id": "SN-42"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["status"], "WAITING_FOR_CONNECTION");
    assert!(reply
        .content_type()
        .starts_with("application/vnd.com.nsn.cumulocity.newDeviceRequest+json"));
    let again = api
        .post(
            "/devicecontrol/newDeviceRequests",
            &api.admin,
            json!({"id": "SN-42"}),
        )
        .await;
    again.error(StatusCode::CONFLICT);

    // The device polls: still 404, and the operator now sees it waiting for acceptance.
    for _ in 0..2 {
        let reply = api
            .post(CREDENTIALS, &bootstrap, json!({"id": "SN-42"}))
            .await;
        reply.error(StatusCode::NOT_FOUND);
    }
    let listed = api
        .get("/devicecontrol/newDeviceRequests", &api.admin)
        .await;
    assert_eq!(listed.body["newDeviceRequests"][0]["id"], "SN-42");
    assert_eq!(
        listed.body["newDeviceRequests"][0]["status"],
        "PENDING_ACCEPTANCE"
    );

    let bad = api
        .put(
            "/devicecontrol/newDeviceRequests/SN-42",
            &api.admin,
            json!({"status": "YES"}),
        )
        .await;
    bad.error(StatusCode::BAD_REQUEST);
    let accepted = api
        .put(
            "/devicecontrol/newDeviceRequests/SN-42",
            &api.admin,
            json!({"status": "ACCEPTED"}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.body["status"], "ACCEPTED");

    let reply = api
        .send(
            axum::http::Method::POST,
            CREDENTIALS,
            &[
                ("authorization", &bootstrap),
                ("content-type", "application/vnd.com.nsn.cumulocity.deviceCredentials+json;charset=UTF-8;ver=0.9"),
            ],
            Some(br#"{"id":"SN-42"}"#.to_vec()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(reply
        .content_type()
        .starts_with("application/vnd.com.nsn.cumulocity.deviceCredentials+json"));
    assert_eq!(reply.body["id"], "SN-42");
    assert_eq!(reply.body["tenantId"], "acme");
    assert_eq!(reply.body["username"], "device_SN-42");
    assert_eq!(
        reply.body["self"],
        "http://southgate.eu1.portico.localhost/devicecontrol/deviceCredentials/SN-42"
    );
    let password = reply.body["password"].as_str().unwrap().to_string();
    assert!(!password.is_empty());

    // The request is gone: another poll is 404 and the operator's list is empty.
    api.post(CREDENTIALS, &bootstrap, json!({"id": "SN-42"}))
        .await
        .error(StatusCode::NOT_FOUND);
    assert!(api
        .store
        .new_device_request("acme", "SN-42")
        .await
        .unwrap()
        .is_none());
    let listed = api
        .get("/devicecontrol/newDeviceRequests", &api.admin)
        .await;
    assert_eq!(listed.body["newDeviceRequests"], json!([]));

    // The issued credentials work as a device of tenant acme.
    let device = basic("acme", "device_SN-42", &password);
    let created = api
        .post(
            "/inventory/managedObjects",
            &device,
            json!({"name": "SN-42", "c8y_IsDevice": {}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["owner"], "device_SN-42");
}

#[tokio::test]
async fn only_the_bootstrap_user_gets_credentials_and_it_gets_nothing_else() {
    let api = Api::new().await;
    let bootstrap = api
        .accounts
        .add("management", "devicebootstrap", "device-bootstrap");
    let foreign_bootstrap = api
        .accounts
        .add("acme", "devicebootstrap", "device-bootstrap");
    let device = api.accounts.add("acme", "device_1", "device");
    api.post(
        "/devicecontrol/newDeviceRequests",
        &api.admin,
        json!({"id": "SN-1"}),
    )
    .await;
    api.put(
        "/devicecontrol/newDeviceRequests/SN-1",
        &api.admin,
        json!({"status": "ACCEPTED"}),
    )
    .await;

    for caller in [&api.admin, &device, &foreign_bootstrap] {
        let reply = api.post(CREDENTIALS, caller, json!({"id": "SN-1"})).await;
        assert_eq!(
            reply.error(StatusCode::FORBIDDEN),
            "devicecontrol/Forbidden"
        );
    }
    for path in [
        "/inventory/managedObjects",
        "/devicecontrol/newDeviceRequests",
        "/devicecontrol/operations",
        "/measurement/measurements",
    ] {
        api.get(path, &bootstrap).await.error(StatusCode::FORBIDDEN);
    }
    // A device may not register or accept devices.
    api.post(
        "/devicecontrol/newDeviceRequests",
        &device,
        json!({"id": "SN-2"}),
    )
    .await
    .error(StatusCode::FORBIDDEN);
    api.put(
        "/devicecontrol/newDeviceRequests/SN-1",
        &device,
        json!({"status": "ACCEPTED"}),
    )
    .await
    .error(StatusCode::FORBIDDEN);
    // Nothing was used up by the refused calls.
    assert_eq!(
        api.store
            .new_device_request("acme", "SN-1")
            .await
            .unwrap()
            .unwrap()
            .status,
        NewDeviceStatus::Accepted
    );
    let reply = api
        .post(CREDENTIALS, &bootstrap, json!({"id": "SN-1"}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    // Bad bodies are 400 even for the bootstrap user.
    api.post(CREDENTIALS, &bootstrap, json!({"serial": "SN-1"}))
        .await
        .error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_serial_registered_in_two_tenants_is_refused() {
    let api = Api::new().await;
    let bootstrap = api
        .accounts
        .add("management", "devicebootstrap", "device-bootstrap");
    let other_admin = api.accounts.add("globex", "admin", "admin");
    for admin in [&api.admin, &other_admin] {
        let r = api
            .post(
                "/devicecontrol/newDeviceRequests",
                admin,
                json!({"id": "SN-9"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        api.put(
            "/devicecontrol/newDeviceRequests/SN-9",
            admin,
            json!({"status": "ACCEPTED"}),
        )
        .await;
    }
    // Each tenant sees only its own request.
    let listed = api
        .get("/devicecontrol/newDeviceRequests", &other_admin)
        .await;
    assert_eq!(
        listed.body["newDeviceRequests"].as_array().unwrap().len(),
        1
    );

    let reply = api
        .post(CREDENTIALS, &bootstrap, json!({"id": "SN-9"}))
        .await;
    assert_eq!(reply.error(StatusCode::CONFLICT), "devicecontrol/Conflict");

    // Once one tenant withdraws its registration, the other one gets the device.
    let removed = api
        .call(
            axum::http::Method::DELETE,
            "/devicecontrol/newDeviceRequests/SN-9",
            &other_admin,
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    api.call(
        axum::http::Method::DELETE,
        "/devicecontrol/newDeviceRequests/SN-9",
        &other_admin,
        None,
    )
    .await
    .error(StatusCode::NOT_FOUND);
    let reply = api
        .post(CREDENTIALS, &bootstrap, json!({"id": "SN-9"}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["tenantId"], "acme");
}
