//! Registration and the connections API against in-test HTTPS servers on loopback.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming as Body;
use portico_endpoint::api::{how_to_reach, ApiError, ConnectionsApi};
use portico_endpoint::{BackendUrl, Dialer, TrustRoots};
use support::{agent_config, pki, serve_https, spawn_token_endpoint, TOKEN};
use tokio_tungstenite::tungstenite::http;

const LIMIT: Duration = Duration::from_secs(30);

const CONNECTION: &str = r#"{"tenant":"abc","id":"c-1","user_name":"ann","device":"press-7",
    "application":"ssh-press","started_ms":0,"ends_ms":3600000,"ended_ms":null,"end_reason":null,
    "bytes_up":0,"bytes_down":0,"listeners":[{"side":"service","local_port":2222,
    "target_host":"127.0.0.1","target_port":22}]}"#;

/// The connections API as the backend serves it to a Service Endpoint's bearer token.
async fn fake_connections_api(req: http::Request<Body>) -> (u16, String) {
    let bearer = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if bearer.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return (
            401,
            r#"{"error":"Unauthorized","message":"no token"}"#.into(),
        );
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match (method.as_str(), path.as_str()) {
        ("POST", "/api/remoteservices/v1/connections")
            if json == serde_json::json!({"device": "press-7", "application": "ssh-press"}) =>
        {
            (201, CONNECTION.into())
        }
        ("POST", "/api/remoteservices/v1/connections") => (
            404,
            r#"{"error":"Not Found","message":"application \"nope\" is not assigned to device \"press-7\""}"#.into(),
        ),
        ("GET", "/api/remoteservices/v1/connections") => (200, format!("[{CONNECTION}]")),
        ("DELETE", "/api/remoteservices/v1/connections/c-1") => (
            200,
            CONNECTION.replace(r#""end_reason":null"#, r#""end_reason":"ended""#),
        ),
        _ => (404, r#"{"error":"Not Found","message":"no such connection"}"#.into()),
    }
}

#[tokio::test]
async fn the_connections_api_is_called_with_the_endpoints_token() {
    tokio::time::timeout(LIMIT, async {
        let pki = pki();
        let (token_port, grants) = spawn_token_endpoint(&pki).await;
        let api_port = serve_https(&pki, fake_connections_api).await;
        let dir = tempfile::tempdir().unwrap();
        // The API host is the `api` key here; the relay port is not used.
        let config = agent_config(dir.path(), &pki, "service", api_port, token_port, "");
        let api = ConnectionsApi::from_config(&config).unwrap();

        let opened = api.open("press-7", "ssh-press").await.unwrap();
        assert_eq!(opened.id, "c-1");
        assert_eq!(how_to_reach(std::net::Ipv4Addr::LOCALHOST.into(), &opened.template, &opened.listeners[0]), "ssh -p 2222 localhost");
        let err = api.open("press-7", "nope").await.unwrap_err();
        assert!(
            matches!(&err, ApiError::Refused { status: 404, message } if message.contains("not assigned")),
            "{err}"
        );
        assert_eq!(api.list().await.unwrap().len(), 1);
        let ended = api.end("c-1").await.unwrap();
        assert_eq!(ended.end_reason.as_deref(), Some("ended"));
        assert!(matches!(api.end("../x").await, Err(ApiError::BadId)));
        assert!(grants.load(std::sync::atomic::Ordering::SeqCst) >= 4);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn registration_writes_a_private_credentials_file_and_wrong_codes_are_explained() {
    tokio::time::timeout(LIMIT, async {
        let pki = pki();
        let api = serve_https(&pki, |req: http::Request<Body>| async move {
            let path_ok = req.method() == http::Method::POST
                && req.uri().path() == "/api/endpointregistration/v1/register";
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if path_ok && json["code"] == "K7QP-2MZX" {
                (
                    200,
                    r#"{"tenant":"abc","endpoint":"press-7-ep","kind":"device","client_id":"ep-9","client_secret":"s3cr3t-9"}"#
                        .to_string(),
                )
            } else {
                (
                    400,
                    r#"{"error":"Bad Request","message":"the registration code is not valid"}"#
                        .to_string(),
                )
            }
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
        let roots = TrustRoots::only(&dir.path().join("ca.pem")).unwrap();
        let api_url = BackendUrl::parse(&format!("https://localhost:{api}")).unwrap();
        let dialer = Dialer::new(api_url, None, roots);
        let path: PathBuf = dir.path().join("creds.toml");

        let wrong = portico_endpoint::register::register(&dialer, "WRONG", &path)
            .await
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("the registration code is not valid"), "{wrong}");
        assert!(!path.exists());

        let done = portico_endpoint::register::register(&dialer, " K7QP-2MZX ", &path)
            .await
            .unwrap();
        assert_eq!(
            (done.tenant.as_str(), done.endpoint.as_str(), done.kind.as_str()),
            ("abc", "press-7-ep", "device")
        );
        assert!(!format!("{done:?}").contains("s3cr3t"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let creds = portico_endpoint::Credentials::load(&path).unwrap();
        assert_eq!(creds.client_secret, "s3cr3t-9");
        assert_eq!(creds.endpoint.as_deref(), Some("press-7-ep"));
    })
    .await
    .unwrap();
}
