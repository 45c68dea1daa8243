//! Protocol Hub (`/protocol-hub`): the template catalogue, the tenant's Protocol
//! Applications, for administrators the form that creates one from a template, and for
//! site owners and administrators the form that assigns one to a device.

use super::layout::{section_page, Role, Section};
use super::views::{Application, Device, Endpoint, Template};
use super::{Caller, State};
use axum::extract::State as StateOf;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

pub async fn page(StateOf(options): State, caller: Caller) -> Response {
    let api = caller.remote_services(&options);
    let templates: Vec<Template> = match api.get("/templates").await {
        Ok(list) => list,
        Err(error) => return caller.error(error),
    };
    let applications: Vec<Application> = match api.get("/applications").await {
        Ok(list) => list,
        Err(error) => return caller.error(error),
    };
    let role = caller.viewer.role;
    let devices: Vec<Device> = if role.assigns() {
        match api.get("/devices").await {
            Ok(list) => list,
            Err(error) => return caller.error(error),
        }
    } else {
        Vec::new()
    };
    let service_endpoints: Vec<Endpoint> = if role == Role::Admin {
        match api.get::<Vec<Endpoint>>("/endpoints").await {
            Ok(list) => list.into_iter().filter(|e| e.kind == "service").collect(),
            Err(error) => return caller.error(error),
        }
    } else {
        Vec::new()
    };
    let content = html! {
        section aria-labelledby="templates-heading" {
            h2 #templates-heading { "Templates" }
            table #templates {
                caption.visually-hidden { "Protocol Application templates" }
                thead { tr { th scope="col" { "Template" } th scope="col" { "Id" } th scope="col" { "Default port" } th scope="col" { "Direction" } } }
                tbody {
                    @for t in &templates {
                        tr data-template=(t.id) {
                            th scope="row" { (t.name) }
                            td { code { (t.id) } }
                            td { @if let Some(port) = t.default_port { (port) } @else { "—" } }
                            td { (t.direction) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="applications-heading" {
            h2 #applications-heading { "Applications" }
            @if applications.is_empty() {
                p.empty #applications-empty data-refresh { "No Protocol Application yet." }
            }
            ul #applications data-refresh {
                @for app in &applications {
                    li data-application=(app.name) {
                        strong { (app.title()) }
                        @if !app.label.is_empty() { " (" code { (app.name) } ")" }
                        " — " (app.template) ": " (app.mappings_text())
                        @if let Some(target) = &app.target_endpoint { " via " (target) }
                    }
                }
            }
        }
        @if role == Role::Admin {
            (create_form(&templates, &service_endpoints))
        }
        @if role.assigns() {
            (assign_form(&devices, &applications))
        }
    };
    section_page(
        &caller.viewer,
        Section::ProtocolHub,
        "Protocol Hub",
        content,
    )
    .into_response()
}

fn create_form(templates: &[Template], service_endpoints: &[Endpoint]) -> Markup {
    html! {
        section aria-labelledby="create-heading" {
            h2 #create-heading { "Create an application" }
            form data-action="create-application" data-done="Application created." {
                div.field {
                    label for="app-label" { "Label" }
                    input #app-label name="label" maxlength="100" placeholder="Ticketing Server Access";
                }
                div.field {
                    label for="app-name" { "Name (for command lines)" }
                    input #app-name name="name" required pattern="[a-z0-9][a-z0-9._\\-]{0,63}"
                        placeholder="ticketing" aria-describedby="app-name-help";
                    small #app-name-help { "Lower-case letters, digits, dot, underscore and hyphen" }
                }
                div.field {
                    label for="app-template" { "Template" }
                    select #app-template name="template" required {
                        @for t in templates {
                            option value=(t.id) data-default-port=[t.default_port] { (t.name) }
                        }
                    }
                }
                div.field {
                    label for="app-local-port" { "Local port" }
                    input #app-local-port name="local_port" type="number" min="1" max="65535" required;
                }
                div.field {
                    label for="app-target-host" { "Target host" }
                    input #app-target-host name="target_host" required placeholder="localhost";
                }
                div.field {
                    label for="app-target-port" { "Target port" }
                    input #app-target-port name="target_port" type="number" min="1" max="65535" required;
                }
                div.field {
                    label for="app-target-endpoint" { "Target endpoint (DTT Reverse)" }
                    select #app-target-endpoint name="target_endpoint" data-refresh {
                        option value="" { "None" }
                        @for e in service_endpoints {
                            option value=(e.name) { (e.name) }
                        }
                    }
                }
                div.field {
                    label for="app-timeout" { "Session timeout (seconds)" }
                    input #app-timeout name="session_timeout_s" type="number" min="60" max="86400" value="3600";
                }
                button type="submit" { "Create" }
            }
        }
    }
}

fn assign_form(devices: &[Device], applications: &[Application]) -> Markup {
    html! {
        section aria-labelledby="hub-assign-heading" {
            h2 #hub-assign-heading { "Assign to a device" }
            form data-action="assign" data-done="Application assigned." {
                div.field {
                    label for="hub-assign-device" { "Device" }
                    select #hub-assign-device name="device" required data-refresh {
                        @for d in devices {
                            option value=(d.name) { (d.name) " (" (d.site) ")" }
                        }
                    }
                }
                div.field {
                    label for="hub-assign-application" { "Application" }
                    select #hub-assign-application name="application" required data-refresh {
                        @for app in applications {
                            option value=(app.name) { (app.title()) }
                        }
                    }
                }
                button type="submit" { "Assign" }
            }
        }
    }
}
