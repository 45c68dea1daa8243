//! What every handler gets from a request: the authenticated caller ([`Ctx`]), the
//! paging and filter parameters of the query string, and the JSON body ([`JsonBody`]),
//! each failing with the device API's error shape.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use portico_store::{Fragments, Page};
use serde_json::Value;

use super::error::ApiError;
use super::time::parse_ms;
use super::RestState;
use crate::accounts::Caller;
use crate::ClientAddr;

/// The largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// Cumulocity's paging: 5 items a page unless asked, at most 2,000.
pub const DEFAULT_PAGE_SIZE: i64 = 5;
pub const MAX_PAGE_SIZE: i64 = 2000;

/// The tenant whose bootstrap user fetches device credentials.
pub const BOOTSTRAP_TENANT: &str = "management";

/// An authenticated request to the device API by anyone but the bootstrap user.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub caller: Caller,
    /// The API area of the path, for error codes.
    pub area: &'static str,
    /// `scheme://host` of the request, for `self` links.
    pub base: String,
    pub path: String,
    pub query: Vec<(String, String)>,
}

/// An authenticated request by the bootstrap user (role `device-bootstrap` of tenant
/// `management`), the only caller of `POST /devicecontrol/deviceCredentials`.
#[derive(Debug, Clone)]
pub struct BootstrapCtx(pub Ctx);

/// The API area a path belongs to: its first segment.
pub fn area_of(path: &str) -> &'static str {
    match path.trim_start_matches('/').split('/').next() {
        Some("inventory") => "inventory",
        Some("identity") => "identity",
        Some("measurement") => "measurement",
        Some("event") => "event",
        Some("alarm") => "alarm",
        Some("devicecontrol") => "devicecontrol",
        _ => "undefined",
    }
}

/// `scheme://host` as the client addressed this server.
fn base_of(parts: &Parts) -> String {
    let proto = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| v == "http" || v == "https")
        .or_else(|| parts.uri.scheme_str().map(str::to_string))
        .unwrap_or_else(|| "http".into());
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .filter(|h| !h.is_empty() && !h.contains(['/', '"', '\\', ' ']))
        .unwrap_or_else(|| "localhost".into());
    format!("{proto}://{host}")
}

async fn authenticate(parts: &Parts, state: &RestState) -> Result<Ctx, ApiError> {
    let path = parts.uri.path().to_string();
    let client = parts
        .extensions
        .get::<ClientAddr>()
        .map(|c| c.0)
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let caller = match parts.headers.get(header::AUTHORIZATION).map(|v| v.to_str()) {
        None => Err(crate::AuthError::Missing),
        Some(Ok(value)) if !value.trim().is_empty() => {
            state.accounts.authenticate(value, client).await
        }
        Some(Ok(_)) => Err(crate::AuthError::Missing),
        Some(Err(_)) => Err(crate::AuthError::Invalid(
            "the Authorization header is not ASCII text".into(),
        )),
    }
    .map_err(ApiError::auth)?;
    let query = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    Ok(Ctx {
        caller,
        area: area_of(&path),
        base: base_of(parts),
        path,
        query,
    })
}

impl FromRequestParts<Arc<RestState>> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<RestState>,
    ) -> Result<Ctx, ApiError> {
        let ctx = authenticate(parts, state).await?;
        if ctx.caller.is_bootstrap() {
            return Err(ApiError::forbidden(
                ctx.area,
                "the bootstrap user may only request device credentials",
            ));
        }
        Ok(ctx)
    }
}

impl FromRequestParts<Arc<RestState>> for BootstrapCtx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<RestState>,
    ) -> Result<BootstrapCtx, ApiError> {
        let ctx = authenticate(parts, state).await?;
        if !ctx.caller.is_bootstrap() || ctx.caller.tenant != BOOTSTRAP_TENANT {
            return Err(ApiError::forbidden(
                ctx.area,
                "only the bootstrap user of tenant management requests device credentials",
            ));
        }
        Ok(BootstrapCtx(ctx))
    }
}

/// `currentPage` (from 1) and `pageSize` of a list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub current: i64,
    pub size: i64,
}

impl Paging {
    pub fn page(self) -> Page {
        Page {
            offset: (self.current - 1).saturating_mul(self.size),
            limit: self.size,
        }
    }
}

impl Ctx {
    /// A query parameter; an empty value counts as absent.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn paging(&self) -> Result<Paging, ApiError> {
        let number = |name: &str, default: i64| -> Result<i64, ApiError> {
            match self.param(name) {
                None => Ok(default),
                Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::bad_request(
                        self.area,
                        format!("{name} must be a whole number from 1, not {v:?}"),
                    )
                }),
            }
        };
        Ok(Paging {
            current: number("currentPage", 1)?,
            size: number("pageSize", DEFAULT_PAGE_SIZE)?.min(MAX_PAGE_SIZE),
        })
    }

    /// Whether the client asked for the totals of a list (`withTotalPages=true` or
    /// `withTotalElements=true`), which cost a count.
    pub fn wants_total(&self) -> bool {
        ["withTotalPages", "withTotalElements"].iter().any(|name| {
            self.param(name)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        })
    }

    /// The list's total from `count` (not yet run) when the client asked for it, else
    /// `None` without counting.
    pub async fn total_if_wanted(
        &self,
        count: impl std::future::Future<Output = Result<i64, portico_store::StoreError>>,
    ) -> Result<Option<i64>, ApiError> {
        if !self.wants_total() {
            return Ok(None);
        }
        count
            .await
            .map(Some)
            .map_err(|e| ApiError::store(self.area, e))
    }

    /// A numeric id parameter (`source`, `deviceId`…). An id that is not a number names
    /// nothing, so the filter matches nothing: `Some(-1)`.
    pub fn id_param(&self, name: &str) -> Option<i64> {
        self.param(name).map(|v| v.parse().unwrap_or(-1))
    }

    /// A timestamp parameter (`dateFrom`, `dateTo`).
    pub fn time_param(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.param(name)
            .map(|v| {
                parse_ms(v).ok_or_else(|| {
                    ApiError::bad_request(
                        self.area,
                        format!("{name} must be an ISO 8601 time like 2024-05-01T12:00:00.000+00:00, not {v:?}"),
                    )
                })
            })
            .transpose()
    }

    /// An absolute link to `path` on this server.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A JSON object body of at most [`MAX_BODY`] bytes, sent as `application/json` or a
/// Cumulocity vendor type (`application/vnd.com.nsn.cumulocity.<thing>+json`), or without
/// a content type.
#[derive(Debug)]
pub struct JsonBody(pub Fragments);

/// Whether a `Content-Type` is one the device API reads.
pub fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/vnd.com.nsn.cumulocity.")
            && essence.ends_with("+json"))
}

impl FromRequest<Arc<RestState>> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &Arc<RestState>) -> Result<JsonBody, ApiError> {
        let area = area_of(req.uri().path());
        if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
            let value = content_type.to_str().unwrap_or_default();
            if !is_json_media_type(value) {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    area,
                    format!("send application/json or application/vnd.com.nsn.cumulocity.<type>+json, not {value:?}"),
                ));
            }
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    area,
                    format!("the body is larger than {MAX_BODY} bytes"),
                )
            })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonBody(map)),
            Ok(_) => Err(ApiError::bad_request(
                area,
                "the body must be a JSON object",
            )),
            Err(e) => Err(ApiError::bad_request(
                area,
                format!("the body is not valid JSON: {e}"),
            )),
        }
    }
}
