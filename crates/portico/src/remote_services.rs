//! The Remote Services API inside `portico serve`: the relay's router as the in-process
//! target of the built-in APIs `remoteservices` and `endpointregistration`, its callers
//! taken from the principal the gateway verified, and endpoint credentials made by the
//! identity service (an OAuth client of the tenant with the client-credentials grant).

use futures_util::FutureExt;
use portico_gateway::auth::Principal;
use portico_gateway::body::{boxed, Body};
use portico_gateway::{from_tower, InProcess, RequestContext};
use portico_identity::{Identity, NewClient};
use portico_relay::api::{
    ApiOptions, Caller, ClientCaller, CredentialIssuer, Credentials, IssueError, IssueFuture,
    LiveEvents,
};
use portico_store::{EndpointBinding, Store, StoreError, UserRecord};
use std::sync::Arc;

/// The API as an in-process target; `live` (the relay's control hub) hears of every
/// change that concerns connected endpoints.
pub fn service(
    store: Store,
    identity: Identity,
    live: Option<Arc<dyn LiveEvents>>,
) -> Arc<dyn InProcess> {
    let issuer = Arc::new(IdentityIssuer { identity });
    let router = portico_relay::api::remote_services_api_live(
        store.clone(),
        issuer,
        ApiOptions::default(),
        live,
    );
    from_tower(tower::service_fn(
        move |mut request: http::Request<Body>| {
            let (router, store) = (router.clone(), store.clone());
            let principal = request
                .extensions()
                .get::<RequestContext>()
                .and_then(|context| context.principal.clone());
            // Combinators rather than one async block: the compiler cannot prove such a block
            // `Send` across the router's future (the boxed body error's elided lifetime).
            let client = client_caller(principal.as_ref());
            let path = request.uri().path().to_string();
            async move { caller(&store, principal, &path).await }
                .then(move |caller| {
                    if let Some(caller) = caller {
                        request.extensions_mut().insert(caller);
                    }
                    if let Some(client) = client {
                        request.extensions_mut().insert(client);
                    }
                    tower::ServiceExt::oneshot(router, request)
                })
                .map(|answer| answer.map(|response| response.map(boxed)))
        },
    ))
}

/// The OAuth client behind a principal without a role (a client-credentials token), for
/// the handlers that serve endpoints as themselves (credential rotation).
fn client_caller(principal: Option<&Principal>) -> Option<ClientCaller> {
    let principal = principal?;
    principal.role().is_none().then(|| ClientCaller {
        tenant: principal.tenant.clone(),
        client_id: principal.subject.clone(),
    })
}

/// The caller from the principal the gateway verified. A user's role travels as the scope
/// `role:{role}`. A client has none, unless it is a registered Service Endpoint bound to a
/// user (`ServiceUser`) calling the connections API (`path` under `/connections`): there it
/// acts as its user, with the user's role, so that `portico connect` can open and end its
/// user's connections. Nowhere else: an endpoint's stored secret must not carry an
/// administrator's power over endpoints, codes and assignments.
async fn caller(store: &Store, principal: Option<Principal>, path: &str) -> Option<Caller> {
    let principal = principal?;
    if let Some(role) = principal.role() {
        return Some(Caller {
            tenant: principal.tenant.clone(),
            subject: principal.subject.clone(),
            role: role.to_string(),
        });
    }
    let as_client = Caller {
        tenant: principal.tenant.clone(),
        subject: principal.subject.clone(),
        role: String::new(),
    };
    let connections = path == "/connections" || path.starts_with("/connections/");
    if !connections {
        return Some(as_client);
    }
    match endpoint_user(store, &principal.tenant, &principal.subject).await {
        Ok(Some(user)) => Some(Caller {
            tenant: user.tenant,
            subject: user.name,
            role: user.role,
        }),
        Ok(None) => Some(as_client),
        Err(error) => {
            tracing::error!(%error, "cannot look up the endpoint of a client caller");
            Some(as_client)
        }
    }
}

/// The user whose registered Service Endpoint has OAuth client `client_id` (its current
/// client, or the pending one of a rotation in progress), if any.
async fn endpoint_user(
    store: &Store,
    tenant: &str,
    client_id: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let endpoint = store.endpoint_by_client(tenant, client_id).await?;
    match endpoint.map(|(e, _)| e.binding) {
        Some(EndpointBinding::ServiceUser(user)) => store.user(tenant, &user).await,
        _ => Ok(None),
    }
}

/// Makes and withdraws endpoint credentials (RS-9) as OAuth clients of the identity service.
pub struct IdentityIssuer {
    pub identity: Identity,
}

impl CredentialIssuer for IdentityIssuer {
    fn issue<'a>(&'a self, tenant: &'a str, endpoint: &'a str) -> IssueFuture<'a, Credentials> {
        Box::pin(async move {
            let registered = self
                .identity
                .register_client(&NewClient {
                    tenant: tenant.to_string(),
                    name: format!("endpoint {endpoint}"),
                    confidential: true,
                    grant_types: vec!["client_credentials".into()],
                    scopes: Vec::new(),
                    redirect_uris: Vec::new(),
                })
                .await
                .map_err(|e| IssueError(e.to_string()))?;
            let client_secret = registered
                .client_secret
                .ok_or_else(|| IssueError("a confidential client without a secret".into()))?;
            Ok(Credentials {
                client_id: registered.client_id,
                client_secret,
            })
        })
    }

    /// Withdrawing a client that is gone already succeeds: a rotation or revocation that
    /// is retried after a partial failure withdraws the same client again.
    fn revoke<'a>(&'a self, tenant: &'a str, client_id: &'a str) -> IssueFuture<'a, ()> {
        Box::pin(async move {
            match self
                .identity
                .store()
                .remove_oauth_client(tenant, client_id)
                .await
            {
                Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
                Err(e) => Err(IssueError(e.to_string())),
            }
        })
    }
}
