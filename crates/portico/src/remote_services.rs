//! The Remote Services API inside `portico serve`: the relay's router as the in-process
//! target of the built-in APIs `remoteservices` and `endpointregistration`, its callers
//! taken from the principal the gateway verified, and endpoint credentials made by the
//! identity service (an OAuth client of the tenant with the client-credentials grant).

use portico_gateway::body::Body;
use portico_gateway::{from_tower, InProcess, RequestContext};
use portico_identity::{Identity, NewClient};
use portico_relay::api::{Caller, CredentialIssuer, Credentials, IssueError, IssueFuture};
use portico_store::Store;
use std::sync::Arc;

/// The API as an in-process target.
pub fn service(store: Store, identity: Identity) -> Arc<dyn InProcess> {
    let issuer = Arc::new(IdentityIssuer { identity });
    let router = portico_relay::api::remote_services_api(store, issuer);
    from_tower(tower::ServiceExt::map_request(
        router,
        |mut request: http::Request<Body>| {
            let caller = request
                .extensions()
                .get::<RequestContext>()
                .and_then(|context| context.principal.as_ref())
                .map(|principal| Caller {
                    tenant: principal.tenant.clone(),
                    subject: principal.subject.clone(),
                    // The user's role travels as the scope `role:{role}`; a client has none.
                    role: principal
                        .scopes
                        .iter()
                        .find_map(|s| s.strip_prefix("role:"))
                        .unwrap_or("")
                        .to_string(),
                });
            if let Some(caller) = caller {
                request.extensions_mut().insert(caller);
            }
            request
        },
    ))
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

    fn revoke<'a>(&'a self, tenant: &'a str, client_id: &'a str) -> IssueFuture<'a, ()> {
        Box::pin(async move {
            self.identity
                .store()
                .remove_oauth_client(tenant, client_id)
                .await
                .map_err(|e| IssueError(e.to_string()))
        })
    }
}
