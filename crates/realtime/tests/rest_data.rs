//! Measurements, events and alarms over the REST API: required fields, each query
//! filter, paging, batches, alarm updates, device users limited to their own sources,
//! and the changes published.

#![allow(clippy::unwrap_used)]

mod rest_support;

use axum::http::{Method, StatusCode};
use portico_realtime::{Action, Kind};
use rest_support::Api;
use serde_json::{json, Value};

const MEASUREMENTS: &str = "/measurement/measurements";
const EVENTS: &str = "/event/events";
const ALARMS: &str = "/alarm/alarms";

fn measurement(source: &str, kind: &str, time: &str, value: f64) -> Value {
    json!({
        "source": {"id": source},
        "type": kind,
        "time": time,
        "c8y_Temperature": {"T": {"value": value, "unit": "C"}},
    })
}

fn values(items: &[Value]) -> Vec<f64> {
    items
        .iter()
        .map(|m| m["c8y_Temperature"]["T"]["value"].as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn measurements_are_stored_queried_and_published() {
    let api = Api::new().await;
    let a = api.device(&api.admin, "a").await;
    let b = api.device(&api.admin, "b").await;
    api.notify.take();
    let reply = api
        .send(
            Method::POST,
            MEASUREMENTS,
            &[
                ("authorization", &api.admin),
                (
                    "content-type",
                    "application/vnd.com.nsn.cumulocity.measurement+json;ver=0.9",
                ),
            ],
            Some(
                measurement(&a, "T", "2024-05-01T10:00:00.000+02:00", 1.0)
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(reply
        .content_type()
        .starts_with("application/vnd.com.nsn.cumulocity.measurement+json"));
    assert_eq!(reply.body["source"]["id"], a.as_str());
    assert_eq!(
        reply.body["time"], "2024-05-01T10:00:00.000+02:00",
        "time reads back as sent"
    );
    let changes = api.notify.take();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].kind, changes[0].action),
        (Kind::Measurement, Action::Create)
    );
    assert_eq!(changes[0].source, a);
    assert_eq!(changes[0].data, reply.body);

    // A batch as a measurement collection.
    let batch = json!({"measurements": [
        measurement(&a, "T", "2024-05-01T09:00:00Z", 2.0),
        measurement(&a, "P", "2024-05-01T09:30:00Z", 3.0),
        measurement(&b, "T", "2024-05-01T11:00:00Z", 4.0),
    ]});
    let reply = api
        .send(
            Method::POST,
            MEASUREMENTS,
            &[
                ("authorization", &api.admin),
                (
                    "content-type",
                    "application/vnd.com.nsn.cumulocity.measurementCollection+json",
                ),
            ],
            Some(batch.to_string().into_bytes()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(reply
        .content_type()
        .starts_with("application/vnd.com.nsn.cumulocity.measurementCollection+json"));
    assert_eq!(reply.body["measurements"].as_array().unwrap().len(), 3);
    assert_eq!(api.notify.take().len(), 3);

    // Oldest first (10:00+02:00 is 08:00Z); paging ends with an empty page.
    let all = api
        .all_pages(MEASUREMENTS, "measurements", &api.admin, 2)
        .await;
    assert_eq!(values(&all), vec![1.0, 2.0, 3.0, 4.0]);
    let of_a = api
        .all_pages(
            &format!("{MEASUREMENTS}?source={a}"),
            "measurements",
            &api.admin,
            5,
        )
        .await;
    assert_eq!(values(&of_a), vec![1.0, 2.0, 3.0]);
    let typed = api
        .get(&format!("{MEASUREMENTS}?source={a}&type=P"), &api.admin)
        .await;
    assert_eq!(
        values(typed.body["measurements"].as_array().unwrap()),
        vec![3.0]
    );
    let window = api
        .get(&format!("{MEASUREMENTS}?dateFrom=2024-05-01T09:00:00.000%2B00:00&dateTo=2024-05-01T11:00:00Z"), &api.admin)
        .await;
    assert_eq!(
        values(window.body["measurements"].as_array().unwrap()),
        vec![2.0, 3.0]
    );
    // An unescaped `+` arrives as a space and still reads as an offset.
    let window = api
        .get(
            &format!("{MEASUREMENTS}?dateFrom=2024-05-01T11:00:00.000+02:00"),
            &api.admin,
        )
        .await;
    assert_eq!(
        values(window.body["measurements"].as_array().unwrap()),
        vec![2.0, 3.0, 4.0]
    );
    api.get(&format!("{MEASUREMENTS}?dateFrom=yesterday"), &api.admin)
        .await
        .error(StatusCode::BAD_REQUEST);
    let nothing = api
        .get(&format!("{MEASUREMENTS}?source=abc"), &api.admin)
        .await;
    assert_eq!(nothing.body["measurements"], json!([]));

    let one = all[0]["id"].as_str().unwrap();
    let fetched = api.get(&format!("{MEASUREMENTS}/{one}"), &api.admin).await;
    assert_eq!(fetched.body, all[0]);
}

#[tokio::test]
async fn bodies_without_required_fields_are_refused() {
    let api = Api::new().await;
    let a = api.device(&api.admin, "a").await;
    api.notify.take();
    let cases = [
        (
            MEASUREMENTS,
            json!({"type": "T", "time": "2024-01-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            MEASUREMENTS,
            json!({"source": {"id": a}, "time": "2024-01-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            MEASUREMENTS,
            json!({"source": {"id": a}, "type": "T"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            MEASUREMENTS,
            json!({"source": {"id": a}, "type": "T", "time": "noon"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            MEASUREMENTS,
            json!({"source": {"id": "99999"}, "type": "T", "time": "2024-01-01T00:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            MEASUREMENTS,
            json!({"measurements": [{"source": {"id": a}, "type": "T"}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            EVENTS,
            json!({"source": {"id": a}, "type": "c8y_Login", "time": "2024-01-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            ALARMS,
            json!({"source": {"id": a}, "type": "c8y_Hot", "time": "2024-01-01T00:00:00Z", "text": "hot"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            ALARMS,
            json!({"source": {"id": a}, "type": "c8y_Hot", "time": "2024-01-01T00:00:00Z", "text": "hot", "severity": "HUGE"}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (path, body, status) in cases {
        let reply = api.post(path, &api.admin, body.clone()).await;
        let code = reply.error(status);
        assert!(code.ends_with("/validationError"), "{path} {body}: {code}");
    }
    assert!(
        api.notify.take().is_empty(),
        "nothing stored, nothing published"
    );
    assert_eq!(
        api.all_pages(MEASUREMENTS, "measurements", &api.admin, 5)
            .await
            .len(),
        0
    );
}

#[tokio::test]
async fn events_are_newest_first_and_filtered() {
    let api = Api::new().await;
    let a = api.device(&api.admin, "a").await;
    let b = api.device(&api.admin, "b").await;
    for (source, kind, hour) in [
        (&a, "c8y_Login", 1),
        (&a, "c8y_Logout", 2),
        (&b, "c8y_Login", 3),
    ] {
        let reply = api
            .post(
                EVENTS,
                &api.admin,
                json!({"source": {"id": source}, "type": kind, "text": format!("at {hour}"), "time": format!("2024-05-01T0{hour}:00:00Z")}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert!(reply
            .content_type()
            .starts_with("application/vnd.com.nsn.cumulocity.event+json"));
    }
    let texts = |items: &[Value]| {
        items
            .iter()
            .map(|e| e["text"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let all = api.all_pages(EVENTS, "events", &api.admin, 2).await;
    assert_eq!(texts(&all), vec!["at 3", "at 2", "at 1"]);
    let logins = api
        .get(&format!("{EVENTS}?type=c8y_Login&source={a}"), &api.admin)
        .await;
    assert!(logins
        .content_type()
        .starts_with("application/vnd.com.nsn.cumulocity.eventCollection+json"));
    assert_eq!(
        texts(logins.body["events"].as_array().unwrap()),
        vec!["at 1"]
    );
    let window = api
        .get(
            &format!("{EVENTS}?dateFrom=2024-05-01T02:00:00Z&dateTo=2024-05-01T03:00:00Z"),
            &api.admin,
        )
        .await;
    assert_eq!(
        texts(window.body["events"].as_array().unwrap()),
        vec!["at 2"]
    );
    let id = all[0]["id"].as_str().unwrap();
    let one = api.get(&format!("{EVENTS}/{id}"), &api.admin).await;
    assert_eq!(one.body["text"], "at 3");
    let changes = api.notify.take();
    assert_eq!(changes.iter().filter(|c| c.kind == Kind::Event).count(), 3);
}

#[tokio::test]
async fn alarms_are_filtered_and_updated() {
    let api = Api::new().await;
    let a = api.device(&api.admin, "a").await;
    api.notify.take();
    let mut ids = Vec::new();
    for (severity, hour) in [("MAJOR", 1), ("MINOR", 2), ("MAJOR", 3)] {
        // With and without a trailing slash, as clients send it.
        let path = if hour == 2 { "/alarm/alarms/" } else { ALARMS };
        let reply = api
            .post(
                path,
                &api.admin,
                json!({"source": {"id": a}, "type": "c8y_Hot", "text": "hot", "severity": severity, "time": format!("2024-05-01T0{hour}:00:00Z")}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["status"], "ACTIVE");
        ids.push(reply.body["id"].as_str().unwrap().to_string());
    }
    let reply = api
        .send(
            Method::PUT,
            &format!("{ALARMS}/{}", ids[0]),
            &[
                ("authorization", &api.admin),
                (
                    "content-type",
                    "application/vnd.com.nsn.cumulocity.alarm+json",
                ),
            ],
            Some(br#"{"status":"CLEARED","c8y_Note":{"by":"ops"},"source":{"id":"1"}}"#.to_vec()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "CLEARED");
    assert_eq!(reply.body["source"]["id"], a.as_str(), "the source stays");
    assert_eq!(reply.body["c8y_Note"]["by"], "ops");
    api.put(
        &format!("{ALARMS}/{}", ids[1]),
        &api.admin,
        json!({"status": "GONE"}),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    let changes = api.notify.take();
    assert_eq!(changes.len(), 4);
    assert_eq!(
        (changes[3].kind, changes[3].action),
        (Kind::Alarm, Action::Update)
    );
    assert_eq!(changes[3].source, a);

    let list = |query: String| {
        let api = &api;
        async move {
            api.get(&format!("{ALARMS}?{query}"), &api.admin).await.body["alarms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(format!("source={a}")).await,
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert_eq!(
        list("status=ACTIVE".into()).await,
        vec![ids[2].clone(), ids[1].clone()]
    );
    assert_eq!(
        list("severity=MAJOR&status=ACTIVE".into()).await,
        vec![ids[2].clone()]
    );
    assert_eq!(list("type=c8y_Cold".into()).await, Vec::<String>::new());
    let counted = api
        .get(
            &format!("{ALARMS}?status=ACTIVE&pageSize=1&withTotalPages=true"),
            &api.admin,
        )
        .await;
    assert_eq!(counted.body["statistics"]["totalPages"], 2);
    assert_eq!(
        list("pageSize=2&currentPage=2".into()).await,
        vec![ids[0].clone()]
    );
    assert_eq!(
        list("pageSize=2&currentPage=3".into()).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn device_users_report_and_read_for_their_own_sources_only() {
    let api = Api::new().await;
    let device = api.accounts.add("acme", "device_1", "device");
    let other_tenant = api.accounts.add("globex", "admin", "admin");
    let mine = api.device(&device, "mine").await;
    let admins = api.device(&api.admin, "admins").await;
    let time = "2024-05-01T00:00:00Z";
    let reply = api
        .post(MEASUREMENTS, &device, measurement(&mine, "T", time, 1.0))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = api
        .post(MEASUREMENTS, &device, measurement(&admins, "T", time, 2.0))
        .await;
    assert_eq!(reply.error(StatusCode::FORBIDDEN), "measurement/Forbidden");
    let theirs = api
        .post(
            MEASUREMENTS,
            &api.admin,
            measurement(&admins, "T", time, 3.0),
        )
        .await;
    let theirs_id = theirs.body["id"].as_str().unwrap().to_string();
    api.post(
        EVENTS,
        &device,
        json!({"source": {"id": admins}, "type": "x", "text": "x", "time": time}),
    )
    .await
    .error(StatusCode::FORBIDDEN);
    api.post(ALARMS, &device, json!({"source": {"id": admins}, "type": "x", "text": "x", "time": time, "severity": "MINOR"}))
        .await
        .error(StatusCode::FORBIDDEN);

    let visible = api
        .all_pages(MEASUREMENTS, "measurements", &device, 5)
        .await;
    assert_eq!(
        values(&visible),
        vec![1.0],
        "a device lists only its own sources' data"
    );
    let asked = api
        .get(&format!("{MEASUREMENTS}?source={admins}"), &device)
        .await;
    assert_eq!(asked.body["measurements"], json!([]));
    api.get(&format!("{MEASUREMENTS}/{theirs_id}"), &device)
        .await
        .error(StatusCode::FORBIDDEN);
    assert_eq!(
        api.all_pages(MEASUREMENTS, "measurements", &api.admin, 5)
            .await
            .len(),
        2
    );

    // Another tenant sees none of it, and cannot report for these sources.
    assert!(api
        .all_pages(MEASUREMENTS, "measurements", &other_tenant, 5)
        .await
        .is_empty());
    api.get(&format!("{MEASUREMENTS}/{theirs_id}"), &other_tenant)
        .await
        .error(StatusCode::NOT_FOUND);
    api.post(
        MEASUREMENTS,
        &other_tenant,
        measurement(&mine, "T", time, 9.0),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY);
}
