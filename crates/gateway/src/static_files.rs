//! The static content host (SPEC GW-5): `static.{region}.{domain}` serves the files of
//! one folder (`[static] dir`), read-only.
//!
//! - `GET` and `HEAD` only; other methods get 405 with `Allow`.
//! - A request path is resolved by [`static_path`] alone, which admits only plain
//!   segments: no dot-segments (also percent-encoded), no hidden names, no NUL or control
//!   characters, no encoded separators, no empty segments. The file found is then
//!   canonicalized and must still lie inside the canonical folder, so a symbolic link
//!   cannot lead out of it.
//! - A folder path ending in `/` serves its `index.html`; without the `/` it is
//!   redirected to it, so that the page's relative links resolve.
//! - Responses carry a MIME type by extension, a strong `ETag` from size and modification
//!   time, `Last-Modified`, `Cache-Control` (long for assets, revalidated for HTML) and
//!   `X-Content-Type-Options: nosniff`; `If-None-Match` (or else `If-Modified-Since`)
//!   answers 304. Bodies are streamed from the file. Range requests are not served: a
//!   `Range` header is ignored and the whole file sent, as HTTP allows.

use crate::body::{boxed, empty, Body};
use crate::error::GatewayError;
use futures_util::TryStreamExt;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::StreamBody;
use hyper::body::Frame;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

/// Assets are cached for a year: publish a changed asset under a new path (a version in
/// the folder or file name). Within that year a reload still revalidates by `ETag`.
const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000";
/// HTML pages are the entry points that name the assets: always revalidated (a cheap
/// 304 while unchanged), so that a new page and its new asset paths are seen at once.
const PAGE_CACHE_CONTROL: &str = "public, no-cache";
/// The file served for a folder path ending in `/`.
const INDEX: &str = "index.html";
/// Read size of the streamed body.
const CHUNK: usize = 64 * 1024;

/// A request path resolved to a file path relative to the static folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticPath {
    /// One normal component per segment; empty for `/`.
    pub relative: PathBuf,
    /// The path ended in `/`: it names a folder.
    pub folder: bool,
}

/// Why a request path names no file of the static folder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaticPathError {
    #[error("the path must start with '/'")]
    NotAbsolute,
    #[error("the path contains a '%' not followed by two hexadecimal digits")]
    BadPercent,
    #[error("the path is not UTF-8 once percent-decoded")]
    NotUtf8,
    #[error("the path contains an empty segment ('//')")]
    EmptySegment,
    #[error("the path contains a dot-segment ('.' or '..')")]
    DotSegment,
    #[error("the path contains a character that no served file name has (NUL, control, '/' or '\\' encoded)")]
    BadCharacter,
    #[error("hidden files (names starting with '.') are not served")]
    Hidden,
}

/// Resolves a request path (as received, percent-encoded, without the query) to a path
/// relative to the static folder. Pure: no file system access, fuzzed.
pub fn static_path(path: &str) -> Result<StaticPath, StaticPathError> {
    let rest = path.strip_prefix('/').ok_or(StaticPathError::NotAbsolute)?;
    let (rest, folder) = match rest.strip_suffix('/') {
        Some(rest) => (rest, true),
        None => (rest, rest.is_empty()),
    };
    let mut relative = PathBuf::new();
    if rest.is_empty() {
        return Ok(StaticPath { relative, folder });
    }
    let mut segments = 0usize;
    for raw in rest.split('/') {
        let segment = decode_segment(raw)?;
        check_segment(&segment)?;
        relative.push(segment);
        segments += 1;
    }
    // Whatever the platform's path rules, only plain names may have been pushed.
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if !plain || relative.components().count() != segments {
        return Err(StaticPathError::BadCharacter);
    }
    Ok(StaticPath { relative, folder })
}

/// Percent-decodes one segment, strictly: a stray `%` is an error, not a literal.
fn decode_segment(raw: &str) -> Result<String, StaticPathError> {
    let bytes = raw.as_bytes();
    for (i, _) in raw.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3).ok_or(StaticPathError::BadPercent)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(StaticPathError::BadPercent);
        }
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| StaticPathError::NotUtf8)
}

fn check_segment(segment: &str) -> Result<(), StaticPathError> {
    if segment.is_empty() {
        return Err(StaticPathError::EmptySegment);
    }
    if segment == "." || segment == ".." {
        return Err(StaticPathError::DotSegment);
    }
    if segment
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(StaticPathError::BadCharacter);
    }
    if segment.starts_with('.') {
        return Err(StaticPathError::Hidden);
    }
    Ok(())
}

/// Answers a request on the static host from the folder `root`; its body is not read.
pub async fn serve(root: &Path, request: &Parts) -> Result<Response<Body>, GatewayError> {
    let method = &request.method;
    if method != Method::GET && method != Method::HEAD {
        return Err(GatewayError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("The static content host serves GET and HEAD, not {method}"),
        )
        .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD")));
    }
    let path = request.uri.path();
    let resolved = static_path(path).map_err(|e| match e {
        StaticPathError::Hidden => not_found(path),
        e => GatewayError::bad_request(format!("The path cannot name a static file: {e}")),
    })?;
    let found = match find(root, &resolved).await? {
        Found::File(found) => found,
        Found::Folder => return Ok(redirect_to_folder(request)),
    };
    let (file, metadata) = open(&found.path).await.ok_or_else(|| not_found(path))?;
    let validators = Validators::of(&metadata);
    let mut response = Response::new(empty());
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, cache_control(&found.name));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    validators.insert_into(headers);
    if validators.not_modified(&request.headers) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(response);
    }
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type(&found.name));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(metadata.len()));
    if method == Method::GET {
        // Never more than announced, should the file grow while it streams.
        let reader = file.take(metadata.len());
        let frames = ReaderStream::with_capacity(reader, CHUNK).map_ok(Frame::data);
        *response.body_mut() = boxed(StreamBody::new(frames));
    }
    Ok(response)
}

/// A file found in the folder: where it is, and the name that gives its MIME type.
struct FoundFile {
    path: PathBuf,
    name: PathBuf,
}

enum Found {
    File(FoundFile),
    /// A folder asked for without its trailing `/`.
    Folder,
}

/// Finds the file a resolved path names, inside `root` after symbolic links are followed.
async fn find(root: &Path, resolved: &StaticPath) -> Result<Found, GatewayError> {
    let missing = || not_found(&format!("/{}", resolved.relative.display()));
    let root = tokio::fs::canonicalize(root).await.map_err(|e| {
        tracing::error!(folder = %root.display(), error = %e, "the static folder cannot be read");
        GatewayError::not_found("Static content is not available")
    })?;
    let target = inside(&root, &root.join(&resolved.relative))
        .await
        .ok_or_else(missing)?;
    let metadata = tokio::fs::metadata(&target).await.map_err(|_| missing())?;
    if metadata.is_dir() {
        if !resolved.folder {
            return Ok(Found::Folder);
        }
        let index = inside(&root, &target.join(INDEX))
            .await
            .ok_or_else(missing)?;
        return Ok(Found::File(FoundFile {
            path: index,
            name: PathBuf::from(INDEX),
        }));
    }
    if resolved.folder {
        return Err(missing());
    }
    Ok(Found::File(FoundFile {
        path: target,
        name: resolved.relative.clone(),
    }))
}

/// The canonical form of `path` when it exists and lies inside `root` (canonical).
async fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let canonical = tokio::fs::canonicalize(path).await.ok()?;
    if canonical.starts_with(root) {
        Some(canonical)
    } else {
        tracing::warn!(path = %path.display(), "a symbolic link leads out of the static folder; not served");
        None
    }
}

/// Opens a regular file; its metadata is read from the open file, so both describe the
/// same file even if the name is replaced meanwhile.
async fn open(path: &Path) -> Option<(tokio::fs::File, std::fs::Metadata)> {
    let file = tokio::fs::File::open(path).await.ok()?;
    let metadata = file.metadata().await.ok()?;
    metadata.is_file().then_some((file, metadata))
}

fn not_found(path: &str) -> GatewayError {
    GatewayError::not_found(format!("No static file at {path}"))
}

/// `301` to the folder path with its trailing `/`, query kept. The path was checked by
/// [`static_path`], so it cannot turn into another origin (`//host`).
fn redirect_to_folder(request: &Parts) -> Response<Body> {
    let query = request
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let location = format!("{}/{query}", request.uri.path());
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn is_html(name: &Path) -> bool {
    name.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"))
}

fn cache_control(name: &Path) -> HeaderValue {
    HeaderValue::from_static(if is_html(name) {
        PAGE_CACHE_CONTROL
    } else {
        ASSET_CACHE_CONTROL
    })
}

/// The MIME type by extension; text gets `charset=utf-8`, unknown types are
/// `application/octet-stream` (which `nosniff` keeps from being rendered).
fn content_type(name: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let textual =
        mime.type_() == mime_guess::mime::TEXT || mime.essence_str() == "application/javascript";
    let value = if textual && mime.get_param(mime_guess::mime::CHARSET).is_none() {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// `ETag` and `Last-Modified` of a file. The strong tag is size and modification time in
/// nanoseconds: files are published by writing or renaming them, which changes one or
/// the other, and it costs no read of the file.
struct Validators {
    etag: HeaderValue,
    modified: Option<SystemTime>,
}

impl Validators {
    fn of(metadata: &std::fs::Metadata) -> Validators {
        let modified = metadata.modified().ok();
        let nanos = modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let etag = format!("\"{:x}-{:x}\"", metadata.len(), nanos);
        Validators {
            etag: HeaderValue::from_str(&etag)
                .unwrap_or_else(|_| HeaderValue::from_static("\"0\"")),
            modified,
        }
    }

    fn insert_into(&self, headers: &mut HeaderMap) {
        headers.insert(header::ETAG, self.etag.clone());
        if let Some(modified) = self.modified {
            if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
                headers.insert(header::LAST_MODIFIED, value);
            }
        }
    }

    /// RFC 9110 §13.1.2 and §13.1.4: `If-None-Match` (weak comparison) decides when
    /// present; otherwise `If-Modified-Since`, to the second.
    fn not_modified(&self, request: &HeaderMap) -> bool {
        if request.contains_key(header::IF_NONE_MATCH) {
            return request
                .get_all(header::IF_NONE_MATCH)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .any(|tag| tag == "*" || opaque(tag) == opaque(self.etag.to_str().unwrap_or("")));
        }
        let since = request
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        match (since, self.modified) {
            (Some(since), Some(modified)) => {
                let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                secs(modified) <= secs(since)
            }
            _ => false,
        }
    }
}

/// An entity tag without its weakness marker, for the weak comparison.
fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> StaticPath {
        static_path(path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn plain_paths_resolve_segment_by_segment() {
        assert_eq!(ok("/").relative, PathBuf::new());
        assert!(ok("/").folder);
        assert_eq!(ok("/a/b.css").relative, PathBuf::from("a/b.css"));
        assert!(!ok("/a/b.css").folder);
        assert!(ok("/a/").folder);
        assert_eq!(ok("/a%20b.js").relative, PathBuf::from("a b.js"));
        assert_eq!(ok("/%C3%A9t%C3%A9.txt").relative, PathBuf::from("été.txt"));
    }

    #[test]
    fn escapes_from_the_folder_are_refused() {
        use StaticPathError::*;
        let cases = [
            ("a/b", NotAbsolute),
            ("/../etc/passwd", DotSegment),
            ("/a/..", DotSegment),
            ("/%2e%2e/x", DotSegment),
            ("/%2E./x", DotSegment),
            ("/./x", DotSegment),
            ("/a%2f..%2fb", BadCharacter),
            ("/..%5c..%5cwin.ini", BadCharacter),
            ("/a%00.html", BadCharacter),
            ("//etc/passwd", EmptySegment),
            ("/a//b", EmptySegment),
            ("/.env", Hidden),
            ("/a/.git/config", Hidden),
            ("/a%2", BadPercent),
            ("/a%zz", BadPercent),
            ("/%ff", NotUtf8),
        ];
        for (path, expected) in cases {
            assert_eq!(static_path(path), Err(expected), "{path}");
        }
    }

    #[test]
    fn text_types_carry_a_charset_and_unknown_ones_are_octet_streams() {
        let ct = |name: &str| content_type(Path::new(name)).to_str().unwrap().to_string();
        assert_eq!(ct("a.html"), "text/html; charset=utf-8");
        assert_eq!(ct("a.js"), "text/javascript; charset=utf-8");
        assert_eq!(ct("a.mjs"), "application/javascript; charset=utf-8");
        assert_eq!(ct("a.json"), "application/json");
        assert_eq!(ct("a.wasm"), "application/wasm");
        assert_eq!(ct("a.unknownext"), "application/octet-stream");
    }
}
