//! Why a page could not be shown, and the page that says so (always a whole console
//! page with its status, never a stack of empty forms).

use super::layout::{page, Viewer};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use maud::html;

#[derive(Debug)]
pub enum PageError {
    /// The caller's role may not use the page (or the API refused what it shows).
    Forbidden(String),
    NotFound(String),
    /// No signed-in caller (the gateway lets only sessions through, so rarely seen).
    SignedOut,
    /// An API or the store failed.
    Unavailable(String),
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::Forbidden(why) => write!(f, "not allowed: {why}"),
            PageError::NotFound(why) => write!(f, "not found: {why}"),
            PageError::SignedOut => f.write_str("not signed in"),
            PageError::Unavailable(why) => f.write_str(why),
        }
    }
}

impl PageError {
    /// The error page for `viewer` (whose nav it still shows).
    pub fn render(self, viewer: Option<&Viewer>) -> Response {
        let (status, title, text) = match self {
            PageError::Forbidden(why) => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                format!("Your role may not use this page. {why}"),
            ),
            PageError::NotFound(why) => (StatusCode::NOT_FOUND, "Not found", why),
            PageError::SignedOut => (
                StatusCode::UNAUTHORIZED,
                "Signed out",
                "Sign in to use the console.".to_string(),
            ),
            PageError::Unavailable(why) => {
                tracing::warn!(%why, "a console page could not be built");
                (
                    StatusCode::BAD_GATEWAY,
                    "Not available",
                    format!("This page cannot be shown right now: {why}"),
                )
            }
        };
        let body = html! {
            p.notice { (text) }
            p { a href="/" { "Back to the devices" } }
        };
        (status, page(viewer, title, body)).into_response()
    }
}
