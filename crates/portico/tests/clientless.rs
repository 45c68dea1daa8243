//! Clientless browser access (RS-10) end to end: `portico serve`, a Device Endpoint as a
//! real `portico endpoint run` process, and a device-side web server that only the agent
//! reaches. A connection session of an `http`/`https` application opens in the browser at
//! `acme-remote-{id}.eu1.portico.localhost` in its user's session: page, stylesheet, image,
//! WebSocket echo; another user, another template, no session are refused; ending the
//! session takes the host away and closes its WebSocket.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::browser::Browser;
use support::device_web;
use support::remote::{local_port, Agent, AgentOptions, Deployment, Side, DEVICE, ENGINEER, SITE};
use support::{curl, sign_in_on, within};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "correct horse battery staple";
/// A web app of the tenant whose host carries the API calls that open and end sessions.
const SHOP: &str = "acme-shop.eu1.portico.localhost";
/// A second user of the tenant, allowed on the site too.
const OTHER: &str = "ann";

/// A signed-in user: the `Cookie` header and the CSRF token.
struct SignedIn {
    cookie: String,
    xsrf: String,
}

/// The deployment with a device-side web server behind an online Device Endpoint, and the
/// applications `hmi` (`http` or `https` to that server) and `raw` (`tcp`, same target).
struct Setup {
    deployment: Deployment,
    _agent: Agent,
    engineer: SignedIn,
    other: SignedIn,
}

impl Setup {
    fn start(tls: bool) -> Setup {
        let deployment = Deployment::start();
        let shop = support::backend("shop", 0);
        deployment.admin(&[
            "webapp",
            "add",
            "--name",
            "shop",
            "--backend",
            &format!("http://{shop}"),
            "--tenant",
            "acme",
            "--auth",
            "none",
        ]);
        deployment.admin(&[
            "user",
            "add",
            "--tenant",
            "acme",
            "--name",
            OTHER,
            "--role",
            "user",
            "--password",
            PASSWORD,
        ]);
        deployment.remote(&[
            "member", "set", "--site", SITE, "--user", OTHER, "--role", "user",
        ]);
        let config = deployment.endpoint("press-ep", Side::Device, &AgentOptions::default());
        let agent = deployment.run_agent(&config);
        let web: SocketAddr = device_web::start(tls);
        let mapping = |port: u16| vec![format!("{}:127.0.0.1:{port}", local_port())];
        let template = if tls { "https" } else { "http" };
        deployment.application("hmi", template, &mapping(web.port()), &[]);
        deployment.application("raw", "tcp", &mapping(web.port()), &[]);
        let engineer = sign_in(&deployment, ENGINEER);
        let other = sign_in(&deployment, OTHER);
        Setup {
            deployment,
            _agent: agent,
            engineer,
            other,
        }
    }

    fn plain(&self) -> u16 {
        self.deployment.portico.plain
    }

    /// A call to the Remote Services API on the shop's host, as `who`.
    fn api(&self, who: &SignedIn, method: &str, path: &str, body: &str) -> (u16, String) {
        let url = format!(
            "http://127.0.0.1:{}/api/remoteservices/v1{path}",
            self.plain()
        );
        let (host, origin) = (format!("Host: {SHOP}"), format!("Origin: http://{SHOP}"));
        let xsrf = format!("X-XSRF-TOKEN: {}", who.xsrf);
        let mut args = vec![
            "-X",
            method,
            "-H",
            &host,
            "-H",
            &who.cookie,
            "-H",
            &origin,
            "-H",
            &xsrf,
        ];
        if !body.is_empty() {
            args.extend(["-H", "Content-Type: application/json", "-d", body]);
        }
        args.push(&url);
        curl(&args)
    }

    /// Opens a connection session of `app` as `who`; its id.
    fn connect(&self, who: &SignedIn, app: &str) -> String {
        let body = format!(r#"{{"device":"{DEVICE}","application":"{app}"}}"#);
        let (status, answer) = self.api(who, "POST", "/connections", &body);
        assert_eq!(status, 201, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        answer["id"].as_str().unwrap().to_string()
    }

    /// `GET path` on the session's host with `cookie` (or none); status and body.
    fn get(&self, id: &str, cookie: Option<&str>, path: &str) -> (u16, String) {
        let host = format!("Host: {}", remote_host(id));
        let url = format!("http://127.0.0.1:{}{path}", self.plain());
        let mut args = vec!["-H", &host, &url];
        if let Some(cookie) = cookie {
            args.extend(["-H", cookie]);
        }
        curl(&args)
    }

    /// `GET /` until the device answers (the agent is online and has the session's permit).
    fn wait_until_served(&self, id: &str) {
        let mut last = (0, String::new());
        let served = within(Duration::from_secs(30), || {
            last = self.get(id, Some(&self.engineer.cookie), "/");
            last.0 == 200
        });
        assert!(served.is_some(), "the device page never came: {last:?}");
    }
}

fn remote_host(id: &str) -> String {
    format!("acme-remote-{id}.eu1.portico.localhost")
}

/// Signs `user` in on the shop's host.
fn sign_in(deployment: &Deployment, user: &str) -> SignedIn {
    let (cookie, xsrf) = sign_in_on(deployment.portico.plain, SHOP, user, PASSWORD);
    SignedIn { cookie, xsrf }
}

/// `curl` writing the body to `file`; the status.
fn download(setup: &Setup, id: &str, path: &str, file: &Path) -> u16 {
    let host = format!("Host: {}", remote_host(id));
    let url = format!("http://127.0.0.1:{}{path}", setup.plain());
    let out = file.to_str().unwrap();
    let (status, _) = curl(&["-H", &host, "-H", &setup.engineer.cookie, "-o", out, &url]);
    status
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to the session's `/ws` in the engineer's session.
async fn websocket(plain: u16, id: &str, cookie: &str) -> Result<Socket, String> {
    let host = remote_host(id);
    let mut request = format!("ws://{host}:{plain}/ws")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "cookie",
        cookie.trim_start_matches("Cookie: ").parse().unwrap(),
    );
    headers.insert("origin", format!("http://{host}:{plain}").parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", plain))
        .await
        .unwrap();
    let (socket, _) =
        tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
            .await
            .map_err(|e| e.to_string())?;
    Ok(socket)
}

async fn echo(socket: &mut Socket, text: &str) -> String {
    socket.send(Message::text(text)).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("an echo within 10 s")
        .expect("the socket stays open")
        .unwrap();
    answer.into_text().unwrap().to_string()
}

/// Whether the socket closes (or fails) within 10 s, skipping any messages before.
async fn closes(socket: &mut Socket) -> bool {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .is_ok()
}

fn device_page_flow(tls: bool) {
    let setup = Setup::start(tls);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let id = setup.connect(&setup.engineer, "hmi");
    setup.wait_until_served(&id);
    let cookie = setup.engineer.cookie.clone();

    // The page, its stylesheet and its image, byte for byte.
    let (status, page) = setup.get(&id, Some(&cookie), "/");
    assert_eq!((status, page.as_str()), (200, device_web::PAGE));
    let (status, style) = setup.get(&id, Some(&cookie), "/style.css");
    assert_eq!((status, style.as_str()), (200, device_web::STYLE));
    let files = tempfile::tempdir().unwrap();
    let logo = files.path().join("logo.png");
    assert_eq!(download(&setup, &id, "/logo.png", &logo), 200);
    assert_eq!(std::fs::read(&logo).unwrap(), device_web::LOGO);

    // The device saw its own host, never Portico's cookies.
    let (status, seen) = setup.get(&id, Some(&cookie), "/seen");
    assert_eq!(status, 200, "{seen}");
    let seen: serde_json::Value = serde_json::from_str(&seen).unwrap();
    assert!(
        seen["host"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{seen}"
    );
    assert_eq!(seen["cookie"], "-", "{seen}");

    // A device cookie for the whole region is dropped; its own host's cookie passes.
    let host = format!("Host: {}", remote_host(&id));
    let url = format!("http://127.0.0.1:{}/cookies", setup.plain());
    let (_, headers) = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        &host,
        "-H",
        &cookie,
        &url,
    ]);
    assert!(headers.contains("plc=1"), "{headers}");
    assert!(!headers.contains("wide=1"), "{headers}");

    // A WebSocket echoes through the host.
    let mut socket = runtime
        .block_on(websocket(setup.plain(), &id, &cookie))
        .unwrap();
    assert_eq!(
        runtime.block_on(echo(&mut socket, "hello device")),
        "hello device"
    );

    // Without a session: pages go to the login page of this host, WebSockets get 401.
    let (status, _) = setup.get(&id, None, "/");
    assert_eq!(status, 302);
    let (_, headers) = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        &host,
        &format!("http://127.0.0.1:{}/plc?x=1", setup.plain()),
    ]);
    assert!(
        headers.contains("location: /login?return=%2Fplc%3Fx%3D1"),
        "{headers}"
    );
    let refused = runtime.block_on(websocket(setup.plain(), &id, "Cookie: SESSION=nothing"));
    assert!(refused.unwrap_err().contains("401"));

    // Another user of the tenant may not use the engineer's session.
    let (status, page) = setup.get(&id, Some(&setup.other.cookie), "/");
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("another user"), "{page}");

    // A tcp application's session does not open in the browser.
    let raw = setup.connect(&setup.engineer, "raw");
    let (status, page) = setup.get(&raw, Some(&cookie), "/");
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("template tcp"), "{page}");

    // The bytes count for the session.
    let counted = within(Duration::from_secs(10), || {
        let (_, answer) = setup.api(&setup.engineer, "GET", &format!("/connections/{id}"), "");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        answer["bytes_up"].as_i64().unwrap() > 0 && answer["bytes_down"].as_i64().unwrap() > 0
    });
    assert!(counted.is_some(), "no bytes were counted for the session");

    // Signing out of Portico closes the WebSockets opened in that sign-in (GW-23).
    let second = sign_in(&setup.deployment, ENGINEER);
    let mut signed_in_socket = runtime
        .block_on(websocket(setup.plain(), &id, &second.cookie))
        .unwrap();
    assert_eq!(
        runtime.block_on(echo(&mut signed_in_socket, "still here")),
        "still here"
    );
    let logout = format!("http://127.0.0.1:{}/logout", setup.plain());
    let (shop_host, shop_origin) = (format!("Host: {SHOP}"), format!("Origin: http://{SHOP}"));
    let xsrf = format!("X-XSRF-TOKEN: {}", second.xsrf);
    let (status, answer) = curl(&[
        "-X",
        "POST",
        "-H",
        &shop_host,
        "-H",
        &second.cookie,
        "-H",
        &shop_origin,
        "-H",
        &xsrf,
        &logout,
    ]);
    assert!(status < 400, "{status} {answer}");
    assert!(
        runtime.block_on(closes(&mut signed_in_socket)),
        "the WebSocket outlived its sign-in"
    );
    // The other sign-in's WebSocket is untouched.
    assert_eq!(runtime.block_on(echo(&mut socket, "and here")), "and here");

    // Ending the session: the WebSocket closes at once, the host no longer serves.
    let (status, answer) = setup.api(&setup.engineer, "DELETE", &format!("/connections/{id}"), "");
    assert!(status == 200 || status == 204, "{status} {answer}");
    let ending = std::time::Instant::now();
    let closed = runtime.block_on(closes(&mut socket));
    assert!(closed, "the WebSocket stayed open after the session ended");
    eprintln!(
        "the WebSocket closed {:?} after the session ended",
        ending.elapsed()
    );
    let (status, page) = setup.get(&id, Some(&cookie), "/");
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("has ended"), "{page}");
    let refused = runtime.block_on(websocket(setup.plain(), &id, &cookie));
    assert!(refused.unwrap_err().contains("410"));
}

#[test]
fn an_http_device_page_with_its_stylesheet_image_and_websocket_is_served_until_the_session_ends() {
    device_page_flow(false);
}

#[test]
fn an_https_device_with_a_self_signed_certificate_is_served_too() {
    device_page_flow(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_the_device_page_renders_and_after_end_it_is_gone() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let setup = tokio::task::spawn_blocking(|| Setup::start(false))
        .await
        .unwrap();
    let plain = setup.plain();
    // The deployment is used from blocking tasks, one at a time.
    let setup = std::sync::Arc::new(std::sync::Mutex::new(setup));
    let id = {
        let setup = setup.clone();
        tokio::task::spawn_blocking(move || {
            let setup = setup.lock().unwrap();
            let id = setup.connect(&setup.engineer, "hmi");
            setup.wait_until_served(&id);
            id
        })
        .await
        .unwrap()
    };
    let origin = format!("http://{}:{plain}", remote_host(&id));

    // The host asks for a login, on itself, and comes back to the device's page.
    browser.client.goto(&format!("{origin}/")).await.unwrap();
    let url = browser
        .wait_for_url(Duration::from_secs(10), |url| url.contains("/login"))
        .await;
    assert_eq!(url, format!("{origin}/login?return=%2F"));
    browser.fill("#username", ENGINEER).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    let landed = browser
        .wait_for_url(Duration::from_secs(10), |url| url == format!("{origin}/"))
        .await;
    assert_eq!(landed, format!("{origin}/"));

    // The stylesheet applied, the image loaded, the page's WebSocket echoed.
    let colour = browser
        .wait_for(
            Duration::from_secs(10),
            "getComputedStyle(document.getElementById('title')).color === 'rgb(200, 10, 20)' \
             && getComputedStyle(document.getElementById('title')).color",
        )
        .await;
    assert_eq!(colour, serde_json::json!(device_web::STYLED_COLOUR));
    let width = browser
        .wait_for(
            Duration::from_secs(10),
            "document.getElementById('logo').complete && document.getElementById('logo').naturalWidth",
        )
        .await;
    assert_eq!(width, serde_json::json!(24));
    let echo = browser
        .wait_for(Duration::from_secs(10), "window.wsEcho")
        .await;
    assert_eq!(echo, serde_json::json!("hello device"));
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = browser.client.screenshot().await.unwrap();
    std::fs::write(artifacts.join("clientless.png"), shot).unwrap();

    // End: the page's WebSocket closes, and a reload shows the ended page.
    {
        let setup = setup.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            let setup = setup.lock().unwrap();
            let path = format!("/connections/{id}");
            let (status, answer) = setup.api(&setup.engineer, "DELETE", &path, "");
            assert!(status == 200 || status == 204, "{status} {answer}");
        })
        .await
        .unwrap();
    }
    let closed = browser
        .wait_for(Duration::from_secs(10), "window.wsClosed")
        .await;
    assert_eq!(closed, serde_json::json!(true));
    browser.client.refresh().await.unwrap();
    let heading = browser
        .wait_for(
            Duration::from_secs(10),
            "(document.querySelector('h1') || {}).textContent",
        )
        .await;
    assert_eq!(heading, serde_json::json!("Connection ended"));
    let shot = browser.client.screenshot().await.unwrap();
    std::fs::write(artifacts.join("clientless-ended.png"), shot).unwrap();
    browser.close().await;
}
