//! `portico serve` in a real headless Chromium: pages, redirects, cookies and the
//! WebSockets that page JavaScript opens through the gateway.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::time::Duration;
use support::browser::Browser;
use support::*;

/// Listeners on free loopback ports; the rest is the built-in defaults.
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:{tls}"
listen_plain = "127.0.0.1:{plain}"
admin_listen = "127.0.0.1:{admin}"
"#;

#[tokio::test]
async fn the_demo_page_echoes_over_a_websocket_its_javascript_opens() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let portico = tokio::task::spawn_blocking(Portico::start_with_defaults)
        .await
        .unwrap();
    let url = format!("http://demo-hello.eu1.portico.localhost:{}/", portico.plain);
    browser.client.goto(&url).await.unwrap();
    // The page sends "hello from your browser" as soon as its WebSocket opens.
    let echo = browser
        .wait_for(
            Duration::from_secs(10),
            "(document.getElementById('echo') || {}).textContent",
        )
        .await;
    assert_eq!(echo, serde_json::json!("echo: hello from your browser"));
    browser.close().await;
}

/// The page of the protected app: opens a WebSocket offering two subprotocols and keeps
/// what happens to it where the test can read it.
const APP_PAGE: &str = r#"<!DOCTYPE html><html><head><title>shop</title></head><body><h1>shop</h1>
<script>
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws", ["ocpp2.0", "ocpp1.6"]);
ws.onopen = () => { window.wsProtocol = ws.protocol; ws.send("hello from the page"); };
ws.onmessage = (e) => { window.wsEcho = e.data; };
ws.onclose = (e) => { window.wsClose = e.code; };
</script></body></html>"#;

/// A backend that serves [`APP_PAGE`] at `/` and a WebSocket echo at `/ws` that picks the
/// client's first subprotocol it knows (`ocpp1.6` before `ocpp2.0`: the server's order).
fn app_backend() -> std::net::SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = [0u8; 4096];
                    let n = stream.peek(&mut head).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
                    if !head.contains("upgrade: websocket") {
                        let mut stream = stream;
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{APP_PAGE}",
                            APP_PAGE.len()
                        );
                        let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, response.as_bytes()).await;
                        return;
                    }
                    // The handshake callback's error type is tungstenite's, large by design.
                    #[allow(clippy::result_large_err)]
                    let choose = |request: &Request, mut response: Response| {
                        let offered = request
                            .headers()
                            .get("sec-websocket-protocol")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
                        if let Some(chosen) = ["ocpp1.6", "ocpp2.0"].into_iter().find(|p| offered.contains(p)) {
                            response
                                .headers_mut()
                                .insert("sec-websocket-protocol", chosen.parse().unwrap());
                        }
                        Ok(response)
                    };
                    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, choose).await else {
                        return;
                    };
                    while let Some(Ok(message)) = socket.next().await {
                        let data = message.is_text() || message.is_binary();
                        if data && socket.send(message).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    });
    addr
}

#[tokio::test]
async fn a_user_logs_in_uses_the_apps_websocket_and_is_disconnected_on_logout() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let portico = tokio::task::spawn_blocking(|| {
        let portico = Portico::start(CONFIG, &[]);
        let backend = format!("http://{}", app_backend());
        portico.admin(&["tenant", "add", "acme"]);
        portico.admin(&[
            "webapp",
            "add",
            "--name",
            "shop",
            "--backend",
            &backend,
            "--tenant",
            "acme",
            "--websocket",
            "/ws",
            "--auth",
            "session",
        ]);
        portico.admin(&[
            "user",
            "add",
            "--tenant",
            "acme",
            "--name",
            "olga",
            "--role",
            "user",
            "--password",
            "correct horse battery staple",
        ]);
        portico
    })
    .await
    .unwrap();
    let origin = format!("http://acme-shop.eu1.portico.localhost:{}", portico.plain);

    // The protected app sends the browser to the login page, and back after login.
    let mut login_url = String::new();
    for _ in 0..100 {
        // The registration reaches the gateway within a second or so.
        browser.client.goto(&format!("{origin}/")).await.unwrap();
        login_url = browser.client.current_url().await.unwrap().to_string();
        if login_url.contains("/login") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(login_url, format!("{origin}/login?return=%2F"));
    browser.fill("#username", "olga").await;
    browser
        .fill("#password", "correct horse battery staple")
        .await;
    browser.click("button[type=submit]").await;
    let landed = browser
        .wait_for_url(Duration::from_secs(10), |url| url == format!("{origin}/"))
        .await;
    assert_eq!(landed, format!("{origin}/"));

    // Page JavaScript opens a WebSocket through the gateway; the backend's choice of
    // subprotocol reaches it, and the echo comes back.
    let echo = browser
        .wait_for(Duration::from_secs(10), "window.wsEcho")
        .await;
    assert_eq!(echo, serde_json::json!("hello from the page"));
    let protocol = browser
        .wait_for(Duration::from_secs(1), "window.wsProtocol")
        .await;
    assert_eq!(protocol, serde_json::json!("ocpp1.6"));

    // Logging out (from the same page, which stays open) closes that WebSocket with 1008.
    browser
        .client
        .execute(
            "fetch('/logout', {method: 'POST', credentials: 'same-origin'}); return true;",
            vec![],
        )
        .await
        .unwrap();
    let close = browser
        .wait_for(Duration::from_secs(10), "window.wsClose")
        .await;
    assert_eq!(close, serde_json::json!(1008));

    // And the app asks for a login again.
    browser.client.goto(&format!("{origin}/")).await.unwrap();
    let url = browser.client.current_url().await.unwrap().to_string();
    assert!(url.starts_with(&format!("{origin}/login")), "{url}");
    browser.close().await;
}

/// The test OpenID provider (the `oidc-provider` package on loopback, see
/// `crates/identity/tests/oidc-provider`), with Portico's callback on `host` as its one
/// redirect URI; `None` where Node.js or the package is missing and not required.
struct OpenIdProvider {
    child: std::process::Child,
    issuer: String,
}

impl Drop for OpenIdProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_openid_provider(redirect_uri: &str, secret: &str) -> Option<OpenIdProvider> {
    use std::io::BufRead;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../identity/tests/oidc-provider");
    if !dir.join("node_modules/oidc-provider").exists() {
        assert!(
            std::env::var_os("PORTICO_REQUIRE_NODE").is_none(),
            "PORTICO_REQUIRE_NODE is set, but {}/node_modules is missing",
            dir.display()
        );
        eprintln!("skipped: the test OpenID provider is not installed (scripts/test installs it)");
        return None;
    }
    let mut child = std::process::Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("OIDC_PORT", "0")
        .env("OIDC_CLIENT_ID", "portico")
        .env("OIDC_CLIENT_SECRET", secret)
        .env("OIDC_REDIRECT_URIS", redirect_uri)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start node");
    let mut line = String::new();
    let mut output = std::io::BufReader::new(child.stdout.take().unwrap());
    output.read_line(&mut line).unwrap();
    // The provider may write more; a closed pipe would end it.
    std::thread::spawn(move || std::io::copy(&mut output, &mut std::io::sink()));
    let issuer = line
        .trim()
        .strip_prefix("issuer=")
        .unwrap_or_else(|| panic!("the OpenID provider did not start: {line:?}"))
        .to_string();
    Some(OpenIdProvider { child, issuer })
}

#[tokio::test]
async fn a_user_logs_in_through_the_tenants_external_openid_provider() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let portico = tokio::task::spawn_blocking(|| {
        let portico = Portico::start(CONFIG, &[]);
        let backend = format!("http://{}", app_backend());
        portico.admin(&["tenant", "add", "acme"]);
        portico.admin(&[
            "webapp",
            "add",
            "--name",
            "shop",
            "--backend",
            &backend,
            "--tenant",
            "acme",
            "--websocket",
            "/ws",
            "--auth",
            "session",
        ]);
        portico
    })
    .await
    .unwrap();
    let origin = format!("http://acme-shop.eu1.portico.localhost:{}", portico.plain);
    let secret = "a-client-secret-for-this-test-only";
    let Some(provider) = start_openid_provider(&format!("{origin}/login/oidc/callback"), secret)
    else {
        return;
    };
    portico.admin(&[
        "oidc",
        "set",
        "--tenant",
        "acme",
        "--issuer",
        &provider.issuer,
        "--client-id",
        "portico",
        "--client-secret",
        secret,
    ]);

    // The app sends the browser to the login page, which offers the organisation's login.
    let mut login_url = String::new();
    for _ in 0..100 {
        browser.client.goto(&format!("{origin}/")).await.unwrap();
        login_url = browser.client.current_url().await.unwrap().to_string();
        if login_url.contains("/login") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        login_url.starts_with(&format!("{origin}/login")),
        "{login_url}"
    );
    browser.click("a.button[href^='/login/oidc']").await;

    // At the provider: its own login page (any name signs in as that `sub`), then consent.
    let at_provider = browser
        .wait_for_url(Duration::from_secs(10), |url| {
            url.starts_with(&provider.issuer)
        })
        .await;
    assert!(at_provider.starts_with(&provider.issuer), "{at_provider}");
    browser.fill("input[name=login]", "erika").await;
    browser.fill("input[name=password]", "anything").await;
    browser.click("button[type=submit]").await;
    let consent = browser
        .wait_for(Duration::from_secs(10), "document.querySelector('button[type=submit]') && location.pathname.includes('/interaction/') && document.body.innerText.includes('Continue')")
        .await;
    if consent == serde_json::json!(true) {
        browser.click("button[type=submit]").await;
    }

    // Back at Portico: signed in as the provider's user, on the app, with its WebSocket.
    let landed = browser
        .wait_for_url(Duration::from_secs(15), |url| url == format!("{origin}/"))
        .await;
    if landed != format!("{origin}/") {
        let page = browser.client.source().await.unwrap_or_default();
        panic!("the browser ended at {landed} (consent seen: {consent}):\n{page}");
    }
    let echo = browser
        .wait_for(Duration::from_secs(10), "window.wsEcho")
        .await;
    assert_eq!(echo, serde_json::json!("hello from the page"));
    browser.close().await;
}
