//! `portico admin` for Remote Services, on the local store of a running `portico serve`:
//! the model is built from the command line, the printed registration code registers with
//! the running server, errors are the API's and fail the command, and the audit trail
//! names what was done.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use serde_json::Value;
use std::process::Output;
use support::*;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
"#;

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The command failed (exit status ≠ 0) and said something containing `expected`.
fn refused(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in: {stderr}"
    );
}

/// `portico admin --config portico.toml ARGS --tenant TENANT`.
fn admin_in(portico: &Portico, tenant: &str, args: &[&str]) -> Output {
    portico.cli(
        &[
            &["admin", "--config", "portico.toml"],
            args,
            &["--tenant", tenant],
        ]
        .concat(),
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap()
}

/// Runs `work` on the store `portico serve` uses.
fn with_store<T>(portico: &Portico, work: impl AsyncFnOnce(&portico_store::Store) -> T) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let url = format!("sqlite://{}", portico.path("data/portico.db").display());
        let store = portico_store::Store::open(&url).await.unwrap();
        let result = work(&store).await;
        store.close().await;
        result
    })
}

fn session(id: &str, now_ms: i64) -> portico_store::ConnectionSessionRecord {
    portico_store::ConnectionSessionRecord {
        tenant: "abc".into(),
        id: id.into(),
        user_name: "alice".into(),
        device: "press-7".into(),
        application: "ssh-press".into(),
        started_ms: now_ms,
        ends_ms: now_ms + 3_600_000,
        ended_ms: None,
        end_reason: None,
        bytes_up: 0,
        bytes_down: 0,
    }
}

#[test]
fn remote_services_are_administered_from_the_command_line() {
    let portico = Portico::start(CONFIG, &[]);
    portico.admin(&["tenant", "add", "abc"]);
    portico.admin(&["tenant", "add", "xyz"]);
    let abc = |args: &[&str]| admin_in(&portico, "abc", args);

    // A site tree, listed as a tree.
    stdout(&abc(&["site", "add", "--name", "plant"]));
    stdout(&abc(&["site", "add", "--name", "lab"]));
    stdout(&abc(&[
        "site", "add", "--name", "hall-1", "--parent", "plant",
    ]));
    let added = stdout(&abc(&[
        "site", "add", "--name", "line-3", "--parent", "hall-1",
    ]));
    assert!(
        added.starts_with("SITE") && added.contains("line-3  hall-1"),
        "{added}"
    );
    let tree = stdout(&abc(&["site", "list"]));
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 5, "{tree}");
    let plant = lines.iter().position(|l| l.starts_with("plant ")).unwrap();
    assert!(lines[plant + 1].starts_with("  hall-1 "), "{tree}");
    assert!(lines[plant + 2].starts_with("    line-3  hall-1"), "{tree}");

    // A device, a member, endpoints (each with a registration code printed once).
    stdout(&abc(&[
        "device",
        "add",
        "--name",
        "press-7",
        "--site",
        "line-3",
        "--description",
        "Hydraulic press",
    ]));
    stdout(&abc(&[
        "member",
        "set",
        "--site",
        "plant",
        "--user",
        "alice",
        "--role",
        "site-owner",
    ]));
    let out = abc(&[
        "endpoint",
        "add",
        "--name",
        "press-7-ep",
        "--device",
        "press-7",
    ]);
    let printed = stdout(&out);
    let code = printed
        .lines()
        .find_map(|l| l.strip_prefix("registration code: "))
        .unwrap()
        .to_string();
    assert_eq!(code.len(), 64, "{printed}");
    assert!(
        printed.contains("device press-7") && printed.contains("pending"),
        "{printed}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&code));
    let service = json(&abc(&[
        "endpoint", "add", "--name", "lab-gw", "--site", "lab", "--json",
    ]));
    assert_eq!(service["endpoint"]["kind"], "service");
    assert_eq!(service["registration_code"].as_str().unwrap().len(), 64);

    // Applications from the SSH and the DTT Reverse templates, and assignments.
    let ssh = stdout(&abc(&[
        "app",
        "add",
        "--name",
        "ssh-press",
        "--template",
        "ssh",
        "--map",
        "2222:127.0.0.1:22",
    ]));
    assert!(
        ssh.contains("2222:127.0.0.1:22") && ssh.contains("3600s"),
        "{ssh}"
    );
    stdout(&abc(&[
        "app",
        "add",
        "--name",
        "tickets",
        "--template",
        "dtt-reverse",
        "--map",
        "8080:10.1.2.3:9000",
        "--target-endpoint",
        "lab-gw",
        "--session-timeout",
        "600",
    ]));
    stdout(&abc(&[
        "assignment",
        "add",
        "--device",
        "press-7",
        "--app",
        "ssh-press",
    ]));
    stdout(&abc(&[
        "assignment",
        "add",
        "--device",
        "press-7",
        "--app",
        "tickets",
    ]));

    // Listed as tables and as JSON.
    let devices = stdout(&abc(&["device", "list"]));
    assert!(
        devices.contains("press-7  line-3  Hydraulic press"),
        "{devices}"
    );
    let members = stdout(&abc(&["member", "list"]));
    assert!(members.contains("plant  alice  site-owner"), "{members}");
    let templates = stdout(&abc(&["template", "list"]));
    assert!(
        templates.contains("dtt-reverse") && templates.contains("reverse"),
        "{templates}"
    );
    assert!(
        templates
            .lines()
            .any(|l| l.starts_with("ssh ") && l.contains(" 22 ")),
        "{templates}"
    );
    let apps = json(&abc(&["app", "list", "--json"]));
    let tickets = apps
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "tickets")
        .unwrap();
    assert_eq!(tickets["target_endpoint"], "lab-gw");
    assert_eq!(tickets["session_timeout_s"], 600);
    assert_eq!(tickets["mappings"][0]["target_host"], "10.1.2.3");
    let shown = json(&abc(&["app", "show", "ssh-press", "--json"]));
    assert_eq!(shown["mappings"][0]["local_port"], 2222);
    let assignments = json(&abc(&["assignment", "list", "--json"]));
    assert_eq!(assignments.as_array().unwrap().len(), 2, "{assignments}");
    let table = stdout(&abc(&["assignment", "list"]));
    assert!(table.contains("press-7  ssh-press"), "{table}");
    let endpoints = stdout(&abc(&["endpoint", "list"]));
    assert!(
        endpoints.contains("site lab") && endpoints.contains("device press-7"),
        "{endpoints}"
    );

    // The printed code registers with the running server, once.
    let register = format!(
        "http://127.0.0.1:{}/api/endpointregistration/v1/register",
        portico.plain
    );
    let gateway = "Host: gateway.eu1.portico.localhost";
    let form = format!(r#"{{"code":"{code}"}}"#);
    let (status, credentials) = curl(&[
        "-H",
        gateway,
        "-H",
        "Content-Type: application/json",
        "-d",
        &form,
        &register,
    ]);
    assert_eq!(status, 200, "{credentials}");
    let credentials: Value = serde_json::from_str(&credentials).unwrap();
    let shown = json(&abc(&["endpoint", "show", "press-7-ep", "--json"]));
    assert_eq!(shown["state"], "registered");
    assert_eq!(shown["client_id"], credentials["client_id"]);

    // Bad input: the API's message, a failed command, nothing changed.
    refused(
        &abc(&[
            "app",
            "add",
            "--name",
            "x",
            "--template",
            "nosuch",
            "--map",
            "1:h:2",
        ]),
        "not in the catalogue",
    );
    let out = abc(&[
        "app",
        "add",
        "--name",
        "x",
        "--template",
        "ssh",
        "--map",
        "2222:host",
    ]);
    refused(&out, "LOCAL:HOST:PORT");
    assert_eq!(out.status.code(), Some(2), "a usage error");
    refused(
        &abc(&[
            "app",
            "add",
            "--name",
            "x",
            "--template",
            "ssh",
            "--map",
            "0:h:22",
        ]),
        "ports are 1-65535",
    );
    refused(
        &abc(&[
            "app",
            "add",
            "--name",
            "x",
            "--template",
            "dtt-reverse",
            "--map",
            "1:h:2",
        ]),
        "target_endpoint",
    );
    refused(
        &abc(&["device", "add", "--name", "x", "--site", "nowhere"]),
        "site \"nowhere\" does not exist",
    );
    refused(
        &abc(&["site", "add", "--name", "Bad Name"]),
        "site name \"Bad Name\"",
    );
    refused(&abc(&["endpoint", "add", "--name", "x"]), "--device");
    refused(
        &abc(&[
            "member", "set", "--site", "plant", "--user", "bob", "--role", "owner",
        ]),
        "use site-owner or user",
    );
    refused(
        &admin_in(&portico, "nope", &["site", "list"]),
        "tenant \"nope\" does not exist",
    );
    // Another tenant's device is not there for this one.
    let xyz = |args: &[&str]| admin_in(&portico, "xyz", args);
    stdout(&xyz(&["site", "add", "--name", "yard"]));
    stdout(&xyz(&[
        "device", "add", "--name", "robot-1", "--site", "yard",
    ]));
    refused(
        &abc(&[
            "assignment",
            "add",
            "--device",
            "robot-1",
            "--app",
            "ssh-press",
        ]),
        "device \"robot-1\" does not exist",
    );
    refused(&abc(&["device", "show", "robot-1"]), "does not exist");
    assert!(!stdout(&abc(&["device", "list"])).contains("robot-1"));
    assert!(!stdout(&xyz(&["device", "list"])).contains("press-7"));
    assert_eq!(
        json(&abc(&["app", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Connection sessions (opened by users through the API) are listed and ended here.
    let now = json(&abc(&["endpoint", "show", "press-7-ep", "--json"]))["registered_ms"]
        .as_i64()
        .unwrap();
    with_store(&portico, async |store| {
        for id in ["s-ended-by-admin", "s-ended-by-revocation"] {
            store
                .add_connection_session(&session(id, now))
                .await
                .unwrap();
        }
    });
    let open = stdout(&abc(&["connection", "list", "--open"]));
    assert!(
        open.contains("s-ended-by-admin") && open.contains("alice"),
        "{open}"
    );
    stdout(&abc(&["connection", "end", "s-ended-by-admin"]));
    refused(
        &abc(&["connection", "end", "no-such-session"]),
        "does not exist",
    );

    // Revocation withdraws the credentials and ends the device's connections.
    let out = abc(&["endpoint", "revoke", "press-7-ep"]);
    assert!(stdout(&out).contains("revoked"));
    let basic = format!(
        "{}:{}",
        credentials["client_id"].as_str().unwrap(),
        credentials["client_secret"].as_str().unwrap()
    );
    let token_url = format!("http://127.0.0.1:{}/uaa/oauth/token", portico.plain);
    let (status, _) = curl(&[
        "-H",
        gateway,
        "-u",
        &basic,
        "-d",
        "grant_type=client_credentials",
        &token_url,
    ]);
    assert_eq!(status, 401, "revoked credentials get no token");
    let sessions = json(&abc(&["connection", "list", "--json"]));
    let reason = |id: &str| {
        sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["end_reason"].clone())
            .unwrap()
    };
    assert_eq!(reason("s-ended-by-admin"), "ended");
    assert_eq!(reason("s-ended-by-revocation"), "revoked");
    assert!(!stdout(&abc(&["connection", "list", "--open"])).contains("s-ended"));

    // Removals.
    stdout(&abc(&[
        "assignment",
        "rm",
        "--device",
        "press-7",
        "--app",
        "tickets",
    ]));
    stdout(&abc(&["app", "rm", "tickets"]));
    stdout(&abc(&[
        "member", "rm", "--site", "plant", "--user", "alice",
    ]));
    refused(&abc(&["site", "rm", "plant"]), "site");
    stdout(&abc(&["site", "add", "--name", "spare"]));
    assert_eq!(
        stdout(&abc(&["site", "rm", "spare"])).trim(),
        "site spare removed"
    );
    assert!(!stdout(&abc(&["site", "list"])).contains("spare"));

    // The audit trail names what was done, by whom, newest first.
    let audit = json(&abc(&["audit", "list", "--json", "--limit", "1000"]));
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["actor"] == "admin-cli")
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for expected in [
        "site.add",
        "device.add",
        "member.set",
        "endpoint.add",
        "application.add",
        "assignment.add",
        "connection.end",
        "endpoint.revoke",
        "assignment.remove",
        "application.remove",
        "member.remove",
        "site.remove",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert_eq!(
        actions.first(),
        Some(&"site.remove"),
        "newest first: {actions:?}"
    );
    let table = stdout(&abc(&["audit", "list"]));
    assert!(
        table.starts_with("TIME") && table.contains("endpoint/press-7-ep"),
        "{table}"
    );
    assert!(
        !table.contains(&code),
        "no registration code in the audit trail"
    );
    let other = stdout(&xyz(&["audit", "list"]));
    assert!(
        !other.contains("press-7"),
        "tenants see only their own audit: {other}"
    );
}
