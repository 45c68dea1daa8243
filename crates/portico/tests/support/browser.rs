//! A real headless Chromium, driven through chromedriver (WebDriver), for the tests that
//! need what only a browser does: follow redirects with cookies, submit forms, run page
//! JavaScript that opens WebSockets.
//!
//! `scripts/test` installs Chromium and chromedriver and sets `PORTICO_REQUIRE_BROWSER=1`;
//! without that variable a machine without them skips these tests with a message.

use super::free_port;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A browser session. When it is dropped, chromedriver and every process it started (the
/// browser and its helpers) are killed: killing only the driver would leave the browser
/// running after the test.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. `None` (with a message) when they are
    /// not installed and the test run does not require them.
    pub async fn start() -> Option<Browser> {
        let installed =
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists();
        if !installed {
            assert!(
                std::env::var_os("PORTICO_REQUIRE_BROWSER").is_none(),
                "PORTICO_REQUIRE_BROWSER is set, but {CHROMEDRIVER} or {CHROMIUM} is missing"
            );
            eprintln!(
                "skipped: Chromium and chromedriver are not installed (scripts/test installs them)"
            );
            return None;
        }
        // A port found free can be taken by a parallel test before chromedriver binds it;
        // chromedriver then exits, and it is started again on another port.
        for _ in 0..3 {
            let port = free_port();
            let driver = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            if let Some(browser) = Self::connect(port, driver).await {
                return Some(browser);
            }
        }
        panic!("chromedriver exited at start three times (its port taken, or it cannot run)");
    }

    /// A session with the chromedriver listening on `port`; `None` if it exited (its port
    /// was taken).
    async fn connect(port: u16, mut driver: Child) -> Option<Browser> {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                // No sandbox: test machines run as root, where Chromium's sandbox refuses.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run"],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            if let Ok(Some(_)) = driver.try_wait() {
                return None;
            }
            let attempt = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(client) => break client,
                Err(e) if started.elapsed() > Duration::from_secs(30) => {
                    panic!("chromedriver did not start a browser within 30 s: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Some(Browser { client, driver })
    }

    /// Waits (at most `limit`) until the page's URL satisfies `wanted`; the URL it saw last.
    pub async fn wait_for_url(&self, limit: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let url = self
                .client
                .current_url()
                .await
                .expect("current URL")
                .to_string();
            if wanted(&url) || started.elapsed() > limit {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most `limit`) until `script` (a JavaScript expression) is truthy; its last
    /// value.
    pub async fn wait_for(&self, limit: Duration, script: &str) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let value = self
                .client
                .execute(&format!("return {script};"), vec![])
                .await
                .expect("run page JavaScript");
            let truthy = !matches!(
                value,
                serde_json::Value::Null | serde_json::Value::Bool(false)
            ) && value != serde_json::json!("")
                && value != serde_json::json!(0);
            if truthy || started.elapsed() > limit {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into the element `css` selects.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} on the page: {e}"));
        field.send_keys(text).await.expect("type into the field");
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} on the page: {e}"));
        element.click().await.expect("click");
    }

    /// Picks the option with `value` in the `<select>` that `css` selects.
    pub async fn select(&self, css: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} on the page: {e}"));
        field
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("no option {value:?} in {css}: {e}"));
    }

    /// Saves a screenshot of the page as `target/test-artifacts/{group}/{name}.png`, for
    /// people to look at after a run.
    pub async fn screenshot(&self, group: &str, name: &str) {
        let png = self.client.screenshot().await.expect("take a screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/test-artifacts")
            .join(group);
        std::fs::create_dir_all(&dir).expect("make the artifact folder");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("save the screenshot");
    }

    /// Runs axe-core (installed by `scripts/test` in `tests/accessibility`) on the page and
    /// fails on any violation of impact "serious" or "critical", naming each with the
    /// elements it concerns. Without axe-core installed the check is skipped with a message,
    /// unless `PORTICO_REQUIRE_NODE` is set.
    pub async fn assert_accessible(&self, page: &str) {
        let axe = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/accessibility/node_modules/axe-core/axe.min.js");
        let Ok(source) = std::fs::read_to_string(&axe) else {
            assert!(
                std::env::var_os("PORTICO_REQUIRE_NODE").is_none(),
                "PORTICO_REQUIRE_NODE is set, but {} is missing",
                axe.display()
            );
            eprintln!("skipped the accessibility check of {page}: axe-core is not installed");
            return;
        };
        self.client
            .execute(&source, vec![])
            .await
            .expect("load axe-core into the page");
        let script = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ["violations"] })
              .then(r => done(r.violations
                .filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => v.id + " (" + v.impact + "): " + v.help + " at " +
                          v.nodes.map(n => n.target.join(" ")).join(", "))))
              .catch(e => done(["axe-core failed: " + e]));
        "#;
        let found = self
            .client
            .execute_async(script, vec![])
            .await
            .expect("run axe-core");
        let problems: Vec<String> = serde_json::from_value(found).expect("axe-core's findings");
        assert!(
            problems.is_empty(),
            "accessibility problems on {page}:\n{}",
            problems.join("\n")
        );
    }

    /// Ends the browser session, then the driver and whatever is left of the browser.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Found before the driver goes: then its children would belong to init.
        let started = descendants(self.driver.id());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        if !started.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(started.iter().map(u32::to_string))
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The processes descended from `root` now, from each process's parent in `/proc`.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; the command name may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut next = vec![root];
    while let Some(parent) = next.pop() {
        for &child in children.get(&parent).into_iter().flatten() {
            found.push(child);
            next.push(child);
        }
    }
    found
}
