//! Managed objects and external ids over the REST API: media types in and out, paging to
//! the empty page, filters, merging updates, errors, tenants and device users kept apart,
//! and the changes published.

#![allow(clippy::unwrap_used)]

mod rest_support;

use axum::http::{Method, StatusCode};
use portico_realtime::{Action, Kind};
use rest_support::{Api, THROTTLED};
use serde_json::json;

const OBJECTS: &str = "/inventory/managedObjects";

#[tokio::test]
async fn vendor_media_types_are_read_and_answered_with_links_from_the_request() {
    let api = Api::new().await;
    let body = br#"{"name":"press","type":"c8y_Linux","c8y_IsDevice":{},"c8y_SupportedOperations":["c8y_Restart"]}"#;
    let reply = api
        .send(
            Method::POST,
            OBJECTS,
            &[
                ("authorization", &api.admin),
                (
                    "content-type",
                    "application/vnd.com.nsn.cumulocity.managedObject+json;charset=UTF-8;ver=0.9",
                ),
                (
                    "accept",
                    "application/vnd.com.nsn.cumulocity.managedObject+json",
                ),
                ("x-forwarded-proto", "https"),
            ],
            Some(body.to_vec()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        reply.content_type(),
        "application/vnd.com.nsn.cumulocity.managedObject+json;charset=UTF-8;ver=0.9"
    );
    let id = reply.body["id"].as_str().unwrap().to_string();
    assert!(id.parse::<i64>().is_ok(), "ids are numeric strings");
    assert_eq!(
        reply.body["self"],
        format!("https://southgate.eu1.portico.localhost/inventory/managedObjects/{id}")
    );
    assert_eq!(reply.body["owner"], "admin");
    assert_eq!(reply.body["c8y_IsDevice"], json!({}));
    assert_eq!(
        reply.body["c8y_SupportedOperations"],
        json!(["c8y_Restart"])
    );
    assert_eq!(reply.body["childDevices"]["references"], json!([]));
    assert!(reply.body["creationTime"]
        .as_str()
        .unwrap()
        .ends_with("+00:00"));

    let fetched = api.get(&format!("{OBJECTS}/{id}"), &api.admin).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(
        fetched.body["self"],
        format!("http://southgate.eu1.portico.localhost/inventory/managedObjects/{id}")
    );
    assert_eq!(fetched.body["name"], "press");

    let list = api.get(OBJECTS, &api.admin).await;
    assert_eq!(
        list.content_type(),
        "application/vnd.com.nsn.cumulocity.managedObjectCollection+json;charset=UTF-8;ver=0.9"
    );
    assert_eq!(
        list.body["statistics"],
        json!({"currentPage": 1, "pageSize": 5})
    );

    // Other content types are refused; a missing one is read as JSON.
    let reply = api
        .send(
            Method::POST,
            OBJECTS,
            &[
                ("authorization", &api.admin),
                ("content-type", "text/plain"),
            ],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(
        reply.error(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        "inventory/Unsupported Media Type"
    );
    let reply = api
        .send(
            Method::POST,
            OBJECTS,
            &[("authorization", &api.admin)],
            Some(br#"{"name":"bare"}"#.to_vec()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
}

#[tokio::test]
async fn lists_page_until_an_empty_page_and_filter() {
    let api = Api::new().await;
    let mut devices = Vec::new();
    for i in 0..7 {
        devices.push(api.device(&api.admin, &format!("d{i}")).await);
    }
    let asset = api
        .post(
            OBJECTS,
            &api.admin,
            json!({"name": "hall", "type": "building"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();

    let page = |p: u32| format!("{OBJECTS}?currentPage={p}");
    let first = api.get(&page(1), &api.admin).await;
    assert_eq!(first.body["managedObjects"].as_array().unwrap().len(), 5);
    assert!(first.body["next"]
        .as_str()
        .unwrap()
        .contains("currentPage=2"));
    let second = api.get(&page(2), &api.admin).await;
    assert_eq!(second.body["managedObjects"].as_array().unwrap().len(), 3);
    assert_eq!(second.body["statistics"]["currentPage"], 2);
    assert!(second.body["prev"]
        .as_str()
        .unwrap()
        .contains("currentPage=1"));
    let past = api.get(&page(3), &api.admin).await;
    assert_eq!(past.status, StatusCode::OK);
    assert_eq!(past.body["managedObjects"], json!([]));

    let ids = |items: Vec<serde_json::Value>| {
        items
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let all = ids(api
        .all_pages(OBJECTS, "managedObjects", &api.admin, 3)
        .await);
    let mut expected = devices.clone();
    expected.push(asset.clone());
    assert_eq!(all, expected, "every object once, in a stable order");
    let only_devices = ids(api
        .all_pages(
            &format!("{OBJECTS}?fragmentType=c8y_IsDevice"),
            "managedObjects",
            &api.admin,
            2,
        )
        .await);
    assert_eq!(only_devices, devices);
    let typed = api
        .get(&format!("{OBJECTS}?type=building"), &api.admin)
        .await;
    assert_eq!(
        ids(typed.body["managedObjects"].as_array().unwrap().clone()),
        vec![asset]
    );
    let owned = api
        .get(&format!("{OBJECTS}?owner=nobody"), &api.admin)
        .await;
    assert_eq!(owned.body["managedObjects"], json!([]));
    let counted = api
        .get(
            &format!("{OBJECTS}?fragmentType=c8y_IsDevice&pageSize=3&withTotalPages=true"),
            &api.admin,
        )
        .await;
    assert_eq!(counted.body["statistics"]["totalPages"], 3);
    assert_eq!(counted.body["statistics"]["totalElements"], 7);
    assert!(
        first.body["statistics"].get("totalPages").is_none(),
        "counted only when asked"
    );
    let big = api
        .get(&format!("{OBJECTS}?pageSize=100000"), &api.admin)
        .await;
    assert_eq!(big.body["statistics"]["pageSize"], 2000, "page size capped");

    for bad in ["currentPage=0", "pageSize=-1", "pageSize=many"] {
        let reply = api.get(&format!("{OBJECTS}?{bad}"), &api.admin).await;
        assert_eq!(
            reply.error(StatusCode::BAD_REQUEST),
            "inventory/validationError",
            "{bad}"
        );
    }
}

#[tokio::test]
async fn updates_merge_top_level_fragments_and_publish_changes() {
    let api = Api::new().await;
    let id = api.device(&api.admin, "press").await;
    let created = api.notify.take();
    assert_eq!(created.len(), 1);
    assert_eq!(
        (created[0].kind, created[0].action),
        (Kind::ManagedObject, Action::Create)
    );
    assert_eq!(created[0].source, id);
    assert_eq!(created[0].tenant, "acme");
    assert_eq!(created[0].data["name"], "press");

    let reply = api
        .put(
            &format!("{OBJECTS}/{id}"),
            &api.admin,
            json!({"c8y_Hardware": {"serialNumber": "X1"}, "c8y_SupportedOperations": null, "id": "999", "owner": "mallory"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["id"], id, "the id is the server's");
    assert_eq!(reply.body["owner"], "admin", "the owner is the server's");
    assert_eq!(reply.body["c8y_Hardware"]["serialNumber"], "X1");
    assert_eq!(
        reply.body["c8y_IsDevice"],
        json!({}),
        "other fragments stay"
    );
    assert!(
        reply.body.get("c8y_SupportedOperations").is_none(),
        "null removes a fragment"
    );
    let updated = api.notify.take();
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].action, Action::Update);
    assert_eq!(updated[0].data, reply.body);

    // Failed writes publish nothing.
    api.put(&format!("{OBJECTS}/123456789"), &api.admin, json!({"a": 1}))
        .await
        .error(StatusCode::NOT_FOUND);
    api.put(&format!("{OBJECTS}/{id}"), &api.admin, json!({"name": 7}))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(api.notify.take().is_empty());
}

#[tokio::test]
async fn errors_have_the_device_api_shape() {
    let api = Api::new().await;
    let reply = api.send(Method::GET, OBJECTS, &[], None).await;
    assert_eq!(
        reply.error(StatusCode::UNAUTHORIZED),
        "security/Unauthorized"
    );
    assert!(reply.headers.contains_key("www-authenticate"));
    let reply = api.get(OBJECTS, "Basic d3Jvbmc6d3Jvbmc=").await;
    reply.error(StatusCode::UNAUTHORIZED);
    let reply = api.get(OBJECTS, THROTTLED).await;
    assert_eq!(
        reply.error(StatusCode::TOO_MANY_REQUESTS),
        "security/Too Many Requests"
    );
    assert_eq!(reply.headers["retry-after"], "7");

    let bad_json = api
        .send(
            Method::POST,
            OBJECTS,
            &[
                ("authorization", &api.admin),
                ("content-type", "application/json"),
            ],
            Some(b"{\"name\": ".to_vec()),
        )
        .await;
    assert_eq!(
        bad_json.error(StatusCode::BAD_REQUEST),
        "inventory/validationError"
    );
    assert!(bad_json.body["message"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    let not_object = api
        .send(
            Method::POST,
            OBJECTS,
            &[("authorization", &api.admin)],
            Some(b"[1]".to_vec()),
        )
        .await;
    not_object.error(StatusCode::BAD_REQUEST);
    let huge = vec![b' '; rest_body_limit() + 1];
    let reply = api
        .send(
            Method::POST,
            OBJECTS,
            &[("authorization", &api.admin)],
            Some(huge),
        )
        .await;
    reply.error(StatusCode::PAYLOAD_TOO_LARGE);
    api.get(&format!("{OBJECTS}/not-a-number"), &api.admin)
        .await
        .error(StatusCode::NOT_FOUND);
    let reply = api.call(Method::DELETE, OBJECTS, &api.admin, None).await;
    assert_eq!(
        reply.error(StatusCode::METHOD_NOT_ALLOWED),
        "inventory/Method Not Allowed"
    );
    assert!(reply.headers.contains_key("allow"));
    let unknown = api.get("/inventory/nothing", &api.admin).await;
    assert_eq!(unknown.error(StatusCode::NOT_FOUND), "inventory/Not Found");
}

fn rest_body_limit() -> usize {
    portico_realtime::rest::MAX_BODY
}

#[tokio::test]
async fn external_ids_name_objects_once_per_tenant() {
    let api = Api::new().await;
    let id = api.device(&api.admin, "press").await;
    let reply = api
        .send(
            Method::POST,
            &format!("/identity/globalIds/{id}/externalIds"),
            &[
                ("authorization", &api.admin),
                (
                    "content-type",
                    "application/vnd.com.nsn.cumulocity.externalId+json",
                ),
            ],
            Some(br#"{"externalId":"SN 1","type":"c8y_Serial"}"#.to_vec()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(reply
        .content_type()
        .starts_with("application/vnd.com.nsn.cumulocity.externalId+json"));
    assert_eq!(reply.body["managedObject"]["id"], id);
    assert_eq!(
        reply.body["self"],
        "http://southgate.eu1.portico.localhost/identity/externalIds/c8y_Serial/SN%201"
    );
    let again = api
        .post(
            &format!("/identity/globalIds/{id}/externalIds"),
            &api.admin,
            json!({"externalId": "SN 1", "type": "c8y_Serial"}),
        )
        .await;
    assert_eq!(again.error(StatusCode::CONFLICT), "identity/Conflict");
    api.post(
        &format!("/identity/globalIds/{id}/externalIds"),
        &api.admin,
        json!({"externalId": "SN 2"}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    api.post(
        "/identity/globalIds/424242/externalIds",
        &api.admin,
        json!({"externalId": "x", "type": "t"}),
    )
    .await
    .error(StatusCode::NOT_FOUND);

    let found = api
        .get("/identity/externalIds/c8y_Serial/SN%201", &api.admin)
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(found.body["managedObject"]["id"], id);
    let listed = api
        .get(&format!("/identity/globalIds/{id}/externalIds"), &api.admin)
        .await;
    assert_eq!(listed.body["externalIds"][0]["externalId"], "SN 1");
    api.get("/identity/externalIds/c8y_Serial/SN-404", &api.admin)
        .await
        .error(StatusCode::NOT_FOUND);

    // Another tenant sees none of it and may use the same serial.
    let other = api.accounts.add("globex", "admin", "admin");
    api.get("/identity/externalIds/c8y_Serial/SN%201", &other)
        .await
        .error(StatusCode::NOT_FOUND);
    let theirs = api.device(&other, "their press").await;
    let reply = api
        .post(
            &format!("/identity/globalIds/{theirs}/externalIds"),
            &other,
            json!({"externalId": "SN 1", "type": "c8y_Serial"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    api.post(
        &format!("/identity/globalIds/{id}/externalIds"),
        &other,
        json!({"externalId": "SN 3", "type": "c8y_Serial"}),
    )
    .await
    .error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tenants_and_device_users_see_only_their_own_objects() {
    let api = Api::new().await;
    let other_admin = api.accounts.add("globex", "admin", "admin");
    let device = api.accounts.add("acme", "device_1", "device");
    let other_device = api.accounts.add("acme", "device_2", "device");
    let mine = api.device(&device, "mine").await;
    let theirs = api.device(&other_device, "theirs").await;
    let admins = api.device(&api.admin, "admins").await;
    let foreign = api.device(&other_admin, "foreign").await;

    // Tenants: the other tenant's ids are 404, its lists do not show them.
    for id in [&mine, &theirs, &admins] {
        api.get(&format!("{OBJECTS}/{id}"), &other_admin)
            .await
            .error(StatusCode::NOT_FOUND);
        api.put(&format!("{OBJECTS}/{id}"), &other_admin, json!({"x": 1}))
            .await
            .error(StatusCode::NOT_FOUND);
    }
    api.get(&format!("{OBJECTS}/{foreign}"), &api.admin)
        .await
        .error(StatusCode::NOT_FOUND);
    let listed = api
        .all_pages(OBJECTS, "managedObjects", &other_admin, 5)
        .await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], foreign.as_str());

    // Device users: their own objects only.
    let listed = api.all_pages(OBJECTS, "managedObjects", &device, 5).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], mine.as_str());
    let asked = api.get(&format!("{OBJECTS}?owner=device_2"), &device).await;
    assert_eq!(asked.body["managedObjects"], json!([]));
    for id in [&theirs, &admins] {
        let reply = api.get(&format!("{OBJECTS}/{id}"), &device).await;
        assert_eq!(reply.error(StatusCode::FORBIDDEN), "inventory/Forbidden");
        api.put(&format!("{OBJECTS}/{id}"), &device, json!({"x": 1}))
            .await
            .error(StatusCode::FORBIDDEN);
        api.post(
            &format!("/identity/globalIds/{id}/externalIds"),
            &device,
            json!({"externalId": "e", "type": "t"}),
        )
        .await
        .error(StatusCode::FORBIDDEN);
    }
    let own = api
        .put(
            &format!("{OBJECTS}/{mine}"),
            &device,
            json!({"c8y_Firmware": {"version": "2"}}),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
    // People of the tenant see every object of it.
    assert_eq!(
        api.all_pages(OBJECTS, "managedObjects", &api.admin, 5)
            .await
            .len(),
        3
    );
}
