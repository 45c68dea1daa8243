//! `portico admin`: drives the registry API of a running Portico (by default the one of
//! the local configuration), and resets the bootstrap admin token on the local store.

use crate::config::{Config, TlsSource};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use portico_gateway::body::{empty, full};
use portico_gateway::tls::DevCert;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Base URL of the Portico gateway [default: the `gateway` host of the local configuration]
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// The admin token
    #[arg(
        long,
        global = true,
        env = "PORTICO_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print JSON instead of a table
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Tenants
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Web applications
    #[command(subcommand)]
    Webapp(WebappCommand),
    /// APIs
    #[command(subcommand)]
    Api(ApiCommand),
    /// The bootstrap admin token
    #[command(subcommand)]
    Token(TokenCommand),
    /// Users who log in with a password (works on the local store, no server needed)
    #[command(subcommand)]
    User(UserCommand),
    /// A tenant's external OpenID Connect provider (works on the local store)
    #[command(subcommand)]
    Oidc(OidcCommand),
    /// OAuth clients of a tenant (works on the local store)
    #[command(subcommand)]
    Client(ClientCommand),
    #[command(flatten)]
    Remote(crate::admin_remote::RemoteCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and, for a confidential client, its secret (once)
    Add {
        #[arg(long)]
        tenant: String,
        /// What the client is, for people reading the list
        #[arg(long)]
        name: String,
        /// A browser or mobile app without a secret (authorization code with PKCE only)
        #[arg(long)]
        public: bool,
        /// client_credentials, authorization_code, refresh_token or
        /// urn:ietf:params:oauth:grant-type:token-exchange (repeatable; default
        /// client_credentials)
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// A scope the client may ask for (repeatable)
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Where the authorization code may be sent (repeatable)
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
    },
    /// Remove a client; its refresh tokens stop working
    Rm {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OidcCommand {
    /// Let the tenant's users log in through an OpenID Connect provider; Portico's
    /// redirect URI there is `https://{tenant}-{app}.{region}.{domain}/login/oidc/callback`
    /// for each web app they sign in on
    Set {
        #[arg(long)]
        tenant: String,
        /// The provider's issuer URL (its metadata is at ISSUER/.well-known/openid-configuration)
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        client_id: String,
        /// The client secret; prefer PORTICO_OIDC_CLIENT_SECRET, which stays out of the
        /// process list
        #[arg(long, env = "PORTICO_OIDC_CLIENT_SECRET", hide_env_values = true)]
        client_secret: String,
    },
    /// Back to local passwords only
    Rm {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    List,
    Show { name: String },
    Add { name: String },
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub enum WebappCommand {
    List,
    /// KEY is name[-provider], e.g. assetmanager-xyz
    Show {
        key: String,
    },
    Add(WebappAdd),
    Rm {
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct WebappAdd {
    #[arg(long)]
    name: String,
    #[arg(long)]
    provider: Option<String>,
    /// http://host:port[/path], https://… or internal:NAME
    #[arg(long)]
    backend: String,
    /// A subscribed tenant (repeatable)
    #[arg(long = "tenant")]
    tenants: Vec<String>,
    /// The Cache-Control its responses get when they carry none (GW-17)
    #[arg(long)]
    cache_control: Option<String>,
    /// An Ant pattern of paths that accept WebSocket upgrades (repeatable)
    #[arg(long = "websocket")]
    websockets: Vec<String>,
    /// Required: session (users sign in) or none (public)
    #[arg(long)]
    auth: String,
    /// A scope every signed-in user must hold (repeatable; needs --auth session)
    #[arg(long = "scope")]
    scopes: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    List,
    /// KEY is name[-provider]/v{major}, e.g. iot-xyz/v3
    Show {
        key: String,
    },
    Add(ApiAdd),
    Rm {
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct ApiAdd {
    #[arg(long)]
    name: String,
    #[arg(long)]
    provider: Option<String>,
    #[arg(long)]
    version: u32,
    #[arg(long)]
    backend: String,
    /// A route: PATTERN or PATTERN=METHOD,METHOD (repeatable), e.g. '/assets/**=GET,POST'
    #[arg(long = "route")]
    routes: Vec<String>,
    #[arg(long = "tenant")]
    tenants: Vec<String>,
    /// Required: bearer (callers present an access token) or none (public)
    #[arg(long)]
    auth: String,
    /// A scope every caller's token must hold (repeatable; needs --auth bearer)
    #[arg(long = "scope")]
    scopes: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Replace the admin token (works on the local store, no server needed)
    Reset,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user: the operator in tenant `management`, or a tenant's admin, site-owner or
    /// user; or a device's own user (role device)
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// operator, admin, site-owner, user, device or device-bootstrap
        #[arg(long)]
        role: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Replace a user's password
    Passwd {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Remove a user and end their sessions
    Rm {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
    },
}

/// Where a new password comes from: the environment (or the option) or standard input;
/// never a prompt, so that scripts can set passwords.
#[derive(Debug, Args)]
pub struct PasswordSource {
    /// The password; prefer PORTICO_USER_PASSWORD or --password-stdin, which stay out of
    /// the process list
    #[arg(
        long,
        env = "PORTICO_USER_PASSWORD",
        hide_env_values = true,
        conflicts_with = "password_stdin"
    )]
    password: Option<String>,
    /// Read the password from the first line of standard input
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordSource {
    fn read(&self) -> Result<String> {
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            let password = line.trim_end_matches(['\r', '\n']).to_string();
            if password.is_empty() {
                bail!("no password on standard input");
            }
            return Ok(password);
        }
        self.password
            .clone()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                anyhow!("no password: pass --password-stdin or set PORTICO_USER_PASSWORD")
            })
    }
}

pub async fn run(args: AdminArgs, config: Config) -> Result<()> {
    if let AdminCommand::Token(TokenCommand::Reset) = args.command {
        return reset_token(&config).await;
    }
    if let AdminCommand::User(command) = &args.command {
        return manage_user(command, &config).await;
    }
    if let AdminCommand::Oidc(command) = &args.command {
        return manage_oidc(command, &config).await;
    }
    if let AdminCommand::Client(command) = &args.command {
        return manage_client(command, &config).await;
    }
    if let AdminCommand::Remote(command) = &args.command {
        return crate::admin_remote::run(command, args.json, &config).await;
    }
    let client = Client::new(&args, &config)?;
    let (method, path, body, kind) = request_for(&args.command)?;
    let answer = client.send(method, &path, body).await?;
    match answer {
        None => println!("ok"),
        Some(value) if args.json => println!("{}", serde_json::to_string_pretty(&value)?),
        Some(value) => print_table(kind, &value),
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    Tenant,
    Webapp,
    Api,
}

fn request_for(command: &AdminCommand) -> Result<(Method, String, Option<Value>, Kind)> {
    Ok(match command {
        AdminCommand::Tenant(c) => match c {
            TenantCommand::List => (Method::GET, "/tenants".into(), None, Kind::Tenant),
            TenantCommand::Show { name } => {
                (Method::GET, format!("/tenants/{name}"), None, Kind::Tenant)
            }
            TenantCommand::Add { name } => (
                Method::POST,
                "/tenants".into(),
                Some(json!({ "name": name })),
                Kind::Tenant,
            ),
            TenantCommand::Rm { name } => (
                Method::DELETE,
                format!("/tenants/{name}"),
                None,
                Kind::Tenant,
            ),
        },
        AdminCommand::Webapp(c) => match c {
            WebappCommand::List => (Method::GET, "/webapps".into(), None, Kind::Webapp),
            WebappCommand::Show { key } => {
                (Method::GET, format!("/webapps/{key}"), None, Kind::Webapp)
            }
            WebappCommand::Rm { key } => (
                Method::DELETE,
                format!("/webapps/{key}"),
                None,
                Kind::Webapp,
            ),
            WebappCommand::Add(a) => (
                Method::POST,
                "/webapps".into(),
                Some(json!({
                    "name": a.name, "provider": a.provider, "backend": a.backend, "tenants": a.tenants,
                    "cache_control": a.cache_control, "websockets": a.websockets, "auth": a.auth,
                    "scopes": a.scopes,
                })),
                Kind::Webapp,
            ),
        },
        AdminCommand::Api(c) => match c {
            ApiCommand::List => (Method::GET, "/apis".into(), None, Kind::Api),
            ApiCommand::Show { key } => (
                Method::GET,
                format!("/apis/{}", api_key(key)?),
                None,
                Kind::Api,
            ),
            ApiCommand::Rm { key } => (
                Method::DELETE,
                format!("/apis/{}", api_key(key)?),
                None,
                Kind::Api,
            ),
            ApiCommand::Add(a) => {
                let routes: Vec<Value> = a
                    .routes
                    .iter()
                    .map(|r| match r.split_once('=') {
                        Some((pattern, methods)) => {
                            let methods: Vec<String> = methods
                                .split(',')
                                .map(|m| m.trim().to_ascii_uppercase())
                                .collect();
                            json!({ "pattern": pattern, "methods": methods })
                        }
                        None => json!({ "pattern": r }),
                    })
                    .collect();
                (
                    Method::POST,
                    "/apis".into(),
                    Some(json!({
                        "name": a.name, "provider": a.provider, "version": a.version, "backend": a.backend,
                        "routes": routes, "tenants": a.tenants, "auth": a.auth,
                        "scopes": a.scopes,
                    })),
                    Kind::Api,
                )
            }
        },
        AdminCommand::Token(_) => bail!("token commands run locally"),
        AdminCommand::User(_) => bail!("user commands run locally"),
        AdminCommand::Oidc(_) => bail!("oidc commands run locally"),
        AdminCommand::Client(_) => bail!("client commands run locally"),
        AdminCommand::Remote(_) => bail!("Remote Services commands run locally"),
    })
}

/// `iot-xyz/v3` → `iot-xyz/v3` after checking its shape.
fn api_key(key: &str) -> Result<&str> {
    match key.split_once('/') {
        Some((name, version)) if !name.is_empty() && version.starts_with('v') => Ok(key),
        _ => bail!("\"{key}\" is not an API key like iot-xyz/v3"),
    }
}

struct Client {
    base: String,
    token: String,
    http: portico_gateway::client::HttpClient,
}

impl Client {
    fn new(args: &AdminArgs, config: &Config) -> Result<Client> {
        let token = args
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("no admin token: pass --token or set PORTICO_ADMIN_TOKEN"))?;
        let mut roots = Vec::new();
        let mut fixed = HashMap::new();
        let base = match &args.server {
            Some(server) => server.trim_end_matches('/').to_string(),
            None => {
                // The local gateway by its own name, connected on its listen address, and
                // trusted through the development CA when it uses one.
                let host = format!("gateway.{}.{}", config.regions[0], config.domains[0]);
                let mut addr = config.listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                fixed.insert(host.clone(), addr);
                // Trust the development CA where Portico made one: in the data folder,
                // or beside configured certificate files it filled.
                let ca = match &config.tls {
                    TlsSource::Development => DevCert::in_dir(&config.data_dir).ca,
                    TlsSource::Files { cert, key } => DevCert::at(cert, key).ca,
                };
                if ca.exists() {
                    roots = portico_gateway::tls::load_certs(&ca).with_context(|| {
                        format!("cannot read the development CA {}", ca.display())
                    })?;
                }
                format!("https://{host}:{}", addr.port())
            }
        };
        let http =
            portico_gateway::client::build_with_addresses(Duration::from_secs(5), &roots, fixed);
        Ok(Client { base, token, http })
    }

    /// Sends a request to the registry API; returns its JSON answer, `None` for 204.
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Result<Option<Value>> {
        let url = format!("{}/api/registry/v1{path}", self.base);
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "application/json");
        let body = match body {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                full(Bytes::from(value.to_string()))
            }
            None => empty(),
        };
        let response = tokio::time::timeout(
            Duration::from_secs(30),
            self.http.request(request.body(body)?),
        )
        .await
        .map_err(|_| anyhow!("{url}: no answer within 30 s"))?
        .map_err(|e| anyhow!("{url}: {}", error_chain(&e)))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| anyhow!("{url}: {e}"))?
            .to_bytes();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            anyhow!(
                "{url}: {status}: {}",
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
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn print_table(kind: Kind, value: &Value) {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let text = |v: &Value, key: &str| -> String {
        match v.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    Value::Object(route) => {
                        let pattern = route
                            .get("pattern")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let methods: Vec<&str> = route
                            .get("methods")
                            .and_then(Value::as_array)
                            .map(|m| m.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        if methods.is_empty() {
                            pattern.to_string()
                        } else {
                            format!("{pattern}={}", methods.join(","))
                        }
                    }
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" "),
            Some(Value::Null) | None => "-".into(),
            Some(other) => other.to_string(),
        }
    };
    let key = |v: &Value| -> String {
        let name = text(v, "name");
        match v.get("provider").and_then(Value::as_str) {
            Some(p) => format!("{name}-{p}"),
            None => name,
        }
    };
    let (header, lines): (Vec<&str>, Vec<Vec<String>>) = match kind {
        Kind::Tenant => (
            vec!["NAME", "ORIGIN"],
            rows.iter()
                .map(|v| vec![text(v, "name"), text(v, "origin")])
                .collect(),
        ),
        Kind::Webapp => (
            vec!["WEBAPP", "BACKEND", "TENANTS", "AUTH", "ORIGIN"],
            rows.iter()
                .map(|v| {
                    vec![
                        key(v),
                        text(v, "backend"),
                        text(v, "tenants"),
                        text(v, "auth"),
                        text(v, "origin"),
                    ]
                })
                .collect(),
        ),
        Kind::Api => (
            vec!["API", "BACKEND", "ROUTES", "TENANTS", "AUTH", "ORIGIN"],
            rows.iter()
                .map(|v| {
                    vec![
                        format!("{}/v{}", key(v), text(v, "version")),
                        text(v, "backend"),
                        text(v, "routes"),
                        text(v, "tenants"),
                        text(v, "auth"),
                        text(v, "origin"),
                    ]
                })
                .collect(),
        ),
    };
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let render = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    render(header.iter().map(|h| h.to_string()).collect());
    for line in lines {
        render(line);
    }
}

/// The store of the local configuration, which must exist already: a change on a new,
/// empty store would reach no server — most likely the wrong folder or configuration file.
pub(crate) async fn open_local_store(config: &Config) -> Result<portico_store::Store> {
    if let Some(path) = config.database.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if !std::path::Path::new(path).exists() {
            bail!("no store at {path}: run this where `portico serve` runs, with its --config");
        }
    }
    portico_store::Store::open(&config.database)
        .await
        .with_context(|| {
            format!(
                "cannot open the store {}",
                portico_store::mask_password(&config.database)
            )
        })
}

/// `portico admin user …` on the local store.
async fn manage_user(command: &UserCommand, config: &Config) -> Result<()> {
    use portico_identity::users;
    let store = open_local_store(config).await?;
    let done = match command {
        UserCommand::Add {
            tenant,
            name,
            role,
            password,
        } => {
            let role: portico_identity::Role = role.parse()?;
            let password = password.read()?;
            users::add(&store, tenant, name, role, &password)
                .await
                .map(|()| format!("user {name} added to tenant {tenant} as {role}"))
        }
        UserCommand::Passwd {
            tenant,
            name,
            password,
        } => {
            let password = password.read()?;
            users::set_password(&store, tenant, name, &password)
                .await
                .map(|()| format!("password of {name} in tenant {tenant} replaced"))
        }
        UserCommand::Rm { tenant, name } => users::remove(&store, tenant, name)
            .await
            .map(|()| format!("user {name} removed from tenant {tenant}; their sessions ended")),
    };
    store.close().await;
    println!("{}", done?);
    Ok(())
}

/// `portico admin oidc …` on the local store.
async fn manage_oidc(command: &OidcCommand, config: &Config) -> Result<()> {
    let store = open_local_store(config).await?;
    let done = match command {
        OidcCommand::Set {
            tenant,
            issuer,
            client_id,
            client_secret,
        } => {
            let valid_issuer = issuer.starts_with("https://") || issuer.starts_with("http://");
            if !valid_issuer || client_id.is_empty() || client_secret.is_empty() {
                store.close().await;
                bail!("--issuer must be an http(s) URL, and --client-id and the client secret must not be empty");
            }
            let record = portico_store::OidcProviderRecord {
                tenant: tenant.clone(),
                issuer: issuer.trim_end_matches('/').to_string(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                created_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            };
            store
                .set_oidc_provider(&record)
                .await
                .map(|()| format!("tenant {tenant} logs in through {issuer}"))
        }
        OidcCommand::Rm { tenant } => store.remove_oidc_provider(tenant).await.map(|removed| {
            if removed {
                format!("tenant {tenant} logs in with local passwords only")
            } else {
                format!("tenant {tenant} had no external provider")
            }
        }),
    };
    store.close().await;
    println!("{}", done?);
    Ok(())
}

/// `portico admin client …` on the local store.
async fn manage_client(command: &ClientCommand, config: &Config) -> Result<()> {
    let store = open_local_store(config).await?;
    let done = match command {
        ClientCommand::Add {
            tenant,
            name,
            public,
            grants,
            scopes,
            redirect_uris,
        } => {
            let identity = portico_identity::Identity::open(
                store.clone(),
                config.identity.clone(),
                crate::serve::issuer(config),
            )
            .await?;
            let grant_types = if grants.is_empty() {
                vec!["client_credentials".to_string()]
            } else {
                grants.clone()
            };
            let registered = identity
                .register_client(&portico_identity::NewClient {
                    tenant: tenant.clone(),
                    name: name.clone(),
                    confidential: !public,
                    grant_types,
                    scopes: scopes.clone(),
                    redirect_uris: redirect_uris.clone(),
                })
                .await;
            registered.map(|credentials| match credentials.client_secret {
                Some(secret) => format!(
                    "client_id={}\nclient_secret={secret}\n(the secret is shown this once)",
                    credentials.client_id
                ),
                None => format!("client_id={}", credentials.client_id),
            })
        }
        ClientCommand::Rm { tenant, id } => store
            .remove_oauth_client(tenant, id)
            .await
            .map(|()| format!("client {id} of tenant {tenant} removed"))
            .map_err(Into::into),
    };
    store.close().await;
    println!("{}", done?);
    Ok(())
}

async fn reset_token(config: &Config) -> Result<()> {
    let store = open_local_store(config).await?;
    let token = portico_console::new_admin_token();
    store
        .set_admin_token_hash(&portico_console::hash_admin_token(&token))
        .await?;
    store.close().await;
    println!("{token}");
    eprintln!("The admin token was replaced; the old one no longer works.");
    Ok(())
}
