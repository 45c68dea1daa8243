//! Credential rotation against a fake backend (token endpoint and API on one HTTPS port):
//! the order of the calls, the file written only once the new client exists, and failures
//! between the steps.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http_body_util::BodyExt;
use portico_endpoint::rotate::{Maintained, RotateError, Rotator};
use portico_endpoint::{Credentials, Dialer, EndpointConfig};

/// Which step the fake backend fails (503), if any.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fail {
    Nothing,
    Rotate,
    Confirm,
    RotateAnswer,
}

/// The backend's view: the endpoint's current and pending clients, and what was asked.
struct Backend {
    current: (String, String),
    pending: Option<(String, String)>,
    issued: u32,
    fail: Fail,
    log: Vec<String>,
}

type Shared = Arc<Mutex<Backend>>;

fn bearer_client(req: &http::Request<hyper::body::Incoming>) -> String {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer tok-"))
        .unwrap_or("")
        .to_string()
}

async fn answer(backend: Shared, req: http::Request<hyper::body::Incoming>) -> (u16, String) {
    let path = req.uri().path().to_string();
    let client = bearer_client(&req);
    let form = req.into_body().collect().await.unwrap().to_bytes();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&form).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut b = backend.lock().unwrap();
    let known =
        |b: &Backend, id: &str| b.current.0 == id || b.pending.as_ref().is_some_and(|p| p.0 == id);
    match path.as_str() {
        "/uaa/oauth/token" => {
            let (id, secret) = (field("client_id"), field("client_secret"));
            b.log.push(format!("token {id}"));
            let ok = (b.current == (id.clone(), secret.clone()))
                || b.pending == Some((id.clone(), secret));
            if ok {
                (
                    200,
                    format!(
                        r#"{{"access_token":"tok-{id}","token_type":"bearer","expires_in":60}}"#
                    ),
                )
            } else {
                (401, r#"{"error":"invalid_client"}"#.into())
            }
        }
        "/api/remoteservices/v1/credentials/rotate" => {
            b.log.push(format!("rotate as {client}"));
            if b.current.0 != client {
                return (403, r#"{"message":"not an endpoint"}"#.into());
            }
            b.issued += 1;
            let fresh = (
                format!("ep-new-{}", b.issued),
                format!("secret-{}", b.issued),
            );
            b.pending = Some(fresh.clone());
            match b.fail {
                Fail::Rotate => (503, r#"{"message":"try again"}"#.into()),
                Fail::RotateAnswer => (200, format!(r#"{{"client_id":"{}"}}"#, fresh.0)),
                _ => (
                    200,
                    format!(
                        r#"{{"client_id":"{}","client_secret":"{}"}}"#,
                        fresh.0, fresh.1
                    ),
                ),
            }
        }
        "/api/remoteservices/v1/credentials/confirm" => {
            b.log.push(format!("confirm as {client}"));
            if !known(&b, &client) {
                return (403, r#"{"message":"not an endpoint"}"#.into());
            }
            if b.fail == Fail::Confirm {
                return (503, r#"{"message":"try again"}"#.into());
            }
            if let Some(p) = b.pending.take().filter(|p| p.0 == client) {
                b.current = p;
            }
            (200, format!(r#"{{"client_id":"{client}"}}"#))
        }
        _ => (404, "{}".into()),
    }
}

struct Setup {
    dir: tempfile::TempDir,
    config: EndpointConfig,
    dialer: Dialer,
    backend: Shared,
}

impl Setup {
    async fn new(extra: &str) -> Setup {
        let pki = support::pki();
        let backend: Shared = Arc::new(Mutex::new(Backend {
            current: ("ep-1".into(), "s3cr3t".into()),
            pending: None,
            issued: 0,
            fail: Fail::Nothing,
            log: Vec::new(),
        }));
        let b = backend.clone();
        let port = support::serve_https(&pki, move |req| answer(b.clone(), req)).await;
        let dir = tempfile::tempdir().unwrap();
        let config = support::agent_config(dir.path(), &pki, "device", port, port, extra);
        let dialer = Dialer::from_config(&config).unwrap();
        Setup {
            dir,
            config,
            dialer,
            backend,
        }
    }

    fn rotator(&self) -> Rotator {
        Rotator::with_dialer(&self.config, self.dialer.clone())
    }

    fn file(&self) -> Credentials {
        Credentials::load(&self.config.credentials_file).unwrap()
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.config.credentials_file).unwrap()
    }

    /// Makes the credentials file `days` old.
    fn age_file(&self, days: u64) {
        let file = std::fs::File::options()
            .write(true)
            .open(&self.config.credentials_file)
            .unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
            .unwrap();
    }

    fn log(&self) -> Vec<String> {
        std::mem::take(&mut self.backend.lock().unwrap().log)
    }

    fn fail(&self, fail: Fail) {
        self.backend.lock().unwrap().fail = fail;
    }
}

#[tokio::test]
async fn old_credentials_are_rotated_saved_then_confirmed() {
    let s = Setup::new("rotate_after_days = 10\n").await;
    assert_eq!(s.rotator().maintain().await.unwrap(), Maintained::Fresh);
    assert!(s.log().is_empty(), "fresh credentials: nothing asked");

    s.age_file(11);
    let done = s.rotator().maintain().await.unwrap();
    assert_eq!(
        done,
        Maintained::Rotated {
            client_id: "ep-new-1".into()
        }
    );
    assert_eq!(
        s.log(),
        [
            "token ep-1",
            "rotate as ep-1",
            "token ep-new-1",
            "confirm as ep-new-1"
        ]
    );
    let saved = s.file();
    assert_eq!(
        (saved.client_id.as_str(), saved.client_secret.as_str()),
        ("ep-new-1", "secret-1")
    );
    assert!(!saved.unconfirmed);
    assert_eq!(
        (
            saved.tenant.as_deref(),
            saved.endpoint.as_deref(),
            saved.kind.as_deref()
        ),
        (Some("abc"), Some("device-ep"), Some("device")),
        "the registration's details are kept"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&s.config.credentials_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(s.backend.lock().unwrap().current.0, "ep-new-1");
    let files = std::fs::read_dir(s.dir.path()).unwrap().count();
    assert_eq!(
        files, 3,
        "config, CA and credentials; no temporary file left"
    );
    // The saved file is new: nothing more to do.
    assert_eq!(s.rotator().maintain().await.unwrap(), Maintained::Fresh);
}

#[tokio::test]
async fn a_failure_before_the_save_leaves_the_old_file_and_the_next_attempt_starts_over() {
    let s = Setup::new("rotate_after_days = 1\n").await;
    s.age_file(2);
    let before = s.text();

    s.fail(Fail::Rotate);
    let err = s.rotator().maintain().await.unwrap_err();
    assert!(
        matches!(err, RotateError::Refused { status: 503, .. }),
        "{err}"
    );
    assert_eq!(s.text(), before, "the old file is untouched");

    s.fail(Fail::RotateAnswer);
    let err = s.rotator().maintain().await.unwrap_err();
    assert!(matches!(err, RotateError::BadAnswer(_)), "{err}");
    assert_eq!(s.text(), before, "a malformed answer is not saved");
    assert!(!err.to_string().contains("secret-"), "{err}");
    s.log();

    // The next attempt starts over, from the old credentials.
    s.fail(Fail::Nothing);
    let done = s.rotator().maintain().await.unwrap();
    assert_eq!(
        done,
        Maintained::Rotated {
            client_id: "ep-new-3".into()
        }
    );
    assert_eq!(s.log()[..2], ["token ep-1", "rotate as ep-1"]);
}

#[tokio::test]
async fn a_failure_after_the_save_is_finished_by_confirming_at_the_next_attempt() {
    let s = Setup::new("rotate_after_days = 1\n").await;
    s.age_file(2);
    s.fail(Fail::Confirm);
    let err = s.rotator().maintain().await.unwrap_err();
    assert!(
        matches!(err, RotateError::Refused { status: 503, .. }),
        "{err}"
    );
    let saved = s.file();
    assert_eq!(saved.client_id, "ep-new-1");
    assert!(saved.unconfirmed, "saved, not yet confirmed");
    s.log();

    // The next attempt only confirms: no second rotation.
    s.fail(Fail::Nothing);
    let done = s.rotator().maintain().await.unwrap();
    assert_eq!(
        done,
        Maintained::Confirmed {
            client_id: "ep-new-1".into()
        }
    );
    assert_eq!(s.log(), ["token ep-new-1", "confirm as ep-new-1"]);
    assert!(!s.file().unconfirmed);
    assert_eq!(s.backend.lock().unwrap().current.0, "ep-new-1");
}

#[tokio::test]
async fn rotation_can_be_turned_off_and_a_bad_token_is_reported() {
    let s = Setup::new("rotate_after_days = 0\n").await;
    s.age_file(400);
    assert_eq!(s.rotator().maintain().await.unwrap(), Maintained::Fresh);
    assert!(s.log().is_empty());

    // Rotating now ignores the age; credentials the backend refuses fail at the token.
    s.backend.lock().unwrap().current.1 = "changed".into();
    let before = s.text();
    let err = s.rotator().rotate_now().await.unwrap_err();
    assert!(
        matches!(
            err,
            RotateError::Token {
                which: "current",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(s.text(), before);
}
