//! The device bootstrap. An operator registers a device's serial
//! (`/devicecontrol/newDeviceRequests`); the device, holding only the shared bootstrap
//! user, polls `POST /devicecontrol/deviceCredentials {"id": <serial>}` and gets 404
//! until the operator sets the request to ACCEPTED, then its own credentials once (the
//! request is removed).
//!
//! The bootstrap user belongs to tenant `management`, not to the device's tenant: the
//! device's tenant is the one holding a request for the serial. When more than one tenant
//! registered the serial the request is refused with 409, since picking one could hand a
//! device to the wrong tenant.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portico_store::{NewDeviceRequestRecord, NewDeviceStatus, StoreError};
use serde_json::{json, Value};

use super::access::{require_person, required_text};
use super::error::ApiError;
use super::request::{BootstrapCtx, Ctx, JsonBody};
use super::respond::{collection, vendor};
use super::time::{format_ms, now_ms};
use super::RestState;
use crate::accounts::AuthError;

fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn render(ctx: &Ctx, request: &NewDeviceRequestRecord) -> Value {
    json!({
        "id": request.serial,
        "status": request.status.as_str(),
        "self": ctx.link(&format!("/devicecontrol/newDeviceRequests/{}", segment(&request.serial))),
        "owner": request.owner,
        "creationTime": format_ms(request.created_ms),
    })
}

fn parse_status(ctx: &Ctx, text: &str) -> Result<NewDeviceStatus, ApiError> {
    NewDeviceStatus::parse(text).ok_or_else(|| {
        ApiError::bad_request(
            ctx.area,
            format!("status must be WAITING_FOR_CONNECTION, PENDING_ACCEPTANCE or ACCEPTED, not {text:?}"),
        )
    })
}

/// `POST /devicecontrol/newDeviceRequests {"id": <serial>}`.
pub async fn create(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    require_person(&ctx, "register devices")?;
    let serial = required_text(&ctx, &body, "id")?;
    let status = match body.get("status").and_then(Value::as_str) {
        Some(s) => parse_status(&ctx, s)?,
        None => NewDeviceStatus::WaitingForConnection,
    };
    let now = now_ms();
    let record = NewDeviceRequestRecord {
        tenant: ctx.caller.tenant.clone(),
        serial,
        status,
        owner: ctx.caller.user.clone(),
        created_ms: now,
        updated_ms: now,
    };
    state
        .store
        .add_new_device_request(&record)
        .await
        .map_err(|e| match e {
            StoreError::Exists { .. } => ApiError::conflict(
                ctx.area,
                format!("device {} is registered already", record.serial),
            ),
            other => ApiError::store(ctx.area, other),
        })?;
    Ok(vendor(
        StatusCode::CREATED,
        "newDeviceRequest",
        render(&ctx, &record),
    ))
}

pub async fn list(State(state): State<Arc<RestState>>, ctx: Ctx) -> Result<Response, ApiError> {
    require_person(&ctx, "list device registrations")?;
    let paging = ctx.paging()?;
    let requests = state
        .store
        .new_device_requests(&ctx.caller.tenant, paging.page())
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?;
    let items = requests.iter().map(|r| render(&ctx, r)).collect();
    let total = ctx
        .total_if_wanted(state.store.count_new_device_requests(&ctx.caller.tenant))
        .await?;
    Ok(collection(
        &ctx,
        paging,
        "newDeviceRequests",
        "newDeviceRequestCollection",
        items,
        total,
    ))
}

pub async fn get_one(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(serial): Path<String>,
) -> Result<Response, ApiError> {
    require_person(&ctx, "read device registrations")?;
    let request = state
        .store
        .new_device_request(&ctx.caller.tenant, &serial)
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?
        .ok_or_else(|| {
            ApiError::not_found(ctx.area, format!("device request {serial} not found"))
        })?;
    Ok(vendor(
        StatusCode::OK,
        "newDeviceRequest",
        render(&ctx, &request),
    ))
}

/// `PUT /devicecontrol/newDeviceRequests/{serial} {"status": "ACCEPTED"}`.
pub async fn update(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(serial): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    require_person(&ctx, "accept devices")?;
    let status = parse_status(&ctx, &required_text(&ctx, &body, "status")?)?;
    let request = state
        .store
        .set_new_device_request_status(&ctx.caller.tenant, &serial, status, now_ms())
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?
        .ok_or_else(|| {
            ApiError::not_found(ctx.area, format!("device request {serial} not found"))
        })?;
    Ok(vendor(
        StatusCode::OK,
        "newDeviceRequest",
        render(&ctx, &request),
    ))
}

pub async fn remove(
    State(state): State<Arc<RestState>>,
    ctx: Ctx,
    Path(serial): Path<String>,
) -> Result<Response, ApiError> {
    require_person(&ctx, "remove device registrations")?;
    let removed = state
        .store
        .remove_new_device_request(&ctx.caller.tenant, &serial)
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?;
    if !removed {
        return Err(ApiError::not_found(
            ctx.area,
            format!("device request {serial} not found"),
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /devicecontrol/deviceCredentials {"id": <serial>}` by the bootstrap user.
pub async fn credentials(
    State(state): State<Arc<RestState>>,
    BootstrapCtx(ctx): BootstrapCtx,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let serial = required_text(&ctx, &body, "id")?;
    let not_yet = || {
        ApiError::not_found(
            ctx.area,
            format!("no accepted registration for device {serial} yet"),
        )
    };
    let requests = state
        .store
        .new_device_requests_by_serial(&serial)
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?;
    let request = match requests.as_slice() {
        [] => return Err(not_yet()),
        [one] => one,
        _ => {
            tracing::warn!(
                "device {serial:?} is registered in more than one tenant; refusing its credentials"
            );
            return Err(ApiError::conflict(
                ctx.area,
                format!("device {serial} is registered in more than one tenant; an operator has to remove all but one registration"),
            ));
        }
    };
    let tenant = request.tenant.clone();
    if request.status != NewDeviceStatus::Accepted {
        state
            .store
            .mark_new_device_request_seen(&tenant, &serial, now_ms())
            .await
            .map_err(|e| ApiError::store(ctx.area, e))?;
        return Err(not_yet());
    }
    // Taking the request first makes two concurrent polls issue credentials once.
    let taken = state
        .store
        .take_accepted_new_device_request(&tenant, &serial)
        .await
        .map_err(|e| ApiError::store(ctx.area, e))?;
    if !taken {
        return Err(not_yet());
    }
    let issued = match state
        .accounts
        .issue_device_credentials(&tenant, &serial)
        .await
    {
        Ok(issued) => issued,
        Err(e) => {
            // Put the acceptance back so that the device's next poll can try again.
            if let Err(restore) = state.store.add_new_device_request(request).await {
                tracing::error!("cannot restore the accepted registration of device {serial:?} in {tenant}: {restore}");
            }
            return Err(match e {
                AuthError::Unavailable(_) | AuthError::Throttled { .. } => ApiError::auth(e),
                other => {
                    tracing::error!(
                        "cannot issue credentials for device {serial:?} in {tenant}: {other}"
                    );
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        ctx.area,
                        "cannot issue device credentials now; retry",
                    )
                }
            });
        }
    };
    tracing::info!("issued credentials to device {serial:?} of tenant {tenant}");
    let body = json!({
        "id": serial,
        "tenantId": issued.tenant,
        "username": issued.username,
        "password": issued.password,
        "self": ctx.link(&format!("/devicecontrol/deviceCredentials/{}", segment(&serial))),
    });
    Ok(vendor(StatusCode::CREATED, "deviceCredentials", body))
}
