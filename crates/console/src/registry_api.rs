//! The Gateway Registry API: tenants, web apps and APIs as JSON resources. Entries made
//! here have origin `api`; entries from the registry file or built into Portico are shown
//! but can only be changed where they came from. Every change goes to the store, which
//! tells the gateways to rebuild their routing tables. Callers present the admin token, or
//! are the platform operator on the web console, vouched for in-process ([`OperatorCaller`]).

use crate::admin_token::{hash_admin_token, same_hash};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portico_store::{split_app_key, Api, Auth, Origin, Route, Store, StoreError, Tenant, WebApp};
use serde::Deserialize;
use serde_json::json;

const OPENAPI: &str = include_str!("../openapi/registry.json");

/// The API's router, mounted at its endpoint root (the gateway strips `/api/registry/v1`).
pub fn registry_api(store: Store) -> Router {
    let protected = Router::new()
        .route("/tenants", get(list_tenants).post(add_tenant))
        .route("/tenants/{name}", get(show_tenant).delete(remove_tenant))
        .route("/webapps", get(list_webapps).post(add_webapp))
        .route("/webapps/{key}", get(show_webapp).delete(remove_webapp))
        .route("/apis", get(list_apis).post(add_api))
        .route("/apis/{key}/{version}", get(show_api).delete(remove_api))
        .route_layer(middleware::from_fn_with_state(
            store.clone(),
            require_admin_token,
        ));
    Router::new()
        .route("/openapi.json", get(openapi))
        .merge(protected)
        .fallback(not_found)
        .with_state(store)
}

/// An error in the gateway's error shape (GW-15).
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let status = match &e {
            StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::Conflict { .. } | StoreError::WrongOrigin { .. } => StatusCode::CONFLICT,
            StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            _ => {
                tracing::error!(error = %e, "registry API: store failure");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The registry store is unavailable; try again",
                );
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": self.status.as_u16(),
            "error": self.status.canonical_reason().unwrap_or("Error"),
            "message": self.message,
        });
        (self.status, Json(body)).into_response()
    }
}

type Result<T> = std::result::Result<T, ApiError>;

/// A JSON request body whose rejections (bad JSON, unknown fields, wrong content type)
/// are answered in the gateway's error shape.
struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> std::result::Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// A caller the in-process web console vouches for: the platform operator, signed in to
/// the console (tenant `management`, role `operator`). It is a request extension that
/// only this crate can make, so nothing arriving over HTTP carries one; the gateway's
/// `/api/registry/v1/` still takes the admin token only.
#[derive(Debug, Clone)]
pub struct OperatorCaller {
    /// The operator's user name, for the log.
    pub(crate) user: String,
}

async fn require_admin_token(
    State(store): State<Store>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(operator) = request.extensions().get::<OperatorCaller>() {
        tracing::info!(
            user = %operator.user,
            method = %request.method(),
            path = %request.uri().path(),
            "registry API: called by the operator through the web console"
        );
        return next.run(request).await;
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(presented) = presented else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Send the admin token as Authorization: Bearer <token>",
        )
        .into_response();
    };
    match store.admin_token_hash().await {
        Ok(Some(hash)) if same_hash(&hash, &hash_admin_token(presented)) => next.run(request).await,
        Ok(_) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "The admin token is not valid").into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "No such registry resource; see /api/registry/v1/openapi.json",
    )
}

fn parse_auth(auth: &str) -> Result<Auth> {
    Auth::parse(auth)
        .map_err(|reason| ApiError::new(StatusCode::BAD_REQUEST, format!("auth: {reason}")))
}

fn parse_key(key: &str) -> Result<(&str, Option<&str>)> {
    split_app_key(key).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("\"{key}\" is not a name[-provider] key"),
        )
    })
}

fn parse_version(version: &str) -> Result<u32> {
    version
        .strip_prefix('v')
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("\"{version}\" is not a version like v3"),
            )
        })
}

fn not_found_entry(kind: &str, key: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("{kind} \"{key}\" not found"))
}

// Tenants.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    name: String,
}

async fn list_tenants(State(store): State<Store>) -> Result<Json<Vec<Tenant>>> {
    Ok(Json(store.registry().await?.tenants))
}

async fn show_tenant(State(store): State<Store>, Path(name): Path<String>) -> Result<Json<Tenant>> {
    store
        .tenant(&name)
        .await?
        .map(Json)
        .ok_or_else(|| not_found_entry("tenant", &name))
}

async fn add_tenant(
    State(store): State<Store>,
    Body(new): Body<NewTenant>,
) -> Result<(StatusCode, Json<Tenant>)> {
    let tenant = Tenant {
        name: new.name,
        origin: Origin::Api,
    };
    store.add_tenant(&tenant).await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

async fn remove_tenant(State(store): State<Store>, Path(name): Path<String>) -> Result<StatusCode> {
    store.remove_tenant(&name, Origin::Api).await?;
    Ok(StatusCode::NO_CONTENT)
}

// Web apps.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebApp {
    name: String,
    provider: Option<String>,
    backend: String,
    #[serde(default)]
    tenants: Vec<String>,
    cache_control: Option<String>,
    #[serde(default)]
    websockets: Vec<String>,
    /// Required, with no default, as in the registry file.
    auth: String,
    #[serde(default)]
    scopes: Vec<String>,
}

async fn list_webapps(State(store): State<Store>) -> Result<Json<Vec<WebApp>>> {
    Ok(Json(store.registry().await?.webapps))
}

async fn show_webapp(State(store): State<Store>, Path(key): Path<String>) -> Result<Json<WebApp>> {
    let (name, provider) = parse_key(&key)?;
    store
        .webapp(name, provider)
        .await?
        .map(Json)
        .ok_or_else(|| not_found_entry("webapp", &key))
}

async fn add_webapp(
    State(store): State<Store>,
    Body(new): Body<NewWebApp>,
) -> Result<(StatusCode, Json<WebApp>)> {
    let webapp = WebApp {
        name: new.name,
        provider: new.provider.filter(|p| !p.is_empty()),
        backend: new.backend,
        tenants: new.tenants,
        cache_control: new.cache_control.filter(|c| !c.trim().is_empty()),
        websockets: new.websockets,
        auth: parse_auth(&new.auth)?,
        scopes: new.scopes,
        origin: Origin::Api,
    };
    store.add_webapp(&webapp).await?;
    Ok((StatusCode::CREATED, Json(webapp)))
}

async fn remove_webapp(State(store): State<Store>, Path(key): Path<String>) -> Result<StatusCode> {
    let (name, provider) = parse_key(&key)?;
    store.remove_webapp(name, provider, Origin::Api).await?;
    Ok(StatusCode::NO_CONTENT)
}

// APIs.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApi {
    name: String,
    provider: Option<String>,
    version: u32,
    backend: String,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    tenants: Vec<String>,
    auth: String,
    #[serde(default)]
    scopes: Vec<String>,
}

async fn list_apis(State(store): State<Store>) -> Result<Json<Vec<Api>>> {
    Ok(Json(store.registry().await?.apis))
}

async fn show_api(
    State(store): State<Store>,
    Path((key, version)): Path<(String, String)>,
) -> Result<Json<Api>> {
    let (name, provider) = parse_key(&key)?;
    let version = parse_version(&version)?;
    store
        .api(name, provider, version)
        .await?
        .map(Json)
        .ok_or_else(|| not_found_entry("api", &format!("{key}/v{version}")))
}

async fn add_api(
    State(store): State<Store>,
    Body(new): Body<NewApi>,
) -> Result<(StatusCode, Json<Api>)> {
    let api = Api {
        name: new.name,
        provider: new.provider.filter(|p| !p.is_empty()),
        version: new.version,
        backend: new.backend,
        routes: new.routes,
        tenants: new.tenants,
        auth: parse_auth(&new.auth)?,
        scopes: new.scopes,
        origin: Origin::Api,
    };
    store.add_api(&api).await?;
    Ok((StatusCode::CREATED, Json(api)))
}

async fn remove_api(
    State(store): State<Store>,
    Path((key, version)): Path<(String, String)>,
) -> Result<StatusCode> {
    let (name, provider) = parse_key(&key)?;
    let version = parse_version(&version)?;
    store
        .remove_api(name, provider, version, Origin::Api)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
