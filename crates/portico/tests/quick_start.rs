//! The README's Quick start runs Portico with `cargo run`: in a fresh clone that command
//! must pick exactly one binary, `portico`. The workspace holds several binaries (the
//! benchmark tools, the device agent), and a bare `cargo run` among them fails with "could
//! not determine which binary to run". Checked with `cargo metadata`, without building.

use std::path::Path;
use std::process::Command;

#[test]
fn the_quick_start_runs_exactly_the_portico_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("the README");
    let quick_start = readme
        .split("## Quick start")
        .nth(1)
        .expect("a Quick start section");
    let command = quick_start
        .lines()
        .find(|line| line.starts_with("cargo run"))
        .expect("a `cargo run` command in the Quick start");
    let words: Vec<&str> = command
        .split('#')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let cargo_args = words.split(|w| *w == "--").next().unwrap_or_default();
    let value_of = |flags: &[&str]| {
        cargo_args
            .windows(2)
            .find(|pair| flags.contains(&pair[0]))
            .map(|pair| pair[1].to_string())
    };
    let package = value_of(&["-p", "--package"]);
    let bin = value_of(&["--bin"]);

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(&root)
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata failed");
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let default_members: Vec<&str> = metadata["workspace_default_members"]
        .as_array()
        .expect("the workspace's default members")
        .iter()
        .filter_map(|id| id.as_str())
        .collect();
    let mut binaries = Vec::new();
    for pkg in metadata["packages"].as_array().expect("packages") {
        let name = pkg["name"].as_str().unwrap_or_default();
        let id = pkg["id"].as_str().unwrap_or_default();
        let chosen = match &package {
            Some(wanted) => name == wanted,
            None => default_members.contains(&id),
        };
        if !chosen {
            continue;
        }
        for target in pkg["targets"].as_array().into_iter().flatten() {
            let is_bin = target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"));
            let target_name = target["name"].as_str().unwrap_or_default();
            if is_bin && bin.as_deref().is_none_or(|b| b == target_name) {
                binaries.push(target_name.to_string());
            }
        }
    }
    assert_eq!(
        binaries,
        ["portico"],
        "`{}` would run these binaries",
        command.trim()
    );
}
