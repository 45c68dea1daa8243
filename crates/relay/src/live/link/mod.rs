//! The node-to-node link (OPS-2): when the endpoint a stream must reach has its tunnel on
//! another node of the cluster, the joining node opens the stream over a link to that
//! node, which opens it on the endpoint's tunnel and joins the two.
//!
//! A link is one TCP connection per pair of nodes, opened on demand by the node that needs
//! it and then reused for all its streams (in that direction; the other node opens its own
//! link for streams the other way). It carries the tunnel protocol of `portico-tunnel` in
//! length-prefixed messages, after a mutual challenge-response over the cluster secret
//! ([`handshake`]). The dialling side plays the `service` role (it opens streams), the
//! accepting side the `relay` role.
//!
//! - [`handshake`]: the mutual authentication;
//! - [`transport`]: the length-prefixed messages over TCP;
//! - [`server`]: accepting links and opening their streams on local tunnels;
//! - [`peers`]: the links this node opened, one per peer, reused.

pub mod handshake;
pub mod peers;
pub mod server;
pub mod transport;

pub use handshake::{HandshakeError, LinkSecret};
pub use peers::{LinkError, LinkPeers};
pub use server::serve;

/// A stream's target on a link: the endpoint (tenant and name) whose tunnel it goes to and
/// the target to open there (`host:port`). Tenant and endpoint names never hold a `/`.
pub fn link_target(tenant: &str, endpoint: &str, target: &str) -> String {
    format!("{tenant}/{endpoint}/{target}")
}

/// The parts of a link target: tenant, endpoint, target.
pub fn parse_link_target(target: &str) -> Option<(&str, &str, &str)> {
    let mut parts = target.splitn(3, '/');
    let (tenant, endpoint, rest) = (parts.next()?, parts.next()?, parts.next()?);
    (!tenant.is_empty() && !endpoint.is_empty() && !rest.is_empty())
        .then_some((tenant, endpoint, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_print_and_parse_back() {
        let target = link_target("acme", "press-7", "[fd00::1]:22");
        assert_eq!(
            parse_link_target(&target),
            Some(("acme", "press-7", "[fd00::1]:22"))
        );
        assert_eq!(parse_link_target("acme/press"), None);
        assert_eq!(parse_link_target("/press/10.0.0.1:22"), None);
    }
}
