//! The platform operator's console on `management-console.{region}.{domain}`: the
//! Registry page (`/registry`) and its actions (`/registry/api/…`), which go to the
//! registry API in-process, vouched for as the operator's ([`OperatorCaller`]). The page
//! JavaScript posts them on the console's own host, so the gateway holds them to the
//! session, its CSRF token and the host's origin like every console action; the gateway's
//! public `/api/registry/v1/` still takes the admin token only.

use super::apis::Api;
use super::error::PageError;
use super::layout::{section_page, Role, Section, Viewer};
use super::registry_admin::{self, Registry};
use super::Caller;
use crate::registry_api::{registry_api, OperatorCaller};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use http::{StatusCode, Uri};
use portico_gateway::{from_tower, InProcess, RequestContext};
use portico_store::{Api as RegisteredApi, Store, Tenant, WebApp};
use serde_json::json;
use std::sync::Arc;

/// Where the page JavaScript sends the operator's registry actions.
const API_PREFIX: &str = "/registry/api";

/// The Registry page and its action routes, over the registry API of `store`.
pub fn routes<S: Clone + Send + Sync + 'static>(store: Store) -> Router<S> {
    let registry: Arc<dyn InProcess> = from_tower(registry_api(store));
    Router::new()
        .route("/registry", get(page))
        .route("/registry/api/{*rest}", any(forward))
        .with_state(registry)
}

/// Keeps the operator on the Registry: the console's home sends them there; the tenant
/// pages, which have nothing for the operators' tenant, answer 403.
pub async fn keep_operators_on_the_registry(request: Request, next: Next) -> Response {
    let viewer = request
        .extensions()
        .get::<RequestContext>()
        .and_then(Viewer::from_context);
    match viewer {
        Some(viewer) if viewer.role == Role::Operator => {
            if request.uri().path() == "/" {
                Redirect::to("/registry").into_response()
            } else {
                PageError::Forbidden(
                    "The platform operator's console has the Registry only.".into(),
                )
                .render(Some(&viewer))
            }
        }
        _ => next.run(request).await,
    }
}

fn operator_of(caller: &Caller) -> Option<OperatorCaller> {
    (caller.viewer.role == Role::Operator).then(|| OperatorCaller {
        user: caller.viewer.user.clone(),
    })
}

async fn page(State(registry): State<Arc<dyn InProcess>>, caller: Caller) -> Response {
    let Some(operator) = operator_of(&caller) else {
        return caller.error(PageError::Forbidden(
            "The Gateway Registry is the platform operator's.".into(),
        ));
    };
    let api = Api::new("registry", Some(&registry), &caller.context).vouched_as_operator(operator);
    let lists = async {
        let tenants: Vec<Tenant> = api.get("/tenants").await?;
        let webapps: Vec<WebApp> = api.get("/webapps").await?;
        let apis: Vec<RegisteredApi> = api.get("/apis").await?;
        Ok::<_, PageError>(Registry {
            tenants,
            webapps,
            apis,
        })
    };
    match lists.await {
        Ok(registry) => section_page(
            &caller.viewer,
            Section::Registry,
            "Gateway Registry",
            registry_admin::content(&registry),
        )
        .into_response(),
        Err(error) => caller.error(error),
    }
}

/// `METHOD /registry/api/PATH` becomes `METHOD PATH` on the registry API, for the operator
/// only (others get 403 in the API's error shape).
async fn forward(
    State(registry): State<Arc<dyn InProcess>>,
    caller: Caller,
    request: Request,
) -> Response {
    let Some(operator) = operator_of(&caller) else {
        let status = StatusCode::FORBIDDEN;
        let body = json!({
            "status": status.as_u16(),
            "error": "Forbidden",
            "message": "Only the platform operator changes the Gateway Registry",
        });
        return (status, Json(body)).into_response();
    };
    let (mut parts, body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or("", |pq| pq.as_str())
        .strip_prefix(API_PREFIX)
        .unwrap_or("/");
    parts.uri = match target.parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    // A fresh set of extensions: the router's own (its path parameters) must not reach
    // the registry API's router; the gateway's context and the vouching do.
    let mut extensions = http::Extensions::new();
    extensions.insert(caller.context);
    extensions.insert(operator);
    parts.extensions = extensions;
    let request = http::Request::from_parts(parts, portico_gateway::body::boxed(body));
    registry
        .call(request)
        .await
        .map(axum::body::Body::new)
        .into_response()
}
