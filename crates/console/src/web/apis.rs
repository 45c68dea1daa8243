//! The console reads through the same in-process API services the gateway routes to,
//! as the signed-in caller: each request carries a copy of the incoming request's
//! [`RequestContext`], so the API applies its own role rules and the caller's tenant.

use super::error::PageError;
use crate::registry_api::OperatorCaller;
use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use portico_gateway::body::Body;
use portico_gateway::{InProcess, RequestContext};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The largest answer the console reads from an API.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// One API service, called on behalf of one request's caller.
pub struct Api<'a> {
    /// The API's name, for error messages.
    name: &'static str,
    service: Option<&'a Arc<dyn InProcess>>,
    context: &'a RequestContext,
    /// Set for the registry API, called for the platform operator.
    operator: Option<OperatorCaller>,
}

impl<'a> Api<'a> {
    pub fn new(
        name: &'static str,
        service: Option<&'a Arc<dyn InProcess>>,
        context: &'a RequestContext,
    ) -> Api<'a> {
        Api {
            name,
            service,
            context,
            operator: None,
        }
    }

    /// The same API, the request vouched for as the operator's (the registry API).
    pub fn vouched_as_operator(mut self, operator: OperatorCaller) -> Api<'a> {
        self.operator = Some(operator);
        self
    }

    /// `GET path` (the path under the API's root, with its query), the JSON answer read
    /// as `T`. A 403 becomes [`PageError::Forbidden`], a 404 [`PageError::NotFound`].
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, PageError> {
        let service = self.service.ok_or_else(|| {
            PageError::Unavailable(format!("the {} API is not running", self.name))
        })?;
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(http::header::ACCEPT, "application/json")
            .body(portico_gateway::body::empty())
            .map_err(|e| PageError::Unavailable(format!("bad request path {path}: {e}")))?;
        request.extensions_mut().insert(self.context.clone());
        if let Some(operator) = &self.operator {
            request.extensions_mut().insert(operator.clone());
        }
        let response = service.call(request).await;
        let status = response.status();
        let bytes = read_body(response.into_body())
            .await
            .map_err(|e| PageError::Unavailable(format!("the {} API: {e}", self.name)))?;
        match status {
            StatusCode::OK => serde_json::from_slice(&bytes).map_err(|e| {
                PageError::Unavailable(format!(
                    "the {} API answered {path} unreadably: {e}",
                    self.name
                ))
            }),
            StatusCode::FORBIDDEN => Err(PageError::Forbidden(error_message(&bytes))),
            StatusCode::NOT_FOUND => Err(PageError::NotFound(error_message(&bytes))),
            StatusCode::UNAUTHORIZED => Err(PageError::SignedOut),
            other => Err(PageError::Unavailable(format!(
                "the {} API answered {path} with {other}: {}",
                self.name,
                error_message(&bytes)
            ))),
        }
    }
}

/// The whole body, at most [`MAX_ANSWER_BYTES`]. A boxed future of its own: inside an
/// `async fn` the compiler cannot prove the collecting future `Send` (the boxed body
/// error's elided lifetime).
fn read_body(body: Body) -> BoxFuture<'static, Result<Bytes, String>> {
    http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .map(|collected| collected.map(|c| c.to_bytes()).map_err(|e| e.to_string()))
        .boxed()
}

/// The `message` of an API error answer (`{status, error, message}`), or its text.
fn error_message(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).chars().take(300).collect())
}
