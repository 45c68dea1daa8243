//! Setup: one managed object (a device) per client, created through the device REST API by
//! the user that client logs in as, a bounded number at once.

use crate::args::Args;
use crate::conn::{Conn, Target};
use crate::protocol;
use anyhow::{bail, Context as _};
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Creates `args.clients` managed objects; their ids, by client index.
pub async fn create_devices(args: &Args, target: &Target) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let timeout = Duration::from_secs(args.request_timeout);
    let mut workers = Vec::new();
    for worker in 0..args.setup_parallelism.min(args.clients) {
        let (next, args) = (next.clone(), args.clone());
        let mut conn = Conn::new(target.clone(), args.source_of(worker));
        workers.push(tokio::spawn(async move {
            let mut created = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= args.clients {
                    return anyhow::Ok(created);
                }
                let credentials = args.credentials_of(index);
                let body = Bytes::from(protocol::managed_object(index).to_string());
                let (status, answer) = conn
                    .post_json(
                        protocol::MANAGED_OBJECTS,
                        Some(&credentials.basic()),
                        body,
                        timeout,
                    )
                    .await
                    .context("creating a managed object")?;
                if status != http::StatusCode::CREATED {
                    bail!(
                        "creating a managed object as {} was answered {status}: {}",
                        credentials.login,
                        String::from_utf8_lossy(&answer)
                    );
                }
                let id = protocol::created_id(&answer)
                    .context("the created managed object has no id in the answer")?;
                created.push((index, id));
            }
        }));
    }
    let mut ids: Vec<Option<String>> = vec![None; args.clients];
    for worker in workers {
        for (index, id) in worker.await?? {
            ids[index] = Some(id);
        }
    }
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| id.with_context(|| format!("managed object {i} was not created")))
        .collect()
}
