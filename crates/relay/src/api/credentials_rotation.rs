//! Credential rotation without lock-out (RS-9), in two phases, and a new registration code
//! for an endpoint that exists (a replaced device).
//!
//! 1. `POST /credentials/rotate`, called by an endpoint with a token of its current client:
//!    a new client is issued and recorded as the endpoint's *pending* client (an earlier
//!    pending one is withdrawn). Both clients work meanwhile.
//! 2. `POST /credentials/confirm`, called with a token of the pending client: the old
//!    client is withdrawn and the pending one becomes the current one.
//!
//! An agent that fails between the two keeps working with whichever credentials it holds.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use portico_store::{ClientStanding, EndpointRecord};
use serde::Serialize;

use super::access::{self, Who};
use super::endpoints::{hash_code, CreatedEndpoint};
use super::error::{ApiError, ApiResult};
use super::{ApiState, Caller, ClientCaller};
use crate::rules::Action;

/// The registered endpoint whose client calls, and which of its clients that is. A caller
/// that is a user, or a client that is no registered endpoint's (a revoked endpoint's
/// included), is refused with 403.
pub struct CallingEndpoint {
    endpoint: EndpointRecord,
    client_id: String,
    standing: ClientStanding,
}

impl FromRequestParts<ApiState> for CallingEndpoint {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<CallingEndpoint, ApiError> {
        let only_endpoints = || {
            ApiError::forbidden(
                "Only a registered endpoint rotates its credentials, with a token of its own client",
            )
        };
        let Some(client) = parts.extensions.get::<ClientCaller>().cloned() else {
            return Err(if parts.extensions.get::<Caller>().is_some() {
                only_endpoints()
            } else {
                ApiError::new(StatusCode::UNAUTHORIZED, "Sign in to use Remote Services")
            });
        };
        let (endpoint, standing) = state
            .store
            .endpoint_by_client(&client.tenant, &client.client_id)
            .await?
            .ok_or_else(only_endpoints)?;
        Ok(CallingEndpoint {
            endpoint,
            client_id: client.client_id,
            standing,
        })
    }
}

/// The new client; the secret is shown this once.
#[derive(Serialize)]
pub struct Rotated {
    client_id: String,
    client_secret: String,
}

#[derive(Serialize)]
pub struct Confirmed {
    client_id: String,
}

fn unavailable(what: &'static str) -> impl Fn(super::IssueError) -> ApiError {
    move |e| {
        tracing::error!(error = %e, "credential rotation: {what}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what}; the current credentials still work, try again later"),
        )
    }
}

/// Phase 1: a new pending client for the calling endpoint.
pub async fn rotate(
    State(state): State<ApiState>,
    caller: CallingEndpoint,
) -> ApiResult<Json<Rotated>> {
    if caller.standing == ClientStanding::Pending {
        return Err(ApiError::conflict(
            "These credentials are pending: confirm them (POST /credentials/confirm) before rotating again",
        ));
    }
    let (tenant, name) = (&caller.endpoint.tenant, &caller.endpoint.name);
    let earlier = state.store.endpoint_clients(tenant, name).await?.pending;
    if let Some(earlier) = &earlier {
        state
            .issuer
            .revoke(tenant, earlier)
            .await
            .map_err(unavailable(
                "the earlier pending credentials cannot be withdrawn",
            ))?;
    }
    let fresh = state
        .issuer
        .issue(tenant, name)
        .await
        .map_err(unavailable("new credentials cannot be issued"))?;
    let now = state.now();
    let replaced = state
        .store
        .set_pending_client(tenant, name, &caller.client_id, &fresh.client_id, now)
        .await?;
    let Some(replaced) = replaced else {
        // Revoked, registered again or rotated by someone else meanwhile.
        if let Err(error) = state.issuer.revoke(tenant, &fresh.client_id).await {
            tracing::error!(%error, endpoint = %name, "cannot withdraw credentials issued for a rotation that lost a race");
        }
        return Err(ApiError::conflict(
            "The endpoint changed meanwhile (revoked or registered again); nothing was rotated",
        ));
    };
    // Another rotation recorded its pending client between the read and the write.
    if let Some(other) = replaced.filter(|r| Some(r) != earlier.as_ref()) {
        if let Err(error) = state.issuer.revoke(tenant, &other).await {
            tracing::error!(%error, endpoint = %name, client = %other, "cannot withdraw a replaced pending client");
        }
    }
    access::audit(
        &state,
        tenant,
        name,
        "endpoint.rotate",
        format!("endpoint/{name}"),
        format!("pending client {}", fresh.client_id),
    )
    .await?;
    Ok(Json(Rotated {
        client_id: fresh.client_id,
        client_secret: fresh.client_secret,
    }))
}

/// Phase 2: the pending client, calling, becomes the endpoint's current client and the
/// old one is withdrawn. Confirming again with the current client is answered the same,
/// so that an agent that lost the first answer can ask again.
pub async fn confirm(
    State(state): State<ApiState>,
    caller: CallingEndpoint,
) -> ApiResult<Json<Confirmed>> {
    let (tenant, name) = (&caller.endpoint.tenant, &caller.endpoint.name);
    if caller.standing == ClientStanding::Current {
        let clients = state.store.endpoint_clients(tenant, name).await?;
        if clients.pending.is_some() {
            return Err(ApiError::conflict(
                "Confirm with a token of the new (pending) credentials, not the current ones",
            ));
        }
        return Ok(Json(Confirmed {
            client_id: caller.client_id,
        }));
    }
    // Withdraw first: should the store write fail, the pending client still works and
    // the agent confirms again.
    let old = caller.endpoint.client_id.clone();
    if let Some(old) = &old {
        state
            .issuer
            .revoke(tenant, old)
            .await
            .map_err(unavailable("the old credentials cannot be withdrawn"))?;
    }
    let now = state.now();
    state
        .store
        .confirm_pending_client(tenant, name, &caller.client_id, now)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                "The endpoint changed meanwhile (revoked, registered again or rotated again)",
            )
        })?;
    access::audit(
        &state,
        tenant,
        name,
        "endpoint.rotate.confirm",
        format!("endpoint/{name}"),
        format!(
            "client {}, withdrew client {}",
            caller.client_id,
            old.as_deref().unwrap_or("-")
        ),
    )
    .await?;
    Ok(Json(Confirmed {
        client_id: caller.client_id,
    }))
}

/// A new one-time registration code for an endpoint that exists, e.g. for a replaced
/// device. The endpoint keeps its credentials until the code is used; registering with it
/// withdraws every earlier client. A revoked endpoint stays revoked (409).
pub async fn new_registration_code(
    State(state): State<ApiState>,
    who: Who,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<CreatedEndpoint>)> {
    who.require(Action::Manage)?;
    let lifetime =
        i64::try_from(state.options.registration_code_lifetime.as_millis()).unwrap_or(i64::MAX);
    let code = access::random_hex();
    let expires = state.now().saturating_add(lifetime);
    let endpoint = state
        .store
        .set_registration_code(&who.tenant, &name, &hash_code(&code), expires)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "endpoint \"{name}\" is revoked, and revocation is for good; add a new endpoint"
            ))
        })?;
    access::audit(
        &state,
        &who.tenant,
        &who.subject,
        "endpoint.code",
        format!("endpoint/{name}"),
        String::new(),
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
