//! Long-polling and callback-polling: one HTTP request carries messages in, its response
//! carries the engine's reply array out (a held `/meta/connect` keeps the response open
//! until the engine answers it). Responses are never cached (DC-3: proxies between a
//! device and Portico must not answer a poll from their cache).

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{header, HeaderValue, StatusCode};
use serde_json::Value;

use super::error::{TransportError, JSON_TYPE};
use super::request::{self, Callback, Poll};
use super::{incoming, Endpoint};
use crate::bayeux::ConnectionType;

const SCRIPT_TYPE: &str = "text/javascript;charset=UTF-8";

/// `POST base` (or a suffix): a JSON body, or a form with `message=` (and `jsonp=`).
pub(super) async fn post(State(endpoint): State<Endpoint>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let poll = request::from_post(&parts.headers, body, endpoint.options.max_body).await;
    answer(endpoint, &parts, poll).await
}

/// `GET base?message=<json>&jsonp=<callback>` (or a suffix): callback-polling; without
/// `jsonp` the replies come back as plain JSON, as for a long-poll.
pub(super) async fn get(State(endpoint): State<Endpoint>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let poll = request::from_query(parts.uri.query(), endpoint.options.max_body);
    answer(endpoint, &parts, poll).await
}

async fn answer(
    endpoint: Endpoint,
    request: &Parts,
    poll: Result<Poll, TransportError>,
) -> Response {
    let Poll { messages, callback } = match poll {
        Ok(poll) => poll,
        Err(error) => return error.into_response(),
    };
    let connection_type = match callback {
        Some(_) => ConnectionType::CallbackPolling,
        None => ConnectionType::LongPolling,
    };
    let incoming = incoming(request, connection_type);
    // The request's future is dropped when the client goes away, which ends a held
    // connect: the engine keeps whatever it would have delivered for the next one.
    let deadline = endpoint.engine_deadline();
    let replies =
        match tokio::time::timeout(deadline, endpoint.bayeux.process(messages, &incoming)).await {
            Ok(replies) => replies,
            Err(_) => return TransportError::EngineTimeout(deadline).into_response(),
        };
    let replies = Value::Array(replies).to_string();
    match callback {
        Some(callback) => reply(script(&callback, &replies), SCRIPT_TYPE),
        None => reply(replies, JSON_TYPE),
    }
}

/// The JSONP body: the reply array passed to the client's callback.
fn script(callback: &Callback, replies: &str) -> String {
    format!("{}({replies});", callback.as_str())
}

fn reply(body: String, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
