//! The slim `portico-agent` binary: the endpoint commands, their errors under its own name,
//! and no server crate among what it links.

use std::process::Command;

const SERVER_CRATES: [&str; 6] = [
    "portico-gateway",
    "portico-identity",
    "portico-relay",
    "portico-realtime",
    "portico-console",
    "portico-store",
];

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portico-agent"))
}

#[test]
fn offers_the_endpoint_commands_and_nothing_of_the_server() {
    let out = agent().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["endpoint", "connect", "connections"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    for server_command in ["serve", "admin", "firewall-rules"] {
        assert!(
            !help.contains(&format!("  {server_command} ")),
            "{server_command} offered by the agent:\n{help}"
        );
    }
    let out = agent().args(["endpoint", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["run", "register", "rotate", "doctor"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
}

#[test]
fn a_missing_configuration_is_a_clear_error_under_the_agents_name() {
    let out = agent().args(["endpoint", "run"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("portico-agent: the endpoint commands need --config FILE"),
        "{stderr}"
    );
}

#[test]
fn a_bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("endpoint.toml");
    std::fs::write(
        &file,
        "role = \"device\"\nbackend = \"https://wss.eu1.vpnrts.example.com\"\n\
         credentials = \"c.toml\"\nkeep_alive_sec = 20\n",
    )
    .unwrap();
    let out = agent()
        .args(["connections", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("keep_alive_sec"), "{stderr}");
}

#[test]
fn links_no_server_crate() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "portico-agent",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("portico-endpoint"), "{tree}");
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(!SERVER_CRATES.contains(&name), "linked: {line}");
    }
}
