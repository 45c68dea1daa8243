//! Connections (`/connections`): the open connection sessions the caller may see
//! (administrators: all of the tenant's; others: their own), each with an End button.

use super::layout::{section_page, time, Section};
use super::views::Session;
use super::{Caller, State};
use axum::extract::State as StateOf;
use axum::response::{IntoResponse, Response};
use maud::html;

pub async fn page(StateOf(options): State, caller: Caller) -> Response {
    let api = caller.remote_services(&options);
    let sessions: Vec<Session> = match api.get("/connections?open=true").await {
        Ok(list) => list,
        Err(error) => return caller.error(error),
    };
    let open: Vec<&Session> = sessions.iter().filter(|s| s.ended_ms.is_none()).collect();
    let content = html! {
        @if open.is_empty() {
            p.empty #connections-empty data-refresh { "No open connection session." }
        }
        table #connections data-refresh {
            caption.visually-hidden { "Open connection sessions" }
            thead {
                tr {
                    th scope="col" { "User" }
                    th scope="col" { "Device" }
                    th scope="col" { "Application" }
                    th scope="col" { "Started" }
                    th scope="col" { "Bytes up" }
                    th scope="col" { "Bytes down" }
                    th scope="col" { "Action" }
                }
            }
            tbody {
                @for s in &open {
                    tr data-connection=(s.id) {
                        td { (s.user_name) }
                        td { (s.device) }
                        td { (s.application) }
                        td { (time(s.started_ms)) }
                        td.number { (s.bytes_up) }
                        td.number { (s.bytes_down) }
                        td {
                            button type="button" data-action="end" data-done="Connection session ended." data-connection=(s.id) {
                                "End" span.visually-hidden { " " (s.application) " on " (s.device) }
                            }
                        }
                    }
                }
            }
        }
    };
    section_page(&caller.viewer, Section::Connections, "Connections", content).into_response()
}
