//! Sites (a tree), devices in sites, and the members of sites. Administrators manage them;
//! other callers see the sites they are members of (with sub-sites) and their devices.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portico_store::{DeviceRecord, EndpointBinding, EndpointState, MemberRecord, SiteRecord};
use serde::{Deserialize, Serialize};

use super::access::{self, check_name, SiteView, Who};
use super::error::{ApiError, ApiResult, Body};
use super::ApiState;
use crate::rules::{Action, SiteRole};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    name: String,
    #[serde(default)]
    parent: Option<String>,
}

pub async fn add_site(
    State(state): State<ApiState>,
    who: Who,
    Body(new): Body<NewSite>,
) -> ApiResult<(StatusCode, Json<SiteRecord>)> {
    who.require(Action::Manage)?;
    check_name("site", &new.name)?;
    let site = SiteRecord {
        tenant: who.tenant.clone(),
        name: new.name,
        parent: new.parent,
        created_ms: state.now(),
    };
    state.store.add_site(&site).await?;
    let detail = site
        .parent
        .clone()
        .map(|p| format!("parent {p}"))
        .unwrap_or_default();
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "site.add",
        format!("site/{}", site.name),
        detail,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(site)))
}

pub async fn list_sites(
    State(state): State<ApiState>,
    who: Who,
) -> ApiResult<Json<Vec<SiteRecord>>> {
    who.require(Action::ReadCatalogue)?;
    let view = SiteView::load(&state, &who).await?;
    let visible = view
        .sites
        .iter()
        .filter(|s| view.may(Action::SeeDevice, &s.name))
        .cloned()
        .collect();
    Ok(Json(visible))
}

pub async fn show_site(
    State(state): State<ApiState>,
    who: Who,
    Path(name): Path<String>,
) -> ApiResult<Json<SiteRecord>> {
    who.require(Action::ReadCatalogue)?;
    let view = SiteView::load(&state, &who).await?;
    let site = view
        .sites
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::not_found("site", &name))?;
    if !view.may(Action::SeeDevice, &name) {
        return Err(ApiError::forbidden("You are not a member of this site"));
    }
    Ok(Json(site.clone()))
}

pub async fn remove_site(
    State(state): State<ApiState>,
    who: Who,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Action::Manage)?;
    state.store.remove_site(&who.tenant, &name).await?;
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "site.remove",
        format!("site/{name}"),
        String::new(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    name: String,
    site: String,
    #[serde(default)]
    description: String,
}

pub async fn add_device(
    State(state): State<ApiState>,
    who: Who,
    Body(new): Body<NewDevice>,
) -> ApiResult<(StatusCode, Json<DeviceRecord>)> {
    who.require(Action::Manage)?;
    check_name("device", &new.name)?;
    if new.description.len() > 1024 {
        return Err(ApiError::bad_request("description: at most 1024 bytes"));
    }
    let device = DeviceRecord {
        tenant: who.tenant.clone(),
        name: new.name,
        site: new.site,
        description: new.description,
        created_ms: state.now(),
    };
    state.store.add_device(&device).await?;
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "device.add",
        format!("device/{}", device.name),
        format!("site {}", device.site),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(device)))
}

/// A device as the API shows it: the record, and whether its registered Device Endpoint
/// is connected to the relay now.
#[derive(Serialize)]
pub struct DeviceView {
    #[serde(flatten)]
    device: DeviceRecord,
    online: bool,
}

/// The tenant's devices whose registered Device Endpoint is online now.
async fn online_devices(state: &ApiState, tenant: &str) -> ApiResult<HashSet<String>> {
    let online = state.online(tenant);
    if online.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(state
        .store
        .endpoints(tenant)
        .await?
        .into_iter()
        .filter(|e| e.state == EndpointState::Registered && online.contains_key(&e.name))
        .filter_map(|e| match e.binding {
            EndpointBinding::Device(device) => Some(device),
            _ => None,
        })
        .collect())
}

pub async fn list_devices(
    State(state): State<ApiState>,
    who: Who,
) -> ApiResult<Json<Vec<DeviceView>>> {
    who.require(Action::ReadCatalogue)?;
    let view = SiteView::load(&state, &who).await?;
    let devices = state.store.devices(&who.tenant).await?;
    let online = online_devices(&state, &who.tenant).await?;
    Ok(Json(
        devices
            .into_iter()
            .filter(|d| view.may(Action::SeeDevice, &d.site))
            .map(|device| DeviceView {
                online: online.contains(&device.name),
                device,
            })
            .collect(),
    ))
}

pub async fn show_device(
    State(state): State<ApiState>,
    who: Who,
    Path(name): Path<String>,
) -> ApiResult<Json<DeviceView>> {
    who.require(Action::ReadCatalogue)?;
    let device = access::device(&state, &who, &name).await?;
    let view = SiteView::load(&state, &who).await?;
    who.require(Action::SeeDevice(view.role_on(&device.site)))?;
    let online = online_devices(&state, &who.tenant).await?;
    Ok(Json(DeviceView {
        online: online.contains(&device.name),
        device,
    }))
}

pub async fn remove_device(
    State(state): State<ApiState>,
    who: Who,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Action::Manage)?;
    state.store.remove_device(&who.tenant, &name).await?;
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "device.remove",
        format!("device/{name}"),
        String::new(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    site: String,
    user: String,
    role: String,
}

pub async fn set_member(
    State(state): State<ApiState>,
    who: Who,
    Body(new): Body<NewMember>,
) -> ApiResult<(StatusCode, Json<MemberRecord>)> {
    who.require(Action::Manage)?;
    let role = SiteRole::parse(&new.role).ok_or_else(|| {
        ApiError::bad_request(format!("role \"{}\": use site-owner or user", new.role))
    })?;
    if new.user.is_empty() || new.user.len() > 64 {
        return Err(ApiError::bad_request("user: 1-64 characters"));
    }
    let member = MemberRecord {
        tenant: who.tenant.clone(),
        site: new.site,
        user_name: new.user,
        role: role.as_str().into(),
    };
    state.store.set_member(&member).await?;
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "member.set",
        format!("site/{}", member.site),
        format!("{} as {}", member.user_name, member.role),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(member)))
}

pub async fn list_members(
    State(state): State<ApiState>,
    who: Who,
) -> ApiResult<Json<Vec<MemberRecord>>> {
    who.require(Action::Manage)?;
    Ok(Json(state.store.members(&who.tenant, None).await?))
}

pub async fn remove_member(
    State(state): State<ApiState>,
    who: Who,
    Path((site, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    who.require(Action::Manage)?;
    state.store.remove_member(&who.tenant, &site, &user).await?;
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "member.remove",
        format!("site/{site}"),
        user,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
