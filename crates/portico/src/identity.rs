//! The identity service as the gateway sees it: [`IdentityAuthenticator`] answers the
//! gateway's questions (who holds this session, is this token good, what token goes to
//! the backend) with [`portico_identity::Identity`], and [`service`] serves its pages and
//! OAuth endpoints on the core identity paths. Neither crate knows the other; this is
//! where they meet.

use futures_util::future::{BoxFuture, FutureExt};
use portico_gateway::auth::{Authenticator, Principal, SessionInfo, TokenRejection, VerifiedToken};
use portico_gateway::body::Body;
use portico_gateway::{from_tower, InProcess, RequestContext};
use portico_identity::http::Caller;
use portico_identity::{Identity, Role, TokenError, TokenGrant};
use std::sync::Arc;

pub struct IdentityAuthenticator {
    identity: Identity,
}

impl IdentityAuthenticator {
    pub fn new(identity: Identity) -> IdentityAuthenticator {
        IdentityAuthenticator { identity }
    }
}

impl Authenticator for IdentityAuthenticator {
    fn session(&self, session_id: &str) -> BoxFuture<'_, Option<SessionInfo>> {
        let session_id = session_id.to_string();
        async move {
            match self.identity.session(&session_id).await {
                Ok(Some(session)) => Some(SessionInfo {
                    principal: Principal {
                        scopes: session
                            .role
                            .parse::<Role>()
                            .map(Role::scopes)
                            .unwrap_or_default(),
                        tenant: session.tenant,
                        subject: session.user_name,
                    },
                    csrf_token: session.csrf_token,
                }),
                Ok(None) => None,
                Err(e) => {
                    // The store is unreachable: the caller is treated as not logged in,
                    // which sends a browser to the login page rather than through.
                    tracing::warn!(error = %e, "cannot look up a session");
                    None
                }
            }
        }
        .boxed()
    }

    fn verify_token(&self, token: &str) -> Result<VerifiedToken, TokenRejection> {
        match self.identity.verify(token) {
            Ok(token) => Ok(VerifiedToken {
                principal: Principal {
                    tenant: token.tenant,
                    subject: token.subject,
                    scopes: token.scopes,
                },
                audiences: token.audiences,
            }),
            // ID-4: a token without a valid tenant claim is forbidden, not merely unknown.
            Err(e @ TokenError::BadTenant) => Err(TokenRejection::Forbidden(e.to_string())),
            Err(e) => Err(TokenRejection::Unauthorized(e.to_string())),
        }
    }

    fn forward_token(&self, principal: &Principal, audience: &str) -> Result<String, String> {
        self.identity
            .mint(&TokenGrant {
                subject: principal.subject.clone(),
                tenant: principal.tenant.clone(),
                audiences: vec![audience.to_string()],
                scopes: principal.scopes.clone(),
                client_id: None,
                actor: None,
            })
            .map_err(|e| e.to_string())
    }

    fn session_ended(&self, session_id: &str) -> BoxFuture<'static, ()> {
        self.identity.session_ended(session_id).boxed()
    }
}

/// The identity service's HTTP side as an in-process target: each request gets the
/// [`Caller`] its handlers read, made from what the gateway knows about the request.
pub fn service(identity: Identity) -> Arc<dyn InProcess> {
    let router = portico_identity::http::router(identity);
    from_tower(tower::ServiceExt::map_request(
        router,
        |mut request: http::Request<Body>| {
            if let Some(context) = request.extensions().get::<RequestContext>() {
                let caller = caller(context);
                request.extensions_mut().insert(caller);
            }
            request
        },
    ))
}

fn caller(context: &RequestContext) -> Caller {
    Caller {
        tenant: context.tenant.clone(),
        host: context.original_host.clone(),
        tls: context.tls,
        client: context.client.ip(),
        session_id: context.session.as_ref().map(|id| id.expose().to_string()),
        region_domain: format!("{}.{}", context.host.region_label(), context.host.domain),
    }
}
