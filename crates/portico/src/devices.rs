//! Device Connectivity as the in-process service `devices` (DC-1..DC-4): the gateway
//! sends it the Cumulocity paths of `southgate` and `gateway` unchanged. The caller's
//! address, which the gateway knows, is handed on for login throttling.

use crate::config::NotificationsConfig;
use crate::device_accounts::DeviceAccounts;
use anyhow::{Context, Result};
use http::Request;
use portico_gateway::body::Body;
use portico_gateway::{from_tower, InProcess, RequestContext};
use portico_identity::Identity;
use portico_realtime::bayeux::BayeuxOptions;
use portico_realtime::transport::TransportOptions;
use portico_realtime::{ClientAddr, Realtime, RealtimeOptions};
use portico_store::Store;
use std::sync::Arc;
use tower::ServiceExt;

pub async fn open(
    store: Store,
    identity: Identity,
    config: &NotificationsConfig,
    node: Option<String>,
) -> Result<Realtime> {
    let options = RealtimeOptions {
        bayeux: BayeuxOptions {
            connect_timeout: config.connect_timeout,
            max_connect_timeout: config.max_connect_timeout,
            session_grace: config.session_grace,
        },
        transport: TransportOptions {
            ws_ping_interval: config.websocket_ping_interval,
            ..TransportOptions::default()
        },
        node,
    };
    Realtime::open(store, Arc::new(DeviceAccounts::new(identity)), options)
        .await
        .context("cannot start the device API (its notification sessions could not be read)")
}

pub fn service(realtime: &Realtime) -> Arc<dyn InProcess> {
    from_tower(realtime.router().map_request(|mut request: Request<Body>| {
        if let Some(context) = request.extensions().get::<RequestContext>() {
            let client = ClientAddr(context.client.ip());
            request.extensions_mut().insert(client);
        }
        request
    }))
}
