//! Who may touch which managed object, and the checks of ids and fields shared by the
//! handlers.
//!
//! People of a tenant (any role but `device` and `device-bootstrap`) may read and write
//! everything of their tenant. A device's own user may touch only the managed objects it
//! owns (created) and the measurements, events, alarms and operations of those.

use axum::http::StatusCode;
use portico_store::{Fragments, ManagedObjectRecord};
use serde_json::Value;

use super::error::ApiError;
use super::request::Ctx;
use super::RestState;

/// A path id. Ids are numbers; any other text names nothing, so 404.
pub fn path_id(ctx: &Ctx, raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .map_err(|_| ApiError::not_found(ctx.area, format!("{what} {raw} not found")))
}

/// The owner a device caller is limited to; `None` for people.
pub fn owner_scope(ctx: &Ctx) -> Option<String> {
    ctx.caller.is_device().then(|| ctx.caller.user.clone())
}

/// Refuses device users (they may not create operations, register devices…).
pub fn require_person(ctx: &Ctx, what: &str) -> Result<(), ApiError> {
    if ctx.caller.is_device() {
        return Err(ApiError::forbidden(
            ctx.area,
            format!("a device user may not {what}"),
        ));
    }
    Ok(())
}

fn may_touch(ctx: &Ctx, object: &ManagedObjectRecord) -> bool {
    !ctx.caller.is_device() || object.owner == ctx.caller.user
}

/// The caller's managed object `id`: 404 when its tenant has none, 403 when a device
/// asks for an object it does not own.
pub async fn object_for(
    state: &RestState,
    ctx: &Ctx,
    id: i64,
) -> Result<ManagedObjectRecord, ApiError> {
    let object = state
        .store
        .managed_object(&ctx.caller.tenant, id)
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?
        .ok_or_else(|| ApiError::not_found(ctx.area, format!("managed object {id} not found")))?;
    if !may_touch(ctx, &object) {
        return Err(ApiError::forbidden(
            ctx.area,
            format!("managed object {id} belongs to another user"),
        ));
    }
    Ok(object)
}

/// A managed object named in a body (`source`, `deviceId`): 422 when the tenant has no
/// such object, 403 when a device does not own it.
pub async fn referenced_object(
    state: &RestState,
    ctx: &Ctx,
    field: &str,
    id: i64,
) -> Result<ManagedObjectRecord, ApiError> {
    match object_for(state, ctx, id).await {
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(ApiError::unprocessable(
            ctx.area,
            format!("{field}: managed object {id} not found"),
        )),
        other => other,
    }
}

/// An id given as a JSON string or number.
pub fn id_value(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The id of `{"source": {"id": ...}}`; 400 when missing or not an id.
pub fn source_id(ctx: &Ctx, body: &Fragments) -> Result<i64, ApiError> {
    id_value(body.get("source").and_then(|s| s.get("id"))).ok_or_else(|| {
        ApiError::bad_request(ctx.area, "source.id is missing or not an id: send {\"source\": {\"id\": \"<managed object id>\"}}")
    })
}

/// A required non-empty string field; 400 otherwise.
pub fn required_text(ctx: &Ctx, body: &Fragments, field: &str) -> Result<String, ApiError> {
    match body.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(ApiError::bad_request(
            ctx.area,
            format!("{field} must be a non-empty string"),
        )),
        None => Err(ApiError::bad_request(
            ctx.area,
            format!("{field} is missing"),
        )),
    }
}

/// An optional string field; 400 when present but not a string.
pub fn optional_text(ctx: &Ctx, body: &Fragments, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(
            ctx.area,
            format!("{field} must be a string"),
        )),
    }
}

/// `body` without the fields the server owns.
pub fn without(mut body: Fragments, fields: &[&str]) -> Fragments {
    for field in fields {
        body.remove(*field);
    }
    body
}
