//! A WebSocket opened in a session (GW-23): traffic on it keeps the session alive, and it
//! closes when the session ends. The relay marks traffic (messages either way, not the
//! gateway's own pings and their pongs); at most once per touch interval, if there was
//! traffic, the session is looked up again, which marks it used.

use super::{Authenticator, SessionId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The session a WebSocket was opened in.
#[derive(Clone)]
pub(crate) struct SessionLink {
    pub authenticator: Arc<dyn Authenticator>,
    pub session: SessionId,
    /// The session's tenant; a touch that finds another tenant's session ends the link.
    pub tenant: String,
}

/// Resolves when the WebSocket must close because its session is over: the
/// authenticator says it ended (logout, expiry), or a touch no longer finds it.
pub(crate) async fn session_over(link: SessionLink, activity: Arc<AtomicBool>, touch: Duration) {
    let id = link.session.expose();
    let ended = link.authenticator.session_ended(id);
    let keep_alive = async {
        loop {
            tokio::time::sleep(touch).await;
            if !activity.swap(false, Ordering::AcqRel) {
                continue;
            }
            match link.authenticator.session(id).await {
                Some(info) if info.principal.tenant == link.tenant => {}
                _ => return,
            }
        }
    };
    tokio::select! {
        () = ended => {}
        () = keep_alive => {}
    }
}
