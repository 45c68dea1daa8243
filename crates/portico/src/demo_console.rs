//! The demo's console, so that a newcomer sees the web console with something in it: on
//! the first start with the demo on, tenant `demo` gets an administrator `admin` (password
//! shown once), a site `plant` with a device `press`, and an SSH Protocol Application
//! assigned to it. Nothing is made again once the administrator exists, so a user who
//! removed or changed the demo's objects keeps their changes.

use anyhow::{Context, Result};
use portico_identity::{Identity, Role};
use portico_store::{
    ApplicationRecord, AssignmentRecord, DeviceRecord, PortMapping, SiteRecord, Store,
};

const TENANT: &str = "demo";
const ADMIN: &str = "admin";

/// Seeds the demo tenant's console objects once; returns the administrator's one-time
/// password when it made them.
pub async fn seed(store: &Store, identity: &Identity) -> Result<Option<String>> {
    if store.user(TENANT, ADMIN).await?.is_some() {
        return Ok(None);
    }
    let now = now_ms();
    store
        .add_site(&SiteRecord {
            tenant: TENANT.into(),
            name: "plant".into(),
            parent: None,
            created_ms: now,
        })
        .await
        .context("cannot make the demo site")?;
    store
        .add_device(&DeviceRecord {
            tenant: TENANT.into(),
            name: "press".into(),
            site: "plant".into(),
            description: "Hydraulic press (demo; register an endpoint for it to connect)".into(),
            created_ms: now,
        })
        .await
        .context("cannot make the demo device")?;
    store
        .add_application(&ApplicationRecord {
            tenant: TENANT.into(),
            name: "press-ssh".into(),
            template: "ssh".into(),
            label: "Press maintenance (SSH)".into(),
            mappings: vec![PortMapping {
                local_port: 2222,
                target_host: "127.0.0.1".into(),
                target_port: 22,
            }],
            target_endpoint: None,
            session_timeout_s: 3600,
            created_ms: now,
        })
        .await
        .context("cannot make the demo application")?;
    store
        .add_assignment(&AssignmentRecord {
            tenant: TENANT.into(),
            application: "press-ssh".into(),
            device: "press".into(),
            created_ms: now,
        })
        .await
        .context("cannot assign the demo application")?;
    // The administrator last: its existence says the seed is complete.
    let password = portico_console::new_admin_token();
    identity
        .add_user(TENANT, ADMIN, Role::Admin, &password)
        .await
        .context("cannot make the demo administrator")?;
    Ok(Some(password))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
