//! Device (`/devices/{name}`): its endpoint and state, its assigned Protocol Applications
//! each with a Connect button, and for site owners and administrators the assign form.
//! The page JavaScript opens the connection and shows how to use it.

use super::layout::{section_page, Role, Section};
use super::views::{Application, Assignment, Device, Endpoint};
use super::{segment, Caller, State};
use axum::extract::{Path, State as StateOf};
use axum::response::{IntoResponse, Response};
use maud::html;

pub async fn page(StateOf(options): State, Path(name): Path<String>, caller: Caller) -> Response {
    let api = caller.remote_services(&options);
    let device: Device = match api.get(&format!("/devices/{}", segment(&name))).await {
        Ok(device) => device,
        Err(error) => return caller.error(error),
    };
    let assignments: Vec<Assignment> = match api.get("/assignments").await {
        Ok(list) => list,
        Err(error) => return caller.error(error),
    };
    let applications: Vec<Application> = match api.get("/applications").await {
        Ok(list) => list,
        Err(error) => return caller.error(error),
    };
    // Only administrators may list endpoints; others see the device's state alone.
    let endpoint = if caller.viewer.role == Role::Admin {
        match api.get::<Vec<Endpoint>>("/endpoints").await {
            Ok(endpoints) => endpoints
                .into_iter()
                .find(|e| e.bound_to.kind == "device" && e.bound_to.name == device.name),
            Err(error) => return caller.error(error),
        }
    } else {
        None
    };
    let assigned: Vec<&Application> = applications
        .iter()
        .filter(|app| {
            assignments
                .iter()
                .any(|a| a.device == device.name && a.application == app.name)
        })
        .collect();
    let unassigned: Vec<&Application> = applications
        .iter()
        .filter(|app| !assigned.iter().any(|a| a.name == app.name))
        .collect();
    let state = if device.online { "online" } else { "offline" };
    let title = format!("Device {}", device.name);
    let content = html! {
        dl.facts data-device=(device.name) {
            dt { "Site" } dd { (device.site) }
            dt { "Description" } dd { (device.description) }
            dt { "Endpoint" }
            dd {
                @match &endpoint {
                    Some(e) => { (e.name) " (" (e.state) ")" },
                    None => { "its Device Endpoint" },
                }
            }
            dt { "State" }
            dd { span.state data-online=(device.online) { (state) } }
        }
        section aria-labelledby="apps-heading" {
            h2 #apps-heading { "Assigned applications" }
            @if assigned.is_empty() {
                p.empty #assigned-empty data-refresh { "No application is assigned to this device." }
            }
            ul #apps data-refresh {
                @for app in &assigned {
                    li data-app=(app.name) {
                        span.app-name { (app.title()) }
                        " "
                        span.template { "(" (app.template) ": " (app.mappings_text()) ")" }
                        " "
                        button type="button" data-action="connect" data-app=(app.name)
                            data-device=(device.name) data-template=(app.template) {
                            "Connect " span.visually-hidden { (app.title()) }
                        }
                    }
                }
            }
        }
        @if caller.viewer.role.assigns() {
            section aria-labelledby="assign-heading" {
                h2 #assign-heading { "Assign an application" }
                form data-action="assign" data-done="Application assigned." {
                    input type="hidden" name="device" value=(device.name);
                    div.field {
                        label for="assign-application" { "Application" }
                        select #assign-application name="application" required data-refresh {
                            @for app in &unassigned {
                                option value=(app.name) { (app.title()) }
                            }
                        }
                    }
                    button type="submit" { "Assign" }
                }
            }
        }
    };
    section_page(&caller.viewer, Section::Devices, &title, content).into_response()
}
