//! Gateway errors (SPEC GW-15): every error the gateway itself answers has one shape,
//! JSON or XML by the client's `Accept`, with the request id, and never a backend's
//! internals. This is the one place where errors become responses.

use crate::body::{full, Body};
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

/// An error answered by the gateway on behalf of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub status: StatusCode,
    pub message: String,
    /// Extra headers, e.g. `Allow` on a 405 or `Retry-After` on a 503.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl GatewayError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> GatewayError {
        GatewayError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> GatewayError {
        GatewayError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn bad_request(message: impl Into<String>) -> GatewayError {
        GatewayError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> GatewayError {
        self.headers.push((name, value));
        self
    }
}

/// The representation a client asked for with `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    Json,
    Xml,
    /// The client accepts neither: the gateway answers 406 instead (GW-15).
    NotAcceptable,
}

/// Chooses JSON or XML from `Accept` headers: no `Accept` means JSON; otherwise the
/// acceptable type with the higher quality wins, JSON on a tie.
pub fn negotiate(headers: &HeaderMap) -> ErrorFormat {
    let mut seen = false;
    let (mut json, mut xml) = (0u16, 0u16);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut params = range.split(';');
            let media = params
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if media.is_empty() {
                continue;
            }
            seen = true;
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .next()
                .map_or(1000, parse_quality);
            let (j, x) = match media.as_str() {
                "*/*" => (true, true),
                "application/*" => (true, true),
                "text/*" => (false, true),
                "application/json" | "application/problem+json" => (true, false),
                "application/xml" | "text/xml" | "application/problem+xml" => (false, true),
                _ => (false, false),
            };
            if j {
                json = json.max(q);
            }
            if x {
                xml = xml.max(q);
            }
        }
    }
    if !seen || (json > 0 && json >= xml) {
        ErrorFormat::Json
    } else if xml > 0 {
        ErrorFormat::Xml
    } else {
        ErrorFormat::NotAcceptable
    }
}

/// A quality value in thousandths; anything unparsable counts as 0 (not acceptable).
fn parse_quality(q: &str) -> u16 {
    let q = q.trim();
    match q.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => (v * 1000.0).round() as u16,
        _ => 0,
    }
}

/// Renders `err` for a request with these headers and this request id.
pub fn render(err: &GatewayError, request_headers: &HeaderMap, request_id: &str) -> Response<Body> {
    render_as(err, negotiate(request_headers), request_id)
}

pub fn render_as(err: &GatewayError, format: ErrorFormat, request_id: &str) -> Response<Body> {
    let (status, headers, text) = render_parts(err, format, request_id);
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The status, headers and body text of an error response; shared by the normal path and
/// the head guard, which writes its responses as raw bytes.
pub fn render_parts(
    err: &GatewayError,
    format: ErrorFormat,
    request_id: &str,
) -> (StatusCode, HeaderMap, String) {
    let (status, message) = match format {
        ErrorFormat::NotAcceptable => (
            StatusCode::NOT_ACCEPTABLE,
            "The Accept header allows neither application/json nor application/xml, the formats of gateway errors",
        ),
        _ => (err.status, err.message.as_str()),
    };
    let reason = status.canonical_reason().unwrap_or("Error");
    let (content_type, text) = match format {
        ErrorFormat::Xml => (
            "application/xml; charset=utf-8",
            format!(
                "<error><status>{}</status><error>{}</error><message>{}</message><requestId>{}</requestId></error>",
                status.as_u16(),
                xml_escape(reason),
                xml_escape(message),
                xml_escape(request_id)
            ),
        ),
        _ => (
            "application/json",
            // Written by hand to keep the documented field order (GW-15).
            format!(
                "{{\"status\":{},\"error\":{},\"message\":{},\"requestId\":{}}}",
                status.as_u16(),
                json_string(reason),
                json_string(message),
                json_string(request_id)
            ),
        ),
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(crate::REQUEST_ID, id);
    }
    if format != ErrorFormat::NotAcceptable {
        for (name, value) in &err.headers {
            headers.append(name.clone(), value.clone());
        }
    }
    (status, headers, text)
}

/// A gateway error response as HTTP/1.1 bytes, with `Connection: close`, for the places
/// that answer below the HTTP library (the head guard, the connection limit).
pub fn http1_bytes(err: &GatewayError, format: ErrorFormat, request_id: &str) -> bytes::Bytes {
    let (status, headers, text) = render_parts(err, format, request_id);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    for (name, value) in headers.iter() {
        if let Ok(v) = value.to_str() {
            out.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    out.push_str(&format!(
        "connection: close\r\ncontent-length: {}\r\n\r\n{text}",
        text.len()
    ));
    bytes::Bytes::from(out)
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn accept_chooses_the_error_format() {
        assert_eq!(negotiate(&HeaderMap::new()), ErrorFormat::Json);
        assert_eq!(negotiate(&accept("application/json")), ErrorFormat::Json);
        assert_eq!(negotiate(&accept("application/xml")), ErrorFormat::Xml);
        assert_eq!(negotiate(&accept("text/xml")), ErrorFormat::Xml);
        assert_eq!(negotiate(&accept("*/*")), ErrorFormat::Json);
        assert_eq!(
            negotiate(&accept("text/html, application/xml;q=0.9, */*;q=0.8")),
            ErrorFormat::Xml
        );
        assert_eq!(
            negotiate(&accept("application/json;q=0.5, application/xml")),
            ErrorFormat::Xml
        );
        assert_eq!(negotiate(&accept("text/plain")), ErrorFormat::NotAcceptable);
        assert_eq!(
            negotiate(&accept("application/json;q=0")),
            ErrorFormat::NotAcceptable
        );
    }

    #[test]
    fn xml_errors_are_escaped() {
        let err = GatewayError::not_found("no <app> & co");
        let resp = render_as(&err, ErrorFormat::Xml, "r1");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "application/xml; charset=utf-8"
        );
    }

    #[test]
    fn json_errors_keep_the_documented_field_order() {
        let (_, _, text) =
            render_parts(&GatewayError::not_found("a \"b\""), ErrorFormat::Json, "r1");
        assert_eq!(
            text,
            r#"{"status":404,"error":"Not Found","message":"a \"b\"","requestId":"r1"}"#
        );
    }

    #[test]
    fn not_acceptable_replaces_the_status() {
        let err = GatewayError::not_found("x");
        let resp = render_as(&err, ErrorFormat::NotAcceptable, "r1");
        assert_eq!(resp.status(), StatusCode::NOT_ACCEPTABLE);
    }
}
