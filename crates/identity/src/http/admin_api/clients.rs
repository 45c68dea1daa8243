//! The tenant's OAuth clients. A client secret is shown once, when the client is made;
//! lists never show a secret or its hash. The client of a Remote Services endpoint goes
//! only by revoking the endpoint (which withdraws it), never on its own here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portico_store::OAuthClientRecord;
use serde::{Deserialize, Serialize};

use super::error::{AdminError, AdminResult, Body};
use super::Admin;
use crate::oauth::NewClient;
use crate::Identity;

#[derive(Serialize)]
pub struct ClientView {
    client_id: String,
    name: String,
    confidential: bool,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    redirect_uris: Vec<String>,
    created_ms: i64,
}

impl From<OAuthClientRecord> for ClientView {
    fn from(c: OAuthClientRecord) -> ClientView {
        ClientView {
            confidential: c.secret_hash.is_some(),
            client_id: c.client_id,
            name: c.name,
            grant_types: c.grant_types,
            scopes: c.scopes,
            redirect_uris: c.redirect_uris,
            created_ms: c.created_ms,
        }
    }
}

pub async fn list(
    State(identity): State<Identity>,
    admin: Admin,
) -> AdminResult<Json<Vec<ClientView>>> {
    let all = identity.store().oauth_clients(&admin.tenant).await?;
    Ok(Json(all.into_iter().map(ClientView::from).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClientBody {
    name: String,
    confidential: bool,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
}

#[derive(Serialize)]
pub struct CreatedClient {
    client_id: String,
    /// Shown once; `null` for a public client.
    client_secret: Option<String>,
}

fn check_new_client(new: &NewClientBody) -> AdminResult<()> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AdminError::bad_request("name: 1 to 100 characters"));
    }
    if new.grant_types.is_empty() {
        return Err(AdminError::bad_request("grant_types: name at least one"));
    }
    // Scopes that say who a user is come from a user's role, never from a client: a
    // client holding `role:admin` would act as an administrator without being one.
    if let Some(scope) = new
        .scopes
        .iter()
        .find(|s| *s == "portico" || s.starts_with("role:"))
    {
        return Err(AdminError::bad_request(format!(
            "scope \"{scope}\": a client cannot hold a user's scopes (portico, role:…)"
        )));
    }
    if let Some(uri) = new
        .redirect_uris
        .iter()
        .find(|u| !(u.starts_with("https://") || u.starts_with("http://")))
    {
        return Err(AdminError::bad_request(format!(
            "redirect URI \"{uri}\": use an http or https URL"
        )));
    }
    Ok(())
}

pub async fn add(
    State(identity): State<Identity>,
    admin: Admin,
    Body(new): Body<NewClientBody>,
) -> AdminResult<(StatusCode, Json<CreatedClient>)> {
    check_new_client(&new)?;
    let registered = identity
        .register_client(&NewClient {
            tenant: admin.tenant.clone(),
            name: new.name.trim().to_string(),
            confidential: new.confidential,
            grant_types: new.grant_types,
            scopes: new.scopes,
            redirect_uris: new.redirect_uris,
        })
        .await?;
    tracing::info!(tenant = %admin.tenant, by = %admin.subject, client = %registered.client_id, "OAuth client added");
    Ok((
        StatusCode::CREATED,
        Json(CreatedClient {
            client_id: registered.client_id,
            client_secret: registered.client_secret,
        }),
    ))
}

pub async fn remove(
    State(identity): State<Identity>,
    admin: Admin,
    Path(client_id): Path<String>,
) -> AdminResult<StatusCode> {
    let store = identity.store();
    let ours = store
        .oauth_client(&client_id)
        .await?
        .is_some_and(|c| c.tenant == admin.tenant);
    if !ours {
        return Err(AdminError::not_found("OAuth client", &client_id));
    }
    if let Some((endpoint, _)) = store.endpoint_by_client(&admin.tenant, &client_id).await? {
        return Err(AdminError::conflict(format!(
            "This client belongs to the Remote Services endpoint \"{}\": revoke the endpoint instead",
            endpoint.name
        )));
    }
    store.remove_oauth_client(&admin.tenant, &client_id).await?;
    tracing::info!(tenant = %admin.tenant, by = %admin.subject, client = %client_id, "OAuth client removed");
    Ok(StatusCode::NO_CONTENT)
}
