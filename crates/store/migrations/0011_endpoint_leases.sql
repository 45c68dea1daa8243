-- The endpoint directory of a cluster (OPS-2): which node holds each endpoint's tunnel.
-- The holding node renews its leases every few seconds; a lease whose `expires_ms` has
-- passed belongs to a node that died and counts as absent. `connection` is the node's own
-- number for the tunnel, so that a tunnel replaced on the same node never removes its
-- successor's lease; `link_address` is where other nodes open streams to that node.
CREATE TABLE rs_endpoint_leases (
    tenant TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    node TEXT NOT NULL,
    link_address TEXT NOT NULL,
    connection BIGINT NOT NULL,
    since_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, endpoint)
);
CREATE INDEX rs_endpoint_leases_node ON rs_endpoint_leases (node);
