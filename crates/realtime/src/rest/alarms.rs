//! `/alarm/alarms`: conditions of a source with a `severity` (CRITICAL, MAJOR, MINOR,
//! WARNING) and a `status` (ACTIVE, ACKNOWLEDGED, CLEARED) that operators and devices
//! update.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use portico_store::{AlarmChange, AlarmFilter, AlarmRecord, DataFilter, Fragments};
use serde_json::Value;

use super::access::{
    object_for, optional_text, owner_scope, path_id, referenced_object, required_text, source_id,
    without,
};
use super::error::ApiError;
use super::request::{Ctx, JsonBody};
use super::respond::{collection, object_ref, vendor};
use super::time::{format_ms, now_ms, parse_ms};
use super::RestState;
use crate::change::{Action, Kind};

const SEVERITIES: &[&str] = &["CRITICAL", "MAJOR", "MINOR", "WARNING"];
const STATUSES: &[&str] = &["ACTIVE", "ACKNOWLEDGED", "CLEARED"];
/// Fields the server owns or keeps in columns; an update cannot change `source`, `type`
/// or `time`.
const SERVER_FIELDS: &[&str] = &[
    "id",
    "self",
    "source",
    "creationTime",
    "lastUpdated",
    "status",
    "severity",
    "count",
];

fn render(ctx: &Ctx, alarm: &AlarmRecord) -> Value {
    let mut out = alarm.document.clone();
    out.insert("id".into(), Value::String(alarm.id.to_string()));
    out.insert(
        "self".into(),
        Value::String(ctx.link(&format!("/alarm/alarms/{}", alarm.id))),
    );
    out.insert("source".into(), object_ref(ctx, alarm.source));
    out.insert("status".into(), Value::String(alarm.status.clone()));
    out.insert("severity".into(), Value::String(alarm.severity.clone()));
    out.insert("count".into(), Value::from(1));
    out.insert(
        "creationTime".into(),
        Value::String(format_ms(alarm.created_ms)),
    );
    out.insert(
        "lastUpdated".into(),
        Value::String(format_ms(alarm.updated_ms)),
    );
    Value::Object(out)
}

/// A field that must be one of `allowed` when given.
fn one_of(
    ctx: &Ctx,
    body: &Fragments,
    field: &str,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    match optional_text(ctx, body, field)? {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::bad_request(
            ctx.area,
            format!("{field} must be one of {}, not {v:?}", allowed.join(", ")),
        )),
        other => Ok(other),
    }
}

pub async fn create(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let source = source_id(&ctx, &body)?;
    let alarm_type = required_text(&ctx, &body, "type")?;
    required_text(&ctx, &body, "text")?;
    let time = required_text(&ctx, &body, "time")?;
    let time_ms = parse_ms(&time).ok_or_else(|| {
        ApiError::bad_request(
            ctx.area,
            format!("time must be an ISO 8601 time, not {time:?}"),
        )
    })?;
    let severity = one_of(&ctx, &body, "severity", SEVERITIES)?
        .ok_or_else(|| ApiError::bad_request(ctx.area, "severity is missing"))?;
    let status = one_of(&ctx, &body, "status", STATUSES)?.unwrap_or_else(|| "ACTIVE".into());
    referenced_object(&state, &ctx, "source", source).await?;
    let now = now_ms();
    let alarm = state
        .store
        .add_alarm(&AlarmRecord {
            id: 0,
            tenant: ctx.caller.tenant.clone(),
            source,
            alarm_type,
            time_ms,
            status,
            severity,
            document: without(body, SERVER_FIELDS),
            created_ms: now,
            updated_ms: now,
        })
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?;
    let data = render(&ctx, &alarm);
    state
        .publish(
            &ctx.caller.tenant,
            Kind::Alarm,
            Action::Create,
            source,
            &data,
        )
        .await;
    Ok(vendor(StatusCode::CREATED, "alarm", data))
}

pub async fn list(State(state): State<Arc<RestState>>, ctx: Ctx) -> Result<Response, ApiError> {
    let paging = ctx.paging()?;
    let filter = AlarmFilter {
        data: DataFilter {
            source: ctx.id_param("source"),
            data_type: ctx.param("type").map(Into::into),
            from_ms: ctx.time_param("dateFrom")?,
            to_ms: ctx.time_param("dateTo")?,
            source_owner: owner_scope(&ctx),
        },
        status: ctx.param("status").map(Into::into),
        severity: ctx.param("severity").map(Into::into),
    };
    let alarms = state
        .store
        .alarms(&ctx.caller.tenant, &filter, paging.page())
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?;
    let items = alarms.iter().map(|a| render(&ctx, a)).collect();
    let total = ctx
        .total_if_wanted(state.store.count_alarms(&ctx.caller.tenant, &filter))
        .await?;
    Ok(collection(
        &ctx,
        paging,
        "alarms",
        "alarmCollection",
        items,
        total,
    ))
}

async fn visible_alarm(state: &RestState, ctx: &Ctx, raw: &str) -> Result<AlarmRecord, ApiError> {
    let id = path_id(ctx, raw, "alarm")?;
    let alarm = state
        .store
        .alarm(&ctx.caller.tenant, id)
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?
        .ok_or_else(|| ApiError::not_found(ctx.area, format!("alarm {id} not found")))?;
    object_for(state, ctx, alarm.source).await?;
    Ok(alarm)
}

pub async fn get_one(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let alarm = visible_alarm(&state, &ctx, &id).await?;
    Ok(vendor(StatusCode::OK, "alarm", render(&ctx, &alarm)))
}

/// Changes `status` and `severity` and merges other fragments; `source`, `type` and
/// `time` stay as created.
pub async fn update(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let alarm = visible_alarm(&state, &ctx, &id).await?;
    let change = AlarmChange {
        status: one_of(&ctx, &body, "status", STATUSES)?,
        severity: one_of(&ctx, &body, "severity", SEVERITIES)?,
        fragments: without(body, &[SERVER_FIELDS, &["type", "time"]].concat()),
    };
    let updated = state
        .store
        .update_alarm(&ctx.caller.tenant, alarm.id, &change, now_ms())
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?
        .ok_or_else(|| ApiError::not_found(ctx.area, format!("alarm {} not found", alarm.id)))?;
    let data = render(&ctx, &updated);
    state
        .publish(
            &ctx.caller.tenant,
            Kind::Alarm,
            Action::Update,
            updated.source,
            &data,
        )
        .await;
    Ok(vendor(StatusCode::OK, "alarm", data))
}
