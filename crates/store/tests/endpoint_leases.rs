//! The endpoint directory's leases: written, taken over by a newer tunnel on another node,
//! renewed only by their holder, lapsing when not renewed, removed only by the connection
//! that holds them, and read per tenant.

#![allow(clippy::unwrap_used)]

mod common;

use portico_store::EndpointLease;

fn lease(
    tenant: &str,
    endpoint: &str,
    node: &str,
    connection: i64,
    expires_ms: i64,
) -> EndpointLease {
    EndpointLease {
        tenant: tenant.into(),
        endpoint: endpoint.into(),
        node: node.into(),
        link_address: format!("{node}.example:7443"),
        connection,
        since_ms: 1_000,
        expires_ms,
    }
}

#[tokio::test]
async fn leases_are_taken_over_renewed_lapse_and_are_removed_by_their_holder() {
    for db in common::databases().await {
        let store = db.open().await;
        store
            .put_endpoint_lease(&lease("acme", "press", "node-1", 1, 20_000))
            .await
            .unwrap();
        store
            .put_endpoint_lease(&lease("other", "press", "node-1", 2, 20_000))
            .await
            .unwrap();
        let held = store
            .endpoint_lease("acme", "press", 10_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.node, "node-1");
        assert_eq!(held.link_address, "node-1.example:7443");

        // A reconnect through node 2 takes the lease over; node 1's renewal leaves it.
        store
            .put_endpoint_lease(&lease("acme", "press", "node-2", 7, 20_000))
            .await
            .unwrap();
        assert_eq!(
            store.renew_endpoint_leases("node-1", 90_000).await.unwrap(),
            1
        );
        let held = store.endpoint_lease("acme", "press", 30_000).await;
        assert_eq!(
            held.unwrap(),
            None,
            "node 2's lease was not renewed by node 1"
        );
        let other = store
            .endpoint_lease("other", "press", 30_000)
            .await
            .unwrap();
        assert_eq!(other.unwrap().expires_ms, 90_000);

        // Node 2 renews its own; node 1's ended tunnel does not remove node 2's lease.
        assert_eq!(
            store.renew_endpoint_leases("node-2", 40_000).await.unwrap(),
            1
        );
        assert!(!store
            .remove_endpoint_lease("acme", "press", "node-1", 1)
            .await
            .unwrap());
        assert!(!store
            .remove_endpoint_lease("acme", "press", "node-2", 6)
            .await
            .unwrap());
        let listed = store.endpoint_leases("acme", 30_000).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].node.as_str(), listed[0].connection),
            ("node-2", 7)
        );
        assert_eq!(store.all_endpoint_leases(30_000).await.unwrap().len(), 2);

        // Lapsed: absent from reads.
        assert!(store
            .endpoint_leases("acme", 40_000)
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .remove_endpoint_lease("acme", "press", "node-2", 7)
            .await
            .unwrap());
        assert_eq!(store.remove_node_leases("node-1").await.unwrap(), 1);
        assert!(store.all_endpoint_leases(0).await.unwrap().is_empty());
        db.finish(store).await;
    }
}
