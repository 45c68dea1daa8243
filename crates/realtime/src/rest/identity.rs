//! `/identity`: external ids (serial numbers, IMEIs…) naming managed objects, so that a
//! device finds its own managed object again after a restart.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use portico_store::{ExternalIdRecord, StoreError};
use serde_json::{json, Value};

use super::access::{object_for, path_id, required_text};
use super::error::ApiError;
use super::request::{Ctx, JsonBody, Paging};
use super::respond::{collection, object_ref, vendor};
use super::time::now_ms;
use super::RestState;

fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn render(ctx: &Ctx, record: &ExternalIdRecord) -> Value {
    json!({
        "externalId": record.external_id,
        "type": record.id_type,
        "self": ctx.link(&format!(
            "/identity/externalIds/{}/{}",
            segment(&record.id_type),
            segment(&record.external_id)
        )),
        "managedObject": object_ref(ctx, record.object_id),
    })
}

/// `GET /identity/externalIds/{type}/{externalId}`.
pub async fn resolve(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path((id_type, external_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = state
        .store
        .external_id(&ctx.caller.tenant, &id_type, &external_id)
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?
        .ok_or_else(|| {
            ApiError::not_found(
                ctx.area,
                format!("external id {id_type}/{external_id} not found"),
            )
        })?;
    object_for(&state, &ctx, record.object_id).await?;
    Ok(vendor(StatusCode::OK, "externalId", render(&ctx, &record)))
}

/// `POST /identity/globalIds/{id}/externalIds` with `{"externalId", "type"}`.
pub async fn create(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let object_id = path_id(&ctx, &id, "managed object")?;
    object_for(&state, &ctx, object_id).await?;
    let record = ExternalIdRecord {
        tenant: ctx.caller.tenant.clone(),
        id_type: required_text(&ctx, &body, "type")?,
        external_id: required_text(&ctx, &body, "externalId")?,
        object_id,
        created_ms: now_ms(),
    };
    state
        .store
        .add_external_id(&record)
        .await
        .map_err(|e| match e {
            StoreError::Exists { .. } => ApiError::conflict(
                ctx.area,
                format!(
                    "external id {}/{} already names a managed object",
                    record.id_type, record.external_id
                ),
            ),
            other => ApiError::store(ctx.area, other),
        })?;
    Ok(vendor(
        StatusCode::CREATED,
        "externalId",
        render(&ctx, &record),
    ))
}

/// `GET /identity/globalIds/{id}/externalIds`.
pub async fn list(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let object_id = path_id(&ctx, &id, "managed object")?;
    object_for(&state, &ctx, object_id).await?;
    let paging: Paging = ctx.paging()?;
    let records = state
        .store
        .external_ids_of(&ctx.caller.tenant, object_id)
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?;
    let page = paging.page();
    let items = records
        .iter()
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
        .map(|r| render(&ctx, r))
        .collect();
    Ok(collection(
        &ctx,
        paging,
        "externalIds",
        "externalIdCollection",
        items,
        ctx.wants_total().then_some(records.len() as i64),
    ))
}
