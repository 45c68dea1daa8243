//! The configuration's loading, defaults, validation and error messages.

use super::*;

const EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8443"          # TLS
listen_plain = "127.0.0.1:8080"    # optional plain HTTP, for local use
admin_listen = "127.0.0.1:9090"    # /metrics, /healthz, /readyz for operators; never public
data_dir = "./data"
database = "sqlite://./data/portico.db"   # or postgres://user:pass@host/db
domains = ["portico.localhost"]
regions = ["eu1"]                  # "eu1-preview" style names carry an environment
registry = "./registry.toml"       # declarative registrations, reloaded on change

[tls]                              # absent: a development certificate is generated into data_dir
cert = "cert.pem"
key = "key.pem"
"#;

fn parse_in(text: &str, env: &[(&str, &str)]) -> Result<Config> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse(
        text,
        Some(Path::new("/etc/portico/portico.toml")),
        Path::new("/etc/portico"),
        &env,
    )
}

#[test]
fn the_documented_example_loads_with_paths_relative_to_its_folder() {
    let c = parse_in(EXAMPLE, &[]).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8443".parse().unwrap());
    assert_eq!(c.listen_plain, Some("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(c.data_dir, PathBuf::from("/etc/portico/./data"));
    assert_eq!(c.database, "sqlite:///etc/portico/./data/portico.db");
    assert_eq!(
        c.registry,
        Some(PathBuf::from("/etc/portico/./registry.toml"))
    );
    match c.tls {
        TlsSource::Files { cert, key } => {
            assert_eq!(cert, PathBuf::from("/etc/portico/cert.pem"));
            assert_eq!(key, PathBuf::from("/etc/portico/key.pem"));
        }
        TlsSource::Development => panic!("tls files expected"),
    }
    assert_eq!(c.response_timeout, Duration::from_secs(120));
    assert_eq!(c.drain_timeout, Duration::from_secs(30));
    let short = parse_in("[server]\ndrain_timeout = \"2s\"\n", &[]).unwrap();
    assert_eq!(short.drain_timeout, Duration::from_secs(2));
    assert!(c.per_core_runtimes);
    let shared = parse_in("[server]\nper_core_runtimes = false\n", &[]).unwrap();
    assert!(!shared.per_core_runtimes);
    assert!(parse_in("[server]\nper_core_runtimes = \"yes\"\n", &[]).is_err());
}

#[test]
fn the_limits_and_greylist_sections_load_as_documented() {
    let c = parse_in(
        r#"
[limits]
idle_timeout = "60s"
header_read_timeout = "10s"
max_connections = 400
max_request_size = "150MB"
max_file_size = "100MB"
max_header_size = "16kB"

[greylist]
mode = "enforce"
slow_response = "30s"
duration = "5m"
load_threshold = 0.8
admit_below = 0.7

[static]
dir = "public"

[websocket]
ping_interval = "20s"
"#,
        &[],
    )
    .unwrap();
    assert_eq!(c.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.max_request_size, 150_000_000);
    assert_eq!(c.max_file_size, 100_000_000);
    assert_eq!(c.max_header_size, 16_000);
    assert_eq!(c.greylist.mode, GreylistMode::Enforce);
    assert_eq!(c.greylist.duration, Duration::from_secs(300));
    assert_eq!(c.greylist.admit_below, 0.7);
    assert_eq!(c.static_dir, Some(PathBuf::from("/etc/portico/public")));
    assert_eq!(c.websocket_ping_interval, Some(Duration::from_secs(20)));
    let d = parse_in("", &[]).unwrap();
    assert_eq!(d.greylist.mode, GreylistMode::Report);
    assert_eq!(d.websocket_ping_interval, None);
    let e = parse_in("[greylist]\nmode = \"strict\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("greylist.mode"), "{e}");
    let e = parse_in("[greylist]\nadmit_below = 1.5\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("greylist.admit_below"), "{e}");
}

#[test]
fn built_in_defaults_serve_plain_http_and_a_file_without_listen_plain_does_not() {
    let d = parse(BUILT_IN, None, Path::new("."), &[]).unwrap();
    assert_eq!(d.listen_plain, Some("127.0.0.1:8080".parse().unwrap()));
    assert!(matches!(d.tls, TlsSource::Development));
    assert!(d.demo);
    let f = parse_in("[server]\nlisten = \"127.0.0.1:1\"\n", &[]).unwrap();
    assert_eq!(f.listen_plain, None);
}

#[test]
fn environment_overrides_use_double_underscores() {
    let c = parse_in(
        EXAMPLE,
        &[
            ("PORTICO_SERVER__ADMIN_LISTEN", "127.0.0.1:9191"),
            (
                "PORTICO_SERVER__DOMAINS",
                "[\"a.localhost\", \"b.localhost\"]",
            ),
            ("PORTICO_PROXY__RESPONSE_TIMEOUT", "3s"),
            ("PORTICO_SERVER__LISTEN_PLAIN", ""),
            ("PORTICO_ADMIN_TOKEN", "not-an-override"),
        ],
    )
    .unwrap();
    assert_eq!(c.admin_listen, "127.0.0.1:9191".parse().unwrap());
    assert_eq!(c.domains, vec!["a.localhost", "b.localhost"]);
    assert_eq!(c.response_timeout, Duration::from_secs(3));
    assert_eq!(c.listen_plain, None);
}

#[test]
fn errors_name_the_file_line_key_and_reason() {
    let e = parse_in("[server]\nlisten = \n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/etc/portico/portico.toml:2:"), "{e}");
    let e = parse_in("[server]\nlisten = \"nowhere\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("server.listen") && e.contains("nowhere"), "{e}");
    let e = parse_in("[server]\nlistn = \"127.0.0.1:1\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("listn"), "{e}");
    let e = parse_in("[proxy]\nconnect_timeout = \"soon\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("proxy.connect_timeout"), "{e}");
    let e = parse_in("[server]\ndatabase = \"mysql://u:secret@h/db\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("server.database") && !e.contains("secret"),
        "{e}"
    );
}

#[test]
fn notification_timing_defaults_and_bounds() {
    let c = parse_in("", &[]).unwrap();
    assert_eq!(c.notifications.connect_timeout, Duration::from_secs(25));
    assert_eq!(c.notifications.max_connect_timeout, Duration::from_secs(50));
    let c = parse_in(
        "[notifications]\nconnect_timeout = \"10s\"\nsession_grace = \"2m\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.notifications.connect_timeout, Duration::from_secs(10));
    assert_eq!(c.notifications.session_grace, Duration::from_secs(120));
    let e = parse_in("[notifications]\nmax_connect_timeout = \"60s\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("limits.idle_timeout"), "{e}");
    let e = parse_in(
        "[notifications]\nconnect_timeout = \"40s\"\nmax_connect_timeout = \"30s\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("notifications.connect_timeout"), "{e}");
    let e = parse_in("[notifications]\nsession_grace = \"0s\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("notifications.session_grace"), "{e}");
    // A longer idle timeout allows longer polls.
    let c = parse_in(
        "[limits]\nidle_timeout = \"5m\"\n[notifications]\nmax_connect_timeout = \"4m\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.notifications.max_connect_timeout,
        Duration::from_secs(240)
    );
}

#[test]
fn durations_and_sizes_parse_with_units() {
    assert_eq!(duration("k", "100ms").unwrap(), Duration::from_millis(100));
    assert_eq!(duration("k", "12h").unwrap(), Duration::from_secs(43200));
    assert!(duration("k", "12").is_err());
    assert_eq!(size("k", "16kB").unwrap(), 16000);
    assert_eq!(size("k", "150MB").unwrap(), 150_000_000);
    assert!(size("k", "lots").is_err());
    assert!(
        duration("k", "99999999999999999d").is_err(),
        "overflow is an error, not a panic"
    );
}

#[test]
fn passwords_are_masked_in_messages() {
    assert_eq!(
        mask_password("postgres://u:pw@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
    assert_eq!(mask_password("postgres://h/db"), "postgres://h/db");
    assert!(!mask_password("postgres://u@h/db?password=secret").contains("secret"));
}

#[test]
fn a_cluster_needs_a_name_a_link_a_long_secret_and_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster.secret");
    std::fs::write(&secret, format!("{}\n", "ab".repeat(32))).unwrap();
    let short = dir.path().join("short.secret");
    std::fs::write(&short, "tooshort").unwrap();
    let config = |database: &str, cluster: &str| {
        parse(
            &format!("[server]\ndatabase = \"{database}\"\n[cluster]\n{cluster}"),
            None,
            dir.path(),
            &[],
        )
    };
    let pg = "postgres://portico@127.0.0.1/portico";
    let c = config(
        pg,
        "node = \"node-1\"\nlink_listen = \"127.0.0.1:7443\"\nsecret_file = \"cluster.secret\"\n",
    )
    .unwrap()
    .cluster
    .unwrap();
    assert_eq!(c.node, "node-1");
    assert_eq!(c.link_advertise, "127.0.0.1:7443");
    assert_eq!(
        c.secret.len(),
        64,
        "the trailing newline is not part of the secret"
    );
    for (database, cluster, needle) in [
        (
            "sqlite:///tmp/p.db",
            "node = \"n\"\nlink_listen = \"127.0.0.1:1\"\nsecret_file = \"cluster.secret\"\n",
            "PostgreSQL",
        ),
        (
            pg,
            "link_listen = \"127.0.0.1:1\"\nsecret_file = \"cluster.secret\"\n",
            "cluster.node",
        ),
        (
            pg,
            "node = \"Node_1\"\nlink_listen = \"127.0.0.1:1\"\nsecret_file = \"cluster.secret\"\n",
            "cluster.node",
        ),
        (
            pg,
            "node = \"n\"\nsecret_file = \"cluster.secret\"\n",
            "cluster.link_listen",
        ),
        (
            pg,
            "node = \"n\"\nlink_listen = \"somewhere\"\nsecret_file = \"cluster.secret\"\n",
            "cluster.link_listen",
        ),
        (
            pg,
            "node = \"n\"\nlink_listen = \"127.0.0.1:1\"\n",
            "cluster.secret_file",
        ),
        (
            pg,
            "node = \"n\"\nlink_listen = \"127.0.0.1:1\"\nsecret_file = \"short.secret\"\n",
            "at least 32",
        ),
    ] {
        let e = format!("{:#}", config(database, cluster).unwrap_err());
        assert!(e.contains(needle), "{needle}: {e}");
    }
    let alone = parse("", None, dir.path(), &[]).unwrap();
    assert!(alone.cluster.is_none());
    assert_eq!(alone.public_port, 8443, "by default the listener's port");
    let behind = parse("[server]\npublic_port = 443\n", None, dir.path(), &[]).unwrap();
    assert_eq!(behind.public_port, 443);
    assert!(parse("[server]\npublic_port = 0\n", None, dir.path(), &[]).is_err());
}

#[test]
fn backend_ca_file_loads_its_certificates_or_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let load = |proxy: &str| {
        let text = format!("[proxy]\n{proxy}\n");
        parse(&text, None, dir.path(), &[])
    };
    assert!(load("").unwrap().backend_roots.is_empty());

    let ca = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let c = load(r#"backend_ca_file = "ca.pem""#).unwrap();
    assert_eq!(c.backend_roots.len(), 1);
    assert_eq!(c.backend_roots[0].as_ref(), ca.der().as_ref());

    let missing = load(r#"backend_ca_file = "nowhere.pem""#)
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("proxy.backend_ca_file: cannot read"),
        "{missing}"
    );
    assert!(missing.contains("nowhere.pem"), "{missing}");

    std::fs::write(dir.path().join("key.pem"), "not a certificate\n").unwrap();
    let empty = load(r#"backend_ca_file = "key.pem""#)
        .unwrap_err()
        .to_string();
    assert!(empty.contains("holds no PEM certificate"), "{empty}");

    let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    std::fs::write(dir.path().join("bad.pem"), garbage).unwrap();
    let bad = load(r#"backend_ca_file = "bad.pem""#)
        .unwrap_err()
        .to_string();
    assert!(bad.contains("certificate 1 of"), "{bad}");
    assert!(bad.contains("is not usable as a CA"), "{bad}");
}
