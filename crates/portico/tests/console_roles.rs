//! Who may do what in the web console, through the real `portico serve`: every action the
//! console's pages offer is sent as the page sends it (the API on the console's host, in the
//! user's session, with the CSRF header and the console's origin), once for each role that
//! may not do it (refused, and nothing changed) and once for one that may. And no console
//! page of one tenant shows another tenant's objects.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use serde_json::{json, Value};
use support::remote::{AgentOptions, Deployment, Side, DEVICE, ENGINEER, SITE, TENANT};
use support::{cookie_value, curl};

const PASSWORD: &str = "correct horse battery staple";
const ADMIN: &str = "anna";
const OWNER: &str = "otto";
const CONSOLE: &str = "acme-console.eu1.portico.localhost";
const OTHER_CONSOLE: &str = "other-console.eu1.portico.localhost";

/// A signed-in browser, as curl: the session and CSRF cookies of one login on one host.
struct Session {
    plain: u16,
    host: &'static str,
    session: String,
    xsrf: String,
}

impl Session {
    fn sign_in(d: &Deployment, host: &'static str, user: &str) -> Session {
        let form = format!("username={user}&password={}", PASSWORD.replace(' ', "+"));
        let url = format!("http://127.0.0.1:{}/login", d.portico.plain);
        let origin = format!("Origin: http://{host}:{}", d.portico.plain);
        let (status, headers) = curl(&[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            &format!("Host: {host}:{}", d.portico.plain),
            "-H",
            &origin,
            "-d",
            &form,
            &url,
        ]);
        assert_eq!(status, 303, "{user} signs in on {host}: {headers}");
        Session {
            plain: d.portico.plain,
            host,
            session: cookie_value(&headers, "SESSION"),
            xsrf: cookie_value(&headers, "XSRF-TOKEN"),
        }
    }

    /// A request as the console's page JavaScript makes it; status and body.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.plain);
        let host = format!("Host: {}:{}", self.host, self.plain);
        let cookie = format!("Cookie: SESSION={}; XSRF-TOKEN={}", self.session, self.xsrf);
        let xsrf = format!("X-XSRF-TOKEN: {}", self.xsrf);
        let origin = format!("Origin: http://{}:{}", self.host, self.plain);
        let body = body.map(|b| b.to_string());
        let mut args = vec![
            "-X",
            method,
            "-H",
            &host,
            "-H",
            &cookie,
            "-H",
            &xsrf,
            "-H",
            &origin,
            "-H",
            "Accept: application/json",
        ];
        if let Some(body) = &body {
            args.extend(["-H", "Content-Type: application/json", "-d", body]);
        }
        args.push(&url);
        curl(&args)
    }

    /// A console page (GET, as a browser navigates); status and body.
    fn page(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.plain);
        let host = format!("Host: {}:{}", self.host, self.plain);
        let cookie = format!("Cookie: SESSION={}", self.session);
        curl(&["-H", &host, "-H", &cookie, "-H", "Accept: text/html", &url])
    }
}

/// One console action: the API request its page sends.
struct Action {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Option<Value>,
}

fn action(name: &'static str, method: &'static str, path: &str, body: Option<Value>) -> Action {
    Action {
        name,
        method,
        path: path.to_string(),
        body,
    }
}

const RS: &str = "/api/remoteservices/v1";
const ID: &str = "/api/identity/v1";

/// `acme` as in `support::remote` (site `plant`, device `press-7` with a registered Device
/// Endpoint, the engineer a site user), plus its administrator, the plant's owner, a second
/// site `office` with device `office-pc` that the owner does not own, an SSH application
/// assigned to the press, and the tenant `other` with objects whose names must never show in
/// acme's console.
fn deployment() -> Deployment {
    let d = Deployment::start();
    for (name, role) in [(ADMIN, "admin"), (OWNER, "site-owner")] {
        d.admin(&[
            "user",
            "add",
            "--tenant",
            TENANT,
            "--name",
            name,
            "--role",
            role,
            "--password",
            PASSWORD,
        ]);
    }
    d.remote(&[
        "member",
        "set",
        "--site",
        SITE,
        "--user",
        OWNER,
        "--role",
        "site-owner",
    ]);
    d.remote(&["site", "add", "--name", "office"]);
    d.remote(&["device", "add", "--name", "office-pc", "--site", "office"]);
    d.endpoint("ep-press", Side::Device, &AgentOptions::default());
    d.application("ssh-press", "ssh", &["2222:127.0.0.1:22".to_string()], &[]);
    d.remote(&[
        "app",
        "add",
        "--name",
        "vnc-any",
        "--template",
        "vnc",
        "--map",
        "5900:10.0.0.9:5900",
    ]);
    d.remote(&[
        "assignment",
        "add",
        "--device",
        "office-pc",
        "--app",
        "ssh-press",
    ]);

    d.admin(&["tenant", "add", "other"]);
    d.admin(&[
        "user",
        "add",
        "--tenant",
        "other",
        "--name",
        "olaf",
        "--role",
        "admin",
        "--password",
        PASSWORD,
    ]);
    let other = |args: &[&str]| d.admin(&[args, &["--tenant", "other"]].concat());
    other(&["site", "add", "--name", "hidden-works"]);
    other(&[
        "device",
        "add",
        "--name",
        "secret-press",
        "--site",
        "hidden-works",
    ]);
    other(&[
        "app",
        "add",
        "--name",
        "secret-app",
        "--template",
        "ssh",
        "--map",
        "2200:10.9.9.9:22",
    ]);
    d
}

#[test]
fn every_console_action_is_refused_to_the_roles_that_may_not_do_it() {
    let d = deployment();
    let admin = Session::sign_in(&d, CONSOLE, ADMIN);
    let owner = Session::sign_in(&d, CONSOLE, OWNER);
    let user = Session::sign_in(&d, CONSOLE, ENGINEER);

    // A session of the administrator's, for "end another user's connection".
    let (status, body) = admin.call(
        "POST",
        &format!("{RS}/connections"),
        Some(json!({"device": DEVICE, "application": "ssh-press"})),
    );
    assert_eq!(status, 201, "the administrator connects: {body}");
    let admins_session = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A client and a user for the administrator to remove.
    let (status, body) = admin.call(
        "POST",
        &format!("{ID}/clients"),
        Some(json!({"name": "historian", "confidential": true,
                     "grant_types": ["client_credentials"], "scopes": [], "redirect_uris": []})),
    );
    assert_eq!(status, 201, "{body}");
    let client_id = serde_json::from_str::<Value>(&body).unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string();

    let admin_only = [
        action(
            "add-site",
            "POST",
            &format!("{RS}/sites"),
            Some(json!({"name": "annex"})),
        ),
        action(
            "add-device",
            "POST",
            &format!("{RS}/devices"),
            Some(json!({"name": "lathe-2", "site": SITE, "description": "lathe"})),
        ),
        action(
            "set-member",
            "POST",
            &format!("{RS}/members"),
            Some(json!({"site": "office", "user": ENGINEER, "role": "site-owner"})),
        ),
        action(
            "add-endpoint",
            "POST",
            &format!("{RS}/endpoints"),
            Some(json!({"name": "ep-lathe", "kind": "device", "device": "office-pc"})),
        ),
        action(
            "revoke",
            "POST",
            &format!("{RS}/endpoints/ep-press/revoke"),
            None,
        ),
        action(
            "create-application",
            "POST",
            &format!("{RS}/applications"),
            Some(json!({"name": "web-hmi", "template": "http",
                         "mappings": [{"local_port": 8080, "target_host": "10.0.0.5", "target_port": 80}]})),
        ),
        action(
            "add-user",
            "POST",
            &format!("{ID}/users"),
            Some(json!({"name": "mallory", "role": "admin", "password": PASSWORD})),
        ),
        action(
            "remove-user",
            "DELETE",
            &format!("{ID}/users/{OWNER}"),
            None,
        ),
        action(
            "add-client",
            "POST",
            &format!("{ID}/clients"),
            Some(json!({"name": "sneaky", "confidential": true,
                         "grant_types": ["client_credentials"], "scopes": [], "redirect_uris": []})),
        ),
        action(
            "remove-client",
            "DELETE",
            &format!("{ID}/clients/{client_id}"),
            None,
        ),
        action(
            "end",
            "DELETE",
            &format!("{RS}/connections/{admins_session}"),
            None,
        ),
    ];
    // Assigning: site owners on their own sites only; users never.
    let assign_own = action(
        "assign",
        "POST",
        &format!("{RS}/assignments"),
        Some(json!({"device": DEVICE, "application": "vnc-any"})),
    );
    let assign_elsewhere = action(
        "assign",
        "POST",
        &format!("{RS}/assignments"),
        Some(json!({"device": "office-pc", "application": "vnc-any"})),
    );
    let unassign_elsewhere = action(
        "unassign",
        "DELETE",
        &format!("{RS}/assignments/office-pc/ssh-press"),
        None,
    );
    // Connecting: members of the device's site only.
    let connect_elsewhere = action(
        "connect",
        "POST",
        &format!("{RS}/connections"),
        Some(json!({"device": "office-pc", "application": "ssh-press"})),
    );

    let refused = |who: &Session, role: &str, a: &Action| {
        let (status, body) = who.call(a.method, &a.path, a.body.clone());
        assert_eq!(
            status, 403,
            "{role} may not {} ({} {}), got {status}: {body}",
            a.name, a.method, a.path
        );
    };
    for a in &admin_only {
        refused(&owner, "a site owner", a);
        refused(&user, "a user", a);
    }
    for a in [&assign_own, &assign_elsewhere, &unassign_elsewhere] {
        refused(&user, "a user", a);
    }
    for a in [&assign_elsewhere, &unassign_elsewhere, &connect_elsewhere] {
        refused(&owner, "a site owner off their site", a);
    }
    refused(&user, "a user off their site", &connect_elsewhere);

    // Nothing changed: what the refused calls would have made does not exist, and what they
    // would have removed is still there.
    let listed = |path: &str| admin.call("GET", &format!("{RS}{path}"), None).1;
    assert!(!listed("/sites").contains("annex"));
    assert!(!listed("/devices").contains("lathe-2"));
    assert!(!listed("/endpoints").contains("ep-lathe"));
    assert!(
        listed("/endpoints").contains("\"registered\""),
        "ep-press not revoked"
    );
    assert!(!listed("/applications").contains("web-hmi"));
    assert!(!listed("/assignments").contains("vnc-any"));
    assert!(listed("/assignments").contains("office-pc"));
    let users = admin.call("GET", &format!("{ID}/users"), None).1;
    assert!(
        !users.contains("mallory") && users.contains(OWNER),
        "{users}"
    );
    let clients = admin.call("GET", &format!("{ID}/clients"), None).1;
    assert!(
        !clients.contains("sneaky") && clients.contains(&client_id),
        "{clients}"
    );
    let open = listed("/connections?open=true");
    assert!(open.contains(&admins_session), "{open}");

    // Administration is the administrator's page.
    for (who, role) in [(&owner, "site owner"), (&user, "user")] {
        let (status, body) = who.page("/admin");
        assert_eq!(status, 403, "the {role} opened /admin: {body}");
    }
    assert_eq!(admin.page("/admin").0, 200);

    // The roles that may: the owner assigns on their site, the user connects on theirs, and
    // the administrator does every administrator's action.
    let (status, body) = owner.call(assign_own.method, &assign_own.path, assign_own.body.clone());
    assert_eq!(status, 201, "the owner assigns on their site: {body}");
    let (status, body) = user.call(
        "POST",
        &format!("{RS}/connections"),
        Some(json!({"device": DEVICE, "application": "ssh-press"})),
    );
    assert_eq!(status, 201, "the user connects on their site: {body}");
    for a in &admin_only {
        let (status, body) = admin.call(a.method, &a.path, a.body.clone());
        assert!(
            (200..300).contains(&status),
            "the administrator may {} ({} {}), got {status}: {body}",
            a.name,
            a.method,
            a.path
        );
    }
}

#[test]
fn no_console_page_shows_another_tenants_objects() {
    let d = deployment();
    let admin = Session::sign_in(&d, CONSOLE, ADMIN);
    for path in [
        "/",
        &*format!("/devices/{DEVICE}"),
        "/protocol-hub",
        "/connections",
        "/audit",
        "/admin",
        "/network",
    ] {
        let (status, body) = admin.page(path);
        assert_eq!(status, 200, "{path}: {body}");
        for foreign in ["secret-press", "hidden-works", "secret-app", "olaf"] {
            assert!(!body.contains(foreign), "{path} shows {foreign}");
        }
        assert!(body.contains("<main"), "{path} is a console page");
    }
    // Another tenant's device by name: not found, not shown.
    let (status, body) = admin.page("/devices/secret-press");
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("hidden-works"));
    // Another tenant's objects through the actions: as if they did not exist.
    let (status, _) = admin.call(
        "POST",
        &format!("{RS}/assignments"),
        Some(json!({"device": "secret-press", "application": "ssh-press"})),
    );
    assert_eq!(status, 404);

    // acme's session on other's console is no session there: sent to log in.
    let foreign = Session {
        host: OTHER_CONSOLE,
        ..admin
    };
    let url = format!("http://127.0.0.1:{}/", foreign.plain);
    let (status, headers) = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        &format!("Host: {OTHER_CONSOLE}:{}", foreign.plain),
        "-H",
        &format!("Cookie: SESSION={}", foreign.session),
        &url,
    ]);
    assert_eq!(status, 302, "{headers}");
    assert!(
        headers.to_ascii_lowercase().contains("location: /login"),
        "{headers}"
    );
    // And other's own administrator sees only other's objects.
    let olaf = Session::sign_in(&d, OTHER_CONSOLE, "olaf");
    let (status, body) = olaf.page("/");
    assert_eq!(status, 200);
    assert!(
        body.contains("secret-press") && !body.contains(DEVICE),
        "{body}"
    );
}
