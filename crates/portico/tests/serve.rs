//! `portico serve` as a user runs it: the built binary, real TLS, curl as the client.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::time::Duration;
use support::*;

/// The configuration of the foundation issue, as documented in the README, with free
/// ports and the development certificate.
const EXAMPLE_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
data_dir = "./data"
database = "sqlite://./data/portico.db"
domains = ["portico.localhost"]
regions = ["eu1"]
registry = "./registry.toml"

[tls]
cert = "cert.pem"
key = "key.pem"
"#;

fn example_registry(web: std::net::SocketAddr, api: std::net::SocketAddr) -> String {
    format!(
        r#"
[[tenants]]
name = "abc"

[[webapps]]
name = "assetmanager"
provider = "xyz"
backend = "http://{web}"
tenants = ["abc"]
cache_control = ""
websockets = ["/videostream"]
auth = "none"

[[apis]]
name = "iot"
provider = "xyz"
version = 3
backend = "http://{api}"
routes = [ {{ pattern = "/assets/**", methods = ["GET", "POST"] }} ]
tenants = ["abc"]
auth = "none"
"#
    )
}

#[test]
fn the_built_in_defaults_serve_the_demo_over_plain_http_and_tls() {
    let portico = Portico::start_with_defaults();
    let (status, page) = curl(&[&portico.plain_url("demo-hello.eu1.portico.localhost", "/")]);
    assert_eq!(status, 200);
    assert!(page.contains("Hello from Portico"), "{page}");
    assert!(
        page.contains("x-forwarded-host"),
        "the page shows the request as the backend saw it"
    );
    assert!(
        portico
            .stdout()
            .contains("http://demo-hello.eu1.portico.localhost:"),
        "the URLs are printed"
    );

    // TLS with the development certificate, trusted through its CA file.
    assert!(
        portico.path("data/portico.db").exists(),
        "the SQLite file is created"
    );
    let ca = portico.path("data/dev-ca.pem");
    let url = format!("https://demo-hello.eu1.portico.localhost:{}/", portico.tls);
    let (status, page) = curl(&["--cacert", ca.to_str().unwrap(), &url]);
    assert_eq!(status, 200);
    assert!(
        page.contains("<td>https</td>"),
        "X-Forwarded-Proto is https"
    );
    let (status, _) = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        &url,
    ]);
    assert_eq!(status, 200, "TLS 1.2 is served too");
}

#[test]
fn the_example_registry_routes_web_apps_and_apis() {
    let (web, api) = (backend("web", 0), backend("api", 0));
    let portico = Portico::start(
        EXAMPLE_CONFIG,
        &[("registry.toml", &example_registry(web, api))],
    );
    let host = "abc-assetmanager-xyz.eu1.portico.localhost";

    assert_eq!(
        curl(&[&portico.plain_url(host, "/a/b?c=d")]),
        (200, "web /a/b?c=d".into())
    );
    assert_eq!(
        curl(&[&portico.plain_url(host, "/api/iot-xyz/v3/assets/1")]),
        (200, "api /assets/1".into())
    );
    let gateway = "gateway.eu1.portico.localhost";
    assert_eq!(
        curl(&[&portico.plain_url(gateway, "/api/iot-xyz/v3/assets/1")]),
        (200, "api /assets/1".into())
    );

    let (status, body) = curl(&[&portico.plain_url(host, "/api/iot-xyz/v4/assets/1")]);
    assert_eq!(status, 404);
    assert!(
        body.starts_with("{\"status\":404,\"error\":\"Not Found\""),
        "{body}"
    );
    let (status, body) = curl(&[
        "-H",
        "Accept: application/xml",
        &portico.plain_url(host, "/api/iot-xyz/v4/assets/1"),
    ]);
    assert_eq!(status, 404);
    assert!(body.starts_with("<error><status>404</status>"), "{body}");
    let (status, _) = curl(&[
        "-H",
        "Accept: text/plain",
        &portico.plain_url(host, "/api/iot-xyz/v4/assets/1"),
    ]);
    assert_eq!(status, 406);
    let (status, _) =
        curl(&[&portico.plain_url("zzz-assetmanager-xyz.eu1.portico.localhost", "/")]);
    assert_eq!(status, 404, "a tenant that is not subscribed");

    // The configured certificate files did not exist: a development certificate was
    // written there, with its CA beside it.
    let ca = portico.path("dev-ca.pem");
    let tls_url = format!("https://{host}:{}/x", portico.tls);
    assert_eq!(
        curl(&["--cacert", ca.to_str().unwrap(), &tls_url]),
        (200, "web /x".into())
    );

    let (status, body) = curl(&["-g", &portico.plain_url(host, "/getDataByIds?idList=[1,2]")]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        curl(&[&portico.plain_url(host, "/getDataByIds?idList=%5B1,2%5D")]),
        (200, "web /getDataByIds?idList=%5B1,2%5D".into())
    );
}

/// GW-8: editing the registry file re-routes within 2 s while a long download through
/// the gateway continues; a broken edit is logged and changes nothing.
#[test]
fn registry_file_edits_reroute_without_harming_a_download() {
    const CHUNKS: usize = 100; // 6.4 MiB over about 3 s
    let (old, new, api) = (backend("old", CHUNKS), backend("new", 0), backend("api", 0));
    let portico = Portico::start(
        EXAMPLE_CONFIG,
        &[("registry.toml", &example_registry(old, api))],
    );
    let host = "abc-assetmanager-xyz.eu1.portico.localhost";
    let download_url = portico.plain_url(host, "/download");
    let downloaded = portico.path("download.bin");
    let download = {
        let downloaded = downloaded.clone();
        std::thread::spawn(move || {
            std::process::Command::new("curl")
                .args(["-s", "--max-time", "30", "-o"])
                .arg(&downloaded)
                .args(["-w", "%{http_code} %{size_download}", &download_url])
                .output()
                .unwrap()
        })
    };
    // The edit must come while the download runs from the old backend.
    let started = within(Duration::from_secs(10), || {
        std::fs::metadata(&downloaded).is_ok_and(|m| m.len() > 0)
    });
    assert!(started.is_some(), "the download did not start");

    std::fs::write(portico.path("registry.toml"), example_registry(new, api)).unwrap();
    let took = within(Duration::from_secs(2), || {
        curl(&[&portico.plain_url(host, "/")]).1 == "new /"
    });
    assert!(took.is_some(), "the edit did not route within 2 s");
    assert!(
        !download.is_finished(),
        "the download should still be running"
    );

    std::fs::write(
        portico.path("registry.toml"),
        "[[webapps]]\nname = \"Broken\"\n",
    )
    .unwrap();
    let logged = within(Duration::from_secs(5), || {
        portico.stderr().contains("registry file not applied")
    });
    assert!(
        logged.is_some(),
        "the broken edit is logged:\n{}",
        portico.stderr()
    );
    assert!(
        portico.stderr().contains("registry.toml:1"),
        "with file and line:\n{}",
        portico.stderr()
    );
    assert_eq!(
        curl(&[&portico.plain_url(host, "/")]),
        (200, "new /".into()),
        "and changes nothing"
    );

    let out = download.join().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("200 {}", CHUNKS * 64 * 1024),
        "the download finished whole"
    );
}

/// Writes `config` as `portico.toml` in `dir` and runs `portico serve` with it, for a start
/// that is refused: asserts that serve exited with a failure, and returns what it printed.
fn refused_start(dir: &std::path::Path, config: &str) -> std::process::Output {
    std::fs::write(dir.join("portico.toml"), config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["serve", "--config", "portico.toml"])
        .current_dir(dir)
        .env_remove("PORTICO_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    out
}

#[test]
fn a_bad_configuration_is_refused_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = refused_start(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("portico.toml:3") && err.contains("bogus"),
        "{err}"
    );

    std::fs::write(dir.path().join("registry.toml"), "[[tenants]]\nname = \"abc\"\n[[webapps]]\nname = \"x\"\nbackend = \"http://127.0.0.1:1\"\n").unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\nregistry = \"registry.toml\"\n",
        free_port(),
        free_port()
    );
    let out = refused_start(dir.path(), &config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("registry.toml:3") && err.contains("auth"),
        "{err}"
    );
}

/// A port in use stops the start before anything is written: the store is not even made,
/// so the first start that does listen is still the one that shows the admin token.
#[test]
fn a_start_that_cannot_listen_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let occupant = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = occupant.local_addr().unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{}\"\nlisten_plain = \"127.0.0.1:{}\"\nadmin_listen = \"{taken}\"\n",
        free_port(),
        free_port()
    );
    let out = refused_start(dir.path(), &config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on {taken} (server.admin_listen)")),
        "{err}"
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!printed.contains("ptk_"), "a token was shown: {printed}");
    assert!(
        !dir.path().join("data/portico.db").exists(),
        "the failed start made the store"
    );
}

#[test]
fn operators_get_metrics_health_and_readiness() {
    let portico = Portico::start_with_defaults();
    curl(&[&portico.plain_url("demo-hello.eu1.portico.localhost", "/")]);
    let (status, metrics) = curl(&[&format!("http://127.0.0.1:{}/metrics", portico.admin)]);
    assert_eq!(status, 200);
    for name in [
        "portico_requests_total{class=\"webapp\",status=\"200\"}",
        "portico_request_duration_seconds_bucket",
        "portico_open_connections",
        "portico_registry_reloads_total",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    assert_eq!(
        curl(&[&format!("http://127.0.0.1:{}/healthz", portico.admin)]).0,
        200
    );
    assert_eq!(
        curl(&[&format!("http://127.0.0.1:{}/readyz", portico.admin)]).0,
        200
    );
    let (status, body) = curl(&[&portico.plain_url("gateway.eu1.portico.localhost", "/healthz")]);
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(
        portico.stderr().contains("portico::access"),
        "an access log line per request"
    );
}

/// `portico serve` on PostgreSQL (OPS-2): registrations made through the API survive a
/// restart. Runs where the test command provides a server (`PORTICO_TEST_POSTGRES_URL`).
#[test]
fn serve_keeps_its_registry_in_postgresql() {
    let Some(server) = std::env::var("PORTICO_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            std::env::var("PORTICO_REQUIRE_POSTGRES").ok().as_deref() != Some("1"),
            "PORTICO_REQUIRE_POSTGRES=1 but PORTICO_TEST_POSTGRES_URL is not set"
        );
        eprintln!("PostgreSQL skipped: PORTICO_TEST_POSTGRES_URL is not set");
        return;
    };
    let db = format!("serve_{}", free_port());
    let created = std::process::Command::new("psql")
        .args([
            server.as_str(),
            "-q",
            "-c",
            &format!("CREATE DATABASE {db}"),
        ])
        .output()
        .expect("psql runs");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let url = match server.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{db}"),
        None => panic!("unexpected URL {server}"),
    };
    let config = format!("{CONFIG_WITHOUT_DB}database = \"{url}\"\n");
    let web = backend("web", 0);

    let first = Portico::start(&config, &[]);
    let token = first.admin_token();
    first.register_webapp("pg", "app", web);
    // The routing table is swapped in shortly after the store changed.
    let url = first.plain_url("pg-app.eu1.portico.localhost", "/x");
    let routed = within(Duration::from_secs(5), || curl(&[&url]).0 == 200);
    assert!(routed.is_some(), "the new registration never routed");
    let (status, body) = curl(&[&url]);
    assert_eq!((status, body.as_str()), (200, "web /x"));
    drop(first);

    // A second start on the same database: no new admin token, the entry routes.
    let second = Portico::start(&config, &[]);
    assert!(
        !second.stdout().contains("ptk_"),
        "the admin token is printed only once per store"
    );
    let (status, body) = curl(&[&second.plain_url("pg-app.eu1.portico.localhost", "/x")]);
    assert_eq!((status, body.as_str()), (200, "web /x"));

    // GW-11: with the store gone, routing goes on from the cached table, and a change
    // through the API is refused with a clear error instead of half-applied.
    let dropped = std::process::Command::new("psql")
        .args([
            server.as_str(),
            "-q",
            "-c",
            &format!("DROP DATABASE {db} WITH (FORCE)"),
        ])
        .output()
        .expect("psql runs");
    assert!(
        dropped.status.success(),
        "{}",
        String::from_utf8_lossy(&dropped.stderr)
    );
    let (status, body) = curl(&[&second.plain_url("pg-app.eu1.portico.localhost", "/x")]);
    assert_eq!((status, body.as_str()), (200, "web /x"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args([
            "admin",
            "--config",
            "portico.toml",
            "tenant",
            "add",
            "other",
        ])
        .env("PORTICO_ADMIN_TOKEN", &token)
        .current_dir(second.dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("503") && err.contains("store"), "{err}");
    let (status, _) = curl(&[&second.plain_url("pg-app.eu1.portico.localhost", "/x")]);
    assert_eq!(status, 200, "still routing");
}

const CONFIG_WITHOUT_DB: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
data_dir = "./data"
"#;

/// OPS-4: without `--config`, `PORTICO_CONFIG` names the file, else `./portico.toml` is
/// used; relative paths are relative to the file's folder.
#[test]
fn the_configuration_is_found_by_environment_or_in_the_working_folder() {
    let in_cwd = Portico::launch(|dir, (plain, tls, admin)| {
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{tls}\"\nlisten_plain = \"127.0.0.1:{plain}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n"
        );
        std::fs::write(dir.join("portico.toml"), config).unwrap();
        (Vec::new(), Vec::new())
    });
    assert!(
        in_cwd.stdout().contains("running with portico.toml"),
        "{}",
        in_cwd.stdout()
    );

    let by_env = Portico::launch(|dir, (plain, tls, admin)| {
        let conf = dir.join("conf");
        std::fs::create_dir_all(&conf).unwrap();
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{tls}\"\nlisten_plain = \"127.0.0.1:{plain}\"\nadmin_listen = \"127.0.0.1:{admin}\"\ndata_dir = \"./state\"\n"
        );
        std::fs::write(conf.join("portico.toml"), config).unwrap();
        let path = conf.join("portico.toml").display().to_string();
        (Vec::new(), vec![("PORTICO_CONFIG".to_string(), path)])
    });
    assert!(
        by_env.path("conf/state/portico.db").exists(),
        "data_dir is relative to the file's folder"
    );
    assert!(!by_env.path("state").exists());
}
