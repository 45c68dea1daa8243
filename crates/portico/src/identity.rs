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
use portico_identity::{Identity, TokenError, TokenGrant};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct IdentityAuthenticator {
    identity: Identity,
    minted: MintedTokens,
}

impl IdentityAuthenticator {
    pub fn new(identity: Identity) -> IdentityAuthenticator {
        // A forwarded token is reused for half its life, so that a backend always gets
        // one with at least the other half left.
        let reuse_for = identity.config().access_token_lifetime / 2;
        IdentityAuthenticator {
            identity,
            minted: MintedTokens::new(reuse_for),
        }
    }
}

/// Tokens minted for backends, reused for the same caller and audience: an ES256
/// signature per request would cost more than all the rest of proxying it.
struct MintedTokens {
    reuse_for: Duration,
    tokens: Mutex<HashMap<MintKey, (String, Instant)>>,
}

#[derive(Hash, PartialEq, Eq)]
struct MintKey {
    tenant: String,
    subject: String,
    audience: String,
    scopes: Vec<String>,
}

/// Beyond this many callers × audiences, stale entries are dropped (and if none are
/// stale, all): the cache saves work, it must not grow with the number of callers.
const MAX_MINTED: usize = 10_000;

impl MintedTokens {
    fn new(reuse_for: Duration) -> MintedTokens {
        MintedTokens {
            reuse_for,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn get_or_mint(
        &self,
        key: MintKey,
        mint: impl FnOnce() -> Result<String, String>,
    ) -> Result<String, String> {
        let now = Instant::now();
        if let Some((token, until)) = self.lock().get(&key) {
            if *until > now {
                return Ok(token.clone());
            }
        }
        let token = mint()?;
        let mut tokens = self.lock();
        if tokens.len() >= MAX_MINTED {
            tokens.retain(|_, (_, until)| *until > now);
            if tokens.len() >= MAX_MINTED {
                tokens.clear();
            }
        }
        tokens.insert(key, (token.clone(), now + self.reuse_for));
        Ok(token)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MintKey, (String, Instant)>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Authenticator for IdentityAuthenticator {
    fn session(&self, session_id: &str) -> BoxFuture<'_, Option<SessionInfo>> {
        let session_id = session_id.to_string();
        async move {
            match self.identity.session(&session_id).await {
                Ok(Some(session)) => Some(SessionInfo {
                    principal: Principal {
                        scopes: session.scopes(),
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
        let key = MintKey {
            tenant: principal.tenant.clone(),
            subject: principal.subject.clone(),
            audience: audience.to_string(),
            scopes: principal.scopes.clone(),
        };
        self.minted.get_or_mint(key, || {
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
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(subject: &str) -> MintKey {
        MintKey {
            tenant: "acme".into(),
            subject: subject.into(),
            audience: "webapp:shop".into(),
            scopes: vec!["portico".into()],
        }
    }

    #[test]
    fn a_minted_token_is_reused_for_the_same_caller_and_audience_only() {
        let minted = MintedTokens::new(Duration::from_secs(60));
        let mut calls = 0;
        let mut mint = |name: &str| {
            calls += 1;
            Ok::<_, String>(format!("{name}-{calls}"))
        };
        let first = minted.get_or_mint(key("olga"), || mint("olga")).unwrap();
        let again = minted.get_or_mint(key("olga"), || mint("olga")).unwrap();
        let other = minted.get_or_mint(key("erika"), || mint("erika")).unwrap();
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn a_token_past_its_reuse_time_is_minted_anew() {
        let minted = MintedTokens::new(Duration::ZERO);
        let first = minted
            .get_or_mint(key("olga"), || Ok("one".into()))
            .unwrap();
        let second = minted
            .get_or_mint(key("olga"), || Ok("two".into()))
            .unwrap();
        assert_eq!((first.as_str(), second.as_str()), ("one", "two"));
    }
}
