//! Every committed registry write tells every store on the database with the `registry`
//! notice (on SQLite only the store itself, the one node); a refused write tells nobody.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{databases, tenant};
use portico_store::{Backend, Notice, Origin, Registry, REGISTRY_NOTICE};
use tokio::sync::broadcast::Receiver;

/// The next `registry` notice, waiting at most `limit`; None when none came.
async fn next_registry(notices: &mut Receiver<Notice>, limit: Duration) -> Option<Notice> {
    tokio::time::timeout(limit, async {
        loop {
            let notice = notices.recv().await.unwrap();
            if notice.topic == REGISTRY_NOTICE {
                return notice;
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn registry_writes_send_the_registry_notice_to_every_store() {
    for db in databases().await {
        let writer = db.open().await;
        let other = db.open().await;
        let mut heard_here = writer.notices();
        let mut heard_there = other.notices();
        if writer.backend() == Backend::Postgres {
            // The other store's listener connects in the background: write until it hears.
            let mut heard = None;
            for i in 0..50 {
                writer
                    .add_tenant(&tenant(&format!("t{i}"), Origin::Api))
                    .await
                    .unwrap();
                heard = next_registry(&mut heard_there, Duration::from_millis(200)).await;
                if heard.is_some() {
                    break;
                }
            }
            assert!(heard.is_some(), "{}: the other store hears", db.label);
        } else {
            writer.add_tenant(&tenant("t0", Origin::Api)).await.unwrap();
        }
        let limit = Duration::from_secs(10);
        let notice = next_registry(&mut heard_here, limit).await.unwrap();
        assert_eq!(notice.payload, "", "{}", db.label);
        while next_registry(&mut heard_here, Duration::from_millis(300))
            .await
            .is_some()
        {}

        // Every kind of write: the registry file's replacement and removals too.
        writer
            .replace_origin(
                Origin::File,
                &Registry {
                    tenants: vec![tenant("fromfile", Origin::File)],
                    ..Registry::default()
                },
            )
            .await
            .unwrap();
        assert!(
            next_registry(&mut heard_here, limit).await.is_some(),
            "{}",
            db.label
        );
        writer.remove_tenant("t0", Origin::Api).await.unwrap();
        assert!(
            next_registry(&mut heard_here, limit).await.is_some(),
            "{}",
            db.label
        );

        // A refused write changed nothing and tells nobody.
        assert!(writer.remove_tenant("nobody", Origin::Api).await.is_err());
        assert!(
            next_registry(&mut heard_here, Duration::from_millis(300))
                .await
                .is_none(),
            "{}",
            db.label
        );
        other.close().await;
        db.finish(writer).await;
    }
}
