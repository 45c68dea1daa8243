//! Audit (`/audit`): past (ended) connection sessions, filtered by a GET form, with a
//! link to the CSV of the same filter; administrators also see the audit trail.

use super::layout::{date_ms, section_page, time, Role, Section};
use super::views::{AuditRecord, Session};
use super::{query, Caller, State};
use axum::extract::{Query, State as StateOf};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

/// The filter form's fields; `from` and `to` are dates (`YYYY-MM-DD`, UTC, `to` inclusive).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filter {
    user: String,
    device: String,
    application: String,
    from: String,
    to: String,
}

const DAY_MS: i64 = 86_400_000;

impl Filter {
    /// The API's query for this filter (past sessions only).
    fn api_query(&self, csv: bool) -> String {
        let since = date_ms(&self.from).map(|ms| ms.to_string());
        let until = date_ms(&self.to).map(|ms| (ms + DAY_MS - 1).to_string());
        let mut pairs = vec![("open", "false")];
        for (key, value) in [
            ("user", self.user.trim()),
            ("device", self.device.trim()),
            ("application", self.application.trim()),
            ("since_ms", since.as_deref().unwrap_or("")),
            ("until_ms", until.as_deref().unwrap_or("")),
        ] {
            if !value.is_empty() {
                pairs.push((key, value));
            }
        }
        if csv {
            pairs.push(("format", "csv"));
        }
        query(&pairs)
    }

    /// Whether a session passes the filter (the API filters too; this keeps the page right
    /// with an API that does not know every filter).
    fn keeps(&self, s: &Session) -> bool {
        let text = |want: &str, have: &str| want.trim().is_empty() || want.trim() == have;
        let since = date_ms(&self.from);
        let until = date_ms(&self.to).map(|ms| ms + DAY_MS - 1);
        s.ended_ms.is_some()
            && text(&self.user, &s.user_name)
            && text(&self.device, &s.device)
            && text(&self.application, &s.application)
            && since.is_none_or(|ms| s.started_ms >= ms)
            && until.is_none_or(|ms| s.started_ms <= ms)
    }
}

pub async fn page(
    StateOf(options): State,
    Query(filter): Query<Filter>,
    caller: Caller,
) -> Response {
    let api = caller.remote_services(&options);
    let sessions: Vec<Session> = match api
        .get(&format!("/connections?{}", filter.api_query(false)))
        .await
    {
        Ok(list) => list,
        Err(error) => return caller.error(error),
    };
    let past: Vec<&Session> = sessions.iter().filter(|s| filter.keeps(s)).collect();
    let trail: Option<Vec<AuditRecord>> = if caller.viewer.role == Role::Admin {
        match api.get("/audit").await {
            Ok(list) => Some(list),
            Err(error) => return caller.error(error),
        }
    } else {
        None
    };
    let csv = format!(
        "/api/remoteservices/v1/connections?{}",
        filter.api_query(true)
    );
    let content = html! {
        (filter_form(&filter))
        p { a #csv href=(csv) download="connections.csv" { "Download these sessions as CSV" } }
        section aria-labelledby="past-heading" {
            h2 #past-heading { "Past sessions" }
            @if past.is_empty() {
                p.empty #audit-empty data-refresh { "No past session matches." }
            }
            table #past-sessions {
                caption.visually-hidden { "Past connection sessions" }
                thead {
                    tr {
                        th scope="col" { "User" }
                        th scope="col" { "Device" }
                        th scope="col" { "Application" }
                        th scope="col" { "Started" }
                        th scope="col" { "Ended" }
                        th scope="col" { "Reason" }
                        th scope="col" { "Bytes up" }
                        th scope="col" { "Bytes down" }
                    }
                }
                tbody {
                    @for s in &past {
                        tr data-connection=(s.id) {
                            td { (s.user_name) }
                            td { (s.device) }
                            td { (s.application) }
                            td { (time(s.started_ms)) }
                            td { @if let Some(ms) = s.ended_ms { (time(ms)) } }
                            td { (s.end_reason.as_deref().unwrap_or("")) }
                            td.number { (s.bytes_up) }
                            td.number { (s.bytes_down) }
                        }
                    }
                }
            }
        }
        @if let Some(trail) = &trail {
            section aria-labelledby="trail-heading" {
                h2 #trail-heading { "Audit trail" }
                table #audit-trail {
                    caption.visually-hidden { "Audit trail, newest first" }
                    thead {
                        tr {
                            th scope="col" { "When" }
                            th scope="col" { "Actor" }
                            th scope="col" { "Action" }
                            th scope="col" { "Object" }
                            th scope="col" { "Detail" }
                        }
                    }
                    tbody {
                        @for r in trail {
                            tr data-audit=(r.id) {
                                td { (time(r.at_ms)) }
                                td { (r.actor) }
                                td { (r.action) }
                                td { (r.object) }
                                td { (r.detail) }
                            }
                        }
                    }
                }
            }
        }
    };
    section_page(&caller.viewer, Section::Audit, "Audit", content).into_response()
}

fn filter_form(filter: &Filter) -> Markup {
    html! {
        form.filter method="get" action="/audit" aria-label="Filter past sessions" {
            div.field {
                label for="f-user" { "User" }
                input #f-user name="user" value=(filter.user);
            }
            div.field {
                label for="f-device" { "Device" }
                input #f-device name="device" value=(filter.device);
            }
            div.field {
                label for="f-application" { "Application" }
                input #f-application name="application" value=(filter.application);
            }
            div.field {
                label for="f-from" { "From" }
                input #f-from name="from" type="date" value=(filter.from);
            }
            div.field {
                label for="f-to" { "To" }
                input #f-to name="to" type="date" value=(filter.to);
            }
            button type="submit" { "Filter" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(user: &str, started_ms: i64, ended: bool) -> Session {
        Session {
            id: "s".into(),
            user_name: user.into(),
            device: "press-1".into(),
            application: "ssh".into(),
            started_ms,
            ended_ms: ended.then_some(started_ms + 1),
            ..Session::default()
        }
    }

    #[test]
    fn the_filter_names_only_what_was_filled_in_and_counts_the_last_day_whole() {
        let filter = Filter {
            user: " ulf ".into(),
            from: "2023-11-14".into(),
            to: "2023-11-14".into(),
            ..Filter::default()
        };
        assert_eq!(
            filter.api_query(true),
            "open=false&user=ulf&since_ms=1699920000000&until_ms=1700006399999&format=csv"
        );
        assert_eq!(Filter::default().api_query(false), "open=false");
        assert!(filter.keeps(&session("ulf", 1_700_006_399_999, true)));
        assert!(!filter.keeps(&session("ulf", 1_700_006_400_000, true)));
        assert!(!filter.keeps(&session("ada", 1_699_920_000_000, true)));
        assert!(
            !filter.keeps(&session("ulf", 1_699_920_000_000, false)),
            "open"
        );
    }
}
