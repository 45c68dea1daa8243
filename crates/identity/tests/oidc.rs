//! Portico as the relying party of a real, independently written OpenID provider (the
//! `oidc-provider` package, started on loopback): discovery, the authorization request,
//! the code exchange and the ID token's checks (ID-6).

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use portico_identity::oidc::{self, ExternalProvider, OidcError};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const CLIENT_ID: &str = "portico-test";
const CLIENT_SECRET: &str = "a-secret-only-for-this-test";
const REDIRECT: &str = "http://acme-console.eu1.portico.localhost:8080/login/oidc/callback";

struct ProviderProcess {
    child: Child,
    issuer: String,
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the provider; `None` (with a message) where Node.js or the package is missing and
/// the run does not require them (`scripts/test` installs both and sets PORTICO_REQUIRE_NODE).
fn start_provider() -> Option<ProviderProcess> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider");
    let ready = dir.join("node_modules/oidc-provider").exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !ready {
        assert!(
            std::env::var_os("PORTICO_REQUIRE_NODE").is_none(),
            "PORTICO_REQUIRE_NODE is set, but node or {}/node_modules is missing",
            dir.display()
        );
        eprintln!("skipped: Node.js or the test OpenID provider is not installed (scripts/test installs them)");
        return None;
    }
    let mut child = Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("OIDC_PORT", "0")
        .env("OIDC_CLIENT_ID", CLIENT_ID)
        .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
        .env("OIDC_REDIRECT_URIS", REDIRECT)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node");
    // The script prints `issuer=…` once it listens; it exits on an error.
    let mut line = String::new();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    output.read_line(&mut line).unwrap();
    // The provider may write more; a closed pipe would end it.
    std::thread::spawn(move || std::io::copy(&mut output, &mut std::io::sink()));
    let issuer = line
        .trim()
        .strip_prefix("issuer=")
        .unwrap_or_else(|| panic!("the OpenID provider did not start: {line:?}"));
    Some(ProviderProcess {
        issuer: issuer.to_string(),
        child,
    })
}

fn provider(issuer: &str, secret: &str) -> ExternalProvider {
    ExternalProvider {
        issuer: issuer.to_string(),
        client_id: CLIENT_ID.into(),
        client_secret: secret.into(),
    }
}

#[tokio::test]
async fn the_authorization_request_carries_pkce_a_nonce_and_the_state() {
    let Some(process) = start_provider() else {
        return;
    };
    let (url, pending) = oidc::begin(&provider(&process.issuer, CLIENT_SECRET), REDIRECT)
        .await
        .unwrap();
    assert!(
        url.starts_with(&format!("{}/auth?", process.issuer)),
        "{url}"
    );
    for part in [
        "response_type=code",
        &format!("client_id={CLIENT_ID}"),
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        &format!("state={}", pending.state),
    ] {
        assert!(url.contains(part), "{part} missing from {url}");
    }
    // The provider itself accepts the request: it answers with its login interaction.
    let response = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            &url,
        ])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&response.stdout).to_string();
    assert!(
        answer.starts_with("303 ") && answer.contains("/interaction/"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_code_the_provider_did_not_issue_is_refused() {
    let Some(process) = start_provider() else {
        return;
    };
    let provider = provider(&process.issuer, CLIENT_SECRET);
    let (_, pending) = oidc::begin(&provider, REDIRECT).await.unwrap();
    let refused = oidc::finish(&provider, REDIRECT, pending, "not-a-code").await;
    assert!(
        matches!(refused, Err(OidcError::Exchange(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_discovery_error_that_names_it() {
    let provider = provider("http://127.0.0.1:9/", CLIENT_SECRET);
    let err = oidc::begin(&provider, REDIRECT).await.unwrap_err();
    assert!(matches!(err, OidcError::Discovery { .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
}
