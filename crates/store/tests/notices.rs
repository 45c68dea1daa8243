//! Notices between stores on one database: what one store tells, every store on the
//! database hears, itself included (on SQLite, where one process is the only node, only
//! itself), and a notice that cannot travel is refused.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use portico_store::{Backend, Notice};
use tokio::sync::broadcast::Receiver;

/// The next notice that is not a resync, waiting at most 10 s.
async fn next(notices: &mut Receiver<Notice>) -> Notice {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let notice = notices.recv().await.unwrap();
            if !notice.is_resync() {
                return notice;
            }
        }
    })
    .await
    .expect("a notice within 10 s")
}

#[tokio::test]
async fn every_store_on_the_database_hears_a_notice() {
    for db in common::databases().await {
        let one = db.open().await;
        let two = db.open().await;
        let mut heard_by_one = one.notices();
        let mut heard_by_two = two.notices();
        // The listener connects in the background: notify until the other store hears.
        let wanted = Notice {
            topic: "bayeux".into(),
            payload: "acme\nwith a second line".into(),
        };
        if one.backend() == Backend::Postgres {
            let mut heard = None;
            for _ in 0..50 {
                one.notify("bayeux", "acme\nwith a second line")
                    .await
                    .unwrap();
                if let Ok(Ok(notice)) =
                    tokio::time::timeout(Duration::from_millis(200), heard_by_two.recv()).await
                {
                    heard = Some(notice);
                    break;
                }
            }
            assert_eq!(heard, Some(wanted.clone()), "{}", db.label);
        } else {
            one.notify("bayeux", "acme\nwith a second line")
                .await
                .unwrap();
        }
        assert_eq!(next(&mut heard_by_one).await, wanted, "{}", db.label);

        for (topic, payload) in [("two\nlines", ""), ("", "x"), ("big", &*"x".repeat(8000))] {
            assert!(one.notify(topic, payload).await.is_err(), "{topic:?}");
        }
        two.close().await;
        db.finish(one).await;
    }
}
