//! Row-level SQL for the registry, on one connection (normally inside a transaction).
//! Portable between SQLite and PostgreSQL: `$n` placeholders, TEXT and BIGINT columns;
//! a missing provider is stored as ''.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

use crate::model::{Api, Auth, Origin, Registry, Route, Tenant, WebApp};

type Result<T> = std::result::Result<T, sqlx::Error>;

/// A web app's key columns: name and provider ('' when none).
pub(crate) type AppKey = (String, String);
/// An API's key columns: name, provider ('' when none), version.
pub(crate) type ApiKey = (String, String, i64);

pub(crate) fn provider_col(p: Option<&str>) -> &str {
    p.unwrap_or("")
}

fn provider_opt(p: String) -> Option<String> {
    (!p.is_empty()).then_some(p)
}

fn corrupt(what: String) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

fn origin_of(row: &AnyRow) -> Result<Origin> {
    let s: String = row.try_get("origin")?;
    Origin::parse(&s).ok_or_else(|| corrupt(format!("unknown origin {s:?} in the database")))
}

fn auth_of(row: &AnyRow) -> Result<Auth> {
    let s: String = row.try_get("auth")?;
    Auth::parse(&s).map_err(|e| corrupt(format!("auth in the database: {e}")))
}

fn json_list(row: &AnyRow, col: &str) -> Result<Vec<String>> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| corrupt(format!("{col} in the database: {e}")))
}

fn to_json(list: &[String]) -> Result<String> {
    serde_json::to_string(list).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

fn version_of(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(format!("api version {v} in the database")))
}

/// The whole registry as stored, sorted: tenants by name, web apps by key, APIs by
/// name, provider and version.
pub(crate) async fn registry(conn: &mut AnyConnection) -> Result<Registry> {
    Ok(Registry {
        tenants: tenants(conn, None).await?,
        webapps: webapps(conn, None).await?,
        apis: apis(conn, None).await?,
    })
}

pub(crate) async fn tenants(conn: &mut AnyConnection, name: Option<&str>) -> Result<Vec<Tenant>> {
    let rows = match name {
        Some(n) => sqlx::query("SELECT name, origin FROM tenants WHERE name = $1").bind(n),
        None => sqlx::query("SELECT name, origin FROM tenants"),
    }
    .fetch_all(&mut *conn)
    .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(Tenant {
                name: r.try_get("name")?,
                origin: origin_of(r)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(crate) async fn webapps(
    conn: &mut AnyConnection,
    key: Option<(&str, &str)>,
) -> Result<Vec<WebApp>> {
    const APPS: &str =
        "SELECT name, provider, backend, cache_control, websockets, auth, scopes, origin FROM webapps";
    const TENANTS: &str = "SELECT app_name, app_provider, tenant FROM webapp_tenants";
    let (apps, subs) = match key {
        Some((n, p)) => (
            sqlx::query(&format!("{APPS} WHERE name = $1 AND provider = $2"))
                .bind(n)
                .bind(p)
                .fetch_all(&mut *conn)
                .await?,
            sqlx::query(&format!(
                "{TENANTS} WHERE app_name = $1 AND app_provider = $2 ORDER BY position"
            ))
            .bind(n)
            .bind(p)
            .fetch_all(&mut *conn)
            .await?,
        ),
        None => (
            sqlx::query(APPS).fetch_all(&mut *conn).await?,
            sqlx::query(&format!("{TENANTS} ORDER BY position"))
                .fetch_all(&mut *conn)
                .await?,
        ),
    };
    let mut tenants: HashMap<AppKey, Vec<String>> = HashMap::new();
    for r in &subs {
        let key = (r.try_get("app_name")?, r.try_get("app_provider")?);
        tenants.entry(key).or_default().push(r.try_get("tenant")?);
    }
    let mut out = Vec::with_capacity(apps.len());
    for r in &apps {
        let name: String = r.try_get("name")?;
        let provider: String = r.try_get("provider")?;
        let subscribed = tenants
            .remove(&(name.clone(), provider.clone()))
            .unwrap_or_default();
        out.push(WebApp {
            name,
            provider: provider_opt(provider),
            backend: r.try_get("backend")?,
            tenants: subscribed,
            cache_control: r.try_get("cache_control")?,
            websockets: json_list(r, "websockets")?,
            auth: auth_of(r)?,
            scopes: json_list(r, "scopes")?,
            origin: origin_of(r)?,
        });
    }
    out.sort_by_key(WebApp::key);
    Ok(out)
}

pub(crate) async fn apis(
    conn: &mut AnyConnection,
    key: Option<(&str, &str, i64)>,
) -> Result<Vec<Api>> {
    const APIS: &str = "SELECT name, provider, version, backend, auth, scopes, origin FROM apis";
    const ROUTES: &str =
        "SELECT api_name, api_provider, api_version, pattern, methods FROM api_routes";
    const TENANTS: &str = "SELECT api_name, api_provider, api_version, tenant FROM api_tenants";
    const WHERE: &str =
        "WHERE api_name = $1 AND api_provider = $2 AND api_version = $3 ORDER BY position";
    let (apis, routes, subs) = match key {
        Some((n, p, v)) => (
            sqlx::query(&format!(
                "{APIS} WHERE name = $1 AND provider = $2 AND version = $3"
            ))
            .bind(n)
            .bind(p)
            .bind(v)
            .fetch_all(&mut *conn)
            .await?,
            sqlx::query(&format!("{ROUTES} {WHERE}"))
                .bind(n)
                .bind(p)
                .bind(v)
                .fetch_all(&mut *conn)
                .await?,
            sqlx::query(&format!("{TENANTS} {WHERE}"))
                .bind(n)
                .bind(p)
                .bind(v)
                .fetch_all(&mut *conn)
                .await?,
        ),
        None => (
            sqlx::query(APIS).fetch_all(&mut *conn).await?,
            sqlx::query(&format!("{ROUTES} ORDER BY position"))
                .fetch_all(&mut *conn)
                .await?,
            sqlx::query(&format!("{TENANTS} ORDER BY position"))
                .fetch_all(&mut *conn)
                .await?,
        ),
    };
    let api_key = |r: &AnyRow| -> Result<ApiKey> {
        Ok((
            r.try_get("api_name")?,
            r.try_get("api_provider")?,
            r.try_get("api_version")?,
        ))
    };
    let mut route_map: HashMap<ApiKey, Vec<Route>> = HashMap::new();
    for r in &routes {
        let route = Route {
            pattern: r.try_get("pattern")?,
            methods: json_list(r, "methods")?,
        };
        route_map.entry(api_key(r)?).or_default().push(route);
    }
    let mut tenant_map: HashMap<ApiKey, Vec<String>> = HashMap::new();
    for r in &subs {
        tenant_map
            .entry(api_key(r)?)
            .or_default()
            .push(r.try_get("tenant")?);
    }
    let mut out = Vec::with_capacity(apis.len());
    for r in &apis {
        let key: ApiKey = (
            r.try_get("name")?,
            r.try_get("provider")?,
            r.try_get("version")?,
        );
        let routes = route_map.remove(&key).unwrap_or_default();
        let tenants = tenant_map.remove(&key).unwrap_or_default();
        let (name, provider, version) = key;
        out.push(Api {
            name,
            provider: provider_opt(provider),
            version: version_of(version)?,
            backend: r.try_get("backend")?,
            routes,
            tenants,
            auth: auth_of(r)?,
            scopes: json_list(r, "scopes")?,
            origin: origin_of(r)?,
        });
    }
    out.sort_by(|a, b| (&a.name, &a.provider, a.version).cmp(&(&b.name, &b.provider, b.version)));
    Ok(out)
}

fn origin_opt(row: Option<AnyRow>) -> Result<Option<Origin>> {
    row.as_ref().map(origin_of).transpose()
}

pub(crate) async fn tenant_origin(conn: &mut AnyConnection, name: &str) -> Result<Option<Origin>> {
    let row = sqlx::query("SELECT origin FROM tenants WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    origin_opt(row)
}

pub(crate) async fn webapp_origin(
    conn: &mut AnyConnection,
    name: &str,
    provider: &str,
) -> Result<Option<Origin>> {
    let row = sqlx::query("SELECT origin FROM webapps WHERE name = $1 AND provider = $2")
        .bind(name)
        .bind(provider)
        .fetch_optional(&mut *conn)
        .await?;
    origin_opt(row)
}

pub(crate) async fn api_origin(
    conn: &mut AnyConnection,
    name: &str,
    provider: &str,
    version: i64,
) -> Result<Option<Origin>> {
    let row =
        sqlx::query("SELECT origin FROM apis WHERE name = $1 AND provider = $2 AND version = $3")
            .bind(name)
            .bind(provider)
            .bind(version)
            .fetch_optional(&mut *conn)
            .await?;
    origin_opt(row)
}

/// Keys (as in messages) of the web apps and APIs that subscribe `tenant`, sorted.
pub(crate) async fn subscribers(conn: &mut AnyConnection, tenant: &str) -> Result<Vec<String>> {
    let apps =
        sqlx::query("SELECT DISTINCT app_name, app_provider FROM webapp_tenants WHERE tenant = $1")
            .bind(tenant)
            .fetch_all(&mut *conn)
            .await?;
    let apis = sqlx::query(
        "SELECT DISTINCT api_name, api_provider, api_version FROM api_tenants WHERE tenant = $1",
    )
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in &apps {
        let (name, provider): AppKey = (r.try_get(0)?, r.try_get(1)?);
        out.push(format!(
            "webapp \"{}\"",
            crate::model::app_key(&name, provider_opt(provider).as_deref())
        ));
    }
    let mut api_keys = Vec::new();
    for r in &apis {
        let (name, provider, version): ApiKey = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        api_keys.push((name, provider, version));
    }
    api_keys.sort();
    out.sort();
    for (name, provider, version) in api_keys {
        let key = crate::model::app_key(&name, provider_opt(provider).as_deref());
        out.push(format!("api \"{key}/v{version}\""));
    }
    Ok(out)
}

/// Which of `names` are not registered tenants, in the order given.
pub(crate) async fn missing_tenants(
    conn: &mut AnyConnection,
    names: &[String],
) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for n in names {
        if tenant_origin(conn, n).await?.is_none() && !missing.contains(n) {
            missing.push(n.clone());
        }
    }
    Ok(missing)
}

pub(crate) async fn insert_tenant(conn: &mut AnyConnection, t: &Tenant) -> Result<()> {
    sqlx::query("INSERT INTO tenants (name, origin) VALUES ($1, $2)")
        .bind(t.name.as_str())
        .bind(t.origin.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn insert_webapp(conn: &mut AnyConnection, w: &WebApp) -> Result<()> {
    let provider = provider_col(w.provider.as_deref());
    sqlx::query(
        "INSERT INTO webapps (name, provider, backend, cache_control, websockets, auth, scopes, origin) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(w.name.as_str())
    .bind(provider)
    .bind(w.backend.as_str())
    .bind(w.cache_control.as_deref())
    .bind(to_json(&w.websockets)?)
    .bind(w.auth.as_str())
    .bind(to_json(&w.scopes)?)
    .bind(w.origin.as_str())
    .execute(&mut *conn)
    .await?;
    for (pos, t) in (0_i64..).zip(&w.tenants) {
        sqlx::query("INSERT INTO webapp_tenants (app_name, app_provider, position, tenant) VALUES ($1, $2, $3, $4)")
            .bind(w.name.as_str())
            .bind(provider)
            .bind(pos)
            .bind(t.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub(crate) async fn insert_api(conn: &mut AnyConnection, a: &Api) -> Result<()> {
    let provider = provider_col(a.provider.as_deref());
    let version = i64::from(a.version);
    sqlx::query("INSERT INTO apis (name, provider, version, backend, auth, scopes, origin) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(a.name.as_str())
        .bind(provider)
        .bind(version)
        .bind(a.backend.as_str())
        .bind(a.auth.as_str())
        .bind(to_json(&a.scopes)?)
        .bind(a.origin.as_str())
        .execute(&mut *conn)
        .await?;
    for (pos, r) in (0_i64..).zip(&a.routes) {
        sqlx::query(
            "INSERT INTO api_routes (api_name, api_provider, api_version, position, pattern, methods) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(a.name.as_str())
        .bind(provider)
        .bind(version)
        .bind(pos)
        .bind(r.pattern.as_str())
        .bind(to_json(&r.methods)?)
        .execute(&mut *conn)
        .await?;
    }
    for (pos, t) in (0_i64..).zip(&a.tenants) {
        sqlx::query(
            "INSERT INTO api_tenants (api_name, api_provider, api_version, position, tenant) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(a.name.as_str())
        .bind(provider)
        .bind(version)
        .bind(pos)
        .bind(t.as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(crate) async fn delete_tenant(conn: &mut AnyConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM tenants WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn delete_webapp(
    conn: &mut AnyConnection,
    name: &str,
    provider: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM webapp_tenants WHERE app_name = $1 AND app_provider = $2")
        .bind(name)
        .bind(provider)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM webapps WHERE name = $1 AND provider = $2")
        .bind(name)
        .bind(provider)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn delete_api(
    conn: &mut AnyConnection,
    name: &str,
    provider: &str,
    version: i64,
) -> Result<()> {
    for sql in [
        "DELETE FROM api_routes WHERE api_name = $1 AND api_provider = $2 AND api_version = $3",
        "DELETE FROM api_tenants WHERE api_name = $1 AND api_provider = $2 AND api_version = $3",
        "DELETE FROM apis WHERE name = $1 AND provider = $2 AND version = $3",
    ] {
        sqlx::query(sql)
            .bind(name)
            .bind(provider)
            .bind(version)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Deletes every entry whose origin is `origin`.
pub(crate) async fn delete_origin(conn: &mut AnyConnection, origin: Origin) -> Result<()> {
    for sql in [
        "DELETE FROM webapp_tenants WHERE EXISTS (SELECT 1 FROM webapps w WHERE w.name = webapp_tenants.app_name \
         AND w.provider = webapp_tenants.app_provider AND w.origin = $1)",
        "DELETE FROM webapps WHERE origin = $1",
        "DELETE FROM api_routes WHERE EXISTS (SELECT 1 FROM apis a WHERE a.name = api_routes.api_name \
         AND a.provider = api_routes.api_provider AND a.version = api_routes.api_version AND a.origin = $1)",
        "DELETE FROM api_tenants WHERE EXISTS (SELECT 1 FROM apis a WHERE a.name = api_tenants.api_name \
         AND a.provider = api_tenants.api_provider AND a.version = api_tenants.api_version AND a.origin = $1)",
        "DELETE FROM apis WHERE origin = $1",
        "DELETE FROM tenants WHERE origin = $1",
    ] {
        sqlx::query(sql).bind(origin.as_str()).execute(&mut *conn).await?;
    }
    Ok(())
}

pub(crate) async fn setting(conn: &mut AnyConnection, name: &str) -> Result<Option<String>> {
    sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
}

pub(crate) async fn set_setting(conn: &mut AnyConnection, name: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
