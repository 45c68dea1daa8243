//! Endpoints and their onboarding (RS-9): an administrator creates an endpoint and is shown
//! its one-time registration code once; the agent trades the code for credentials at
//! `/register`; revoking withdraws the credentials and ends the device's connections.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portico_store::{EndpointBinding, EndpointRecord, EndpointState};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::access::{self, check_name, Who};
use super::error::{ApiError, ApiResult, Body};
use super::ApiState;
use crate::rules::Action;

/// An endpoint as the API shows it: never its code's hash.
#[derive(Serialize)]
pub struct EndpointView {
    name: String,
    kind: &'static str,
    bound_to: EndpointBinding,
    state: EndpointState,
    client_id: Option<String>,
    created_ms: i64,
    registered_ms: Option<i64>,
    revoked_ms: Option<i64>,
    /// Until when the registration code works, while it is unused.
    code_expires_ms: Option<i64>,
    /// Connected to the relay now.
    online: bool,
    /// Since when it is connected, while it is.
    online_since_ms: Option<i64>,
}

impl EndpointView {
    /// The view with the endpoint's presence on the relay (`online`: name to since).
    fn with_presence(e: EndpointRecord, online: &HashMap<String, i64>) -> EndpointView {
        let since = online.get(&e.name).copied();
        EndpointView {
            online: since.is_some(),
            online_since_ms: since,
            ..EndpointView::from(e)
        }
    }
}

impl From<EndpointRecord> for EndpointView {
    fn from(e: EndpointRecord) -> EndpointView {
        EndpointView {
            online: false,
            online_since_ms: None,
            name: e.name,
            kind: e.binding.kind(),
            bound_to: e.binding,
            state: e.state,
            client_id: e.client_id,
            created_ms: e.created_ms,
            registered_ms: e.registered_ms,
            revoked_ms: e.revoked_ms,
            code_expires_ms: e.code_expires_ms,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    name: String,
    /// `device` (needs `device`) or `service` (needs `site` or `user`).
    kind: String,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Serialize)]
pub struct CreatedEndpoint {
    pub(super) endpoint: EndpointView,
    /// Shown once; only its hash is kept.
    pub(super) registration_code: String,
}

pub(super) fn hash_code(code: &str) -> String {
    access::hex(&Sha256::digest(code.trim().as_bytes()))
}

fn binding_of(new: &NewEndpoint) -> ApiResult<EndpointBinding> {
    match (new.kind.as_str(), &new.device, &new.site, &new.user) {
        ("device", Some(d), None, None) => Ok(EndpointBinding::Device(d.clone())),
        ("service", None, Some(s), None) => Ok(EndpointBinding::ServiceSite(s.clone())),
        ("service", None, None, Some(u)) => Ok(EndpointBinding::ServiceUser(u.clone())),
        ("device", ..) => Err(ApiError::bad_request(
            "a device endpoint names its device, and nothing else",
        )),
        ("service", ..) => Err(ApiError::bad_request(
            "a service endpoint names either a site or a user",
        )),
        (other, ..) => Err(ApiError::bad_request(format!(
            "kind \"{other}\": use device or service"
        ))),
    }
}

pub async fn add_endpoint(
    State(state): State<ApiState>,
    who: Who,
    Body(new): Body<NewEndpoint>,
) -> ApiResult<(StatusCode, Json<CreatedEndpoint>)> {
    who.require(Action::Manage)?;
    check_name("endpoint", &new.name)?;
    let binding = binding_of(&new)?;
    if let EndpointBinding::ServiceUser(u) = &binding {
        if u.is_empty() || u.len() > 64 {
            return Err(ApiError::bad_request("user: 1-64 characters"));
        }
    }
    let now = state.now();
    let lifetime =
        i64::try_from(state.options.registration_code_lifetime.as_millis()).unwrap_or(i64::MAX);
    let code = access::random_hex();
    let endpoint = EndpointRecord {
        tenant: who.tenant.clone(),
        name: new.name,
        binding,
        state: EndpointState::Pending,
        code_hash: Some(hash_code(&code)),
        code_expires_ms: Some(now.saturating_add(lifetime)),
        client_id: None,
        created_ms: now,
        registered_ms: None,
        revoked_ms: None,
    };
    state.store.add_endpoint(&endpoint).await?;
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "endpoint.add",
        format!("endpoint/{}", endpoint.name),
        format!("{:?}", endpoint.binding),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEndpoint {
            endpoint: endpoint.into(),
            registration_code: code,
        }),
    ))
}

pub async fn list_endpoints(
    State(state): State<ApiState>,
    who: Who,
) -> ApiResult<Json<Vec<EndpointView>>> {
    who.require(Action::Manage)?;
    let all = state.store.endpoints(&who.tenant).await?;
    let online = state.online(&who.tenant);
    Ok(Json(
        all.into_iter()
            .map(|e| EndpointView::with_presence(e, &online))
            .collect(),
    ))
}

pub async fn show_endpoint(
    State(state): State<ApiState>,
    who: Who,
    Path(name): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    who.require(Action::Manage)?;
    let endpoint = state
        .store
        .endpoint(&who.tenant, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint", &name))?;
    let online = state.online(&who.tenant);
    Ok(Json(EndpointView::with_presence(endpoint, &online)))
}

pub async fn revoke_endpoint(
    State(state): State<ApiState>,
    who: Who,
    Path(name): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    who.require(Action::Manage)?;
    let now = state.now();
    let before = state.store.revoke_endpoint(&who.tenant, &name, now).await?;
    // Cut first: the credentials may be withdrawn late, the tunnel must not live on.
    state.endpoint_revoked(&who.tenant, &name);
    // A device endpoint's connections end with it.
    if let EndpointBinding::Device(device) = &before.binding {
        for s in state.store.connection_sessions(&who.tenant, true).await? {
            if &s.device == device
                && state
                    .store
                    .end_connection_session(&who.tenant, &s.id, now, "revoked")
                    .await?
            {
                access::audit(
                    &state,
                    &who.tenant,
                    &who.subject,
                    "connection.end",
                    format!("connection/{}", s.id),
                    "endpoint revoked".into(),
                )
                .await?;
            }
        }
    }
    state.sessions_changed(&who.tenant);
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "endpoint.revoke",
        format!("endpoint/{name}"),
        String::new(),
    )
    .await?;
    // The credentials go last, the pending client of an unconfirmed rotation with the
    // current one: a failure to withdraw them is reported (revoking again retries), but the
    // tunnel is cut, the sessions are ended and the revocation is audited whatever happens.
    let clients = state.store.endpoint_clients(&who.tenant, &name).await?;
    let mut withdrawn = Ok(());
    for client_id in before.client_id.iter().chain(&clients.pending) {
        if let Err(e) = state.issuer.revoke(&who.tenant, client_id).await {
            tracing::error!(error = %e, endpoint = %name, "cannot withdraw endpoint credentials");
            withdrawn = Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The endpoint is revoked, but its credentials could not be withdrawn yet; revoke it again",
            ));
        }
    }
    withdrawn?;
    let after = state
        .store
        .endpoint(&who.tenant, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint", &name))?;
    Ok(Json(after.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    code: String,
}

#[derive(Serialize)]
pub struct Registered {
    tenant: String,
    endpoint: String,
    kind: &'static str,
    client_id: String,
    client_secret: String,
}

/// Trades a registration code for credentials. Needs no caller: the code is the proof.
/// A wrong, used or expired code gets the same 400, so that codes cannot be probed.
pub async fn register(
    State(state): State<ApiState>,
    Body(reg): Body<Registration>,
) -> ApiResult<Json<Registered>> {
    let refused =
        || ApiError::bad_request("The registration code is not valid (wrong, used or expired)");
    if reg.code.len() > 256 {
        return Err(refused());
    }
    let now = state.now();
    let endpoint = state
        .store
        .claim_registration_code(&hash_code(&reg.code), now)
        .await?
        .ok_or_else(refused)?;
    let creds = state
        .issuer
        .issue(&endpoint.tenant, &endpoint.name)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, endpoint = %endpoint.name, "cannot issue endpoint credentials");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Credentials could not be issued; ask for a new registration code",
            )
        })?;
    let Some(earlier) = state
        .store
        .set_endpoint_credentials(&endpoint.tenant, &endpoint.name, &creds.client_id, now)
        .await?
    else {
        // Revoked between the claim and now: the fresh credentials go too.
        state
            .issuer
            .revoke(&endpoint.tenant, &creds.client_id)
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        return Err(refused());
    };
    // Registering again (a replaced device): every earlier client is withdrawn. They are
    // no longer the endpoint's in the store either, so one that cannot be withdrawn now
    // is accepted nowhere; it is logged for the operator.
    let mut detail = format!("client {}", creds.client_id);
    if earlier.all().next().is_some() {
        // The device that held them may still be connected: its tunnel and control channel
        // are cut before the new credentials are handed out (it hears that it was revoked,
        // which it was). The new device cannot have connected yet.
        state.endpoint_revoked(&endpoint.tenant, &endpoint.name);
    }
    for old in earlier.all() {
        detail.push_str(&format!(", withdrew client {old}"));
        if let Err(error) = state.issuer.revoke(&endpoint.tenant, old).await {
            tracing::error!(%error, endpoint = %endpoint.name, client = old, "cannot withdraw an earlier client of a re-registered endpoint");
        }
    }
    access::audit(
        &state,
        &endpoint.tenant,
        &endpoint.name,
        "endpoint.register",
        format!("endpoint/{}", endpoint.name),
        detail,
    )
    .await?;
    Ok(Json(Registered {
        tenant: endpoint.tenant,
        kind: endpoint.binding.kind(),
        endpoint: endpoint.name,
        client_id: creds.client_id,
        client_secret: creds.client_secret,
    }))
}
