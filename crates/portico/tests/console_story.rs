//! The web console in real headless Chromium, end to end with real peers: the story of a
//! ticketing server reached from a machine (DTT Reverse: an administrator makes the Protocol
//! Application in the Protocol Hub, the site's owner assigns it to the press, an engineer
//! connects it, and a client on the press posts a ticket to a server in the service
//! network), and the forward story (the engineer connects SSH from the device page and runs
//! a command through the port the page shows). Every page is checked with axe-core and
//! photographed into `target/test-artifacts/console/`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::process::Command;
use std::time::Duration;

use support::browser::Browser;
use support::device_web;
use support::peers::ssh::SshServer;
use support::peers::ticket::TicketServer;
use support::remote::{local_port, AgentOptions, Deployment, Side, DEVICE, ENGINEER, SITE};
use support::within;

const PASSWORD: &str = "correct horse battery staple";
/// The tenant's administrator and the site's owner (the engineer comes with the deployment).
const ADMIN: &str = "anna";
const OWNER: &str = "otto";
const SCREENSHOTS: &str = "console";

/// The deployment of `support::remote` with an administrator and a site owner besides the
/// engineer, and both endpoints (the press's and the engineer's) registered and running.
struct Story {
    deployment: Deployment,
    /// Dropped (killed) to take the press offline.
    device_agent: support::remote::Agent,
    _service_agent: support::remote::Agent,
}

impl Story {
    fn start() -> Story {
        let deployment = Deployment::start();
        for (name, role) in [(ADMIN, "admin"), (OWNER, "site-owner")] {
            deployment.admin(&[
                "user",
                "add",
                "--tenant",
                support::remote::TENANT,
                "--name",
                name,
                "--role",
                role,
                "--password",
                PASSWORD,
            ]);
        }
        deployment.remote(&[
            "member",
            "set",
            "--site",
            SITE,
            "--user",
            OWNER,
            "--role",
            "site-owner",
        ]);
        let options = AgentOptions::default();
        let device = deployment.endpoint("ep-press", Side::Device, &options);
        let service = deployment.endpoint("ep-eng", Side::Service, &options);
        let device_agent = deployment.run_agent(&device);
        let service_agent = deployment.run_agent(&service);
        Story {
            deployment,
            device_agent,
            _service_agent: service_agent,
        }
    }

    /// The console's URL for `path` (plain HTTP listener: Chromium treats `*.localhost` as a
    /// secure context, so the session cookies work as over TLS).
    fn console(&self, path: &str) -> String {
        format!(
            "http://acme-console.eu1.portico.localhost:{}{path}",
            self.deployment.portico.plain
        )
    }

    /// A fresh browser signed in to the console as `user`, on the devices page.
    async fn sign_in(&self, user: &str) -> Option<Browser> {
        let browser = Browser::start().await?;
        // A desktop window, tall enough that most pages fit one screenshot.
        browser.client.set_window_size(1280, 1400).await.unwrap();
        browser.client.goto(&self.console("/")).await.unwrap();
        let login = browser
            .wait_for_url(Duration::from_secs(10), |u| u.contains("/login"))
            .await;
        assert!(
            login.contains("/login?return="),
            "not sent to log in: {login}"
        );
        browser.assert_accessible("/login").await;
        browser.fill("#username", user).await;
        browser.fill("#password", PASSWORD).await;
        browser.click("button[type=submit]").await;
        let home = self.console("/");
        let url = browser
            .wait_for_url(Duration::from_secs(10), |u| u == home)
            .await;
        assert_eq!(url, home, "{user} did not land on the console");
        Some(browser)
    }
}

/// Opens `path`, waits for its `<main>`, checks accessibility and saves a screenshot.
async fn visit(browser: &Browser, story: &Story, path: &str, shot: &str) {
    browser.client.goto(&story.console(path)).await.unwrap();
    let main = browser
        .wait_for(Duration::from_secs(10), "document.getElementById('main')")
        .await;
    assert!(!main.is_null(), "{path} has no <main id=main>");
    browser.assert_accessible(path).await;
    browser.screenshot(SCREENSHOTS, shot).await;
}

/// Submits the form `form[data-action=NAME]` and waits (bounded) until `#result` or
/// `#error` says something; `#result`'s text, failing on an error.
async fn submit(browser: &Browser, action: &str) -> String {
    clear_messages(browser).await;
    browser
        .click(&format!("form[data-action='{action}'] button[type=submit]"))
        .await;
    outcome(browser, action).await
}

/// Empties `#result` and `#error`, so the next message is the next action's.
async fn clear_messages(browser: &Browser) {
    browser
        .client
        .execute(
            "for (const id of ['result', 'error']) { const e = document.getElementById(id); if (e) e.textContent = ''; }",
            vec![],
        )
        .await
        .unwrap();
}

/// The text of `#result` once `#result` or `#error` is not empty (at most 20 s); panics
/// with `#error`'s text when that came first.
async fn outcome(browser: &Browser, what: &str) -> String {
    let said = browser
        .wait_for(
            Duration::from_secs(20),
            "(document.getElementById('result').textContent.trim() || document.getElementById('error').textContent.trim()) && [document.getElementById('result').textContent, document.getElementById('error').textContent]",
        )
        .await;
    let (result, error) = (
        said[0].as_str().unwrap_or_default().to_string(),
        said[1].as_str().unwrap_or_default().to_string(),
    );
    assert!(
        error.trim().is_empty() && !result.trim().is_empty(),
        "{what}: result {result:?}, error {error:?}"
    );
    result
}

/// The text of the first element `css` selects, or "" when there is none.
async fn text_of(browser: &Browser, css: &str) -> String {
    let script = format!(
        "const e = document.querySelector({}); return e ? e.textContent : '';",
        serde_json::json!(css)
    );
    let value = browser.client.execute(&script, vec![]).await.unwrap();
    value.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticketing_story_and_ssh_from_the_device_page_in_the_browser() {
    if Browser::start().await.map(drop).is_none() {
        return;
    }
    let Some(tickets) = TicketServer::start() else {
        return;
    };
    let Some(sshd) = SshServer::start() else {
        return;
    };
    let ticket_port: u16 = tickets.url("").rsplit(':').next().unwrap().parse().unwrap();
    let story = Story::start();
    let device_side_port = local_port();

    // The administrator: every page once, then the DTT Reverse application from the Protocol
    // Hub, targeting the engineer's Service Endpoint (in the service network).
    let anna = story.sign_in(ADMIN).await.unwrap();
    browser_tour(&anna, &story).await;
    visit(&anna, &story, "/protocol-hub", "protocol-hub").await;
    anna.fill(
        "form[data-action='create-application'] input[name=label]",
        "Ticketing Server Access",
    )
    .await;
    anna.fill(
        "form[data-action='create-application'] input[name=name]",
        "ticketing-server-access",
    )
    .await;
    anna.select(
        "form[data-action='create-application'] select[name=template]",
        "dtt-reverse",
    )
    .await;
    for (field, value) in [
        ("local_port", device_side_port.to_string()),
        ("target_host", "127.0.0.1".to_string()),
        ("target_port", ticket_port.to_string()),
    ] {
        anna.fill(
            &format!("form[data-action='create-application'] input[name={field}]"),
            &value,
        )
        .await;
    }
    anna.select(
        "form[data-action='create-application'] select[name=target_endpoint]",
        "ep-eng",
    )
    .await;
    submit(&anna, "create-application").await;
    let listed = anna
        .wait_for(
            Duration::from_secs(10),
            "document.querySelector(\"li[data-application='ticketing-server-access']\")",
        )
        .await;
    assert!(!listed.is_null(), "the new application is not listed");
    let shown = text_of(&anna, "li[data-application='ticketing-server-access']").await;
    assert!(
        shown.contains("Ticketing Server Access"),
        "listed as {shown:?}"
    );
    anna.screenshot(SCREENSHOTS, "protocol-hub-created").await;
    anna.close().await;

    // The site's owner assigns it to the press, in the Protocol Hub.
    let otto = story.sign_in(OWNER).await.unwrap();
    visit(&otto, &story, "/protocol-hub", "protocol-hub-site-owner").await;
    otto.select("form[data-action='assign'] select[name=device]", DEVICE)
        .await;
    otto.select(
        "form[data-action='assign'] select[name=application]",
        "ticketing-server-access",
    )
    .await;
    submit(&otto, "assign").await;
    otto.screenshot(SCREENSHOTS, "assigned").await;
    otto.close().await;

    // The engineer connects it from the press's page; the press's endpoint then listens on
    // the device side, and a client there posts a ticket that the server in the service
    // network receives.
    let eng = story.sign_in(ENGINEER).await.unwrap();
    visit(&eng, &story, &format!("/devices/{DEVICE}"), "device-user").await;
    let connect = "button[data-action='connect'][data-app='ticketing-server-access']";
    let shown = connect_and_wait(&eng, connect).await;
    assert!(
        shown.contains(&format!("localhost:{device_side_port}")),
        "the page does not say where the device side listens: {shown}"
    );
    eng.screenshot(SCREENSHOTS, "connected-dtt-reverse").await;
    let url = format!("http://127.0.0.1:{device_side_port}/tickets");
    let mut answer = String::new();
    let posted = within(Duration::from_secs(20), || {
        let out = Command::new("curl")
            .args(["-s", "-m", "5", "-w", "\n%{http_code}", "-d"])
            .arg(r#"{"machine":"press-7","fault":"E42 hydraulic pressure"}"#)
            .args(["-H", "Content-Type: application/json", &url])
            .output()
            .unwrap();
        answer = String::from_utf8_lossy(&out.stdout).to_string();
        answer.ends_with("201")
    });
    assert!(posted.is_some(), "the press's client: {answer}");
    let received = tickets.tickets();
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(received[0].body.contains("E42 hydraulic pressure"));

    // The forward story: SSH on the press, connected from its page; the command line the
    // page shows works (with the test's key and user).
    let ssh_port = local_port();
    story.deployment.application(
        "ssh-press",
        "ssh",
        &[format!("{ssh_port}:127.0.0.1:{}", sshd.port)],
        &[],
    );
    eng.client
        .goto(&story.console(&format!("/devices/{DEVICE}")))
        .await
        .unwrap();
    let shown = connect_and_wait(&eng, "button[data-action='connect'][data-app='ssh-press']").await;
    let command = text_of(&eng, "#result code.command").await;
    assert_eq!(
        command.trim(),
        format!("ssh -p {ssh_port} localhost"),
        "the ready command line, in {shown}"
    );
    eng.screenshot(SCREENSHOTS, "connected-ssh").await;
    let ran = within(Duration::from_secs(20), || {
        let out = sshd.run_via("127.0.0.1", ssh_port, "echo through-the-console");
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("through-the-console")
    });
    assert!(
        ran.is_some(),
        "ssh through the port the page showed never worked"
    );

    // Both sessions are on the connections page, with an End button each; ending the SSH one
    // there closes its port.
    visit(&eng, &story, "/connections", "connections-user").await;
    let rows = eng
        .wait_for(
            Duration::from_secs(10),
            "document.querySelectorAll('tr[data-connection]').length === 2",
        )
        .await;
    assert_eq!(rows, serde_json::json!(true), "two open connections listed");
    let end = "button[data-action='end']";
    let ssh_row = eng
        .client
        .execute(
            "return [...document.querySelectorAll('tr[data-connection]')].find(r => r.textContent.includes('ssh-press')).dataset.connection;",
            vec![],
        )
        .await
        .unwrap();
    let ssh_row = ssh_row.as_str().unwrap().to_string();
    clear_messages(&eng).await;
    eng.click(&format!("{end}[data-connection='{ssh_row}']"))
        .await;
    outcome(&eng, "end").await;
    let closed = within(Duration::from_secs(15), || {
        std::net::TcpStream::connect(("127.0.0.1", ssh_port)).is_err()
    });
    assert!(closed.is_some(), "the SSH port stayed open after End");

    // Clientless: the press's own web page (an HMI), opened from its console page in the
    // browser through the gateway, with its stylesheet, image and WebSocket; after End on
    // the connections page it is gone.
    let hmi = device_web::start(false);
    story.deployment.application(
        "press-hmi",
        "http",
        &[format!("{}:127.0.0.1:{}", local_port(), hmi.port())],
        &["--label", "Press HMI"],
    );
    eng.client
        .goto(&story.console(&format!("/devices/{DEVICE}")))
        .await
        .unwrap();
    connect_and_wait(&eng, "button[data-action='connect'][data-app='press-hmi']").await;
    eng.screenshot(SCREENSHOTS, "connected-http").await;
    let link = eng
        .client
        .execute(
            "return document.querySelector('#result a.open-in-browser').href;",
            vec![],
        )
        .await
        .unwrap();
    let link = link.as_str().unwrap().to_string();
    assert!(link.starts_with("http://acme-remote-"), "{link}");
    eng.client.goto(&link).await.unwrap();
    let styled = eng
        .wait_for(
            Duration::from_secs(15),
            "document.getElementById('title') && getComputedStyle(document.getElementById('title')).color",
        )
        .await;
    assert_eq!(
        styled,
        serde_json::json!(device_web::STYLED_COLOUR),
        "at {link}"
    );
    let width = eng
        .wait_for(
            Duration::from_secs(10),
            "document.getElementById('logo').complete && document.getElementById('logo').naturalWidth",
        )
        .await;
    assert_eq!(width, serde_json::json!(24), "the image loaded");
    let echo = eng.wait_for(Duration::from_secs(10), "window.wsEcho").await;
    assert_eq!(
        echo,
        serde_json::json!("hello device"),
        "the page's WebSocket"
    );
    eng.screenshot(SCREENSHOTS, "clientless-device-page").await;
    visit(&eng, &story, "/connections", "connections-with-http").await;
    let hmi_row = eng
        .client
        .execute(
            "return [...document.querySelectorAll('tr[data-connection]')].find(r => r.textContent.includes('press-hmi')).dataset.connection;",
            vec![],
        )
        .await
        .unwrap();
    let hmi_row = hmi_row.as_str().unwrap().to_string();
    assert!(link.contains(&hmi_row), "{link} is the session {hmi_row}");
    clear_messages(&eng).await;
    eng.click(&format!("{end}[data-connection='{hmi_row}']"))
        .await;
    outcome(&eng, "end").await;
    eng.client.goto(&link).await.unwrap();
    let gone = eng
        .wait_for(
            Duration::from_secs(10),
            "(document.querySelector('h1') || {}).textContent",
        )
        .await;
    assert_eq!(gone, serde_json::json!("Connection ended"));
    eng.screenshot(SCREENSHOTS, "clientless-ended").await;

    // Audit: the two ended sessions are past sessions, and the CSV link gives them too.
    visit(&eng, &story, "/audit", "audit-user").await;
    let past = eng
        .client
        .execute(
            "return [...document.querySelectorAll('#past-sessions tr[data-connection]')].map(r => r.dataset.connection);",
            vec![],
        )
        .await
        .unwrap();
    let past: Vec<String> = serde_json::from_value(past).unwrap();
    for id in [&ssh_row, &hmi_row] {
        assert!(
            past.contains(id),
            "{id} is not among the past sessions {past:?}"
        );
    }
    let csv = eng
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             fetch(document.getElementById('csv').href).then(r => r.text()).then(done, e => done('failed: ' + e));",
            vec![],
        )
        .await
        .unwrap();
    let csv = csv.as_str().unwrap_or_default().to_string();
    assert!(
        csv.starts_with("id,user,device,application,started,ended,end_reason,bytes_up,bytes_down"),
        "{csv}"
    );
    for id in [&ssh_row, &hmi_row] {
        assert!(csv.contains(id.as_str()), "{id} not in the CSV:\n{csv}");
    }

    // The devices page follows the press going offline, without a reload.
    eng.client.goto(&story.console("/")).await.unwrap();
    let online = eng
        .wait_for(Duration::from_secs(15), &device_online_is(true))
        .await;
    assert_eq!(
        online,
        serde_json::json!(true),
        "the press is not shown online"
    );
    eng.client
        .execute("window.notReloaded = true;", vec![])
        .await
        .unwrap();
    drop(story.device_agent);
    let offline = eng
        .wait_for(Duration::from_secs(30), &device_online_is(false))
        .await;
    assert_eq!(
        offline,
        serde_json::json!(true),
        "the press never showed offline"
    );
    let same_page = eng
        .client
        .execute("return window.notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same_page, serde_json::json!(true), "the page was reloaded");
    eng.screenshot(SCREENSHOTS, "devices-offline").await;
    eng.close().await;
}

/// Clicks a connect button and waits for what the page says about the new session.
async fn connect_and_wait(browser: &Browser, button: &str) -> String {
    clear_messages(browser).await;
    browser.click(button).await;
    outcome(browser, button).await
}

/// The administrator's tour: each page of the console, checked and photographed; on the
/// devices page, the press shows online (its endpoint runs).
async fn browser_tour(browser: &Browser, story: &Story) {
    visit(browser, story, "/", "devices").await;
    let online = browser
        .wait_for(Duration::from_secs(15), &device_online_is(true))
        .await;
    assert_eq!(
        online,
        serde_json::json!(true),
        "the press is not shown online"
    );
    // On a tablet, the navigation folds into a menu button.
    browser.client.set_window_size(768, 1024).await.unwrap();
    browser.assert_accessible("/ on a tablet").await;
    browser.screenshot(SCREENSHOTS, "devices-tablet").await;
    browser.client.set_window_size(1280, 1400).await.unwrap();
    for (path, shot) in [
        (&*format!("/devices/{DEVICE}"), "device"),
        ("/connections", "connections"),
        ("/audit", "audit"),
        ("/admin", "administration"),
        ("/network", "network"),
    ] {
        visit(browser, story, path, shot).await;
    }
}

/// A page expression: the press's state in the devices tree is `online`.
fn device_online_is(online: bool) -> String {
    format!(
        "(document.querySelector(\"li[data-device='{DEVICE}'] span.state\") || {{ dataset: {{}} }}).dataset.online === '{online}'"
    )
}

/// The platform operator's console: the Gateway Registry page on `management-console`,
/// checked for accessibility and photographed, and a tenant added from its form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_adds_a_tenant_on_the_registry_page() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let deployment = Deployment::start();
    deployment.admin(&[
        "user",
        "passwd",
        "--tenant",
        "management",
        "--name",
        "operator",
        "--password",
        PASSWORD,
    ]);
    browser.client.set_window_size(1280, 1400).await.unwrap();
    let origin = format!(
        "http://management-console.eu1.portico.localhost:{}",
        deployment.portico.plain
    );
    browser.client.goto(&format!("{origin}/")).await.unwrap();
    browser
        .wait_for_url(Duration::from_secs(10), |u| u.contains("/login"))
        .await;
    browser.fill("#username", "operator").await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    let registry = browser
        .wait_for_url(Duration::from_secs(10), |u| u.ends_with("/registry"))
        .await;
    assert_eq!(registry, format!("{origin}/registry"));
    browser.assert_accessible("/registry").await;
    browser.screenshot(SCREENSHOTS, "operator-registry").await;

    browser
        .fill("form[data-action='add-tenant'] input[name=name]", "globex")
        .await;
    submit(&browser, "add-tenant").await;
    let tenants = deployment.admin(&["tenant", "list"]);
    assert!(tenants.contains("globex"), "{tenants}");
    browser
        .screenshot(SCREENSHOTS, "operator-tenant-added")
        .await;
    browser.close().await;
}
