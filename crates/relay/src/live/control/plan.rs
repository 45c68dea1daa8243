//! What the control channel of one endpoint should carry for one connection session: a
//! `connect` (the endpoint listens for the session), a `permit` (it dials the session's
//! targets) or nothing. Decided from the store alone, the same way the joiner decides
//! which side may open and which side dials (see [`crate::live::join`]).

use portico_store::{
    ApplicationRecord, ConnectionSessionRecord, EndpointBinding, EndpointRecord, EndpointState,
};
use portico_tunnel::control::{ControlMessage, Listener};

use crate::live::target::{dial_target, ListenerTarget};
use crate::templates::{self, Direction};

/// The part an endpoint plays in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// It opens the local listeners (`connect`).
    Listens,
    /// It dials the mappings' targets (`permit`).
    Dials,
}

/// The part `endpoint` plays in `session` of application `app`, given all endpoints of
/// the tenant. Forward: the Service Endpoints bound to the session's user listen (when the
/// user has none, the tenant's site-bound Service Endpoints do), the device's Device
/// Endpoint dials. DTT Reverse: the device's Device Endpoint listens, the application's
/// target Service Endpoint dials.
///
/// `all` is the tenant's endpoints and `device_sites` the session device's site with its
/// ancestors; both matter only to a site-bound endpoint, which listens only for devices of
/// its site or the sites below it.
pub fn part(
    endpoint: &EndpointRecord,
    session: &ConnectionSessionRecord,
    app: &ApplicationRecord,
    all: &[EndpointRecord],
    device_sites: &[&str],
) -> Option<Part> {
    if endpoint.state != EndpointState::Registered {
        return None;
    }
    let is_device = endpoint.binding == EndpointBinding::Device(session.device.clone());
    match templates::template(&app.template).map(|t| t.direction)? {
        Direction::Forward => {
            if is_device {
                return Some(Part::Dials);
            }
            let user_bound = |e: &EndpointRecord| {
                e.state == EndpointState::Registered
                    && e.binding == EndpointBinding::ServiceUser(session.user_name.clone())
            };
            match &endpoint.binding {
                EndpointBinding::ServiceUser(_) if user_bound(endpoint) => Some(Part::Listens),
                EndpointBinding::ServiceSite(site)
                    if device_sites.contains(&site.as_str()) && !all.iter().any(user_bound) =>
                {
                    Some(Part::Listens)
                }
                _ => None,
            }
        }
        Direction::Reverse => {
            if is_device {
                Some(Part::Listens)
            } else if app.target_endpoint.as_deref() == Some(endpoint.name.as_str()) {
                Some(Part::Dials)
            } else {
                None
            }
        }
    }
}

/// Whole seconds until the session's timeout, rounded up, at least 1.
pub fn seconds_left(session: &ConnectionSessionRecord, now_ms: i64) -> u64 {
    let left = session.ends_ms.saturating_sub(now_ms).max(1);
    u64::try_from(left).unwrap_or(1).div_ceil(1000)
}

/// The message that tells an endpoint playing `part` about an open session.
pub fn message(
    part: Part,
    session: &ConnectionSessionRecord,
    app: &ApplicationRecord,
    now_ms: i64,
) -> ControlMessage {
    let timeout_secs = seconds_left(session, now_ms);
    match part {
        Part::Listens => ControlMessage::Connect {
            session: session.id.clone(),
            listeners: app
                .mappings
                .iter()
                .enumerate()
                .map(|(n, m)| Listener {
                    id: u32::try_from(n).unwrap_or(u32::MAX),
                    local_port: m.local_port,
                    target: ListenerTarget {
                        session: session.id.clone(),
                        listener: u16::try_from(n).unwrap_or(u16::MAX),
                    }
                    .to_string(),
                })
                .collect(),
            timeout_secs,
        },
        Part::Dials => ControlMessage::Permit {
            session: session.id.clone(),
            targets: app
                .mappings
                .iter()
                .map(|m| dial_target(&m.target_host, m.target_port))
                .collect(),
            timeout_secs,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_store::PortMapping;

    fn endpoint(name: &str, binding: EndpointBinding) -> EndpointRecord {
        EndpointRecord {
            tenant: "t".into(),
            name: name.into(),
            binding,
            state: EndpointState::Registered,
            code_hash: None,
            code_expires_ms: None,
            client_id: None,
            created_ms: 0,
            registered_ms: Some(0),
            revoked_ms: None,
        }
    }

    fn session() -> ConnectionSessionRecord {
        ConnectionSessionRecord {
            tenant: "t".into(),
            id: "ab".into(),
            user_name: "alice".into(),
            device: "press".into(),
            application: "ssh".into(),
            started_ms: 0,
            ends_ms: 60_500,
            ended_ms: None,
            end_reason: None,
            bytes_up: 0,
            bytes_down: 0,
        }
    }

    fn app(template: &str, target: Option<&str>) -> ApplicationRecord {
        ApplicationRecord {
            tenant: "t".into(),
            name: "ssh".into(),
            template: template.into(),
            label: String::new(),
            mappings: vec![PortMapping {
                local_port: 2222,
                target_host: "fd00::1".into(),
                target_port: 22,
            }],
            target_endpoint: target.map(Into::into),
            session_timeout_s: 60,
            created_ms: 0,
        }
    }

    #[test]
    fn forward_sessions_listen_at_the_users_endpoint_and_dial_at_the_device() {
        let device = endpoint("dev", EndpointBinding::Device("press".into()));
        let mine = endpoint("mine", EndpointBinding::ServiceUser("alice".into()));
        let other = endpoint("other", EndpointBinding::ServiceUser("bob".into()));
        let site = endpoint("site", EndpointBinding::ServiceSite("office".into()));
        let all = [device.clone(), mine.clone(), other.clone(), site.clone()];
        let (s, a) = (session(), app("ssh", None));
        // The device is in hall-2, below the office.
        let sites = ["hall-2", "office"];
        assert_eq!(part(&device, &s, &a, &all, &sites), Some(Part::Dials));
        assert_eq!(part(&mine, &s, &a, &all, &sites), Some(Part::Listens));
        assert_eq!(part(&other, &s, &a, &all, &sites), None);
        assert_eq!(part(&site, &s, &a, &all, &sites), None);
        // Without a user-bound endpoint, the site-bound one listens, for its own sites only.
        let all = [device, other, site.clone()];
        assert_eq!(part(&site, &s, &a, &all, &sites), Some(Part::Listens));
        assert_eq!(part(&site, &s, &a, &all, &["plant-b"]), None);
    }

    #[test]
    fn reverse_sessions_listen_at_the_device_and_dial_at_the_target() {
        let device = endpoint("dev", EndpointBinding::Device("press".into()));
        let target = endpoint("tickets", EndpointBinding::ServiceSite("office".into()));
        let mut revoked = endpoint("dev", EndpointBinding::Device("press".into()));
        revoked.state = EndpointState::Revoked;
        let all = [device.clone(), target.clone()];
        let (s, a) = (session(), app("dtt-reverse", Some("tickets")));
        let sites = ["office"];
        assert_eq!(part(&device, &s, &a, &all, &sites), Some(Part::Listens));
        assert_eq!(part(&target, &s, &a, &all, &sites), Some(Part::Dials));
        assert_eq!(part(&revoked, &s, &a, &all, &sites), None);
    }

    #[test]
    fn messages_carry_listener_targets_and_bracketed_dial_targets() {
        let (s, a) = (session(), app("ssh", None));
        let connect = message(Part::Listens, &s, &a, 0);
        assert_eq!(
            connect,
            ControlMessage::Connect {
                session: "ab".into(),
                listeners: vec![Listener {
                    id: 0,
                    local_port: 2222,
                    target: "session:ab/listener:0".into()
                }],
                timeout_secs: 61,
            }
        );
        let permit = message(Part::Dials, &s, &a, 60_000);
        assert_eq!(
            permit,
            ControlMessage::Permit {
                session: "ab".into(),
                targets: vec!["[fd00::1]:22".into()],
                timeout_secs: 1,
            }
        );
    }
}
