//! The registrations `portico serve` makes itself (origin `builtin`): the core APIs whose
//! targets are in-process, and the demo tenant with its web app. They are written at
//! every start, so they always match this build.

use portico_store::{Api, Auth, Origin, Registry, Route, Tenant, WebApp};

/// In-process service names, as used in `internal:NAME` backends.
pub const REGISTRY_SERVICE: &str = "registry";
pub const DEMO_SERVICE: &str = "hello";
pub const REMOTE_SERVICES_SERVICE: &str = "remoteservices";
pub const IDENTITY_ADMIN_SERVICE: &str = "identityadmin";
pub const CONSOLE_SERVICE: &str = "console";

pub fn registrations(demo: bool) -> Registry {
    let mut registry = Registry {
        tenants: Vec::new(),
        // The web console on `{tenant}-console.…`, behind the session login, for every
        // tenant (no tenant listed); its pages call the APIs on their own host. The gateway
        // also serves it, and nothing else, to the operators' tenant `management` (no
        // registry tenant): the operator's Registry page on `management-console.…`.
        webapps: vec![WebApp {
            name: "console".into(),
            provider: None,
            backend: format!("internal:{CONSOLE_SERVICE}"),
            tenants: Vec::new(),
            cache_control: None,
            websockets: Vec::new(),
            auth: Auth::Session,
            scopes: Vec::new(),
            origin: Origin::Builtin,
        }],
        apis: vec![
            Api {
                name: "registry".into(),
                provider: None,
                version: 1,
                backend: format!("internal:{REGISTRY_SERVICE}"),
                routes: vec![Route {
                    pattern: "/**".into(),
                    methods: Vec::new(),
                }],
                tenants: Vec::new(),
                // The registry API checks the admin token itself.
                auth: Auth::None,
                scopes: Vec::new(),
                origin: Origin::Builtin,
            },
            // The Remote Services API (RS-3, RS-6, RS-8, RS-9), for every tenant's users and
            // clients; what each may do there is the API's own decision (its roles).
            Api {
                name: "remoteservices".into(),
                provider: None,
                version: 1,
                backend: format!("internal:{REMOTE_SERVICES_SERVICE}"),
                routes: vec![Route {
                    pattern: "/**".into(),
                    methods: Vec::new(),
                }],
                tenants: Vec::new(),
                auth: Auth::Bearer,
                scopes: Vec::new(),
                origin: Origin::Builtin,
            },
            // An endpoint's one-time registration (RS-9): the code is the proof, there is no
            // token yet.
            Api {
                name: "endpointregistration".into(),
                provider: None,
                version: 1,
                backend: format!("internal:{REMOTE_SERVICES_SERVICE}"),
                routes: vec![Route {
                    pattern: "/register".into(),
                    methods: vec!["POST".into()],
                }],
                tenants: Vec::new(),
                auth: Auth::None,
                scopes: Vec::new(),
                origin: Origin::Builtin,
            },
            // The identity admin API: a tenant administrator's users and OAuth clients
            // (the API itself refuses every other role).
            Api {
                name: "identity".into(),
                provider: None,
                version: 1,
                backend: format!("internal:{IDENTITY_ADMIN_SERVICE}"),
                routes: vec![Route {
                    pattern: "/**".into(),
                    methods: Vec::new(),
                }],
                tenants: Vec::new(),
                auth: Auth::Bearer,
                scopes: Vec::new(),
                origin: Origin::Builtin,
            },
        ],
    };
    if demo {
        registry.tenants.push(Tenant {
            name: "demo".into(),
            origin: Origin::Builtin,
        });
        registry.webapps.push(WebApp {
            name: "hello".into(),
            provider: None,
            backend: format!("internal:{DEMO_SERVICE}"),
            tenants: vec!["demo".into()],
            cache_control: None,
            websockets: vec!["/ws".into()],
            auth: Auth::None,
            scopes: Vec::new(),
            origin: Origin::Builtin,
        });
    }
    registry
}
