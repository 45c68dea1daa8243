//! Connection sessions (RS-4, RS-5, RS-8): a caller allowed to connect a device opens one
//! for an application assigned to it and gets the listeners to open; it times out after
//! the application's session timeout; callers list and end their own (administrators all
//! of the tenant's). And the audit trail, for administrators.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portico_store::{
    ApplicationRecord, AuditFilter, ConnectionFilter, ConnectionSessionRecord, EndpointBinding,
    EndpointState,
};
use serde::{Deserialize, Serialize};

use super::access::{self, SiteView, Who};
use super::error::{ApiError, ApiResult, Body};
use super::export::{self, Format, Params};
use super::ApiState;
use crate::rules::{self, Action, Role};
use crate::templates::{self, Direction};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    device: String,
    application: String,
}

/// A local listener the connection needs: on the service side (the caller's Service
/// Endpoint) for a forward application, on the device side for DTT Reverse.
#[derive(Serialize)]
pub struct Listener {
    side: &'static str,
    local_port: u16,
    target_host: String,
    target_port: u16,
}

#[derive(Serialize)]
pub struct Connection {
    #[serde(flatten)]
    session: ConnectionSessionRecord,
    /// The application's template (`ssh`, `rdp`, …), so a client can say how to use the
    /// listeners (`ssh -p 2222 localhost`).
    template: String,
    listeners: Vec<Listener>,
}

fn listeners(app: &ApplicationRecord) -> Vec<Listener> {
    let side = match templates::template(&app.template).map(|t| t.direction) {
        Some(Direction::Reverse) => "device",
        _ => "service",
    };
    app.mappings
        .iter()
        .map(|m| Listener {
            side,
            local_port: m.local_port,
            target_host: m.target_host.clone(),
            target_port: m.target_port,
        })
        .collect()
}

/// Ends the tenant's sessions that are past their timeout, and audits each.
async fn expire(state: &ApiState, tenant: &str) -> ApiResult<()> {
    let expired = state
        .store
        .expire_connection_sessions(tenant, state.now())
        .await?;
    if !expired.is_empty() {
        state.sessions_changed(tenant);
    }
    for s in expired {
        access::audit(
            state,
            tenant,
            &s.user_name,
            "connection.timeout",
            format!("connection/{}", s.id),
            format!("device {} application {}", s.device, s.application),
        )
        .await?;
    }
    Ok(())
}

pub async fn open_connection(
    State(state): State<ApiState>,
    who: Who,
    Body(new): Body<NewConnection>,
) -> ApiResult<(StatusCode, Json<Connection>)> {
    who.require(Action::ReadCatalogue)?;
    let device = access::device(&state, &who, &new.device).await?;
    let view = SiteView::load(&state, &who).await?;
    who.require(Action::Connect(view.role_on(&device.site)))?;
    let app = state
        .store
        .application(&who.tenant, &new.application)
        .await?
        .ok_or_else(|| ApiError::not_found("application", &new.application))?;
    let assigned = state
        .store
        .assignments(&who.tenant, Some(&device.name))
        .await?
        .iter()
        .any(|a| a.application == app.name);
    if !assigned {
        return Err(ApiError::conflict(format!(
            "application \"{}\" is not assigned to device \"{}\"",
            app.name, device.name
        )));
    }
    let endpoints = state.store.endpoints(&who.tenant).await?;
    let device_online = endpoints.iter().any(|e| {
        e.state == EndpointState::Registered
            && matches!(&e.binding, EndpointBinding::Device(d) if *d == device.name)
    });
    if !device_online {
        return Err(ApiError::conflict(format!(
            "device \"{}\" has no registered endpoint",
            device.name
        )));
    }
    if let Some(target) = &app.target_endpoint {
        let ready = endpoints
            .iter()
            .any(|e| &e.name == target && e.state == EndpointState::Registered);
        if !ready {
            return Err(ApiError::conflict(format!(
                "the target service endpoint \"{target}\" is not registered"
            )));
        }
    }
    expire(&state, &who.tenant).await?;
    let now = state.now();
    let session = ConnectionSessionRecord {
        tenant: who.tenant.clone(),
        id: access::random_hex()[..32].to_string(),
        user_name: who.subject.clone(),
        device: device.name.clone(),
        application: app.name.clone(),
        started_ms: now,
        ends_ms: now.saturating_add(app.session_timeout_s.saturating_mul(1000)),
        ended_ms: None,
        end_reason: None,
        bytes_up: 0,
        bytes_down: 0,
    };
    state.store.add_connection_session(&session).await?;
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "connection.open",
        format!("connection/{}", session.id),
        format!(
            "device {} application {} timeout {}s",
            device.name, app.name, app.session_timeout_s
        ),
    )
    .await?;
    state.sessions_changed(&who.tenant);
    Ok((
        StatusCode::CREATED,
        Json(Connection {
            listeners: listeners(&app),
            template: app.template.clone(),
            session,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `true`: only open sessions.
    #[serde(default)]
    open: bool,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    application: Option<String>,
    #[serde(default)]
    user: Option<String>,
    /// Started at or after (unix milliseconds).
    #[serde(default)]
    since_ms: Option<i64>,
    /// Started before (unix milliseconds).
    #[serde(default)]
    until_ms: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    format: Format,
}

const DEFAULT_CONNECTIONS: i64 = 500;
const MAX_CONNECTIONS: i64 = 5000;

/// The filter a caller's query asks for, narrowed to what the caller may see: an
/// administrator sees all of the tenant's sessions, anyone else only their own (asking
/// for another user's gets none). `None`: nothing can match.
fn connection_filter(who: &Who, q: ListQuery) -> ApiResult<Option<ConnectionFilter>> {
    let limit = q.limit.unwrap_or(DEFAULT_CONNECTIONS);
    if !(1..=MAX_CONNECTIONS).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: 1 to {MAX_CONNECTIONS}"
        )));
    }
    let user = match who.role {
        Role::Admin => q.user,
        _ if q.user.as_ref().is_some_and(|u| *u != who.subject) => return Ok(None),
        _ => Some(who.subject.clone()),
    };
    Ok(Some(ConnectionFilter {
        open_only: q.open,
        user,
        device: q.device,
        application: q.application,
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        limit,
    }))
}

pub async fn list_connections(
    State(state): State<ApiState>,
    who: Who,
    Params(q): Params<ListQuery>,
) -> ApiResult<Response> {
    who.require(Action::ReadCatalogue)?;
    expire(&state, &who.tenant).await?;
    let format = q.format;
    let sessions: Vec<ConnectionSessionRecord> = match connection_filter(&who, q)? {
        Some(filter) => state
            .store
            .connection_sessions_where(&who.tenant, &filter)
            .await?
            .into_iter()
            .filter(|s| rules::may_manage_session(who.role, &who.subject, s))
            .collect(),
        None => Vec::new(),
    };
    match format {
        Format::Json => Ok(Json(sessions).into_response()),
        Format::Csv => export::connections_csv(&sessions),
    }
}

async fn visible_session(
    state: &ApiState,
    who: &Who,
    id: &str,
) -> ApiResult<ConnectionSessionRecord> {
    let session = state
        .store
        .connection_session(&who.tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("connection", id))?;
    if !rules::may_manage_session(who.role, &who.subject, &session) {
        return Err(ApiError::forbidden("This is another user's connection"));
    }
    Ok(session)
}

pub async fn show_connection(
    State(state): State<ApiState>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectionSessionRecord>> {
    who.require(Action::ReadCatalogue)?;
    expire(&state, &who.tenant).await?;
    Ok(Json(visible_session(&state, &who, &id).await?))
}

pub async fn end_connection(
    State(state): State<ApiState>,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectionSessionRecord>> {
    who.require(Action::ReadCatalogue)?;
    expire(&state, &who.tenant).await?;
    let session = visible_session(&state, &who, &id).await?;
    if state
        .store
        .end_connection_session(&who.tenant, &id, state.now(), "ended")
        .await?
    {
        state.sessions_changed(&who.tenant);
        access::audit(
            &state,
            &who.tenant,
            &who.subject,
            "connection.end",
            format!("connection/{id}"),
            format!(
                "device {} application {}",
                session.device, session.application
            ),
        )
        .await?;
    }
    Ok(Json(visible_session(&state, &who, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    format: Format,
}

pub async fn list_audit(
    State(state): State<ApiState>,
    who: Who,
    Params(q): Params<AuditQuery>,
) -> ApiResult<Response> {
    who.require(Action::Manage)?;
    expire(&state, &who.tenant).await?;
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    };
    let records = state.store.audit_where(&who.tenant, &filter).await?;
    match q.format {
        Format::Json => Ok(Json(records).into_response()),
        Format::Csv => export::audit_csv(&records),
    }
}
