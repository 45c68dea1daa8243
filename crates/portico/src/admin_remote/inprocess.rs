//! The Remote Services REST API, run inside the `portico admin` process on the local
//! store: each request goes through the very router `portico serve` mounts, as a tenant
//! administrator named `admin-cli`, so validation, audit records and error messages are
//! the API's own.

use crate::config::Config;
use crate::remote_services::IdentityIssuer;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use portico_gateway::body::{empty, full};
use portico_relay::api::Caller;
use portico_store::Store;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

/// Who the audit trail names for changes made from the command line.
pub const CLI_SUBJECT: &str = "admin-cli";

/// The API of one tenant, on the local store.
pub struct RemoteApi {
    store: Store,
    issuer: Arc<IdentityIssuer>,
    caller: Caller,
}

impl RemoteApi {
    /// Opens the local store and the identity service (which issues and withdraws endpoint
    /// credentials) for `tenant`, which must be a registered tenant: a typo would
    /// otherwise quietly start a tenant of its own.
    pub async fn open(config: &Config, tenant: &str) -> Result<RemoteApi> {
        let store = crate::admin::open_local_store(config).await?;
        let known = store.tenant(tenant).await;
        let known = match known {
            Ok(known) => known,
            Err(e) => {
                store.close().await;
                return Err(e).context("cannot read the tenants");
            }
        };
        if known.is_none() {
            store.close().await;
            bail!("tenant \"{tenant}\" does not exist (add it with `portico admin tenant add {tenant}`)");
        }
        let identity = portico_identity::Identity::open(
            store.clone(),
            config.identity.clone(),
            crate::serve::issuer(config),
        )
        .await;
        let identity = match identity {
            Ok(identity) => identity,
            Err(e) => {
                store.close().await;
                return Err(e).context("cannot start the identity service");
            }
        };
        Ok(RemoteApi {
            store,
            issuer: Arc::new(IdentityIssuer { identity }),
            caller: Caller {
                tenant: tenant.to_string(),
                subject: CLI_SUBJECT.to_string(),
                role: "admin".to_string(),
            },
        })
    }

    /// Sends one request; returns the JSON answer, `None` for 204, or the API's status and
    /// message as the error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/json");
        let body = match body {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                full(Bytes::from(value.to_string()))
            }
            None => empty(),
        };
        let mut request = request
            .body(body)
            .with_context(|| format!("cannot build the request for {path}"))?;
        request.extensions_mut().insert(self.caller.clone());
        // The router is cheap to make; one per request keeps it owned by `oneshot`.
        let router =
            portico_relay::api::remote_services_api(self.store.clone(), self.issuer.clone());
        let response = match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("{path}: cannot read the answer: {e}"))?
            .to_bytes();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            anyhow::anyhow!(
                "{path}: {status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            )
        })?;
        if !status.is_success() {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            bail!("{status}: {message}");
        }
        Ok(Some(value))
    }

    pub async fn close(self) {
        self.store.close().await;
    }
}
