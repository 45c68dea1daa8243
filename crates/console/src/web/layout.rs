//! The frame of every console page: language, title, skip link, the header with the
//! signed-in user, the navigation of the pages the viewer's role may use, the one `main`
//! with its `h1`, and the two live regions actions report into.

use maud::{html, Markup, DOCTYPE};
use portico_gateway::RequestContext;
use portico_store::OPERATORS_TENANT;

/// A tenant role as the identity service names it (carried as the scope `role:{role}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    SiteOwner,
    User,
    /// The platform operator (role `operator` of tenant `management`): the Registry page
    /// only.
    Operator,
    /// Anything else (a client): reads what the APIs allow.
    Other,
}

impl Role {
    fn parse(name: &str) -> Role {
        match name {
            "admin" => Role::Admin,
            "site-owner" => Role::SiteOwner,
            "user" => Role::User,
            "operator" => Role::Operator,
            _ => Role::Other,
        }
    }

    /// Site owners and administrators assign applications to devices.
    pub fn assigns(self) -> bool {
        matches!(self, Role::Admin | Role::SiteOwner)
    }
}

/// Who is looking at the console.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub tenant: String,
    pub user: String,
    pub role: Role,
    /// The host the page was asked for, e.g. `demo-console.eu1.portico.localhost:8443`.
    pub host: String,
}

impl Viewer {
    /// The viewer the gateway verified, if any.
    pub fn from_context(context: &RequestContext) -> Option<Viewer> {
        let principal = context.principal.as_ref()?;
        let role = principal.role().map_or(Role::Other, Role::parse);
        // Operators live in the operators' tenant only (the identity service makes them
        // nowhere else); a `role:operator` scope of any other tenant counts for nothing.
        let role = match role {
            Role::Operator if principal.tenant != OPERATORS_TENANT => Role::Other,
            role => role,
        };
        Some(Viewer {
            tenant: principal.tenant.clone(),
            user: principal.subject.clone(),
            role,
            host: context.original_host.clone(),
        })
    }
}

/// The console's pages, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Devices,
    ProtocolHub,
    Connections,
    Audit,
    Admin,
    Network,
    /// The platform operator's Gateway Registry.
    Registry,
}

impl Section {
    const ALL: [Section; 7] = [
        Section::Devices,
        Section::ProtocolHub,
        Section::Connections,
        Section::Audit,
        Section::Admin,
        Section::Network,
        Section::Registry,
    ];

    fn path(self) -> &'static str {
        match self {
            Section::Devices => "/",
            Section::ProtocolHub => "/protocol-hub",
            Section::Connections => "/connections",
            Section::Audit => "/audit",
            Section::Admin => "/admin",
            Section::Network => "/network",
            Section::Registry => "/registry",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Section::Devices => "Devices",
            Section::ProtocolHub => "Protocol Hub",
            Section::Connections => "Connections",
            Section::Audit => "Audit",
            Section::Admin => "Administration",
            Section::Network => "Network",
            Section::Registry => "Registry",
        }
    }

    /// Whether `role` may use the page. The operator has the Registry only, and only the
    /// operator has it; the administration is for administrators; everything else is for
    /// every tenant role: what each page lists is what the APIs let that role see.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Section::Registry => role == Role::Operator,
            Section::Admin => role == Role::Admin,
            _ => role != Role::Operator,
        }
    }
}

/// A whole page: `title` is its `h1` too; `viewer` decides the navigation.
pub fn page(viewer: Option<&Viewer>, title: &str, content: Markup) -> Markup {
    page_in(viewer, None, title, content)
}

/// A page of one of the navigation's sections, marked as the current one.
pub fn section_page(viewer: &Viewer, section: Section, title: &str, content: Markup) -> Markup {
    page_in(Some(viewer), Some(section), title, content)
}

fn page_in(
    viewer: Option<&Viewer>,
    current: Option<Section>,
    title: &str,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Portico" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header.top {
                    span.brand { "Portico" }
                    @if let Some(viewer) = viewer {
                        span.who { (viewer.user) " · " (viewer.tenant) }
                        a.signout href="/logout" { "Sign out" }
                    }
                    button.menu type="button" aria-controls="console-nav" aria-expanded="false" {
                        "Menu"
                    }
                }
                nav #console-nav aria-label="Console" {
                    ul {
                        @for section in Section::ALL {
                            @if viewer.is_some_and(|v| section.allows(v.role)) {
                                li {
                                    @if current == Some(section) {
                                        a href=(section.path()) aria-current="page" { (section.label()) }
                                    } @else {
                                        a href=(section.path()) { (section.label()) }
                                    }
                                }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    div #result role="status" {}
                    div #error role="alert" {}
                    (content)
                }
            }
        }
    }
}

/// A unix-milliseconds time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Unix milliseconds at the start (UTC) of a `YYYY-MM-DD` date from 1970 to 9999, if it is
/// one.
pub fn date_ms(date: &str) -> Option<i64> {
    use chrono::Datelike;
    let day = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok()?;
    if !(1970..=9999).contains(&day.year()) {
        return None;
    }
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_dates_convert_both_ways() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(1_700_000_000_123), "2023-11-14 22:13:20 UTC");
        assert_eq!(date_ms("2023-11-14"), Some(1_699_920_000_000));
        assert_eq!(
            date_ms("2024-02-29").map(time).as_deref(),
            Some("2024-02-29 00:00:00 UTC")
        );
        assert_eq!(date_ms("2024-13-01"), None);
        assert_eq!(date_ms("2023-02-29"), None);
        assert_eq!(date_ms("yesterday"), None);
    }
}
