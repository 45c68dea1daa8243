//! `/measurement/measurements` and `/event/events`: what a device reports about a source.
//! Both need `source.id`, `type` and an ISO 8601 `time`; events also a `text`. The
//! document is kept as sent (so `time` reads back as the device wrote it).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use portico_store::{DataFilter, DataKind, DataRecord, Fragments};
use serde_json::Value;

use super::access::{
    object_for, owner_scope, path_id, referenced_object, required_text, source_id, without,
};
use super::error::ApiError;
use super::request::{Ctx, JsonBody};
use super::respond::{collection, object_ref, vendor};
use super::time::{format_ms, now_ms, parse_ms};
use super::RestState;
use crate::change::{Action, Kind};

const SERVER_FIELDS: &[&str] = &["id", "self", "source", "creationTime", "lastUpdated"];

/// The names one kind goes by in paths, media types and changes.
struct Names {
    kind: DataKind,
    change: Kind,
    path: &'static str,
    thing: &'static str,
    list_key: &'static str,
    collection: &'static str,
}

const MEASUREMENTS: Names = Names {
    kind: DataKind::Measurement,
    change: Kind::Measurement,
    path: "/measurement/measurements",
    thing: "measurement",
    list_key: "measurements",
    collection: "measurementCollection",
};

const EVENTS: Names = Names {
    kind: DataKind::Event,
    change: Kind::Event,
    path: "/event/events",
    thing: "event",
    list_key: "events",
    collection: "eventCollection",
};

fn render(ctx: &Ctx, names: &Names, record: &DataRecord) -> Value {
    let mut out = record.document.clone();
    out.insert("id".into(), Value::String(record.id.to_string()));
    out.insert(
        "self".into(),
        Value::String(ctx.link(&format!("{}/{}", names.path, record.id))),
    );
    out.insert("source".into(), object_ref(ctx, record.source));
    if names.kind == DataKind::Event {
        let created = Value::String(format_ms(record.created_ms));
        out.insert("creationTime".into(), created.clone());
        out.insert("lastUpdated".into(), created);
    }
    Value::Object(out)
}

/// A record checked for its required fields; `time` parsed.
fn parse(ctx: &Ctx, names: &Names, body: Fragments) -> Result<DataRecord, ApiError> {
    let source = source_id(ctx, &body)?;
    let data_type = required_text(ctx, &body, "type")?;
    let time = required_text(ctx, &body, "time")?;
    let time_ms = parse_ms(&time).ok_or_else(|| {
        ApiError::bad_request(
            ctx.area,
            format!(
                "time must be an ISO 8601 time like 2024-05-01T12:00:00.000+00:00, not {time:?}"
            ),
        )
    })?;
    if names.kind == DataKind::Event {
        required_text(ctx, &body, "text")?;
    }
    Ok(DataRecord {
        id: 0,
        tenant: ctx.caller.tenant.clone(),
        source,
        data_type,
        time_ms,
        document: without(body, SERVER_FIELDS),
        created_ms: now_ms(),
    })
}

/// Checks every record's source, then stores and publishes them one by one.
async fn store_all(
    state: &RestState,
    ctx: &Ctx,
    names: &Names,
    records: Vec<DataRecord>,
) -> Result<Vec<Value>, ApiError> {
    for record in &records {
        referenced_object(state, ctx, "source", record.source).await?;
    }
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let stored = state
            .store
            .add_data(names.kind, &record)
            .await
            .map_err(|e| ApiError::store(ctx.area, e))?;
        let data = render(ctx, names, &stored);
        state
            .publish(
                &ctx.caller.tenant,
                names.change,
                Action::Create,
                stored.source,
                &data,
            )
            .await;
        out.push(data);
    }
    Ok(out)
}

/// One measurement, or several as `{"measurements": [...]}` (a measurement collection).
pub async fn create_measurements(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    JsonBody(mut body): JsonBody,
) -> Result<Response, ApiError> {
    let names = &MEASUREMENTS;
    let Some(batch) = body.remove("measurements") else {
        let record = parse(&ctx, names, body)?;
        let mut stored = store_all(&state, &ctx, names, vec![record]).await?;
        return Ok(vendor(StatusCode::CREATED, names.thing, stored.remove(0)));
    };
    let Value::Array(items) = batch else {
        return Err(ApiError::bad_request(
            ctx.area,
            "measurements must be an array",
        ));
    };
    let mut records = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(ApiError::bad_request(
                ctx.area,
                format!("measurements[{i}] must be an object"),
            ));
        };
        records.push(parse(&ctx, names, item).map_err(|mut e| {
            e.message = format!("measurements[{i}]: {}", e.message);
            e
        })?);
    }
    let stored = store_all(&state, &ctx, names, records).await?;
    let mut out = serde_json::Map::new();
    out.insert(names.list_key.into(), Value::Array(stored));
    Ok(vendor(
        StatusCode::CREATED,
        names.collection,
        Value::Object(out),
    ))
}

pub async fn create_event(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let record = parse(&ctx, &EVENTS, body)?;
    let mut stored = store_all(&state, &ctx, &EVENTS, vec![record]).await?;
    Ok(vendor(StatusCode::CREATED, EVENTS.thing, stored.remove(0)))
}

async fn list(state: &RestState, ctx: Ctx, names: &Names) -> Result<Response, ApiError> {
    let paging = ctx.paging()?;
    let filter = DataFilter {
        source: ctx.id_param("source"),
        data_type: ctx.param("type").map(Into::into),
        from_ms: ctx.time_param("dateFrom")?,
        to_ms: ctx.time_param("dateTo")?,
        source_owner: owner_scope(&ctx),
    };
    let records = state
        .store
        .data_list(names.kind, &ctx.caller.tenant, &filter, paging.page())
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?;
    let items = records.iter().map(|r| render(&ctx, names, r)).collect();
    let total = ctx
        .total_if_wanted(
            state
                .store
                .count_data(names.kind, &ctx.caller.tenant, &filter),
        )
        .await?;
    Ok(collection(
        &ctx,
        paging,
        names.list_key,
        names.collection,
        items,
        total,
    ))
}

pub async fn list_measurements(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    list(&state, ctx, &MEASUREMENTS).await
}

pub async fn list_events(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    list(&state, ctx, &EVENTS).await
}

async fn get_one(
    state: &RestState,
    ctx: Ctx,
    raw: &str,
    names: &Names,
) -> Result<Response, ApiError> {
    let id = path_id(&ctx, raw, names.thing)?;
    let record = state
        .store
        .data(names.kind, &ctx.caller.tenant, id)
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?
        .ok_or_else(|| ApiError::not_found(ctx.area, format!("{} {id} not found", names.thing)))?;
    object_for(state, &ctx, record.source).await?;
    Ok(vendor(
        StatusCode::OK,
        names.thing,
        render(&ctx, names, &record),
    ))
}

pub async fn get_measurement(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    get_one(&state, ctx, &id, &MEASUREMENTS).await
}

pub async fn get_event(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    get_one(&state, ctx, &id, &EVENTS).await
}
