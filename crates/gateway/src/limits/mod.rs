//! Request limits enforced while bodies stream (GW-13): the request size (declared or
//! counted), the size of each part of a `multipart/form-data` body, the idle timeout of
//! a client connection, and the lingering close that lets a client still sending read
//! the 413 it was answered. See `docs/limits.md`.

pub mod body;
pub mod idle;
pub mod linger;
pub mod multipart;

use crate::body::{boxed, Body};
use crate::config::GatewayConfig;
use crate::error::GatewayError;
use body::{LimitedBody, Tripwire};
use http::{header, HeaderValue, Request, StatusCode};
use http_body::Body as _;

/// The limit a request body passed. Also the error its body yields, so that a backend
/// connection that fails because of it can be recognised ([`exceeded_in`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[repr(u8)]
pub enum Exceeded {
    #[error("Request content length limit exceeded")]
    RequestSize = 1,
    #[error("File size limit exceeded in multipart request")]
    FileSize = 2,
}

impl Exceeded {
    /// The 413 answered for it. The connection closes after it: the rest of the body
    /// is never read.
    pub fn error(self) -> GatewayError {
        GatewayError::new(StatusCode::PAYLOAD_TOO_LARGE, self.to_string())
            .with_header(header::CONNECTION, HeaderValue::from_static("close"))
    }

    /// The label of the refusal in metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Exceeded::RequestSize => "request_size",
            Exceeded::FileSize => "file_size",
        }
    }
}

/// Whether `err`, or an error it was caused by, is a request body over a limit.
pub fn exceeded_in(err: &(dyn std::error::Error + 'static)) -> Option<Exceeded> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(exceeded) = e.downcast_ref::<Exceeded>() {
            return Some(*exceeded);
        }
        next = e.source();
    }
    None
}

/// Refuses a request whose declared length is over the limit, and otherwise wraps its
/// body so that it fails once it passes a limit while streaming. The tripwire tells
/// which limit, if any, the body passed; there is none when nothing needs counting.
pub fn limit_request(
    request: Request<Body>,
    config: &GatewayConfig,
) -> Result<(Request<Body>, Option<Tripwire>), Exceeded> {
    // A request without a body (the HTTP library ends a body at its declared length, so
    // a declared length is 0 here) is over no limit, and most requests have none: their
    // headers are not looked up.
    if request.body().is_end_stream() {
        return Ok((request, None));
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > config.max_request_size) {
        return Err(Exceeded::RequestSize);
    }
    let framing = multipart::framing(
        request
            .headers()
            .get_all(header::CONTENT_TYPE)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    // A body with a valid Content-Length is held to it by the HTTP library; only a
    // chunked or a multipart body needs counting.
    if declared.is_some() && framing == multipart::Framing::NotMultipart {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let limited = LimitedBody::new(
        body,
        config.max_request_size,
        &framing,
        config.max_file_size,
    );
    let tripwire = limited.tripwire();
    Ok((Request::from_parts(parts, boxed(limited)), Some(tripwire)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{empty, full};

    fn config() -> GatewayConfig {
        let mut config = GatewayConfig::new(vec![], vec![]);
        config.max_request_size = 10;
        config
    }

    fn request(headers: &[(&str, &str)], body: Body) -> Request<Body> {
        let mut builder = Request::post("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(body).unwrap()
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_at_once() {
        let r = request(&[("content-length", "11")], full("01234567890"));
        assert_eq!(
            limit_request(r, &config()).err(),
            Some(Exceeded::RequestSize)
        );
        let r = request(&[("content-length", "10")], full("0123456789"));
        let (_, tripwire) = limit_request(r, &config()).unwrap();
        assert!(tripwire.is_none(), "a declared length needs no counting");
    }

    #[test]
    fn streamed_and_multipart_bodies_are_counted() {
        let r = request(&[], full("abc"));
        assert!(limit_request(r, &config()).unwrap().1.is_some());
        let r = request(
            &[
                ("content-length", "3"),
                ("content-type", "multipart/form-data; boundary=x"),
            ],
            full("abc"),
        );
        assert!(limit_request(r, &config()).unwrap().1.is_some());
        let r = request(&[], empty());
        assert!(limit_request(r, &config()).unwrap().1.is_none());
    }

    #[test]
    fn the_limit_is_found_behind_other_errors() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] Box<dyn std::error::Error + Send + Sync>);
        let err = Outer(Box::new(Exceeded::FileSize));
        assert_eq!(exceeded_in(&err), Some(Exceeded::FileSize));
        assert_eq!(exceeded_in(&Outer("other".into())), None);
    }
}
