//! The Remote Services tables, on every test database: the site tree, devices, endpoints
//! and their one-time codes, applications, assignments, members, connection sessions and
//! the audit trail — each kept per tenant.

#![allow(clippy::unwrap_used)]

mod common;

use common::databases;
use portico_store::{
    ApplicationRecord, AssignmentRecord, AuditRecord, ConnectionSessionRecord, DeviceRecord,
    EndpointBinding, EndpointRecord, EndpointState, MemberRecord, PortMapping, SiteRecord,
    StoreError,
};

fn site(tenant: &str, name: &str, parent: Option<&str>) -> SiteRecord {
    SiteRecord {
        tenant: tenant.into(),
        name: name.into(),
        parent: parent.map(Into::into),
        created_ms: 1_000,
    }
}

fn device(tenant: &str, name: &str, site: &str) -> DeviceRecord {
    DeviceRecord {
        tenant: tenant.into(),
        name: name.into(),
        site: site.into(),
        description: format!("device {name}"),
        created_ms: 1_000,
    }
}

fn endpoint(tenant: &str, name: &str, binding: EndpointBinding, code: &str) -> EndpointRecord {
    EndpointRecord {
        tenant: tenant.into(),
        name: name.into(),
        binding,
        state: EndpointState::Pending,
        code_hash: Some(code.into()),
        code_expires_ms: Some(10_000),
        client_id: None,
        created_ms: 1_000,
        registered_ms: None,
        revoked_ms: None,
    }
}

fn ssh(tenant: &str) -> ApplicationRecord {
    ApplicationRecord {
        tenant: tenant.into(),
        name: "ssh-press".into(),
        template: "ssh".into(),
        label: String::new(),
        mappings: vec![PortMapping {
            local_port: 2222,
            target_host: "10.0.0.7".into(),
            target_port: 22,
        }],
        target_endpoint: None,
        session_timeout_s: 600,
        created_ms: 1_000,
    }
}

fn connection(tenant: &str, id: &str, started: i64, ends: i64) -> ConnectionSessionRecord {
    ConnectionSessionRecord {
        tenant: tenant.into(),
        id: id.into(),
        user_name: "alice".into(),
        device: "press-7".into(),
        application: "ssh-press".into(),
        started_ms: started,
        ends_ms: ends,
        ended_ms: None,
        end_reason: None,
        bytes_up: 0,
        bytes_down: 0,
    }
}

#[tokio::test]
async fn sites_form_a_tree_per_tenant() {
    for db in databases().await {
        let store = db.open().await;
        store.add_site(&site("abc", "plant", None)).await.unwrap();
        store
            .add_site(&site("abc", "hall-1", Some("plant")))
            .await
            .unwrap();
        store.add_site(&site("xyz", "plant", None)).await.unwrap();
        let e = store
            .add_site(&site("abc", "plant", None))
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Exists { kind: "site", .. }),
            "{e:?}"
        );
        // A parent of another tenant is no parent.
        store
            .add_site(&site("xyz", "only-xyz", None))
            .await
            .unwrap();
        let e = store
            .add_site(&site("abc", "h2", Some("only-xyz")))
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::NotFound { kind: "site", .. }),
            "{e:?}"
        );

        let names: Vec<_> = store.sites("abc").await.unwrap();
        assert_eq!(
            names,
            vec![
                site("abc", "hall-1", Some("plant")),
                site("abc", "plant", None)
            ]
        );
        assert!(store.site("abc", "only-xyz").await.unwrap().is_none());

        let e = store.remove_site("abc", "plant").await.unwrap_err();
        assert!(e.to_string().contains("sub-sites"), "{e}");
        store.remove_site("abc", "hall-1").await.unwrap();
        store.remove_site("abc", "plant").await.unwrap();
        assert!(store.sites("abc").await.unwrap().is_empty());
        assert_eq!(store.sites("xyz").await.unwrap().len(), 2);
        db.finish(store).await;
    }
}

#[tokio::test]
async fn devices_need_their_site_and_block_its_removal() {
    for db in databases().await {
        let store = db.open().await;
        store.add_site(&site("abc", "plant", None)).await.unwrap();
        store.add_site(&site("xyz", "other", None)).await.unwrap();
        store
            .add_device(&device("abc", "press-7", "plant"))
            .await
            .unwrap();
        let e = store
            .add_device(&device("abc", "d2", "other"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::NotFound { kind: "site", .. }),
            "{e:?}"
        );
        assert_eq!(store.devices("abc").await.unwrap().len(), 1);
        assert!(store.devices("xyz").await.unwrap().is_empty());
        assert!(store.device("xyz", "press-7").await.unwrap().is_none());
        let e = store.remove_site("abc", "plant").await.unwrap_err();
        assert!(e.to_string().contains("devices"), "{e}");
        db.finish(store).await;
    }
}

#[tokio::test]
async fn a_registration_code_is_claimed_once_and_only_before_expiry() {
    for db in databases().await {
        let store = db.open().await;
        store.add_site(&site("abc", "plant", None)).await.unwrap();
        store
            .add_device(&device("abc", "press-7", "plant"))
            .await
            .unwrap();
        store
            .add_endpoint(&endpoint(
                "abc",
                "ep-press",
                EndpointBinding::Device("press-7".into()),
                "h1",
            ))
            .await
            .unwrap();
        store
            .add_endpoint(&endpoint(
                "abc",
                "ep-hq",
                EndpointBinding::ServiceSite("plant".into()),
                "h2",
            ))
            .await
            .unwrap();
        store
            .add_endpoint(&endpoint(
                "abc",
                "ep-alice",
                EndpointBinding::ServiceUser("alice".into()),
                "h3",
            ))
            .await
            .unwrap();
        let e = store
            .add_endpoint(&endpoint(
                "abc",
                "ep-x",
                EndpointBinding::Device("nope".into()),
                "h4",
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::NotFound { kind: "device", .. }),
            "{e:?}"
        );

        // Expired codes are not claimed.
        assert!(store
            .claim_registration_code("h1", 10_000)
            .await
            .unwrap()
            .is_none());
        let got = store
            .claim_registration_code("h1", 9_999)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.tenant.as_str(), got.name.as_str()),
            ("abc", "ep-press")
        );
        assert_eq!(got.code_hash, None);
        assert!(store
            .claim_registration_code("h1", 9_999)
            .await
            .unwrap()
            .is_none());
        assert!(store
            .set_endpoint_registered("abc", "ep-press", "abc-c1", 2_000)
            .await
            .unwrap());
        assert!(!store
            .set_endpoint_registered("abc", "ep-press", "abc-c2", 2_000)
            .await
            .unwrap());
        let ep = store.endpoint("abc", "ep-press").await.unwrap().unwrap();
        assert_eq!(ep.state, EndpointState::Registered);
        assert_eq!(ep.client_id.as_deref(), Some("abc-c1"));
        assert_eq!(ep.registered_ms, Some(2_000));

        // Revoking a pending endpoint burns its code.
        let before = store.revoke_endpoint("abc", "ep-hq", 3_000).await.unwrap();
        assert_eq!(before.state, EndpointState::Pending);
        assert!(store
            .claim_registration_code("h2", 5_000)
            .await
            .unwrap()
            .is_none());
        let eps = store.endpoints("abc").await.unwrap();
        assert_eq!(eps.len(), 3);
        let hq = eps.iter().find(|e| e.name == "ep-hq").unwrap();
        assert_eq!(
            (hq.state, hq.revoked_ms),
            (EndpointState::Revoked, Some(3_000))
        );
        assert_eq!(
            eps.iter().find(|e| e.name == "ep-alice").unwrap().binding,
            EndpointBinding::ServiceUser("alice".into())
        );
        assert!(store.endpoints("xyz").await.unwrap().is_empty());
        // A device with a live endpoint stays.
        let e = store.remove_device("abc", "press-7").await.unwrap_err();
        assert!(e.to_string().contains("endpoint"), "{e}");
        db.finish(store).await;
    }
}

#[tokio::test]
async fn applications_assignments_and_members() {
    for db in databases().await {
        let store = db.open().await;
        store.add_site(&site("abc", "plant", None)).await.unwrap();
        store
            .add_device(&device("abc", "press-7", "plant"))
            .await
            .unwrap();
        store.add_application(&ssh("abc")).await.unwrap();
        assert_eq!(
            store
                .application("abc", "ssh-press")
                .await
                .unwrap()
                .unwrap(),
            ssh("abc")
        );
        assert!(store
            .application("xyz", "ssh-press")
            .await
            .unwrap()
            .is_none());

        let a = AssignmentRecord {
            tenant: "abc".into(),
            application: "ssh-press".into(),
            device: "press-7".into(),
            created_ms: 1_500,
        };
        store.add_assignment(&a).await.unwrap();
        let e = store.add_assignment(&a).await.unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Exists {
                    kind: "assignment",
                    ..
                }
            ),
            "{e:?}"
        );
        let mut other = a.clone();
        other.tenant = "xyz".into();
        assert!(store.add_assignment(&other).await.is_err());
        assert_eq!(
            store.assignments("abc", Some("press-7")).await.unwrap(),
            vec![a.clone()]
        );
        assert_eq!(store.assignments("abc", None).await.unwrap().len(), 1);
        assert!(store
            .assignments("abc", Some("other"))
            .await
            .unwrap()
            .is_empty());
        let e = store
            .remove_application("abc", "ssh-press")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("unassign"), "{e}");

        // Unassigning ends the open sessions of that application on that device.
        store
            .add_connection_session(&connection("abc", "s1", 2_000, 9_000))
            .await
            .unwrap();
        store
            .remove_assignment("abc", "ssh-press", "press-7", 3_000)
            .await
            .unwrap();
        let s1 = store
            .connection_session("abc", "s1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (s1.ended_ms, s1.end_reason.as_deref()),
            (Some(3_000), Some("unassigned"))
        );
        store.remove_application("abc", "ssh-press").await.unwrap();

        let m = MemberRecord {
            tenant: "abc".into(),
            site: "plant".into(),
            user_name: "alice".into(),
            role: "user".into(),
        };
        store.set_member(&m).await.unwrap();
        store
            .set_member(&MemberRecord {
                role: "site-owner".into(),
                ..m.clone()
            })
            .await
            .unwrap();
        let ms = store.memberships("abc", "alice").await.unwrap();
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].role, "site-owner");
        assert!(store.memberships("xyz", "alice").await.unwrap().is_empty());
        assert_eq!(store.members("abc", Some("plant")).await.unwrap().len(), 1);
        store.remove_member("abc", "plant", "alice").await.unwrap();
        assert!(store.remove_member("abc", "plant", "alice").await.is_err());
        db.finish(store).await;
    }
}

#[tokio::test]
async fn connection_sessions_time_out_and_audit_is_kept_per_tenant() {
    for db in databases().await {
        let store = db.open().await;
        store
            .add_connection_session(&connection("abc", "s1", 1_000, 5_000))
            .await
            .unwrap();
        store
            .add_connection_session(&connection("abc", "s2", 2_000, 50_000))
            .await
            .unwrap();
        store
            .add_connection_session(&connection("xyz", "s1", 1_000, 5_000))
            .await
            .unwrap();

        let expired = store
            .expire_connection_sessions("abc", 5_000)
            .await
            .unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].id, "s1");
        assert_eq!(expired[0].ended_ms, Some(5_000));
        let s1 = store
            .connection_session("abc", "s1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (s1.ended_ms, s1.end_reason.as_deref()),
            (Some(5_000), Some("timeout"))
        );
        // The other tenant's session is untouched.
        assert!(store
            .connection_session("xyz", "s1")
            .await
            .unwrap()
            .unwrap()
            .ended_ms
            .is_none());

        let open = store.connection_sessions("abc", true).await.unwrap();
        assert_eq!(
            open.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            vec!["s2"]
        );
        assert_eq!(
            store.connection_sessions("abc", false).await.unwrap().len(),
            2
        );
        store
            .add_connection_bytes("abc", "s2", 100, 2_000)
            .await
            .unwrap();
        assert!(store
            .end_connection_session("abc", "s2", 7_000, "ended")
            .await
            .unwrap());
        assert!(!store
            .end_connection_session("abc", "s2", 8_000, "ended")
            .await
            .unwrap());
        assert!(!store
            .end_connection_session("xyz", "s2", 8_000, "ended")
            .await
            .unwrap());
        let s2 = store
            .connection_session("abc", "s2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (s2.bytes_up, s2.bytes_down, s2.ended_ms),
            (100, 2_000, Some(7_000))
        );

        for (i, at) in [(1, 10), (2, 30), (3, 20)] {
            store
                .add_audit(&AuditRecord {
                    tenant: "abc".into(),
                    id: format!("a{i}"),
                    at_ms: at,
                    actor: "alice".into(),
                    action: "connection.open".into(),
                    object: "device/press-7".into(),
                    detail: String::new(),
                })
                .await
                .unwrap();
        }
        let ids: Vec<_> = store
            .audit("abc", 2)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, vec!["a2", "a3"]);
        assert!(store.audit("xyz", 10).await.unwrap().is_empty());
        db.finish(store).await;
    }
}
