//! Who may do what in Remote Services (RS-6), and what an endpoint may dial (RS-7). Pure
//! functions over records the caller has already loaded for one tenant, so that the API
//! and the relay decide the same way and the rules can be tested as tables.

use portico_store::{
    ApplicationRecord, ConnectionSessionRecord, EndpointBinding, EndpointRecord, EndpointState,
    MemberRecord, SiteRecord,
};

use crate::templates::{self, Direction};

/// A caller's role in their tenant (from the identity service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The platform operator: no rights inside a tenant.
    Operator,
    /// The tenant administrator.
    Admin,
    SiteOwner,
    User,
}

impl Role {
    /// The role named as the identity service names it; `None` for anything else.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            "site-owner" => Some(Role::SiteOwner),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// A user's role on a site, which holds for its sub-sites too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SiteRole {
    User,
    Owner,
}

impl SiteRole {
    pub fn parse(s: &str) -> Option<SiteRole> {
        match s {
            "site-owner" => Some(SiteRole::Owner),
            "user" => Some(SiteRole::User),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SiteRole::Owner => "site-owner",
            SiteRole::User => "user",
        }
    }
}

/// What a caller wants to do. Actions on a device carry the caller's role on the device's
/// site (see [`site_role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create, change or remove sites, devices, endpoints, applications and members; read
    /// endpoints, members and the audit trail.
    Manage,
    /// Read the template catalogue and the tenant's Protocol Applications.
    ReadCatalogue,
    /// See a device, its site and its assignments.
    SeeDevice(Option<SiteRole>),
    /// Assign or unassign Protocol Applications on a device.
    Assign(Option<SiteRole>),
    /// Open a connection session on a device.
    Connect(Option<SiteRole>),
}

/// Whether a caller with `role` may do `action`.
pub fn permits(role: Role, action: Action) -> bool {
    match (role, action) {
        (Role::Operator, _) => false,
        (Role::Admin, _) => true,
        (_, Action::Manage) => false,
        (_, Action::ReadCatalogue) => true,
        (_, Action::SeeDevice(on) | Action::Connect(on)) => on.is_some(),
        (Role::SiteOwner, Action::Assign(on)) => on == Some(SiteRole::Owner),
        (Role::User, Action::Assign(_)) => false,
    }
}

/// The caller's strongest role on `site`, through a membership on it or on one of its
/// ancestors. A tenant `user` counts as a site user even where a membership says owner:
/// the tenant role is the ceiling.
pub fn site_role(
    role: Role,
    memberships: &[MemberRecord],
    sites: &[SiteRecord],
    site: &str,
) -> Option<SiteRole> {
    let chain = site_chain(sites, site);
    let best = memberships
        .iter()
        .filter(|m| chain.contains(&m.site.as_str()))
        .filter_map(|m| SiteRole::parse(&m.role))
        .max()?;
    Some(match role {
        Role::User => SiteRole::User,
        _ => best,
    })
}

/// `site` and its ancestors, nearest first. Bounded by the number of sites, so that a
/// cycle in stored data cannot loop forever.
pub fn site_chain<'a>(sites: &'a [SiteRecord], site: &'a str) -> Vec<&'a str> {
    let mut chain = vec![site];
    let mut current = site;
    while chain.len() <= sites.len() {
        let parent = sites
            .iter()
            .find(|s| s.name == current)
            .and_then(|s| s.parent.as_deref());
        match parent {
            Some(p) if !chain.contains(&p) => {
                chain.push(p);
                current = p;
            }
            _ => break,
        }
    }
    chain
}

/// Whether a caller may see or end a connection session: administrators every one of
/// their tenant, others their own.
pub fn may_manage_session(role: Role, subject: &str, session: &ConnectionSessionRecord) -> bool {
    match role {
        Role::Operator => false,
        Role::Admin => true,
        Role::SiteOwner | Role::User => session.user_name == subject,
    }
}

/// A connection session as the relay sees it when an endpoint asks to dial: the session,
/// its application, and whether the application is still assigned to the session's device.
#[derive(Debug, Clone, Copy)]
pub struct OpenConnection<'a> {
    pub session: &'a ConnectionSessionRecord,
    pub application: &'a ApplicationRecord,
    pub assigned: bool,
}

/// RS-7: whether `endpoint` may dial `host:port` now. Only a registered endpoint, only a
/// port mapping's target of an application assigned to the session's device, only while a
/// connection session of that application is open; for a forward application only the
/// Device Endpoint of the session's device dials, for DTT Reverse only the application's
/// target Service Endpoint. Host names compare without case; nothing else is normalised, so
/// `10.0.0.7` does not stand for a host name that resolves to it.
pub fn may_dial(
    endpoint: &EndpointRecord,
    host: &str,
    port: u16,
    open: &[OpenConnection<'_>],
    now_ms: i64,
) -> bool {
    if endpoint.state != EndpointState::Registered {
        return false;
    }
    open.iter().any(|c| {
        let app = c.application;
        let same_tenant = c.session.tenant == endpoint.tenant && app.tenant == endpoint.tenant;
        let the_sessions_app = app.name == c.session.application;
        let dialer = match templates::template(&app.template).map(|t| t.direction) {
            Some(Direction::Forward) => {
                matches!(&endpoint.binding, EndpointBinding::Device(d) if *d == c.session.device)
            }
            Some(Direction::Reverse) => {
                endpoint.binding.kind() == "service"
                    && app.target_endpoint.as_deref() == Some(endpoint.name.as_str())
            }
            None => false,
        };
        same_tenant
            && the_sessions_app
            && c.assigned
            && c.session.is_open(now_ms)
            && dialer
            && app
                .mappings
                .iter()
                .any(|m| m.target_port == port && m.target_host.eq_ignore_ascii_case(host))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_store::PortMapping;

    #[test]
    fn the_role_table() {
        use Action::*;
        let o = Some(SiteRole::Owner);
        let u = Some(SiteRole::User);
        // (role, action, allowed)
        let table = [
            (Role::Operator, Manage, false),
            (Role::Operator, ReadCatalogue, false),
            (Role::Operator, Connect(o), false),
            (Role::Operator, Assign(o), false),
            (Role::Admin, Manage, true),
            (Role::Admin, ReadCatalogue, true),
            (Role::Admin, SeeDevice(None), true),
            (Role::Admin, Assign(None), true),
            (Role::Admin, Connect(None), true),
            (Role::SiteOwner, Manage, false),
            (Role::SiteOwner, ReadCatalogue, true),
            (Role::SiteOwner, Assign(o), true),
            (Role::SiteOwner, Assign(u), false),
            (Role::SiteOwner, Assign(None), false),
            (Role::SiteOwner, Connect(o), true),
            (Role::SiteOwner, Connect(u), true),
            (Role::SiteOwner, Connect(None), false),
            (Role::SiteOwner, SeeDevice(None), false),
            (Role::User, Manage, false),
            (Role::User, ReadCatalogue, true),
            (Role::User, Assign(o), false),
            (Role::User, Assign(u), false),
            (Role::User, Connect(u), true),
            (Role::User, Connect(None), false),
            (Role::User, SeeDevice(u), true),
            (Role::User, SeeDevice(None), false),
        ];
        for (role, action, allowed) in table {
            assert_eq!(permits(role, action), allowed, "{role:?} {action:?}");
        }
    }

    fn site(name: &str, parent: Option<&str>) -> SiteRecord {
        SiteRecord {
            tenant: "abc".into(),
            name: name.into(),
            parent: parent.map(Into::into),
            created_ms: 0,
        }
    }

    fn member(site: &str, role: &str) -> MemberRecord {
        MemberRecord {
            tenant: "abc".into(),
            site: site.into(),
            user_name: "alice".into(),
            role: role.into(),
        }
    }

    #[test]
    fn site_roles_hold_for_sub_sites_and_the_tenant_role_is_the_ceiling() {
        let sites = [
            site("plant", None),
            site("hall", Some("plant")),
            site("line", Some("hall")),
            site("other", None),
        ];
        let owner_of_hall = [member("hall", "site-owner")];
        let table = [
            (Role::SiteOwner, "line", Some(SiteRole::Owner)),
            (Role::SiteOwner, "hall", Some(SiteRole::Owner)),
            (Role::SiteOwner, "plant", None),
            (Role::SiteOwner, "other", None),
            (Role::User, "line", Some(SiteRole::User)),
            (Role::User, "unknown", None),
        ];
        for (role, at, expected) in table {
            assert_eq!(
                site_role(role, &owner_of_hall, &sites, at),
                expected,
                "{role:?} at {at}"
            );
        }
        // The strongest of several memberships counts.
        let two = [member("plant", "user"), member("hall", "site-owner")];
        assert_eq!(
            site_role(Role::SiteOwner, &two, &sites, "line"),
            Some(SiteRole::Owner)
        );
        // A cycle in stored data ends.
        let cyclic = [site("a", Some("b")), site("b", Some("a"))];
        assert_eq!(site_chain(&cyclic, "a"), vec!["a", "b"]);
    }

    fn endpoint(name: &str, binding: EndpointBinding) -> EndpointRecord {
        EndpointRecord {
            tenant: "abc".into(),
            name: name.into(),
            binding,
            state: EndpointState::Registered,
            code_hash: None,
            code_expires_ms: None,
            client_id: Some("abc-x".into()),
            created_ms: 0,
            registered_ms: Some(0),
            revoked_ms: None,
        }
    }

    fn app(name: &str, template: &str, target: Option<&str>) -> ApplicationRecord {
        ApplicationRecord {
            tenant: "abc".into(),
            name: name.into(),
            template: template.into(),
            label: String::new(),
            mappings: vec![PortMapping {
                local_port: 2222,
                target_host: "Press.local".into(),
                target_port: 22,
            }],
            target_endpoint: target.map(Into::into),
            session_timeout_s: 60,
            created_ms: 0,
        }
    }

    fn session(app: &str, device: &str) -> ConnectionSessionRecord {
        ConnectionSessionRecord {
            tenant: "abc".into(),
            id: "s1".into(),
            user_name: "alice".into(),
            device: device.into(),
            application: app.into(),
            started_ms: 1_000,
            ends_ms: 61_000,
            ended_ms: None,
            end_reason: None,
            bytes_up: 0,
            bytes_down: 0,
        }
    }

    /// (endpoint, host, port, open connections, now, allowed, why)
    type DialCase<'a> = (
        &'a EndpointRecord,
        &'a str,
        u16,
        Vec<OpenConnection<'a>>,
        i64,
        bool,
        &'a str,
    );

    #[test]
    fn the_dial_table() {
        let device_ep = endpoint("ep-press", EndpointBinding::Device("press-7".into()));
        let other_device_ep = endpoint("ep-other", EndpointBinding::Device("mill-2".into()));
        let service_ep = endpoint("ep-hq", EndpointBinding::ServiceSite("hq".into()));
        let mut revoked = device_ep.clone();
        revoked.state = EndpointState::Revoked;
        let mut other_tenant = device_ep.clone();
        other_tenant.tenant = "xyz".into();

        let ssh = app("ssh-press", "ssh", None);
        let reverse = app("tickets", "dtt-reverse", Some("ep-hq"));
        let ssh_session = session("ssh-press", "press-7");
        let reverse_session = session("tickets", "press-7");
        let mut ended = ssh_session.clone();
        ended.ended_ms = Some(5_000);

        let fwd = |s, assigned| OpenConnection {
            session: s,
            application: &ssh,
            assigned,
        };
        let rev = OpenConnection {
            session: &reverse_session,
            application: &reverse,
            assigned: true,
        };
        let now = 10_000;
        // (endpoint, host, port, open connections, now, allowed, why)
        let table: Vec<DialCase> = vec![
            (
                &device_ep,
                "press.local",
                22,
                vec![fwd(&ssh_session, true)],
                now,
                true,
                "mapped target, case-blind",
            ),
            (
                &device_ep,
                "press.local",
                23,
                vec![fwd(&ssh_session, true)],
                now,
                false,
                "other port",
            ),
            (
                &device_ep,
                "10.0.0.1",
                22,
                vec![fwd(&ssh_session, true)],
                now,
                false,
                "other host",
            ),
            (
                &device_ep,
                "press.local",
                22,
                vec![],
                now,
                false,
                "no session",
            ),
            (
                &device_ep,
                "press.local",
                22,
                vec![fwd(&ssh_session, false)],
                now,
                false,
                "unassigned",
            ),
            (
                &device_ep,
                "press.local",
                22,
                vec![fwd(&ended, true)],
                now,
                false,
                "session ended",
            ),
            (
                &device_ep,
                "press.local",
                22,
                vec![fwd(&ssh_session, true)],
                61_000,
                false,
                "session timed out",
            ),
            (
                &other_device_ep,
                "press.local",
                22,
                vec![fwd(&ssh_session, true)],
                now,
                false,
                "another device's endpoint",
            ),
            (
                &service_ep,
                "press.local",
                22,
                vec![fwd(&ssh_session, true)],
                now,
                false,
                "service side of a forward app",
            ),
            (
                &revoked,
                "press.local",
                22,
                vec![fwd(&ssh_session, true)],
                now,
                false,
                "revoked endpoint",
            ),
            (
                &other_tenant,
                "press.local",
                22,
                vec![fwd(&ssh_session, true)],
                now,
                false,
                "other tenant",
            ),
            (
                &service_ep,
                "press.local",
                22,
                vec![rev],
                now,
                true,
                "reverse: the target service endpoint",
            ),
            (
                &device_ep,
                "press.local",
                22,
                vec![rev],
                now,
                false,
                "reverse: the device does not dial",
            ),
        ];
        for (ep, host, port, open, at, allowed, why) in table {
            assert_eq!(may_dial(ep, host, port, &open, at), allowed, "{why}");
        }
    }

    #[test]
    fn sessions_are_seen_by_admins_and_their_owner() {
        let s = session("ssh-press", "press-7");
        assert!(may_manage_session(Role::Admin, "bob", &s));
        assert!(may_manage_session(Role::User, "alice", &s));
        assert!(!may_manage_session(Role::User, "bob", &s));
        assert!(!may_manage_session(Role::SiteOwner, "bob", &s));
        assert!(!may_manage_session(Role::Operator, "alice", &s));
    }
}
