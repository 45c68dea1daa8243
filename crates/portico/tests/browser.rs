//! `portico serve` in a real headless Chromium: pages, redirects, cookies and the
//! WebSockets that page JavaScript opens through the gateway.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use std::time::Duration;
use support::browser::Browser;
use support::*;

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
