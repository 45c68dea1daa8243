//! An endpoint's current and pending OAuth clients, new registration codes and registering
//! again, on every test database; each write conditional on the state it expects.
#![allow(clippy::unwrap_used)]

mod common;

use common::databases;
use portico_store::{
    ClientStanding, DeviceRecord, EndpointBinding, EndpointClients, EndpointRecord, EndpointState,
    SiteRecord, Store, StoreError,
};

async fn registered_endpoint(store: &Store, tenant: &str) {
    store
        .add_site(&SiteRecord {
            tenant: tenant.into(),
            name: "plant".into(),
            parent: None,
            created_ms: 1,
        })
        .await
        .unwrap();
    store
        .add_device(&DeviceRecord {
            tenant: tenant.into(),
            name: "press-7".into(),
            site: "plant".into(),
            description: String::new(),
            created_ms: 1,
        })
        .await
        .unwrap();
    store
        .add_endpoint(&EndpointRecord {
            tenant: tenant.into(),
            name: "ep".into(),
            binding: EndpointBinding::Device("press-7".into()),
            state: EndpointState::Pending,
            code_hash: Some(format!("{tenant}-h1")),
            code_expires_ms: Some(10_000),
            client_id: None,
            created_ms: 1,
            registered_ms: None,
            revoked_ms: None,
        })
        .await
        .unwrap();
    store
        .claim_registration_code(&format!("{tenant}-h1"), 100)
        .await
        .unwrap()
        .unwrap();
    let before = store
        .set_endpoint_credentials(tenant, "ep", "c1", 200)
        .await
        .unwrap();
    assert_eq!(before, Some(EndpointClients::default()));
}

#[tokio::test]
async fn pending_clients_are_recorded_confirmed_and_replaced_by_registering_again() {
    for db in databases().await {
        let store = db.open().await;
        registered_endpoint(&store, "abc").await;
        registered_endpoint(&store, "xyz").await;
        let standing = |tenant: &'static str, client: &'static str| {
            let store = store.clone();
            async move {
                store
                    .endpoint_by_client(tenant, client)
                    .await
                    .unwrap()
                    .map(|(e, s)| (e.name, s))
            }
        };
        assert_eq!(
            standing("abc", "c1").await,
            Some(("ep".into(), ClientStanding::Current))
        );

        // Rotation: only against the current client it names.
        assert_eq!(
            store
                .set_pending_client("abc", "ep", "nope", "c2", 300)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .set_pending_client("abc", "ep", "c1", "c2", 300)
                .await
                .unwrap(),
            Some(None)
        );
        assert_eq!(
            store
                .set_pending_client("abc", "ep", "c1", "c3", 400)
                .await
                .unwrap(),
            Some(Some("c2".into())),
            "the earlier pending client is returned to be withdrawn"
        );
        assert_eq!(
            standing("abc", "c3").await,
            Some(("ep".into(), ClientStanding::Pending))
        );
        assert_eq!(standing("abc", "c2").await, None);
        assert_eq!(standing("xyz", "c3").await, None, "tenants stay apart");
        let clients = store.endpoint_clients("abc", "ep").await.unwrap();
        assert_eq!(
            clients,
            EndpointClients {
                current: Some("c1".into()),
                pending: Some("c3".into()),
                credentials_ms: Some(200),
                pending_ms: Some(400),
            }
        );

        // Confirmation: only by the pending client.
        assert_eq!(
            store
                .confirm_pending_client("abc", "ep", "c2", 500)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .confirm_pending_client("abc", "ep", "c3", 500)
                .await
                .unwrap(),
            Some(Some("c1".into()))
        );
        assert_eq!(standing("abc", "c1").await, None);
        assert_eq!(
            standing("abc", "c3").await,
            Some(("ep".into(), ClientStanding::Current))
        );
        let ep = store.endpoint("abc", "ep").await.unwrap().unwrap();
        assert_eq!(ep.client_id.as_deref(), Some("c3"));

        // A new code for a registered endpoint; registering with it replaces every client.
        store
            .set_pending_client("abc", "ep", "c3", "c4", 600)
            .await
            .unwrap()
            .unwrap();
        let with_code = store
            .set_registration_code("abc", "ep", "abc-h2", 20_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(with_code.state, EndpointState::Registered);
        assert_eq!(
            standing("abc", "c3").await,
            Some(("ep".into(), ClientStanding::Current)),
            "the clients work until the code is used"
        );
        let claimed = store
            .claim_registration_code("abc-h2", 700)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.name, "ep");
        let earlier = store
            .set_endpoint_credentials("abc", "ep", "c5", 800)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(earlier.all().collect::<Vec<_>>(), ["c3", "c4"]);
        assert_eq!(standing("abc", "c3").await, None);
        assert_eq!(standing("abc", "c4").await, None);
        let ep = store.endpoint("abc", "ep").await.unwrap().unwrap();
        assert_eq!(
            (ep.client_id.as_deref(), ep.registered_ms),
            (Some("c5"), Some(800))
        );

        // Revoked: no client counts, and nothing can be written any more.
        store.revoke_endpoint("abc", "ep", 900).await.unwrap();
        assert_eq!(standing("abc", "c5").await, None);
        assert_eq!(
            store
                .set_pending_client("abc", "ep", "c5", "c6", 1_000)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .set_registration_code("abc", "ep", "abc-h3", 20_000)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .set_endpoint_credentials("abc", "ep", "c7", 1_000)
                .await
                .unwrap(),
            None
        );
        let missing = store
            .set_registration_code("abc", "nope", "abc-h4", 20_000)
            .await
            .unwrap_err();
        assert!(
            matches!(missing, StoreError::NotFound { .. }),
            "{missing:?}"
        );
        assert!(matches!(
            store.endpoint_clients("abc", "nope").await.unwrap_err(),
            StoreError::NotFound { .. }
        ));
        db.finish(store).await;
    }
}
