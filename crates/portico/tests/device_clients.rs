//! Stock device clients against `portico serve` (DC-1, DC-2): a device bootstrapped through
//! the REST API, its managed object, then each public Bayeux client subscribed to the
//! device's operations channel receives an operation an operator creates through
//! `POST /devicecontrol/operations`; and Cumulocity's Python client runs a device's whole
//! flow up to a SUCCESSFUL operation. The clients and their versions are in
//! `docs/device-clients.md`; the scripts in `tests/device_clients/`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::path::PathBuf;
use support::devices::*;
use support::Portico;

/// Listeners on free loopback ports; the rest is the built-in defaults (domain
/// `portico.localhost`, region `eu1`).
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
"#;

const OPERATOR_PASSWORD: &str = "operator correct horse";
const BOOTSTRAP_PASSWORD: &str = "bootstrap battery staple";

/// Portico with tenant `acme`, its operator, and one bootstrapped device with its managed
/// object.
struct Fixture {
    portico: Portico,
    operator: Account,
    device: Account,
    device_id: String,
}

fn fixture(serial: &str) -> Fixture {
    let portico = Portico::start(CONFIG, &[]);
    let operator = tenant_with_admin(&portico, "acme", OPERATOR_PASSWORD);
    let bootstrap = provision_bootstrap_user(&portico, BOOTSTRAP_PASSWORD);
    let device = bootstrap_device(&portico, &operator, &bootstrap, serial);
    let device_id = create_device_object(&portico, &device, &format!("press {serial}"));
    Fixture {
        portico,
        operator,
        device,
        device_id,
    }
}

/// Runs `script` (with `program`) subscribed to the device's operations over `transport`,
/// creates an operation once it has subscribed, and asserts the client printed exactly that
/// operation and exited 0.
fn client_receives_an_operation(program: PathBuf, script: &str, transport: &str, serial: &str) {
    let f = fixture(serial);
    let args = subscriber_args(&f.portico, &f.device, &f.device_id, transport);
    let mut client = ClientProcess::start(&program, script, &args);
    client.wait_for_line(false, STEP_LIMIT, |line| line.starts_with("subscribed to"));

    let operation = create_operation(&f.portico, &f.operator, &f.device_id, "restart the press");
    client.assert_success(CLIENT_LIMIT);

    let received = client.json_lines();
    assert_eq!(received.len(), 1, "{}", client.printed());
    assert_eq!(received[0]["channel"], format!("/{}", f.device_id));
    let data = &received[0]["data"];
    assert_eq!(id_of(data), operation, "{}", client.printed());
    assert_eq!(data["deviceId"], f.device_id.as_str(), "{data}");
    assert_eq!(data["status"], "PENDING", "{data}");
    assert!(data.get("c8y_Restart").is_some(), "{data}");
}

#[test]
fn cometd_over_long_polling_receives_an_operation() {
    let Some(node) = node_for("") else { return };
    client_receives_an_operation(node, "cometd.mjs", "long-polling", "cometd-lp");
}

#[test]
fn cometd_over_websocket_receives_an_operation() {
    let Some(node) = node_for("") else { return };
    client_receives_an_operation(node, "cometd.mjs", "websocket", "cometd-ws");
}

#[test]
fn faye_over_long_polling_receives_an_operation() {
    let Some(node) = node_for("") else { return };
    client_receives_an_operation(node, "faye.js", "long-polling", "faye-lp");
}

#[test]
fn faye_over_websocket_receives_an_operation() {
    let Some(node) = node_for("") else { return };
    client_receives_an_operation(node, "faye.js", "websocket", "faye-ws");
}

#[test]
fn c8y_client_realtime_receives_an_operation() {
    let Some(node) = node_for("c8y") else { return };
    client_receives_an_operation(node, "c8y/c8y_client.js", "long-polling", "c8y-js");
}

#[test]
fn aiocometd_over_long_polling_receives_an_operation() {
    let Some(python) = venv_python() else { return };
    client_receives_an_operation(python, "aiocometd_client.py", "long-polling", "aiocometd");
}

/// c8y-api creates its device, sends measurements and events, finds the operation the
/// operator creates among its PENDING ones and walks it through EXECUTING to SUCCESSFUL;
/// the operator then reads it SUCCESSFUL, and the device's data is there.
#[test]
fn c8y_api_runs_a_device_flow_to_a_successful_operation() {
    let Some(python) = venv_python() else { return };
    let portico = Portico::start(CONFIG, &[]);
    let operator = tenant_with_admin(&portico, "acme", OPERATOR_PASSWORD);
    let bootstrap = provision_bootstrap_user(&portico, BOOTSTRAP_PASSWORD);
    let device = bootstrap_device(&portico, &operator, &bootstrap, "c8y-api");
    let args: Vec<String> = [
        "--url",
        &portico.plain_url("127.0.0.1", ""),
        "--host",
        SOUTHGATE,
        "--tenant",
        &device.tenant,
        "--user",
        &device.user,
        "--password",
        &device.password,
        "--measurements",
        "3",
        "--events",
        "2",
        "--timeout-ms",
        &CLIENT_LIMIT.as_millis().to_string(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let mut flow = ClientProcess::start(&python, "c8y_device_flow.py", &args);

    let created = flow.wait_for_line(true, STEP_LIMIT, |line| line.contains("\"device\""));
    let device_id = id_of(&serde_json::from_str(&created).unwrap());
    let operation = create_operation(&portico, &operator, &device_id, "restart the press");
    flow.assert_success(CLIENT_LIMIT);

    let steps = flow.json_lines();
    let of = |step: &str| steps.iter().filter(|s| s["step"] == step).count();
    assert_eq!(of("measurement"), 3, "{}", flow.printed());
    assert_eq!(of("event"), 2, "{}", flow.printed());
    let pending = steps.iter().find(|s| s["step"] == "pending").unwrap();
    let pending: Vec<String> = pending["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().map_or_else(|| id.to_string(), str::to_string))
        .collect();
    assert_eq!(pending, vec![operation.clone()], "{}", flow.printed());
    let statuses: Vec<_> = steps
        .iter()
        .filter(|s| s["step"] == "operation")
        .map(|s| (id_of(s), s["status"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        statuses,
        [
            (operation.clone(), "EXECUTING".to_string()),
            (operation.clone(), "SUCCESSFUL".to_string())
        ]
    );
    assert_eq!(
        operation_status(&portico, &operator, &operation),
        "SUCCESSFUL"
    );

    // What the device sent is stored under its managed object.
    let measurements = rest_expect(
        &portico,
        &operator,
        "GET",
        &format!("/measurement/measurements?source={device_id}&pageSize=10"),
        None,
        200,
    );
    assert_eq!(
        measurements["measurements"].as_array().map(Vec::len),
        Some(3),
        "{measurements}"
    );
    let events = rest_expect(
        &portico,
        &operator,
        "GET",
        &format!("/event/events?source={device_id}&pageSize=10"),
        None,
        200,
    );
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(2),
        "{events}"
    );
}

/// The clients' token is what they decode back into tenant, user and password.
#[test]
fn tokens_are_standard_base64() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(
        Account::new("t1", "admin", "pw").token(),
        "dDEvYWRtaW46cHc=" // printf 't1/admin:pw' | base64
    );
}
