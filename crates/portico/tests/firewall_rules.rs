//! `portico firewall-rules` prints the allow-list of the deployment it is configured for.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::process::Command;

#[test]
fn the_allow_list_names_the_configured_hosts_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portico.toml");
    std::fs::write(
        &config,
        "[server]\ndomains = [\"iot.example.com\"]\nregions = [\"eu1\", \"us2\"]\n\n\
         [notifications]\nmax_connect_timeout = \"40s\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("--config")
        .arg(&config)
        .args(["firewall-rules", "--port", "8443"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for host in [
        "connectivity.eu1.vpnrts.iot.example.com",
        "wss.us2.vpnrts.iot.example.com",
        "southgate.eu1.iot.example.com",
        "gateway.us2.iot.example.com",
    ] {
        assert!(text.contains(host), "{host} in\n{text}");
    }
    assert!(
        text.contains("TCP 8443") && text.contains("port 8443"),
        "{text}"
    );
    assert!(text.contains("held up to 40 s"), "{text}");

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[server]\nnot_a_key = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("--config")
        .arg(&broken)
        .arg("firewall-rules")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_a_key"));
}
