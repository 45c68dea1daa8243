//! What the console reads from the APIs: only the fields it shows, every one defaulted, so
//! an API that adds fields (or has not yet added one, like a device's `online`) still reads.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Site {
    pub name: String,
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Device {
    pub name: String,
    pub site: String,
    pub description: String,
    /// Whether its Device Endpoint is connected now; missing means offline.
    pub online: bool,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Member {
    pub site: String,
    pub user_name: String,
    pub role: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct BoundTo {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Endpoint {
    pub name: String,
    pub kind: String,
    pub bound_to: BoundTo,
    pub state: String,
    pub online: bool,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub default_port: Option<u16>,
    pub direction: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct PortMapping {
    pub local_port: u16,
    pub target_host: String,
    pub target_port: u16,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Application {
    pub name: String,
    /// What people call it; empty: the name.
    pub label: String,
    pub template: String,
    pub mappings: Vec<PortMapping>,
    pub target_endpoint: Option<String>,
    pub session_timeout_s: i64,
}

impl Application {
    /// What to call it on a page: its label, or its name without one.
    pub fn title(&self) -> &str {
        if self.label.is_empty() {
            &self.name
        } else {
            &self.label
        }
    }

    /// Its ports as `local → host:port`, comma separated.
    pub fn mappings_text(&self) -> String {
        self.mappings
            .iter()
            .map(|m| format!("{} → {}:{}", m.local_port, m.target_host, m.target_port))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Assignment {
    pub application: String,
    pub device: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Session {
    pub id: String,
    pub user_name: String,
    pub device: String,
    pub application: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub bytes_up: i64,
    pub bytes_down: i64,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct AuditRecord {
    pub id: String,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub detail: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct User {
    pub name: String,
    pub role: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub confidential: bool,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
}
