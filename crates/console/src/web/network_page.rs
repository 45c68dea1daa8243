//! Network (`/network`): the firewall and proxy allow-list of this deployment, the same
//! content `portico firewall-rules` prints, for a site's IT department.

use super::layout::{section_page, Section};
use super::{Caller, State};
use axum::extract::State as StateOf;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

pub async fn page(StateOf(options): State, caller: Caller) -> Response {
    let list = &options.allow_list;
    let content = html! {
        p { (list.heading()) }
        table #allow-list {
            caption.visually-hidden { "Hosts to allow, outbound from the sites" }
            thead {
                tr {
                    th scope="col" { "Host" }
                    th scope="col" { "Port" }
                    th scope="col" { "Protocol" }
                    th scope="col" { "Who connects" }
                    th scope="col" { "Region" }
                }
            }
            tbody {
                @for row in &list.rows {
                    tr {
                        td { code { (row.host) } }
                        td { (row.port) }
                        td { (row.protocol) }
                        td { (row.who) }
                        td { (row.region) " of " (row.domain) }
                    }
                }
            }
        }
        section aria-labelledby="advice-heading" {
            h2 #advice-heading { "What firewalls and proxies must let through" }
            ul #advice {
                @for line in &list.advice {
                    li { (with_code(line)) }
                }
            }
        }
        details {
            summary { "As text (" code { "portico firewall-rules" } ")" }
            pre #allow-list-text tabindex="0" { (list.to_text()) }
        }
    };
    section_page(&caller.viewer, Section::Network, "Network", content).into_response()
}

/// A line of advice with its `backquoted` parts (commands, headers) set as code.
fn with_code(line: &str) -> Markup {
    html! {
        @for (i, part) in line.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}
