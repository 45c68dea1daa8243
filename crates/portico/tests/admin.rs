//! `portico admin` against a running `portico serve`, over TLS with the development CA.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use support::*;

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
"#;

#[test]
fn admin_commands_manage_the_registry_through_the_api() {
    let portico = Portico::start(CONFIG, &[]);
    let web = backend("web", 0);
    let c = ["--config", "portico.toml"];
    let admin = |args: &[&str]| portico.cli(&[&["admin"], &c[..], args].concat());

    let list = stdout(&admin(&["tenant", "list"]));
    assert!(
        list.starts_with("NAME") && list.contains("demo") && list.contains("builtin"),
        "{list}"
    );
    stdout(&admin(&["tenant", "add", "abc"]));
    let backend_url = format!("http://{web}");
    stdout(&admin(&[
        "webapp",
        "add",
        "--name",
        "shop",
        "--backend",
        &backend_url,
        "--tenant",
        "abc",
        "--auth",
        "none",
    ]));
    stdout(&admin(&[
        "api",
        "add",
        "--name",
        "iot",
        "--provider",
        "xyz",
        "--version",
        "3",
        "--backend",
        &backend_url,
        "--route",
        "/assets/**=GET,POST",
        "--tenant",
        "abc",
        "--auth",
        "none",
    ]));

    // The new entries route at once.
    let host = "abc-shop.eu1.portico.localhost";
    let routed = within(std::time::Duration::from_secs(2), || {
        curl(&[&portico.plain_url(host, "/x")]) == (200, "web /x".into())
    });
    assert!(routed.is_some());
    assert_eq!(
        curl(&[&portico.plain_url(host, "/api/iot-xyz/v3/assets/7")]),
        (200, "web /assets/7".into())
    );

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&admin(&["api", "show", "iot-xyz/v3", "--json"]))).unwrap();
    assert_eq!(
        json["routes"][0]["methods"],
        serde_json::json!(["GET", "POST"])
    );
    assert_eq!(json["origin"], "api");
    let table = stdout(&admin(&["webapp", "list"]));
    assert!(
        table.contains("shop") && table.contains(&backend_url),
        "{table}"
    );

    // Errors are clear and refuse the change.
    let out = admin(&[
        "webapp",
        "add",
        "--name",
        "x",
        "--backend",
        "http://a",
        "--auth",
        "bearer",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth"));
    // Scopes: kept with a registration whose callers are known, refused on a public one.
    let scoped = |auth: &str| {
        admin(&[
            "api",
            "add",
            "--name",
            "telemetry",
            "--version",
            "1",
            "--backend",
            &backend_url,
            "--tenant",
            "abc",
            "--auth",
            auth,
            "--scope",
            "iot.read",
        ])
    };
    let out = scoped("none");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("scopes need auth"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&scoped("bearer"));
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&admin(&["api", "show", "telemetry/v1", "--json"]))).unwrap();
    assert_eq!(json["scopes"], serde_json::json!(["iot.read"]));
    stdout(&admin(&["api", "rm", "telemetry/v1"]));
    let out = admin(&["tenant", "rm", "abc"]);
    assert!(
        !out.status.success(),
        "a subscribed tenant cannot be removed"
    );
    let out = admin(&["webapp", "rm", "hello"]);
    assert!(
        !out.status.success(),
        "built-in entries cannot be removed through the API"
    );

    stdout(&admin(&["api", "rm", "iot-xyz/v3"]));
    stdout(&admin(&["webapp", "rm", "shop"]));
    stdout(&admin(&["tenant", "rm", "abc"]));
    let gone = within(std::time::Duration::from_secs(2), || {
        curl(&[&portico.plain_url(host, "/x")]).0 == 404
    });
    assert!(gone.is_some());

    // A wrong token is refused; the token can be reset on the local store.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args([
            "admin",
            "--config",
            "portico.toml",
            "--token",
            "ptk_wrong",
            "tenant",
            "list",
        ])
        .current_dir(portico.dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = portico.cli(&["admin", "--config", "portico.toml", "token", "reset"]);
    let new_token = stdout(&out).trim().to_string();
    assert!(new_token.starts_with("ptk_"));
    let out = portico.cli(&["admin", "--config", "portico.toml", "tenant", "list"]);
    assert!(!out.status.success(), "the old token no longer works");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["admin", "--config", "portico.toml", "tenant", "list"])
        .env("PORTICO_ADMIN_TOKEN", &new_token)
        .current_dir(portico.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_registry_api_publishes_its_openapi_document() {
    let portico = Portico::start(CONFIG, &[]);
    let ca = portico.path("data/dev-ca.pem");
    let url = format!(
        "https://gateway.eu1.portico.localhost:{}/api/registry/v1/openapi.json",
        portico.tls
    );
    let (status, body) = curl(&["--cacert", ca.to_str().unwrap(), &url]);
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/webapps"]["post"].is_object());
    let url = format!(
        "https://gateway.eu1.portico.localhost:{}/api/registry/v1/tenants",
        portico.tls
    );
    assert_eq!(
        curl(&["--cacert", ca.to_str().unwrap(), &url]).0,
        401,
        "the registry needs the admin token"
    );
}

/// Instances sharing one database learn of each other's registry changes (GW-11).
#[test]
fn a_change_through_one_instance_routes_on_another_sharing_the_database() {
    let shared = tempfile::tempdir().unwrap();
    let db = shared.path().join("shared.db");
    let config = format!("{CONFIG}database = \"sqlite://{}\"\n", db.display());
    let first = Portico::start(&config, &[]);
    let second = Portico::start(&config, &[]);
    first.register_webapp("shared", "app", backend("web", 0));
    let url = second.plain_url("shared-app.eu1.portico.localhost", "/y");
    let routed = within(std::time::Duration::from_secs(2), || {
        curl(&[&url]) == (200, "web /y".into())
    });
    assert!(
        routed.is_some(),
        "the second instance did not route the change within 2 s"
    );
}

#[test]
fn a_token_reset_refuses_a_store_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["admin", "token", "reset"])
        .current_dir(dir.path())
        .env_remove("PORTICO_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

/// `portico admin user …` works on the local store: passwords from stdin or the
/// environment, hashed with argon2id; errors name the problem.
#[test]
fn user_commands_add_change_and_remove_users_on_the_local_store() {
    use std::io::Write;
    use std::process::Stdio;

    let portico = Portico::start(CONFIG, &[]);
    let user = |args: &[&str], env_password: Option<&str>, stdin: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_portico"));
        command
            .args([&["admin", "--config", "portico.toml", "user"], args].concat())
            .current_dir(portico.dir.path())
            .env_remove("PORTICO_CONFIG")
            .env_remove("PORTICO_USER_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(p) = env_password {
            command.env("PORTICO_USER_PASSWORD", p);
        }
        let mut child = command.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    };
    let who = ["--tenant", "abc", "--name", "alice"];

    let out = user(
        &[&["add"], &who[..], &["--role", "admin", "--password-stdin"]].concat(),
        None,
        Some("first password 1\n"),
    );
    assert!(stdout(&out).contains("alice added"));
    let out = user(
        &[&["add"], &who[..], &["--role", "user", "--password-stdin"]].concat(),
        None,
        Some("another password\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = user(
        &[
            "add", "--tenant", "abc", "--name", "bob", "--role", "operator",
        ],
        Some("operator password"),
        None,
    );
    assert!(
        !out.status.success(),
        "operators belong to tenant management"
    );
    let out = user(
        &["add", "--tenant", "abc", "--name", "bob", "--role", "user"],
        Some("short"),
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("too short"));
    let out = user(
        &["add", "--tenant", "abc", "--name", "bob", "--role", "user"],
        None,
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no password"));

    // The store holds an argon2id hash that verifies the password given.
    let stored = |name: &str| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let url = format!("sqlite://{}", portico.path("data/portico.db").display());
            let store = portico_store::Store::open(&url).await.unwrap();
            let user = store.user("abc", name).await.unwrap();
            store.close().await;
            user
        })
    };
    let verify = |password: &str| {
        let hash = stored("alice").unwrap().password_hash.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(portico_identity::password::verify(password, &hash))
    };
    assert_eq!(stored("alice").unwrap().role, "admin");
    assert!(verify("first password 1"));

    stdout(&user(
        &[&["passwd"], &who[..]].concat(),
        Some("second password 2"),
        None,
    ));
    assert!(verify("second password 2"));
    assert!(!verify("first password 1"));
    let out = user(
        &["passwd", "--tenant", "xyz", "--name", "alice"],
        Some("second password 2"),
        None,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not registered"),
        "alice is not a user of xyz"
    );

    stdout(&user(&[&["rm"], &who[..]].concat(), None, None));
    assert!(stored("alice").is_none());
    assert!(!user(&[&["rm"], &who[..]].concat(), None, None)
        .status
        .success());
}
