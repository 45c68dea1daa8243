//! What the REST API's changes become on the two notification endpoints: a new operation
//! goes to its device's channel on `/notification/operations`; every change goes to
//! `/<kind>/<source>` on `/notification/realtime` as `{realtimeAction, data}`.

use futures_util::future::BoxFuture;
use serde_json::json;

use crate::bayeux::Bayeux;
use crate::change::{Action, Change, Kind, Notify};

/// The [`Notify`] of the device API: publishes each change on the Bayeux endpoints (each
/// publish logs the notification before delivering it).
#[derive(Clone)]
pub struct Notifications {
    operations: Bayeux,
    realtime: Bayeux,
}

impl Notifications {
    pub fn new(operations: Bayeux, realtime: Bayeux) -> Notifications {
        Notifications {
            operations,
            realtime,
        }
    }
}

impl Notify for Notifications {
    fn publish(&self, change: Change) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if change.kind == Kind::Operation && change.action == Action::Create {
                self.operations
                    .publish(
                        &change.tenant,
                        &format!("/{}", change.source),
                        change.data.clone(),
                    )
                    .await;
            }
            let channel = format!("/{}/{}", change.kind.channel_segment(), change.source);
            let data = json!({"realtimeAction": change.action.as_str(), "data": change.data});
            self.realtime.publish(&change.tenant, &channel, data).await;
        })
    }
}
