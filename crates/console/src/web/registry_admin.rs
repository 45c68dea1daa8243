//! The Registry page's content: every tenant, web app and API with its routes, backend,
//! sign-in, scopes, subscribed tenants and origin; the forms that add entries and the
//! buttons that remove them. Only entries made through the registry API (origin `api`)
//! can be removed here; the others say where they are changed.

use maud::{html, Markup};
use portico_store::{app_key, Api, Origin, Tenant, WebApp};

/// The whole registry, as the registry API lists it.
pub struct Registry {
    pub tenants: Vec<Tenant>,
    pub webapps: Vec<WebApp>,
    pub apis: Vec<Api>,
}

pub fn content(registry: &Registry) -> Markup {
    html! {
        p {
            "Entries added here have origin " code { "api" } ". Entries from the registry file "
            "(origin " code { "file" } ") or built into Portico (origin " code { "builtin" } ") "
            "are shown but changed only where they came from: the registry API refuses to remove "
            "them (409 Conflict)."
        }
        (tenants_section(&registry.tenants))
        (webapps_section(&registry.webapps))
        (apis_section(&registry.apis))
    }
}

fn field(id: &str, label: &str, input: Markup) -> Markup {
    html! { div.field { label for=(id) { (label) } (input) } }
}

/// The origin, and for entries that cannot be removed here, why.
fn origin_cell(origin: Origin) -> Markup {
    html! { td { code { (origin_name(origin)) } } }
}

fn origin_name(origin: Origin) -> &'static str {
    match origin {
        Origin::File => "file",
        Origin::Api => "api",
        Origin::Builtin => "builtin",
    }
}

/// The action cell: a remove button for origin `api`, otherwise where the entry changes.
fn action_cell(origin: Origin, button: Markup) -> Markup {
    html! {
        td {
            @match origin {
                Origin::Api => { (button) },
                Origin::File => { span.not-removable { "Not removable here (409): change the registry file" } },
                Origin::Builtin => { span.not-removable { "Not removable (409): built into Portico" } },
            }
        }
    }
}

fn subscribers(origin: Origin, tenants: &[String]) -> String {
    match (origin, tenants.is_empty()) {
        (Origin::Builtin, true) => "every tenant".into(),
        (_, true) => "none".into(),
        (_, false) => tenants.join(", "),
    }
}

fn words(list: &[String]) -> String {
    list.join(" ")
}

fn tenants_section(tenants: &[Tenant]) -> Markup {
    html! {
        section aria-labelledby="tenants-heading" {
            h2 #tenants-heading { "Tenants" }
            table #registry-tenants data-refresh {
                caption.visually-hidden { "Tenants" }
                thead { tr { th scope="col" { "Tenant" } th scope="col" { "Origin" } th scope="col" { "Action" } } }
                tbody {
                    @for t in tenants {
                        tr data-tenant=(t.name) {
                            th scope="row" { (t.name) }
                            (origin_cell(t.origin))
                            (action_cell(t.origin, html! {
                                button type="button" data-action="remove-tenant" data-done="Tenant removed." data-tenant=(t.name) {
                                    "Remove" span.visually-hidden { " tenant " (t.name) }
                                }
                            }))
                        }
                    }
                }
            }
            form data-action="add-tenant" data-done="Tenant added." aria-labelledby="add-tenant-heading" {
                h3 #add-tenant-heading { "Add a tenant" }
                (field("tenant-name", "Name", html! { input #tenant-name name="name" required autocomplete="off"; }))
                button type="submit" { "Add tenant" }
            }
        }
    }
}

fn webapps_section(webapps: &[WebApp]) -> Markup {
    html! {
        section aria-labelledby="webapps-heading" {
            h2 #webapps-heading { "Web apps" }
            table #registry-all-webapps data-refresh {
                caption.visually-hidden { "Web apps" }
                thead { tr {
                    th scope="col" { "Web app" } th scope="col" { "Backend" } th scope="col" { "Sign-in and scopes" }
                    th scope="col" { "Tenants" } th scope="col" { "WebSocket paths" } th scope="col" { "Origin" } th scope="col" { "Action" }
                } }
                tbody {
                    @for w in webapps {
                        tr data-webapp=(w.key()) {
                            th scope="row" { (w.key()) }
                            td { code { (w.backend) } }
                            td { (w.auth.as_str()) @if !w.scopes.is_empty() { " · " (words(&w.scopes)) } }
                            td { (subscribers(w.origin, &w.tenants)) }
                            td { (w.websockets.join(", ")) }
                            (origin_cell(w.origin))
                            (action_cell(w.origin, html! {
                                button type="button" data-action="remove-webapp" data-done="Web app removed." data-webapp=(w.key()) {
                                    "Remove" span.visually-hidden { " web app " (w.key()) }
                                }
                            }))
                        }
                    }
                }
            }
            form data-action="add-webapp" data-done="Web app added." aria-labelledby="add-webapp-heading" {
                h3 #add-webapp-heading { "Add a web app" }
                (field("webapp-name", "Name", html! { input #webapp-name name="name" required autocomplete="off"; }))
                (field("webapp-provider", "Provider (optional)", html! { input #webapp-provider name="provider" autocomplete="off"; }))
                (field("webapp-backend", "Backend URL", html! { input #webapp-backend name="backend" type="url" required placeholder="http://10.0.0.5:8080/"; }))
                (auth_field("webapp-auth", "session"))
                (field("webapp-scopes", "Scopes (space separated)", html! { input #webapp-scopes name="scopes"; }))
                (field("webapp-tenants", "Tenants subscribed (space separated)", html! { input #webapp-tenants name="tenants"; }))
                (field("webapp-websockets", "WebSocket paths (space separated, optional)", html! { input #webapp-websockets name="websockets"; }))
                (field("webapp-cache", "Cache-Control (optional)", html! { input #webapp-cache name="cache_control"; }))
                button type="submit" { "Add web app" }
            }
        }
    }
}

/// The sign-in choice: `session` for web apps, `bearer` for APIs, or `none`.
fn auth_field(id: &str, signed_in: &str) -> Markup {
    field(
        id,
        "Sign-in",
        html! {
            select id=(id) name="auth" {
                option value=(signed_in) { (signed_in) }
                option value="none" { "none" }
            }
        },
    )
}

fn apis_section(apis: &[Api]) -> Markup {
    html! {
        section aria-labelledby="apis-heading" {
            h2 #apis-heading { "APIs" }
            table #registry-all-apis data-refresh {
                caption.visually-hidden { "APIs" }
                thead { tr {
                    th scope="col" { "API" } th scope="col" { "Backend" } th scope="col" { "Routes" } th scope="col" { "Sign-in and scopes" }
                    th scope="col" { "Tenants" } th scope="col" { "Origin" } th scope="col" { "Action" }
                } }
                tbody {
                    @for a in apis {
                        @let key = app_key(&a.name, a.provider.as_deref());
                        tr data-api=(key) data-version=(a.version) {
                            th scope="row" { (key) " v" (a.version) }
                            td { code { (a.backend) } }
                            td {
                                ul.routes {
                                    @for r in &a.routes {
                                        li {
                                            code { (r.pattern) }
                                            " " @if r.methods.is_empty() { "every method" } @else { (r.methods.join(", ")) }
                                        }
                                    }
                                }
                            }
                            td { (a.auth.as_str()) @if !a.scopes.is_empty() { " · " (words(&a.scopes)) } }
                            td { (subscribers(a.origin, &a.tenants)) }
                            (origin_cell(a.origin))
                            (action_cell(a.origin, html! {
                                button type="button" data-action="remove-api" data-done="API removed." data-api=(key) data-version=(a.version) {
                                    "Remove" span.visually-hidden { " API " (key) " v" (a.version) }
                                }
                            }))
                        }
                    }
                }
            }
            form data-action="add-api" data-done="API added." aria-labelledby="add-api-heading" {
                h3 #add-api-heading { "Add an API" }
                (field("api-name", "Name", html! { input #api-name name="name" required autocomplete="off"; }))
                (field("api-provider", "Provider (optional)", html! { input #api-provider name="provider" autocomplete="off"; }))
                (field("api-version", "Major version", html! { input #api-version name="version" type="number" min="1" value="1" required; }))
                (field("api-backend", "Backend URL", html! { input #api-backend name="backend" type="url" required placeholder="http://10.0.0.6:9000/"; }))
                div.field {
                    label for="api-routes" { "Routes, one a line: a path pattern, then methods (none: every method)" }
                    textarea #api-routes name="routes" rows="4" required placeholder="/assets/** GET POST" {}
                }
                (auth_field("api-auth", "bearer"))
                (field("api-scopes", "Scopes (space separated)", html! { input #api-scopes name="scopes"; }))
                (field("api-tenants", "Tenants subscribed (space separated)", html! { input #api-tenants name="tenants"; }))
                button type="submit" { "Add API" }
            }
        }
    }
}
