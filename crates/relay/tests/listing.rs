//! The Remote Services API's listings: online state of endpoints and devices (from the
//! live relay), the filters of `/connections` and `/audit`, and their CSV exports.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use portico_relay::api::{
    remote_services_api_live, ApiOptions, Caller, CredentialIssuer, Credentials, IssueFuture,
    LiveEvents, Online,
};
use portico_store::{AuditRecord, ConnectionSessionRecord, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

const NOW: i64 = 1_790_000_000_000;

struct Issuer;

impl CredentialIssuer for Issuer {
    fn issue<'a>(&'a self, _tenant: &'a str, endpoint: &'a str) -> IssueFuture<'a, Credentials> {
        Box::pin(async move {
            Ok(Credentials {
                client_id: format!("client-{endpoint}"),
                client_secret: "secret".into(),
            })
        })
    }

    fn revoke<'a>(&'a self, _tenant: &'a str, _client_id: &'a str) -> IssueFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// A live relay whose online endpoints the test sets, per tenant.
#[derive(Default)]
struct FakeLive {
    online: Mutex<Vec<(String, Online)>>,
}

impl LiveEvents for FakeLive {
    fn sessions_changed(&self, _tenant: &str) {}
    fn endpoint_revoked(&self, _tenant: &str, _endpoint: &str) {}
    fn online(&self, tenant: &str) -> Vec<Online> {
        let online = self.online.lock().unwrap();
        online
            .iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, o)| o.clone())
            .collect()
    }
}

struct Fixture {
    router: Router,
    store: Store,
    live: Arc<FakeLive>,
    _dir: tempfile::TempDir,
}

fn who(tenant: &str, subject: &str, role: &str) -> Option<Caller> {
    Some(Caller {
        tenant: tenant.into(),
        subject: subject.into(),
        role: role.into(),
    })
}

fn admin() -> Option<Caller> {
    who("abc", "ada", "admin")
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/p.db", dir.path().display()))
        .await
        .unwrap();
    let live = Arc::new(FakeLive::default());
    let router = remote_services_api_live(
        store.clone(),
        Arc::new(Issuer),
        ApiOptions {
            clock: Arc::new(|| NOW),
            ..ApiOptions::default()
        },
        Some(live.clone()),
    );
    Fixture {
        router,
        store,
        live,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    content_type: String,
    disposition: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The CSV rows, header first, parsed back by an RFC 4180 reader.
    fn rows(&self) -> Vec<Vec<String>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(self.body.as_slice());
        reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect()
    }
}

impl Fixture {
    async fn call(
        &self,
        caller: Option<Caller>,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let mut request = request
            .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
            .unwrap();
        if let Some(caller) = caller {
            request.extensions_mut().insert(caller);
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (content_type, disposition) = (header("content-type"), header("content-disposition"));
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            content_type,
            disposition,
            body: body.to_vec(),
        }
    }

    async fn get(&self, caller: Option<Caller>, uri: &str) -> Answer {
        self.call(caller, Method::GET, uri, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> Value {
        let answer = self.call(admin(), Method::POST, uri, Some(body)).await;
        assert!(
            answer.status.is_success(),
            "{uri}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()
    }

    /// Tenant abc: site hall with devices press-7 (registered endpoint ep-press) and mill-2
    /// (pending endpoint ep-mill); a service endpoint ep-svc, pending.
    async fn tenant_abc(&self) {
        self.post("/sites", json!({"name": "hall"})).await;
        for device in ["press-7", "mill-2"] {
            self.post("/devices", json!({"name": device, "site": "hall"}))
                .await;
        }
        let created = self
            .post(
                "/endpoints",
                json!({"name": "ep-press", "kind": "device", "device": "press-7"}),
            )
            .await;
        let code = created["registration_code"].as_str().unwrap();
        let registered = self
            .call(None, Method::POST, "/register", Some(json!({"code": code})))
            .await;
        assert_eq!(registered.status, StatusCode::OK);
        self.post(
            "/endpoints",
            json!({"name": "ep-mill", "kind": "device", "device": "mill-2"}),
        )
        .await;
        self.post(
            "/endpoints",
            json!({"name": "ep-svc", "kind": "service", "site": "hall"}),
        )
        .await;
    }

    fn set_online(&self, tenant: &str, endpoints: &[(&str, i64)]) {
        *self.live.online.lock().unwrap() = endpoints
            .iter()
            .map(|(name, since_ms)| {
                (
                    tenant.to_string(),
                    Online {
                        endpoint: name.to_string(),
                        since_ms: *since_ms,
                    },
                )
            })
            .collect();
    }

    /// A session as the store keeps it, by tenant and id; `ended`: its end and reason.
    async fn session(
        &self,
        (tenant, id): (&str, &str),
        user: &str,
        device: &str,
        application: &str,
        started_ms: i64,
        ended: Option<(i64, &str)>,
    ) {
        self.store
            .add_connection_session(&ConnectionSessionRecord {
                tenant: tenant.into(),
                id: id.into(),
                user_name: user.into(),
                device: device.into(),
                application: application.into(),
                started_ms,
                ends_ms: NOW + 3_600_000,
                ended_ms: ended.map(|(at, _)| at),
                end_reason: ended.map(|(_, reason)| reason.to_string()),
                bytes_up: 10,
                bytes_down: 20,
            })
            .await
            .unwrap();
    }
}

fn ids(answer: &Answer) -> Vec<String> {
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn endpoints_and_devices_show_whether_they_are_online() {
    let f = fixture().await;
    f.tenant_abc().await;

    let endpoints = f.get(admin(), "/endpoints").await.json();
    assert!(endpoints
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["online"] == false && e["online_since_ms"].is_null()));
    let devices = f.get(admin(), "/devices").await.json();
    assert!(devices
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["online"] == false));

    // ep-press connected; ep-mill too, but it never registered (its device stays offline);
    // another tenant's endpoint of the same name is not abc's.
    f.set_online("abc", &[("ep-press", NOW - 5000), ("ep-mill", NOW - 1000)]);
    let press = f.get(admin(), "/endpoints/ep-press").await.json();
    assert_eq!(press["online"], true);
    assert_eq!(press["online_since_ms"], NOW - 5000);
    let svc = f.get(admin(), "/endpoints/ep-svc").await.json();
    assert_eq!(svc["online"], false);
    assert!(svc["online_since_ms"].is_null());

    let devices = f.get(admin(), "/devices").await.json();
    let online = |name: &str| {
        devices
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap()["online"]
            .clone()
    };
    assert_eq!(online("press-7"), true);
    assert_eq!(online("mill-2"), false);
    let press = f.get(admin(), "/devices/press-7").await.json();
    assert_eq!(press["online"], true);
    assert_eq!(press["site"], "hall");

    f.set_online("xyz", &[("ep-press", NOW)]);
    let press = f.get(admin(), "/devices/press-7").await.json();
    assert_eq!(press["online"], false);
    let press = f.get(admin(), "/endpoints/ep-press").await.json();
    assert_eq!(press["online"], false);
}

#[tokio::test]
async fn connections_are_filtered_and_limited() {
    let f = fixture().await;
    let hour = 3_600_000;
    f.session(
        ("abc", "s1"),
        "ursula",
        "press-7",
        "ssh-press",
        NOW - 5 * hour,
        Some((NOW - 4 * hour, "ended")),
    )
    .await;
    f.session(
        ("abc", "s2"),
        "ursula",
        "mill-2",
        "vnc-mill",
        NOW - 3 * hour,
        None,
    )
    .await;
    f.session(
        ("abc", "s3"),
        "olga",
        "press-7",
        "vnc-mill",
        NOW - 2 * hour,
        None,
    )
    .await;
    f.session(
        ("abc", "s4"),
        "olga",
        "press-7",
        "ssh-press",
        NOW - hour,
        Some((NOW - 1000, "timeout")),
    )
    .await;
    f.session(
        ("xyz", "x1"),
        "ursula",
        "press-7",
        "ssh-press",
        NOW - hour,
        None,
    )
    .await;

    let list = |uri: &'static str| f.get(admin(), uri);
    assert_eq!(ids(&list("/connections").await), ["s4", "s3", "s2", "s1"]);
    assert_eq!(ids(&list("/connections?open=true").await), ["s3", "s2"]);
    assert_eq!(
        ids(&list("/connections?device=press-7").await),
        ["s4", "s3", "s1"]
    );
    assert_eq!(
        ids(&list("/connections?application=vnc-mill").await),
        ["s3", "s2"]
    );
    assert_eq!(ids(&list("/connections?user=olga").await), ["s4", "s3"]);
    assert_eq!(
        ids(&list("/connections?device=press-7&application=ssh-press&user=ursula").await),
        ["s1"]
    );
    let since = format!("/connections?since_ms={}", NOW - 3 * 3_600_000);
    assert_eq!(ids(&f.get(admin(), &since).await), ["s4", "s3", "s2"]);
    let window = format!(
        "/connections?since_ms={}&until_ms={}",
        NOW - 3 * 3_600_000,
        NOW - 3_600_000
    );
    assert_eq!(ids(&f.get(admin(), &window).await), ["s3", "s2"]);
    assert_eq!(ids(&list("/connections?limit=1").await), ["s4"]);

    for bad in [
        "/connections?limit=0",
        "/connections?limit=5001",
        "/connections?since_ms=yesterday",
        "/connections?format=xml",
        "/connections?colour=red",
    ] {
        let answer = f.get(admin(), bad).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(answer.json()["status"], 400, "{bad}");
    }
}

#[tokio::test]
async fn users_list_and_export_only_their_own_connections() {
    let f = fixture().await;
    f.session(
        ("abc", "s1"),
        "ursula",
        "press-7",
        "ssh-press",
        NOW - 3000,
        None,
    )
    .await;
    f.session(
        ("abc", "s2"),
        "olga",
        "press-7",
        "ssh-press",
        NOW - 2000,
        None,
    )
    .await;
    let ursula = || who("abc", "ursula", "user");
    assert_eq!(ids(&f.get(ursula(), "/connections").await), ["s1"]);
    assert!(ids(&f.get(ursula(), "/connections?user=olga").await).is_empty());
    assert_eq!(
        ids(&f.get(ursula(), "/connections?user=ursula").await),
        ["s1"]
    );
    let owner = who("abc", "olga", "site-owner");
    assert_eq!(ids(&f.get(owner, "/connections").await), ["s2"]);

    let csv = f.get(ursula(), "/connections?format=csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    let rows = csv.rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][0], "s1");
    assert_eq!(rows[1][1], "ursula");

    let operator = who("abc", "oscar", "operator");
    assert_eq!(
        f.get(operator, "/connections?format=csv").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        f.get(None, "/connections?format=csv").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn connections_export_as_csv() {
    let f = fixture().await;
    // 2026-09-21T14:13:20Z and 30 s later.
    f.session(
        ("abc", "s1"),
        "ursula",
        "press-7",
        "ssh, \"the\" press",
        NOW,
        Some((NOW + 30_000, "ended")),
    )
    .await;
    f.session(
        ("abc", "s2"),
        "ursula",
        "press-7",
        "plain",
        NOW + 60_000,
        None,
    )
    .await;
    let csv = f.get(admin(), "/connections?format=csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.content_type, "text/csv; charset=utf-8");
    assert_eq!(csv.disposition, "attachment; filename=\"connections.csv\"");
    let text = String::from_utf8(csv.body.clone()).unwrap();
    assert!(
        text.starts_with(
            "id,user,device,application,started,ended,end_reason,bytes_up,bytes_down\n"
        ),
        "{text}"
    );
    // RFC 4180: the field with a comma and quotes is quoted, its quotes doubled.
    assert!(text.contains(",\"ssh, \"\"the\"\" press\","), "{text}");
    let rows = csv.rows();
    assert_eq!(
        rows[1],
        [
            "s2",
            "ursula",
            "press-7",
            "plain",
            "2026-09-21T14:14:20.000Z",
            "",
            "",
            "10",
            "20"
        ]
    );
    assert_eq!(
        rows[2],
        [
            "s1",
            "ursula",
            "press-7",
            "ssh, \"the\" press",
            "2026-09-21T14:13:20.000Z",
            "2026-09-21T14:13:50.000Z",
            "ended",
            "10",
            "20"
        ]
    );
}

#[tokio::test]
async fn audit_is_filtered_and_exported_as_csv() {
    let f = fixture().await;
    for (id, at_ms, actor, action, detail) in [
        ("a1", NOW - 3000, "ada", "site.add", "parent plant"),
        (
            "a2",
            NOW - 2000,
            "ursula",
            "connection.open",
            "device press-7, \"urgent\"",
        ),
        ("a3", NOW - 1000, "ursula", "connection.end", ""),
    ] {
        f.store
            .add_audit(&AuditRecord {
                tenant: "abc".into(),
                id: id.into(),
                at_ms,
                actor: actor.into(),
                action: action.into(),
                object: format!("object/{id}"),
                detail: detail.into(),
            })
            .await
            .unwrap();
    }
    f.store
        .add_audit(&AuditRecord {
            tenant: "xyz".into(),
            id: "x1".into(),
            at_ms: NOW,
            actor: "ursula".into(),
            action: "connection.open".into(),
            object: "object/x1".into(),
            detail: String::new(),
        })
        .await
        .unwrap();

    assert_eq!(ids(&f.get(admin(), "/audit").await), ["a3", "a2", "a1"]);
    assert_eq!(
        ids(&f.get(admin(), "/audit?actor=ursula").await),
        ["a3", "a2"]
    );
    assert_eq!(
        ids(&f
            .get(admin(), "/audit?actor=ursula&action=connection.open")
            .await),
        ["a2"]
    );
    assert_eq!(ids(&f.get(admin(), "/audit?action=site.add").await), ["a1"]);

    let csv = f.get(admin(), "/audit?format=csv&actor=ursula").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.content_type, "text/csv; charset=utf-8");
    assert_eq!(csv.disposition, "attachment; filename=\"audit.csv\"");
    let text = String::from_utf8(csv.body.clone()).unwrap();
    assert!(
        text.starts_with("id,at,actor,action,object,detail\n"),
        "{text}"
    );
    assert!(
        text.contains(",\"device press-7, \"\"urgent\"\"\"\n"),
        "{text}"
    );
    let rows = csv.rows();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[2],
        [
            "a2",
            "2026-09-21T14:13:18.000Z",
            "ursula",
            "connection.open",
            "object/a2",
            "device press-7, \"urgent\""
        ]
    );

    let user = who("abc", "ursula", "user");
    assert_eq!(
        f.get(user, "/audit?format=csv").await.status,
        StatusCode::FORBIDDEN
    );
}
