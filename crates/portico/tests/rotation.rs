//! Endpoint credential rotation through the real binary: `portico serve` as the backend,
//! `portico endpoint rotate`, the running agent's own rotation of old credentials, and a
//! new registration code from `portico admin endpoint code`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use support::remote::{AgentOptions, Deployment, Side};
use support::{curl, within};

const CONNECTIVITY: &str = "connectivity.eu1.vpnrts.portico.localhost";

/// `(client_id, client_secret, whole text)` of a credentials file.
fn credentials(path: &Path) -> (String, String, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    let field = |k: &str| value[k].as_str().unwrap().to_string();
    (field("client_id"), field("client_secret"), text)
}

fn credentials_file(d: &Deployment, name: &str) -> PathBuf {
    d.agents.path().join(format!("{name}.credentials.toml"))
}

/// The token endpoint's status for these client credentials.
fn token_status(d: &Deployment, id: &str, secret: &str) -> u16 {
    let url = format!("http://127.0.0.1:{}/uaa/oauth/token", d.portico.plain);
    let host = format!("Host: {CONNECTIVITY}");
    let basic = format!("{id}:{secret}");
    curl(&[
        "-H",
        &host,
        "-u",
        &basic,
        "-d",
        "grant_type=client_credentials",
        &url,
    ])
    .0
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn portico_endpoint_rotate_replaces_the_credentials_and_withdraws_the_old() {
    let d = Deployment::start();
    let config = d.endpoint("ep-press", Side::Device, &AgentOptions::default());
    let file = credentials_file(&d, "ep-press");
    let (old_id, old_secret, _) = credentials(&file);
    assert_eq!(token_status(&d, &old_id, &old_secret), 200);

    let out = d.agent_command(&config, &["endpoint", "rotate"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("credentials rotated"), "{stdout}");

    let (new_id, new_secret, text) = credentials(&file);
    assert_ne!(new_id, old_id);
    assert_ne!(new_secret, old_secret);
    assert!(!text.contains("unconfirmed"), "confirmed: {text}");
    assert!(text.contains("endpoint = \"ep-press\""), "{text}");
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    assert!(
        !stdout.contains(&new_secret) && !stderr.contains(&new_secret),
        "the secret is not printed"
    );
    assert_eq!(
        token_status(&d, &old_id, &old_secret),
        401,
        "the old secret gets no token"
    );
    assert_eq!(token_status(&d, &new_id, &new_secret), 200);

    let audit = d.remote(&["--json", "audit", "list"]);
    assert!(audit.contains("\"endpoint.rotate\""), "{audit}");
    assert!(audit.contains("\"endpoint.rotate.confirm\""), "{audit}");
    assert!(!audit.contains(&new_secret) && !audit.contains(&old_secret));

    // A replaced device: a new code registers the endpoint again, the rotated client goes.
    let printed = d.remote(&["endpoint", "code", "ep-press"]);
    let code = printed
        .lines()
        .find_map(|l| l.strip_prefix("registration code: "))
        .unwrap_or_else(|| panic!("no code in {printed}"))
        .trim()
        .to_string();
    let out = d.agent_command(&config, &["endpoint", "register", "--code", &code]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (third_id, third_secret, _) = credentials(&file);
    assert_ne!(third_id, new_id);
    assert_eq!(token_status(&d, &new_id, &new_secret), 401);
    assert_eq!(token_status(&d, &third_id, &third_secret), 200);
}

#[test]
fn the_running_agent_rotates_old_credentials_without_dropping_its_tunnel() {
    let d = Deployment::start();
    let config = d.endpoint("ep-press", Side::Device, &AgentOptions::default());
    let file = credentials_file(&d, "ep-press");
    let (old_id, old_secret, _) = credentials(&file);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("rotate_after_days = 1\n");
    std::fs::write(&config, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 86_400))
        .unwrap();

    let mut agent = d.run_agent(&config);
    let rotated = within(Duration::from_secs(20), || {
        agent.log().contains("credentials rotated")
    });
    assert!(rotated.is_some(), "{}", agent.log());
    let (new_id, new_secret, _) = credentials(&file);
    assert_ne!(new_id, old_id);
    assert_eq!(token_status(&d, &old_id, &old_secret), 401);
    assert_eq!(token_status(&d, &new_id, &new_secret), 200);
    // The tunnel that was up during the rotation stays up: one connection, no reconnect.
    std::thread::sleep(Duration::from_secs(1));
    assert!(agent.running());
    let log = agent.log();
    assert_eq!(log.matches("connected to the backend").count(), 1, "{log}");
    assert!(!log.contains(&new_secret) && !log.contains(&old_secret));
    let endpoints = d.remote(&["--json", "endpoint", "show", "ep-press"]);
    assert!(endpoints.contains(&new_id), "{endpoints}");
}
