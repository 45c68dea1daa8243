//! Who may open a connection session's web interface, and where it is: the checks made
//! for every request on `{tenant}-remote-{id}.…`, from the store and nothing the browser
//! says besides the id.
//!
//! 1. the session exists in the caller's tenant and is open now;
//! 2. its user is the caller (another user of the tenant, an administrator included, is
//!    refused: the session, its permit and its byte counts are that user's);
//! 3. its application's template is `http` or `https`;
//! 4. the device's registered Device Endpoint may dial the application's first mapping
//!    (`rules::may_dial`, as for a joined stream) and is online.

use http::StatusCode;
use portico_store::{ConnectionSessionRecord, Store, StoreError};

use crate::rules::{self, OpenConnection};

/// Where a clientless request goes.
#[derive(Debug, Clone)]
pub struct WebTarget {
    pub session: ConnectionSessionRecord,
    /// The device's endpoint, which dials `host:port` on the device side.
    pub endpoint: String,
    pub host: String,
    pub port: u16,
    /// `https`: TLS to the device's web server.
    pub tls: bool,
}

impl WebTarget {
    /// The device's origin as its own pages know it, e.g. `http://192.168.0.10:8080`.
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
    }

    /// `host[:port]` for the `Host` header: the port only when not the scheme's default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Why a clientless request is not served; each is a page for the browser.
#[derive(Debug, thiserror::Error)]
pub enum ClientlessError {
    #[error("There is no connection session {0} in this tenant.")]
    Unknown(String),
    #[error("Connection session {0} has ended; its device web interface is no longer served. Open a new connection from the console.")]
    Ended(String),
    #[error("Connection session {0} belongs to another user; only its own user may open it in the browser.")]
    NotYours(String),
    #[error("Connection session {id} is for application \"{application}\" (template {template}); only http and https applications open in the browser.")]
    NotWeb {
        id: String,
        application: String,
        template: String,
    },
    #[error("The device's endpoint may not reach the application's target now.")]
    NotAllowed,
    #[error("The device's endpoint {0} is not online.")]
    Offline(String),
    #[error("The device's web server could not be reached: {0}")]
    Device(String),
    #[error("Portico could not check the connection session; try again.")]
    Store(#[from] StoreError),
}

impl ClientlessError {
    pub fn status(&self) -> StatusCode {
        match self {
            ClientlessError::Unknown(_) | ClientlessError::NotWeb { .. } => StatusCode::NOT_FOUND,
            ClientlessError::Ended(_) => StatusCode::GONE,
            ClientlessError::NotYours(_) | ClientlessError::NotAllowed => StatusCode::FORBIDDEN,
            ClientlessError::Offline(_) | ClientlessError::Device(_) => StatusCode::BAD_GATEWAY,
            ClientlessError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The templates whose applications open in the browser, and whether over TLS.
pub fn web_template(template: &str) -> Option<bool> {
    match template {
        "http" => Some(false),
        "https" => Some(true),
        _ => None,
    }
}

/// Checks that `user` of `tenant` may open session `id` in the browser now; where it goes.
pub async fn web_target(
    store: &Store,
    tenant: &str,
    user: &str,
    id: &str,
    now_ms: i64,
) -> Result<WebTarget, ClientlessError> {
    let session = store
        .connection_session(tenant, id)
        .await?
        .ok_or_else(|| ClientlessError::Unknown(id.to_string()))?;
    if session.user_name != user {
        return Err(ClientlessError::NotYours(session.id));
    }
    if !session.is_open(now_ms) {
        return Err(ClientlessError::Ended(session.id));
    }
    let app = store
        .application(tenant, &session.application)
        .await?
        .ok_or_else(|| ClientlessError::Ended(session.id.clone()))?;
    let not_web = || ClientlessError::NotWeb {
        id: session.id.clone(),
        application: app.name.clone(),
        template: app.template.clone(),
    };
    let tls = web_template(&app.template).ok_or_else(not_web)?;
    let mapping = app.mappings.first().ok_or_else(not_web)?;
    let assigned = store
        .assignments(tenant, Some(&session.device))
        .await?
        .iter()
        .any(|a| a.application == app.name);
    let endpoint = store
        .registered_device_endpoint(tenant, &session.device)
        .await?
        .ok_or(ClientlessError::NotAllowed)?;
    let open = [OpenConnection {
        session: &session,
        application: &app,
        assigned,
    }];
    let (host, port) = (mapping.target_host.clone(), mapping.target_port);
    if !rules::may_dial(&endpoint, &host, port, &open, now_ms) {
        return Err(ClientlessError::NotAllowed);
    }
    Ok(WebTarget {
        session,
        endpoint: endpoint.name,
        host,
        port,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, port: u16, tls: bool) -> WebTarget {
        WebTarget {
            session: ConnectionSessionRecord {
                tenant: "acme".into(),
                id: "ab".into(),
                user_name: "eng".into(),
                device: "press".into(),
                application: "hmi".into(),
                started_ms: 0,
                ends_ms: 1,
                ended_ms: None,
                end_reason: None,
                bytes_up: 0,
                bytes_down: 0,
            },
            endpoint: "press-ep".into(),
            host: host.into(),
            port,
            tls,
        }
    }

    #[test]
    fn the_device_origin_leaves_out_default_ports() {
        assert_eq!(target("10.0.0.5", 80, false).origin(), "http://10.0.0.5");
        assert_eq!(target("hmi.local", 443, true).origin(), "https://hmi.local");
        assert_eq!(
            target("hmi.local", 8443, true).origin(),
            "https://hmi.local:8443"
        );
        assert_eq!(target("fd00::7", 8080, false).authority(), "[fd00::7]:8080");
    }

    #[test]
    fn only_http_and_https_open_in_the_browser() {
        assert_eq!(web_template("http"), Some(false));
        assert_eq!(web_template("https"), Some(true));
        assert_eq!(web_template("ssh"), None);
        assert_eq!(web_template("tcp"), None);
    }
}
