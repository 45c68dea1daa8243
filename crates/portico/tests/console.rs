//! The web console through `portico serve`: served to a registered tenant on
//! `{tenant}-console.…` behind the session login, its pages built from the APIs as the
//! signed-in user, and its actions reaching the APIs on the same host.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::time::Duration;
use support::*;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
"#;

const HOST: &str = "demo-console.eu1.portico.localhost";
const PASSWORD: &str = "correct horse battery staple";

/// Signs `user` in on the console host; returns the `Cookie` header of the session.
fn login(portico: &Portico, user: &str) -> (String, String) {
    login_on(portico, HOST, user)
}

/// Signs `user` in on `host` (the login page's tenant is the host's); returns the
/// `Cookie` header of the session and its CSRF token.
fn login_on(portico: &Portico, host: &str, user: &str) -> (String, String) {
    let form = format!(
        "username={user}&password={}&return=/",
        PASSWORD.replace(' ', "+")
    );
    let (status, headers) = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        &format!("Host: {host}"),
        "-d",
        &form,
        &portico.plain_url("127.0.0.1", "/login"),
    ]);
    assert_eq!(status, 303, "{headers}");
    let session = cookie_value(&headers, "SESSION");
    let xsrf = cookie_value(&headers, "XSRF-TOKEN");
    (
        format!("Cookie: SESSION={session}; XSRF-TOKEN={xsrf}"),
        xsrf,
    )
}

fn add_user(portico: &Portico, name: &str, role: &str) {
    portico.admin(&[
        "user",
        "add",
        "--tenant",
        "demo",
        "--name",
        name,
        "--role",
        role,
        "--password",
        PASSWORD,
    ]);
}

#[test]
fn the_console_serves_its_pages_in_a_session_and_refuses_the_administration_to_users() {
    let portico = Portico::start(CONFIG, &[]);
    add_user(&portico, "ada", "admin");
    add_user(&portico, "ulf", "user");
    let host = format!("Host: {HOST}");
    let url = |path: &str| portico.plain_url("127.0.0.1", path);

    // Not signed in: the browser is sent to the login page.
    assert!(within(Duration::from_secs(10), || {
        curl(&["-o", "/dev/null", "-H", &host, &url("/")]).0 == 302
    })
    .is_some());

    let (admin, xsrf) = login(&portico, "ada");
    let (status, page) = curl(&["-H", &host, "-H", &admin, &url("/")]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<html lang=\"en\">"), "{page}");
    assert!(page.contains("<nav id=\"console-nav\" aria-label=\"Console\">"));
    assert!(page.contains("href=\"/admin\""));
    assert!(page.contains("<ul id=\"tree\">"));

    // An action as the page script sends it: to the API on the console's own host, with
    // the CSRF token; the page then lists the new site.
    let (status, answer) = curl(&[
        "-H",
        &host,
        "-H",
        &admin,
        "-H",
        &format!("X-XSRF-TOKEN: {xsrf}"),
        "-H",
        &format!("Origin: http://{HOST}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name":"harbour"}"#,
        &url("/api/remoteservices/v1/sites"),
    ]);
    assert_eq!(status, 201, "{answer}");
    let (_, page) = curl(&["-H", &host, "-H", &admin, &url("/")]);
    assert!(page.contains("<li data-site=\"harbour\">"), "{page}");
    let (status, page) = curl(&["-H", &host, "-H", &admin, &url("/admin")]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<section id=\"registry\""), "{page}");
    assert!(page.contains("data-webapp=\"console\""), "{page}");
    let (status, css) = curl(&["-H", &host, "-H", &admin, &url("/assets/console.css")]);
    assert_eq!(status, 200);
    assert!(css.contains("--accent"));

    let (user, _) = login(&portico, "ulf");
    let (status, page) = curl(&["-H", &host, "-H", &user, &url("/")]);
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("href=\"/admin\""), "{page}");
    let (status, page) = curl(&["-H", &host, "-H", &user, &url("/admin")]);
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("may not use this page"), "{page}");
}

const OPERATOR_HOST: &str = "management-console.eu1.portico.localhost";

/// A registry action as the Registry page's script sends it: JSON to the console route on
/// its own host, with the session cookie, the CSRF token and the host's origin.
fn registry_action(
    portico: &Portico,
    host: &str,
    (cookie, xsrf): (&str, &str),
    path: &str,
    body: &str,
) -> (u16, String) {
    curl(&[
        "-H",
        &format!("Host: {host}"),
        "-H",
        cookie,
        "-H",
        &format!("X-XSRF-TOKEN: {xsrf}"),
        "-H",
        &format!("Origin: http://{host}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &portico.plain_url("127.0.0.1", path),
    ])
}

#[test]
fn the_operator_changes_the_registry_from_the_console_and_tenant_admins_cannot() {
    let portico = Portico::start(CONFIG, &[]);
    portico.admin(&[
        "user",
        "passwd",
        "--tenant",
        "management",
        "--name",
        "operator",
        "--password",
        PASSWORD,
    ]);
    add_user(&portico, "ada", "admin");
    let url = |path: &str| portico.plain_url("127.0.0.1", path);
    let operator_host = format!("Host: {OPERATOR_HOST}");

    // The operator's console is behind the login like every tenant's.
    assert!(within(Duration::from_secs(10), || {
        curl(&["-o", "/dev/null", "-H", &operator_host, &url("/registry")]).0 == 302
    })
    .is_some());
    let (operator, xsrf) = login_on(&portico, OPERATOR_HOST, "operator");
    let (status, page) = curl(&["-H", &operator_host, "-H", &operator, &url("/registry")]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<form data-action=\"add-tenant\""), "{page}");
    assert!(page.contains("<tr data-tenant=\"demo\">"), "{page}");
    assert!(!page.contains("href=\"/admin\""), "{page}");
    let (status, _) = curl(&[
        "-o",
        "/dev/null",
        "-H",
        &operator_host,
        "-H",
        &operator,
        &url("/"),
    ]);
    assert_eq!(status, 303, "the operator's home is the Registry");

    // Without the CSRF token the gateway refuses the action.
    let (status, _) = curl(&[
        "-H",
        &operator_host,
        "-H",
        &operator,
        "-H",
        &format!("Origin: http://{OPERATOR_HOST}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name":"nocsrf"}"#,
        &url("/registry/api/tenants"),
    ]);
    assert_eq!(status, 403);
    let (status, answer) = registry_action(
        &portico,
        OPERATOR_HOST,
        (&operator, &xsrf),
        "/registry/api/tenants",
        r#"{"name":"newco"}"#,
    );
    assert_eq!(status, 201, "{answer}");
    let tenants = portico.admin(&["tenant", "list"]);
    assert!(tenants.contains("newco"), "{tenants}");
    assert!(!tenants.contains("nocsrf"), "{tenants}");
    assert!(!tenants.contains("management"), "{tenants}");

    // The operator's session reaches no API through the console host: the operators'
    // tenant is served the console only.
    for api in [
        "/api/remoteservices/v1/devices",
        "/api/identity/v1/users",
        "/api/registry/v1/tenants",
    ] {
        let (status, body) = curl(&["-H", &operator_host, "-H", &operator, &url(api)]);
        assert_eq!(status, 404, "{api}: {body}");
    }

    // A tenant administrator's session cannot use the operator's routes.
    let (admin, admin_xsrf) = login(&portico, "ada");
    let (status, answer) = registry_action(
        &portico,
        HOST,
        (&admin, &admin_xsrf),
        "/registry/api/tenants",
        r#"{"name":"sneaky"}"#,
    );
    assert_eq!(status, 403, "{answer}");
    let (status, _) = curl(&[
        "-o",
        "/dev/null",
        "-H",
        &format!("Host: {HOST}"),
        "-H",
        &admin,
        &url("/registry"),
    ]);
    assert_eq!(status, 403);
    // Nor is it a session on the operator's host.
    let (status, _) = curl(&[
        "-o",
        "/dev/null",
        "-H",
        &operator_host,
        "-H",
        &admin,
        &url("/registry"),
    ]);
    assert_eq!(status, 302);
    let tenants = portico.admin(&["tenant", "list"]);
    assert!(!tenants.contains("sneaky"), "{tenants}");
}
