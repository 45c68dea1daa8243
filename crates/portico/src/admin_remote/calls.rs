//! Each command as one request to the Remote Services API (method, path, JSON body) and
//! the kind of record its answer holds.

use super::tables::Kind;
use super::{
    AppCommand, AssignmentCommand, AuditCommand, ConnectionCommand, DeviceCommand, EndpointCommand,
    MemberCommand, RemoteCommand, SiteCommand, TemplateCommand, TenantArg,
};
use http::Method;
use serde_json::{json, Value};

/// One request to the API, and how to show its answer.
pub struct Call<'a> {
    pub tenant: &'a str,
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub kind: Kind,
    /// Printed when the API answers with no content.
    pub done: String,
}

impl<'a> Call<'a> {
    fn get(t: &'a TenantArg, path: String, kind: Kind) -> Call<'a> {
        Call {
            tenant: &t.tenant,
            method: Method::GET,
            path,
            body: None,
            kind,
            done: String::new(),
        }
    }

    fn post(t: &'a TenantArg, path: &str, body: Value, kind: Kind) -> Call<'a> {
        Call {
            method: Method::POST,
            body: Some(body),
            ..Call::get(t, path.to_string(), kind)
        }
    }

    fn delete(t: &'a TenantArg, path: String, kind: Kind, done: String) -> Call<'a> {
        Call {
            method: Method::DELETE,
            done,
            ..Call::get(t, path, kind)
        }
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub fn call_for(command: &RemoteCommand) -> Call<'_> {
    use RemoteCommand as R;
    match command {
        R::Site(c) => match c {
            SiteCommand::Add { t, name, parent } => Call::post(
                t,
                "/sites",
                json!({ "name": name, "parent": parent }),
                Kind::Site,
            ),
            SiteCommand::List { t } => Call::get(t, "/sites".into(), Kind::Site),
            SiteCommand::Show { t, name } => {
                Call::get(t, format!("/sites/{}", segment(name)), Kind::Site)
            }
            SiteCommand::Rm { t, name } => Call::delete(
                t,
                format!("/sites/{}", segment(name)),
                Kind::Site,
                format!("site {name} removed"),
            ),
        },
        R::Device(c) => match c {
            DeviceCommand::Add {
                t,
                name,
                site,
                description,
            } => Call::post(
                t,
                "/devices",
                json!({ "name": name, "site": site, "description": description }),
                Kind::Device,
            ),
            DeviceCommand::List { t } => Call::get(t, "/devices".into(), Kind::Device),
            DeviceCommand::Show { t, name } => {
                Call::get(t, format!("/devices/{}", segment(name)), Kind::Device)
            }
            DeviceCommand::Rm { t, name } => Call::delete(
                t,
                format!("/devices/{}", segment(name)),
                Kind::Device,
                format!("device {name} removed"),
            ),
        },
        R::Member(c) => match c {
            MemberCommand::Set {
                t,
                site,
                user,
                role,
            } => Call::post(
                t,
                "/members",
                json!({ "site": site, "user": user, "role": role }),
                Kind::Member,
            ),
            MemberCommand::List { t } => Call::get(t, "/members".into(), Kind::Member),
            MemberCommand::Rm { t, site, user } => Call::delete(
                t,
                format!("/members/{}/{}", segment(site), segment(user)),
                Kind::Member,
                format!("{user} is no longer a member of site {site}"),
            ),
        },
        R::Endpoint(c) => match c {
            EndpointCommand::Add {
                t,
                name,
                device,
                site,
                user,
            } => {
                let kind = if device.is_some() {
                    "device"
                } else {
                    "service"
                };
                Call::post(
                    t,
                    "/endpoints",
                    json!({ "name": name, "kind": kind, "device": device, "site": site, "user": user }),
                    Kind::Endpoint,
                )
            }
            EndpointCommand::List { t } => Call::get(t, "/endpoints".into(), Kind::Endpoint),
            EndpointCommand::Show { t, name } => {
                Call::get(t, format!("/endpoints/{}", segment(name)), Kind::Endpoint)
            }
            EndpointCommand::Revoke { t, name } => Call {
                method: Method::POST,
                ..Call::get(
                    t,
                    format!("/endpoints/{}/revoke", segment(name)),
                    Kind::Endpoint,
                )
            },
            EndpointCommand::Code { t, name } => Call {
                method: Method::POST,
                ..Call::get(
                    t,
                    format!("/endpoints/{}/code", segment(name)),
                    Kind::Endpoint,
                )
            },
        },
        R::Template(TemplateCommand::List { t }) => {
            Call::get(t, "/templates".into(), Kind::Template)
        }
        R::App(c) => match c {
            AppCommand::Add {
                t,
                name,
                label,
                template,
                mappings,
                target_endpoint,
                session_timeout,
            } => Call::post(
                t,
                "/applications",
                json!({
                    "name": name, "label": label, "template": template, "mappings": mappings,
                    "target_endpoint": target_endpoint, "session_timeout_s": session_timeout,
                }),
                Kind::Application,
            ),
            AppCommand::List { t } => Call::get(t, "/applications".into(), Kind::Application),
            AppCommand::Show { t, name } => Call::get(
                t,
                format!("/applications/{}", segment(name)),
                Kind::Application,
            ),
            AppCommand::Rm { t, name } => Call::delete(
                t,
                format!("/applications/{}", segment(name)),
                Kind::Application,
                format!("application {name} removed"),
            ),
        },
        R::Assignment(c) => match c {
            AssignmentCommand::Add { t, device, app } => Call::post(
                t,
                "/assignments",
                json!({ "device": device, "application": app }),
                Kind::Assignment,
            ),
            AssignmentCommand::List { t } => Call::get(t, "/assignments".into(), Kind::Assignment),
            AssignmentCommand::Rm { t, device, app } => Call::delete(
                t,
                format!("/assignments/{}/{}", segment(device), segment(app)),
                Kind::Assignment,
                format!("application {app} is no longer assigned to device {device}"),
            ),
        },
        R::Connection(c) => match c {
            ConnectionCommand::List { t, open } => {
                Call::get(t, format!("/connections?open={open}"), Kind::Connection)
            }
            ConnectionCommand::End { t, id } => Call::delete(
                t,
                format!("/connections/{}", segment(id)),
                Kind::Connection,
                format!("connection {id} ended"),
            ),
        },
        R::Audit(AuditCommand::List { t, limit }) => {
            Call::get(t, format!("/audit?limit={limit}"), Kind::Audit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("plant-1.a_b"), "plant-1.a_b");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
