//! `/.well-known/openid-configuration` and `/.well-known/jwks.json` (RFC 8615).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::header;

use crate::Identity;

/// Short: a new key signs as soon as it is made, so a verifier must soon see it (one that
/// meets an unknown `kid` should fetch the set again).
const CACHE: &str = "public, max-age=60";

pub async fn openid_configuration(State(identity): State<Identity>) -> Response {
    (
        [(header::CACHE_CONTROL, CACHE)],
        Json(identity.openid_configuration()),
    )
        .into_response()
}

pub async fn jwks(State(identity): State<Identity>) -> Response {
    (
        [
            (header::CACHE_CONTROL, CACHE),
            (header::CONTENT_TYPE, "application/jwk-set+json"),
        ],
        Json(identity.jwks()),
    )
        .into_response()
}
