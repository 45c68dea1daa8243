//! Administration (`/admin`, tenant administrators only): sites, devices, memberships,
//! users, endpoints with their one-time registration codes, OAuth clients, and the
//! Gateway Registry section. Every form is sent to the APIs by the page JavaScript.

use super::error::PageError;
use super::layout::{section_page, Role, Section};
use super::registry;
use super::views::{Client, Device, Endpoint, Member, Site, User};
use super::{Caller, State};
use axum::extract::State as StateOf;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

/// The identity admin API's lists, or why they cannot be shown.
type Identity = Result<(Vec<User>, Vec<Client>), String>;

pub async fn page(StateOf(options): State, caller: Caller) -> Response {
    if caller.viewer.role != Role::Admin {
        return caller.error(PageError::Forbidden(
            "The administration is for the tenant's administrators.".into(),
        ));
    }
    let api = caller.remote_services(&options);
    let lists = async {
        let sites: Vec<Site> = api.get("/sites").await?;
        let devices: Vec<Device> = api.get("/devices").await?;
        let members: Vec<Member> = api.get("/members").await?;
        let endpoints: Vec<Endpoint> = api.get("/endpoints").await?;
        Ok::<_, PageError>((sites, devices, members, endpoints))
    };
    let (sites, devices, members, endpoints) = match lists.await {
        Ok(lists) => lists,
        Err(error) => return caller.error(error),
    };
    let identity_api = caller.identity_admin(&options);
    let identity: Identity = match identity_api.get::<Vec<User>>("/users").await {
        Ok(users) => match identity_api.get::<Vec<Client>>("/clients").await {
            Ok(clients) => Ok((users, clients)),
            Err(PageError::Forbidden(why)) => return caller.error(PageError::Forbidden(why)),
            Err(error) => Err(error.to_string()),
        },
        Err(PageError::Forbidden(why)) => return caller.error(PageError::Forbidden(why)),
        Err(PageError::Unavailable(why)) => Err(why),
        Err(error) => Err(error.to_string()),
    };
    let registry = match registry::for_tenant(&options.store, &caller.viewer.tenant).await {
        Ok(registry) => registry,
        Err(error) => return caller.error(error),
    };
    let content = html! {
        (sites_section(&sites, &devices, &members))
        (users_section(&identity))
        (endpoints_section(&endpoints))
        (clients_section(&identity))
        (registry::section(&caller.viewer.tenant, &registry))
    };
    section_page(&caller.viewer, Section::Admin, "Administration", content).into_response()
}

fn field(id: &str, label: &str, input: Markup) -> Markup {
    html! { div.field { label for=(id) { (label) } (input) } }
}

fn sites_section(sites: &[Site], devices: &[Device], members: &[Member]) -> Markup {
    html! {
        section aria-labelledby="sites-heading" {
            h2 #sites-heading { "Sites, devices and members" }
            table #sites data-refresh {
                caption.visually-hidden { "Sites" }
                thead { tr { th scope="col" { "Site" } th scope="col" { "Parent" } th scope="col" { "Devices" } th scope="col" { "Members" } } }
                tbody {
                    @for s in sites {
                        tr data-site=(s.name) {
                            th scope="row" { (s.name) }
                            td { (s.parent.as_deref().unwrap_or("")) }
                            td { (devices.iter().filter(|d| d.site == s.name).map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")) }
                            td { (members.iter().filter(|m| m.site == s.name).map(|m| format!("{} ({})", m.user_name, m.role)).collect::<Vec<_>>().join(", ")) }
                        }
                    }
                }
            }
            div.forms {
                form data-action="add-site" data-done="Site added." aria-labelledby="add-site-heading" {
                    h3 #add-site-heading { "Add a site" }
                    (field("site-name", "Name", html! { input #site-name name="name" required; }))
                    (field("site-parent", "Parent site (optional)", html! {
                        select #site-parent name="parent" data-refresh {
                            option value="" { "None" }
                            @for s in sites { option value=(s.name) { (s.name) } }
                        }
                    }))
                    button type="submit" { "Add site" }
                }
                form data-action="add-device" data-done="Device added." aria-labelledby="add-device-heading" {
                    h3 #add-device-heading { "Add a device" }
                    (field("device-name", "Name", html! { input #device-name name="name" required; }))
                    (field("device-site", "Site", html! {
                        select #device-site name="site" required data-refresh {
                            @for s in sites { option value=(s.name) { (s.name) } }
                        }
                    }))
                    (field("device-description", "Description", html! { input #device-description name="description"; }))
                    button type="submit" { "Add device" }
                }
                form data-action="set-member" data-done="Membership saved." aria-labelledby="set-member-heading" {
                    h3 #set-member-heading { "Give a user a role on a site" }
                    (field("member-site", "Site", html! {
                        select #member-site name="site" required data-refresh {
                            @for s in sites { option value=(s.name) { (s.name) } }
                        }
                    }))
                    (field("member-user", "User name", html! { input #member-user name="user_name" required; }))
                    (field("member-role", "Role on the site", html! {
                        select #member-role name="role" {
                            option value="user" { "user" }
                            option value="site-owner" { "site-owner" }
                        }
                    }))
                    button type="submit" { "Set role" }
                }
            }
        }
    }
}

fn unavailable(why: &str) -> Markup {
    html! { p.notice { "The identity administration is not available: " (why) } }
}

fn users_section(identity: &Identity) -> Markup {
    html! {
        section aria-labelledby="users-heading" {
            h2 #users-heading { "Users" }
            @match identity {
                Ok((users, _)) => {
                    table #users data-refresh {
                        caption.visually-hidden { "Users" }
                        thead { tr { th scope="col" { "User" } th scope="col" { "Role" } th scope="col" { "Action" } } }
                        tbody {
                            @for u in users {
                                tr data-user=(u.name) {
                                    th scope="row" { (u.name) }
                                    td { (u.role) }
                                    td {
                                        button type="button" data-action="remove-user" data-done="User removed; their sessions ended." data-user=(u.name) {
                                            "Remove" span.visually-hidden { " " (u.name) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
                Err(why) => { (unavailable(why)) },
            }
            form data-action="add-user" data-done="User added." aria-labelledby="add-user-heading" {
                h3 #add-user-heading { "Add a user" }
                (field("user-name", "Name", html! { input #user-name name="name" required autocomplete="off"; }))
                (field("user-role", "Role", html! {
                    select #user-role name="role" {
                        option value="user" { "user" }
                        option value="site-owner" { "site-owner" }
                        option value="admin" { "admin" }
                    }
                }))
                (field("user-password", "Password", html! { input #user-password name="password" type="password" required autocomplete="new-password"; }))
                button type="submit" { "Add user" }
            }
        }
    }
}

fn endpoints_section(endpoints: &[Endpoint]) -> Markup {
    html! {
        section aria-labelledby="endpoints-heading" {
            h2 #endpoints-heading { "Endpoints" }
            table #endpoints data-refresh {
                caption.visually-hidden { "Endpoints" }
                thead { tr { th scope="col" { "Endpoint" } th scope="col" { "Kind" } th scope="col" { "Bound to" } th scope="col" { "State" } th scope="col" { "Action" } } }
                tbody {
                    @for e in endpoints {
                        tr data-endpoint=(e.name) {
                            th scope="row" { (e.name) }
                            td { (e.kind) }
                            td { (e.bound_to.kind) " " (e.bound_to.name) }
                            td { (e.state) @if e.online { " · online" } }
                            td {
                                @if e.state != "revoked" {
                                    button type="button" data-action="revoke" data-done="Endpoint revoked; its tunnel is cut." data-endpoint=(e.name) {
                                        "Revoke" span.visually-hidden { " " (e.name) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form data-action="add-endpoint" aria-labelledby="add-endpoint-heading" {
                h3 #add-endpoint-heading { "Add an endpoint" }
                p.hint { "A Device Endpoint is bound to a device; a Service Endpoint to a site or to a user. The one-time registration code is shown once." }
                (field("endpoint-name", "Name", html! { input #endpoint-name name="name" required; }))
                (field("endpoint-kind", "Kind", html! {
                    select #endpoint-kind name="kind" {
                        option value="device" { "device" }
                        option value="service" { "service" }
                    }
                }))
                (field("endpoint-device", "Device (for a Device Endpoint)", html! { input #endpoint-device name="device"; }))
                (field("endpoint-site", "Site (for a Service Endpoint of a site)", html! { input #endpoint-site name="site"; }))
                (field("endpoint-user", "User (for a Service Endpoint of a user)", html! { input #endpoint-user name="user"; }))
                button type="submit" { "Add endpoint" }
            }
        }
    }
}

fn clients_section(identity: &Identity) -> Markup {
    html! {
        section aria-labelledby="clients-heading" {
            h2 #clients-heading { "OAuth clients" }
            @match identity {
                Ok((_, clients)) => {
                    table #clients data-refresh {
                        caption.visually-hidden { "OAuth clients" }
                        thead { tr { th scope="col" { "Client" } th scope="col" { "Name" } th scope="col" { "Grants" } th scope="col" { "Scopes" } th scope="col" { "Action" } } }
                        tbody {
                            @for c in clients {
                                tr data-client=(c.client_id) {
                                    th scope="row" { code { (c.client_id) } }
                                    td { (c.name) @if c.confidential { " (confidential)" } }
                                    td { (c.grant_types.join(", ")) }
                                    td { (c.scopes.join(" ")) }
                                    td {
                                        button type="button" data-action="remove-client" data-done="Client removed." data-client=(c.client_id) {
                                            "Remove" span.visually-hidden { " " (c.name) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
                Err(why) => { (unavailable(why)) },
            }
            form data-action="add-client" aria-labelledby="add-client-heading" {
                h3 #add-client-heading { "Add a client" }
                (field("client-name", "Name", html! { input #client-name name="name" required; }))
                div.field.check {
                    input #client-confidential name="confidential" type="checkbox" value="true" checked;
                    label for="client-confidential" { "Confidential (has a secret)" }
                }
                (field("client-grants", "Grant types (space separated)", html! { input #client-grants name="grant_types" value="client_credentials"; }))
                (field("client-scopes", "Scopes (space separated)", html! { input #client-scopes name="scopes"; }))
                (field("client-redirects", "Redirect URIs (space separated)", html! { input #client-redirects name="redirect_uris"; }))
                button type="submit" { "Add client" }
            }
        }
    }
}
