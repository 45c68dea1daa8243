//! `/devicecontrol/operations`: commands for a device. People create them (PENDING); the
//! device moves them to EXECUTING and then SUCCESSFUL or FAILED (with `failureReason`),
//! or straight from PENDING to FAILED when it refuses one. Other moves are 422; the store
//! makes each move a compare-and-set, so an operation completes once.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use portico_store::{
    OperationChange, OperationFilter, OperationRecord, OperationStatus, OperationUpdate,
};
use serde_json::Value;

use super::access::{
    id_value, object_for, optional_text, owner_scope, path_id, referenced_object, require_person,
    without,
};
use super::error::ApiError;
use super::request::{Ctx, JsonBody};
use super::respond::{collection, vendor};
use super::time::{format_ms, now_ms};
use super::RestState;
use crate::change::{Action, Kind};

const SERVER_FIELDS: &[&str] = &[
    "id",
    "self",
    "deviceId",
    "agentId",
    "status",
    "failureReason",
    "creationTime",
    "lastUpdated",
];

pub fn render(ctx: &Ctx, op: &OperationRecord) -> Value {
    let mut out = op.document.clone();
    out.insert("id".into(), Value::String(op.id.to_string()));
    out.insert(
        "self".into(),
        Value::String(ctx.link(&format!("/devicecontrol/operations/{}", op.id))),
    );
    out.insert("deviceId".into(), Value::String(op.device_id.to_string()));
    out.insert("status".into(), Value::String(op.status.as_str().into()));
    if let Some(reason) = &op.failure_reason {
        out.insert("failureReason".into(), Value::String(reason.clone()));
    }
    out.insert(
        "creationTime".into(),
        Value::String(format_ms(op.created_ms)),
    );
    out.insert(
        "lastUpdated".into(),
        Value::String(format_ms(op.updated_ms)),
    );
    Value::Object(out)
}

fn parse_status(ctx: &Ctx, text: &str) -> Result<OperationStatus, ApiError> {
    OperationStatus::parse(text).ok_or_else(|| {
        ApiError::bad_request(
            ctx.area,
            format!("status must be PENDING, EXECUTING, SUCCESSFUL or FAILED, not {text:?}"),
        )
    })
}

/// `POST /devicecontrol/operations` with `{"deviceId": ..., <fragments>}`; not for devices.
pub async fn create(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    require_person(&ctx, "create operations")?;
    let device_id = id_value(body.get("deviceId"))
        .ok_or_else(|| ApiError::bad_request(ctx.area, "deviceId is missing or not an id"))?;
    referenced_object(&state, &ctx, "deviceId", device_id).await?;
    let op = state
        .store
        .create_operation(
            &ctx.caller.tenant,
            device_id,
            &without(body, SERVER_FIELDS),
            now_ms(),
        )
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?;
    let data = render(&ctx, &op);
    state
        .publish(
            &ctx.caller.tenant,
            Kind::Operation,
            Action::Create,
            device_id,
            &data,
        )
        .await;
    Ok(vendor(StatusCode::CREATED, "operation", data))
}

/// `GET /devicecontrol/operations?agentId=&deviceId=&status=`: `agentId` and `deviceId`
/// both name the device the operations are for.
pub async fn list(State(state): State<Arc<RestState>>, ctx: Ctx) -> Result<Response, ApiError> {
    let paging = ctx.paging()?;
    let status = ctx
        .param("status")
        .map(|s| parse_status(&ctx, s))
        .transpose()?;
    let (agent, device) = (ctx.id_param("agentId"), ctx.id_param("deviceId"));
    let mut items = Vec::new();
    let mut total = ctx.wants_total().then_some(0);
    // Both given and different: no operation is for two devices.
    if agent.is_none() || device.is_none() || agent == device {
        let filter = OperationFilter {
            device_id: device.or(agent),
            status,
            device_owner: owner_scope(&ctx),
        };
        let ops = state
            .store
            .operations(&ctx.caller.tenant, &filter, paging.page())
            .await
            .map_err(|e| ApiError::store(ctx.area, e))?;
        items = ops.iter().map(|op| render(&ctx, op)).collect();
        total = ctx
            .total_if_wanted(state.store.count_operations(&ctx.caller.tenant, &filter))
            .await?;
    }
    Ok(collection(
        &ctx,
        paging,
        "operations",
        "operationCollection",
        items,
        total,
    ))
}

async fn visible_operation(
    state: &RestState,
    ctx: &Ctx,
    raw: &str,
) -> Result<OperationRecord, ApiError> {
    let id = path_id(ctx, raw, "operation")?;
    let op = state
        .store
        .operation(&ctx.caller.tenant, id)
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?
        .ok_or_else(|| ApiError::not_found(ctx.area, format!("operation {id} not found")))?;
    object_for(state, ctx, op.device_id).await?;
    Ok(op)
}

pub async fn get_one(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let op = visible_operation(&state, &ctx, &id).await?;
    Ok(vendor(StatusCode::OK, "operation", render(&ctx, &op)))
}

/// `PUT /devicecontrol/operations/{id}` with `status`, `failureReason` and fragments.
pub async fn update(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let op = visible_operation(&state, &ctx, &id).await?;
    let status = optional_text(&ctx, &body, "status")?
        .map(|s| parse_status(&ctx, &s))
        .transpose()?;
    let change = OperationChange {
        status,
        failure_reason: optional_text(&ctx, &body, "failureReason")?,
        fragments: without(body, SERVER_FIELDS),
    };
    let updated = match state
        .store
        .update_operation(&ctx.caller.tenant, op.id, &change, now_ms())
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?
    {
        OperationUpdate::Updated(updated) => updated,
        OperationUpdate::Illegal { current } => {
            let next = status.map_or("", OperationStatus::as_str);
            return Err(ApiError::unprocessable(
                ctx.area,
                format!(
                    "operation {} is {}; it cannot become {next} (PENDING → EXECUTING → SUCCESSFUL or FAILED; PENDING → FAILED)",
                    op.id,
                    current.as_str()
                ),
            ));
        }
        OperationUpdate::NotFound => {
            return Err(ApiError::not_found(
                ctx.area,
                format!("operation {} not found", op.id),
            ))
        }
    };
    let data = render(&ctx, &updated);
    state
        .publish(
            &ctx.caller.tenant,
            Kind::Operation,
            Action::Update,
            updated.device_id,
            &data,
        )
        .await;
    Ok(vendor(StatusCode::OK, "operation", data))
}
