//! `/inventory/managedObjects`: devices, agents and assets with their fragments
//! (`c8y_IsDevice`, `c8y_SupportedOperations`…), kept as the client sent them.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use portico_store::{ManagedObjectFilter, ManagedObjectRecord};
use serde_json::{json, Value};

use super::access::{object_for, optional_text, owner_scope, path_id, without};
use super::error::ApiError;
use super::request::{Ctx, JsonBody};
use super::respond::{collection, vendor};
use super::time::{format_ms, now_ms};
use super::RestState;
use crate::change::{Action, Kind};

/// Fields of a managed object the server owns; ignored in bodies.
const SERVER_FIELDS: &[&str] = &[
    "id",
    "self",
    "owner",
    "creationTime",
    "lastUpdated",
    "childDevices",
    "childAssets",
    "childAdditions",
    "assetParents",
    "deviceParents",
    "additionParents",
];

const REFERENCE_COLLECTIONS: &[&str] = &[
    "childDevices",
    "childAssets",
    "childAdditions",
    "assetParents",
    "deviceParents",
    "additionParents",
];

pub fn render(ctx: &Ctx, object: &ManagedObjectRecord) -> Value {
    let mut out = object.document.clone();
    let link = ctx.link(&format!("/inventory/managedObjects/{}", object.id));
    for name in REFERENCE_COLLECTIONS {
        out.insert(
            (*name).into(),
            json!({"self": format!("{link}/{name}"), "references": []}),
        );
    }
    out.insert("id".into(), Value::String(object.id.to_string()));
    out.insert("self".into(), Value::String(link));
    out.insert("owner".into(), Value::String(object.owner.clone()));
    out.insert(
        "creationTime".into(),
        Value::String(format_ms(object.created_ms)),
    );
    out.insert(
        "lastUpdated".into(),
        Value::String(format_ms(object.updated_ms)),
    );
    Value::Object(out)
}

pub async fn create(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    optional_text(&ctx, &body, "type")?;
    optional_text(&ctx, &body, "name")?;
    let document = without(body, SERVER_FIELDS);
    let object = state
        .store
        .create_managed_object(&ctx.caller.tenant, &ctx.caller.user, &document, now_ms())
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?;
    let data = render(&ctx, &object);
    state
        .publish(
            &ctx.caller.tenant,
            Kind::ManagedObject,
            Action::Create,
            object.id,
            &data,
        )
        .await;
    Ok(vendor(StatusCode::CREATED, "managedObject", data))
}

pub async fn list(State(state): State<Arc<RestState>>, ctx: Ctx) -> Result<Response, ApiError> {
    let paging = ctx.paging()?;
    let mut filter = ManagedObjectFilter {
        object_type: ctx.param("type").map(Into::into),
        fragment: ctx.param("fragmentType").map(Into::into),
        owner: ctx.param("owner").map(Into::into),
    };
    let mut items = Vec::new();
    let mut total = ctx.wants_total().then_some(0);
    let asks_for_others = match owner_scope(&ctx) {
        Some(me) => filter
            .owner
            .replace(me.clone())
            .is_some_and(|asked| asked != me),
        None => false,
    };
    if !asks_for_others {
        let objects = state
            .store
            .managed_objects(&ctx.caller.tenant, &filter, paging.page())
            .await
            .map_err(|e| ApiError::store(ctx.area, e))?;
        items = objects.iter().map(|o| render(&ctx, o)).collect();
        total = ctx
            .total_if_wanted(
                state
                    .store
                    .count_managed_objects(&ctx.caller.tenant, &filter),
            )
            .await?;
    }
    Ok(collection(
        &ctx,
        paging,
        "managedObjects",
        "managedObjectCollection",
        items,
        total,
    ))
}

pub async fn get_one(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&ctx, &id, "managed object")?;
    let object = object_for(&state, &ctx, id).await?;
    Ok(vendor(
        StatusCode::OK,
        "managedObject",
        render(&ctx, &object),
    ))
}

/// Merges the body's top-level fragments into the object; a `null` fragment removes it.
pub async fn update(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let id = path_id(&ctx, &id, "managed object")?;
    object_for(&state, &ctx, id).await?;
    optional_text(&ctx, &body, "type")?;
    optional_text(&ctx, &body, "name")?;
    let changes = without(body, SERVER_FIELDS);
    let object = state
        .store
        .update_managed_object(&ctx.caller.tenant, id, &changes, now_ms())
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?
        .ok_or_else(|| ApiError::not_found(ctx.area, format!("managed object {id} not found")))?;
    let data = render(&ctx, &object);
    state
        .publish(
            &ctx.caller.tenant,
            Kind::ManagedObject,
            Action::Update,
            id,
            &data,
        )
        .await;
    Ok(vendor(StatusCode::OK, "managedObject", data))
}
