//! The template catalogue, the tenant's Protocol Applications (RS-3) and their
//! assignments to devices. Administrators make applications; owners of a device's site
//! (and administrators) assign them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portico_store::{ApplicationRecord, AssignmentRecord, EndpointState, PortMapping};
use serde::Deserialize;

use super::access::{self, check_name, SiteView, Who};
use super::error::{ApiError, ApiResult, Body};
use super::ApiState;
use crate::rules::Action;
use crate::templates::{self, Direction, Template, TEMPLATES};

/// Session timeout when an application names none, and the bounds of one (seconds).
const DEFAULT_SESSION_TIMEOUT_S: i64 = 3600;
const SESSION_TIMEOUT_RANGE_S: std::ops::RangeInclusive<i64> = 60..=86_400;
const MAX_MAPPINGS: usize = 16;

pub async fn list_templates(who: Who) -> ApiResult<Json<&'static [Template]>> {
    who.require(Action::ReadCatalogue)?;
    Ok(Json(TEMPLATES))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApplication {
    name: String,
    /// What people call it; empty or absent: the name.
    #[serde(default)]
    label: String,
    template: String,
    mappings: Vec<PortMapping>,
    #[serde(default)]
    target_endpoint: Option<String>,
    #[serde(default)]
    session_timeout_s: Option<i64>,
}

/// A host name or IP address literal: 1–253 of letters, digits, `.`, `-`, `:` (IPv6).
fn check_host(host: &str) -> ApiResult<()> {
    let ok = (1..=253).contains(&host.len())
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "target_host \"{host}\": a host name or IP address"
        )))
    }
}

/// Longest label, in characters.
const MAX_LABEL_CHARS: usize = 100;

/// A label trimmed: up to 100 characters, none of them a control character.
fn check_label(label: &str) -> ApiResult<String> {
    let label = label.trim();
    if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "label: up to {MAX_LABEL_CHARS} characters, no control characters"
        )));
    }
    Ok(label.to_string())
}

fn check_mappings(mappings: &[PortMapping]) -> ApiResult<()> {
    if mappings.is_empty() || mappings.len() > MAX_MAPPINGS {
        return Err(ApiError::bad_request(format!(
            "mappings: 1 to {MAX_MAPPINGS} port mappings"
        )));
    }
    for (i, m) in mappings.iter().enumerate() {
        if m.local_port == 0 || m.target_port == 0 {
            return Err(ApiError::bad_request("mappings: ports are 1-65535"));
        }
        check_host(&m.target_host)?;
        if mappings[..i].iter().any(|o| o.local_port == m.local_port) {
            return Err(ApiError::bad_request(format!(
                "mappings: local port {} appears twice",
                m.local_port
            )));
        }
    }
    Ok(())
}

pub async fn add_application(
    State(state): State<ApiState>,
    who: Who,
    Body(new): Body<NewApplication>,
) -> ApiResult<(StatusCode, Json<ApplicationRecord>)> {
    who.require(Action::Manage)?;
    check_name("application", &new.name)?;
    let label = check_label(&new.label)?;
    let template = templates::template(&new.template).ok_or_else(|| {
        ApiError::bad_request(format!(
            "template \"{}\" is not in the catalogue (GET /templates)",
            new.template
        ))
    })?;
    check_mappings(&new.mappings)?;
    let timeout = new.session_timeout_s.unwrap_or(DEFAULT_SESSION_TIMEOUT_S);
    if !SESSION_TIMEOUT_RANGE_S.contains(&timeout) {
        return Err(ApiError::bad_request(
            "session_timeout_s: 60 to 86400 seconds",
        ));
    }
    match (template.direction, &new.target_endpoint) {
        (Direction::Reverse, None) => {
            return Err(ApiError::bad_request(
                "a DTT Reverse application names its target_endpoint (a service endpoint)",
            ))
        }
        (Direction::Reverse, Some(target)) => {
            let ep = state.store.endpoint(&who.tenant, target).await?;
            match ep {
                Some(ep)
                    if ep.binding.kind() == "service" && ep.state != EndpointState::Revoked => {}
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "target_endpoint \"{target}\" is not a service endpoint of yours"
                    )))
                }
            }
        }
        (Direction::Forward, Some(_)) => {
            return Err(ApiError::bad_request(
                "only DTT Reverse applications have a target_endpoint",
            ))
        }
        (Direction::Forward, None) => {}
    }
    let app = ApplicationRecord {
        tenant: who.tenant.clone(),
        name: new.name,
        template: template.id.into(),
        label,
        mappings: new.mappings,
        target_endpoint: new.target_endpoint,
        session_timeout_s: timeout,
        created_ms: state.now(),
    };
    state.store.add_application(&app).await?;
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "application.add",
        format!("application/{}", app.name),
        format!("template {}", app.template),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(app)))
}

pub async fn list_applications(
    State(state): State<ApiState>,
    who: Who,
) -> ApiResult<Json<Vec<ApplicationRecord>>> {
    who.require(Action::ReadCatalogue)?;
    Ok(Json(state.store.applications(&who.tenant).await?))
}

pub async fn show_application(
    State(state): State<ApiState>,
    who: Who,
    Path(name): Path<String>,
) -> ApiResult<Json<ApplicationRecord>> {
    who.require(Action::ReadCatalogue)?;
    let app = state
        .store
        .application(&who.tenant, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("application", &name))?;
    Ok(Json(app))
}

pub async fn remove_application(
    State(state): State<ApiState>,
    who: Who,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    who.require(Action::Manage)?;
    state.store.remove_application(&who.tenant, &name).await?;
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "application.remove",
        format!("application/{name}"),
        String::new(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAssignment {
    device: String,
    application: String,
}

pub async fn add_assignment(
    State(state): State<ApiState>,
    who: Who,
    Body(new): Body<NewAssignment>,
) -> ApiResult<(StatusCode, Json<AssignmentRecord>)> {
    who.require(Action::ReadCatalogue)?;
    let device = access::device(&state, &who, &new.device).await?;
    let view = SiteView::load(&state, &who).await?;
    who.require(Action::Assign(view.role_on(&device.site)))?;
    let assignment = AssignmentRecord {
        tenant: who.tenant.clone(),
        application: new.application,
        device: device.name,
        created_ms: state.now(),
    };
    state.store.add_assignment(&assignment).await?;
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "assignment.add",
        format!("device/{}", assignment.device),
        format!("application {}", assignment.application),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(assignment)))
}

pub async fn list_assignments(
    State(state): State<ApiState>,
    who: Who,
) -> ApiResult<Json<Vec<AssignmentRecord>>> {
    who.require(Action::ReadCatalogue)?;
    let view = SiteView::load(&state, &who).await?;
    let devices = state.store.devices(&who.tenant).await?;
    let visible = |name: &str| {
        devices
            .iter()
            .any(|d| d.name == name && view.may(Action::SeeDevice, &d.site))
    };
    let all = state.store.assignments(&who.tenant, None).await?;
    Ok(Json(
        all.into_iter().filter(|a| visible(&a.device)).collect(),
    ))
}

pub async fn remove_assignment(
    State(state): State<ApiState>,
    who: Who,
    Path((device, application)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    who.require(Action::ReadCatalogue)?;
    let record = access::device(&state, &who, &device).await?;
    let view = SiteView::load(&state, &who).await?;
    who.require(Action::Assign(view.role_on(&record.site)))?;
    state
        .store
        .remove_assignment(&who.tenant, &application, &device, state.now())
        .await?;
    // Its sessions ended with it.
    state.sessions_changed(&who.tenant);
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "assignment.remove",
        format!("device/{device}"),
        format!("application {application}"),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
