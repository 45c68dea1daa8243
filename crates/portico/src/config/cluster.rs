//! `[cluster]`: several `portico serve` nodes on one PostgreSQL (OPS-2). Each node has a
//! name unique in the cluster, and a link listener where other nodes open the streams
//! between endpoints whose tunnels two different nodes hold. The link is authenticated with
//! a secret all nodes share. Without `[cluster]`, a node is alone: no link, nothing shared
//! beyond the database.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    node: Option<String>,
    link_listen: Option<String>,
    link_advertise: Option<String>,
    secret_file: Option<PathBuf>,
}

/// `[cluster]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's name: 1-63 of `a-z 0-9 -`, unique among the nodes.
    pub node: String,
    /// Where this node accepts links from the other nodes.
    pub link_listen: SocketAddr,
    /// How the other nodes reach `link_listen` (`host:port`); by default `link_listen`.
    pub link_advertise: String,
    /// The secret every node of the cluster shares (at least 32 bytes, from a file readable
    /// only by Portico), which authenticates the links between nodes.
    pub secret: Vec<u8>,
}

/// Shortest cluster secret, in bytes.
const MIN_SECRET_BYTES: usize = 32;

/// `None` without a `[cluster]` section; an error when the section is incomplete.
pub(super) fn validate(raw: Option<&RawCluster>, base: &Path) -> Result<Option<ClusterConfig>> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let Some(node) = raw.node.clone() else {
        bail!("cluster.node: name this node (e.g. \"node-1\"), unique in the cluster");
    };
    let valid_name = (1..=63).contains(&node.len())
        && node
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid_name {
        bail!("cluster.node \"{node}\": use 1 to 63 lower-case letters, digits and hyphens");
    }
    let Some(listen) = raw.link_listen.as_deref() else {
        bail!("cluster.link_listen: the address other nodes link to, e.g. \"10.0.0.1:7443\"");
    };
    let link_listen: SocketAddr = listen
        .parse()
        .with_context(|| format!("cluster.link_listen \"{listen}\": an IP address and port"))?;
    let link_advertise = raw
        .link_advertise
        .clone()
        .unwrap_or_else(|| link_listen.to_string());
    let Some(secret_file) = raw.secret_file.as_ref() else {
        bail!("cluster.secret_file: a file with the secret all nodes share (32 bytes or more)");
    };
    let secret_file = base.join(secret_file);
    let secret = std::fs::read(&secret_file)
        .with_context(|| format!("cluster.secret_file: cannot read {}", secret_file.display()))?;
    let secret = secret.trim_ascii().to_vec();
    if secret.len() < MIN_SECRET_BYTES {
        bail!(
            "cluster.secret_file {}: the secret has {} bytes; use at least {MIN_SECRET_BYTES} \
             (e.g. `openssl rand -hex 32`)",
            secret_file.display(),
            secret.len()
        );
    }
    Ok(Some(ClusterConfig {
        node,
        link_listen,
        link_advertise,
        secret,
    }))
}
