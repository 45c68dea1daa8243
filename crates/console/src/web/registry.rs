//! The Gateway Registry section of the administration page: the web apps and APIs the
//! tenant is subscribed to, with their routes, read only. Portico's own registrations
//! with no tenant listed count as every tenant's (as the gateway routes them).

use super::error::PageError;
use maud::{html, Markup};
use portico_store::{Api, Origin, Store, WebApp};

/// What the tenant sees of the registry.
pub struct TenantRegistry {
    pub webapps: Vec<WebApp>,
    pub apis: Vec<Api>,
}

fn serves(origin: Origin, tenants: &[String], tenant: &str) -> bool {
    tenants.iter().any(|t| t == tenant) || (origin == Origin::Builtin && tenants.is_empty())
}

/// The registrations `tenant` is subscribed to.
pub async fn for_tenant(store: &Store, tenant: &str) -> Result<TenantRegistry, PageError> {
    let registry = store
        .registry()
        .await
        .map_err(|e| PageError::Unavailable(format!("the registry cannot be read: {e}")))?;
    Ok(TenantRegistry {
        webapps: registry
            .webapps
            .into_iter()
            .filter(|w| serves(w.origin, &w.tenants, tenant))
            .collect(),
        apis: registry
            .apis
            .into_iter()
            .filter(|a| serves(a.origin, &a.tenants, tenant))
            .collect(),
    })
}

pub fn section(tenant: &str, registry: &TenantRegistry) -> Markup {
    html! {
        section #registry aria-labelledby="registry-heading" {
            h2 #registry-heading { "Gateway Registry" }
            p { "What tenant " strong { (tenant) } " is subscribed to (read only)." }
            h3 { "Web apps" }
            table #registry-webapps {
                caption.visually-hidden { "Web apps" }
                thead { tr { th scope="col" { "Web app" } th scope="col" { "Sign-in" } th scope="col" { "WebSocket paths" } } }
                tbody {
                    @for w in &registry.webapps {
                        tr data-webapp=(w.key()) {
                            th scope="row" { (w.key()) }
                            td { (w.auth.as_str()) }
                            td { (w.websockets.join(", ")) }
                        }
                    }
                }
            }
            h3 { "APIs" }
            table #registry-apis {
                caption.visually-hidden { "APIs" }
                thead { tr { th scope="col" { "API" } th scope="col" { "Version" } th scope="col" { "Sign-in" } th scope="col" { "Routes" } } }
                tbody {
                    @for a in &registry.apis {
                        tr data-api=(a.key()) {
                            th scope="row" { (a.key()) }
                            td { "v" (a.version) }
                            td { (a.auth.as_str()) }
                            td {
                                ul.routes {
                                    @for r in &a.routes {
                                        li {
                                            code { (r.pattern) }
                                            @if !r.methods.is_empty() { " " (r.methods.join(", ")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
