//! The static content host end to end on loopback (GW-5): files of `[static] dir` with
//! their MIME types, validators and caching; folders; methods; and every way out of the
//! folder refused.

#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod support;

use portico_store::Registry;
use std::path::Path;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STATIC_HOST: &str = "static.eu1.portico.localhost";
const SECRET: &str = "the secret outside the static folder";

/// A static folder with one file per MIME type, a sub-folder with an index, and links
/// that lead out of it; the outside folder holds the secret.
struct Folders {
    root: tempfile::TempDir,
    _outside: tempfile::TempDir,
}

fn folders() -> Folders {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(root.path().join(name), text).unwrap();
    write("index.html", "<h1>home</h1>");
    write("app.css", "body{}");
    write("app.js", "console.log(1)");
    write("icon.svg", "<svg/>");
    write("logo.png", "\u{89}PNG");
    write("data.json", "{}");
    write("module.wasm", "\0asm");
    write(".env", "TOKEN=1");
    std::fs::create_dir(root.path().join("docs")).unwrap();
    write("docs/index.html", "<h1>docs</h1>");
    std::fs::write(outside.path().join("secret.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        root.path().join("leak.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
    std::os::unix::fs::symlink(root.path().join("app.css"), root.path().join("alias.css")).unwrap();
    Folders {
        root,
        _outside: outside,
    }
}

async fn serving(dir: &Path) -> TestGateway {
    let dir = dir.to_path_buf();
    start(&Registry::default(), move |c| c.static_dir = Some(dir)).await
}

/// One request with `Connection: close`, any method.
async fn send(gw: &TestGateway, method: &str, target: &str, extra: &[&str]) -> Raw {
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {STATIC_HOST}\r\nConnection: close\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let bytes = raw_bytes(gw.addr, request.as_bytes()).await;
    parse_responses(&bytes).into_iter().next().unwrap()
}

#[tokio::test]
async fn files_are_served_with_their_mime_types_and_caching() {
    let f = folders();
    let gw = serving(f.root.path()).await;
    let cases = [
        ("/index.html", "text/html; charset=utf-8", "<h1>home</h1>"),
        ("/app.css", "text/css; charset=utf-8", "body{}"),
        (
            "/app.js",
            "text/javascript; charset=utf-8",
            "console.log(1)",
        ),
        ("/icon.svg", "image/svg+xml", "<svg/>"),
        ("/logo.png", "image/png", "\u{89}PNG"),
        ("/data.json", "application/json", "{}"),
        ("/module.wasm", "application/wasm", "\0asm"),
        ("/alias.css", "text/css; charset=utf-8", "body{}"),
    ];
    for (path, content_type, body) in cases {
        let r = send(&gw, "GET", path, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.head);
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        assert_eq!(r.body, body, "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert!(
            r.header("etag").unwrap().starts_with('"'),
            "{path}: strong tag"
        );
        assert!(
            r.header("last-modified").unwrap().ends_with("GMT"),
            "{path}"
        );
        assert!(r.header("x-request-id").is_some(), "{path}");
        let expected_cache = if path.ends_with(".html") {
            "public, no-cache"
        } else {
            "public, max-age=31536000"
        };
        assert_eq!(r.header("cache-control"), Some(expected_cache), "{path}");
    }
    let text = gw.gateway.metrics().encode();
    assert!(
        text.contains("portico_requests_total{class=\"static\",status=\"200\"} 8"),
        "{text}"
    );
}

#[tokio::test]
async fn an_etag_or_date_the_client_has_gets_304_and_a_changed_file_a_new_tag() {
    let f = folders();
    let gw = serving(f.root.path()).await;
    let first = send(&gw, "GET", "/app.css", &[]).await;
    let etag = first.header("etag").unwrap().to_string();
    let modified = first.header("last-modified").unwrap().to_string();

    let same = send(&gw, "GET", "/app.css", &[&format!("If-None-Match: {etag}")]).await;
    assert_eq!(same.status, 304, "{}", same.head);
    assert_eq!(same.body, "");
    assert_eq!(same.header("etag"), Some(etag.as_str()));
    assert_eq!(
        same.header("cache-control"),
        Some("public, max-age=31536000")
    );
    let listed = format!("If-None-Match: \"other\", W/{etag}");
    assert_eq!(send(&gw, "GET", "/app.css", &[&listed]).await.status, 304);
    let since = format!("If-Modified-Since: {modified}");
    assert_eq!(send(&gw, "GET", "/app.css", &[&since]).await.status, 304);
    let other = send(&gw, "GET", "/app.css", &["If-None-Match: \"other\""]).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body, "body{}");

    // Publishing a new version changes the tag, and the old one no longer matches.
    std::fs::write(f.root.path().join("app.css"), "body{color:red}").unwrap();
    let changed = send(&gw, "GET", "/app.css", &[&format!("If-None-Match: {etag}")]).await;
    assert_eq!(changed.status, 200);
    assert_eq!(changed.body, "body{color:red}");
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
}

#[tokio::test]
async fn head_answers_the_headers_of_get_without_a_body() {
    let f = folders();
    let gw = serving(f.root.path()).await;
    let get = send(&gw, "GET", "/app.js", &[]).await;
    let head = send(&gw, "HEAD", "/app.js", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");
    assert_eq!(head.header("content-length"), Some("14"));
    for name in ["content-type", "etag", "last-modified", "cache-control"] {
        assert_eq!(head.header(name), get.header(name), "{name}");
    }
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let f = folders();
    let gw = serving(f.root.path()).await;
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let r = send(&gw, method, "/app.css", &["Content-Length: 0"]).await;
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method}");
        assert_eq!(r.json()["status"], 405);
    }
}

#[tokio::test]
async fn folders_serve_their_index_and_are_redirected_to_their_slash() {
    let f = folders();
    let gw = serving(f.root.path()).await;
    let root = send(&gw, "GET", "/", &[]).await;
    assert_eq!((root.status, root.body.as_str()), (200, "<h1>home</h1>"));
    let docs = send(&gw, "GET", "/docs/", &[]).await;
    assert_eq!((docs.status, docs.body.as_str()), (200, "<h1>docs</h1>"));
    assert_eq!(
        docs.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let bare = send(&gw, "GET", "/docs?x=1", &[]).await;
    assert_eq!(bare.status, 301);
    assert_eq!(bare.header("location"), Some("/docs/?x=1"));
    // A file is not a folder.
    assert_eq!(send(&gw, "GET", "/app.css/", &[]).await.status, 404);
}

#[tokio::test]
async fn missing_files_are_404_gateway_errors_and_no_folder_serves_nothing() {
    let f = folders();
    let gw = serving(f.root.path()).await;
    let r = send(&gw, "GET", "/nope.css", &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No static file at /nope.css");
    let xml = send(&gw, "GET", "/nope.css", &["Accept: application/xml"]).await;
    assert!(
        xml.body.starts_with("<error><status>404</status>"),
        "{}",
        xml.body
    );

    let none = start(&Registry::default(), |_| {}).await;
    let r = get(none.addr, STATIC_HOST, "/app.css", &[]).await;
    assert_eq!(r.status, 404);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("static content host"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn no_path_leads_out_of_the_folder() {
    let f = folders();
    let gw = serving(f.root.path()).await;
    let refused = [
        ("/../secret.txt", 400),
        ("/docs/../../secret.txt", 400),
        ("/%2e%2e/secret.txt", 400),
        ("/%2E%2e/secret.txt", 400),
        ("/docs/%2e%2e%2f%2e%2e%2fsecret.txt", 400),
        ("/docs/..%5c..%5csecret.txt", 400),
        ("/app.css%00.png", 400),
        ("//etc/passwd", 400),
        ("/leak.txt", 404),
        ("/out/secret.txt", 404),
        ("/.env", 404),
        ("/%2eenv", 404),
    ];
    for (target, status) in refused {
        let r = send(&gw, "GET", target, &[]).await;
        assert_eq!(r.status, status, "{target}: {}", r.body);
        assert!(!r.body.contains(SECRET), "{target}");
        assert!(!r.body.contains("TOKEN"), "{target}");
        assert!(r.json()["message"].is_string(), "{target}: a gateway error");
    }
    // An absolute-form target names the host, never a file system path.
    let r = raw_bytes(
        gw.addr,
        format!("GET http://{STATIC_HOST}/etc/passwd HTTP/1.1\r\nHost: {STATIC_HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(parse_responses(&r)[0].status, 404);
}

/// A file larger than any buffer streams through whole; the client counts, never keeps.
#[tokio::test]
async fn large_files_stream_whole() {
    const SIZE: usize = 24 * 1024 * 1024;
    let f = folders();
    {
        use std::io::Write;
        let mut file = std::fs::File::create(f.root.path().join("big.bin")).unwrap();
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..SIZE / chunk.len() {
            file.write_all(&chunk).unwrap();
        }
    }
    let gw = serving(f.root.path()).await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let request =
        format!("GET /big.bin HTTP/1.1\r\nHost: {STATIC_HOST}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut total = 0usize;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            if head.len() < 512 {
                head.extend_from_slice(&buf[..n.min(512)]);
            }
            total += n;
        }
    })
    .await
    .expect("the file arrives within 30 s");
    let head = String::from_utf8_lossy(&head);
    let head_len = head.find("\r\n\r\n").unwrap() + 4;
    assert!(head.contains(&format!("content-length: {SIZE}")), "{head}");
    assert!(
        head.contains("content-type: application/octet-stream"),
        "{head}"
    );
    assert_eq!(total - head_len, SIZE);
}
