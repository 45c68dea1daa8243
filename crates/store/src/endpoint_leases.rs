//! The endpoint directory's leases (migration `0011_endpoint_leases.sql`): in a cluster,
//! the node that holds an endpoint's tunnel writes a lease naming itself and where other
//! nodes reach it, renews it while the tunnel lives, and removes it when the tunnel ends. A
//! node that dies stops renewing, and its leases lapse at `expires_ms`. A tunnel of the
//! same endpoint on another node takes the lease over.
//!
//! Reads name the tenant, and only unexpired leases are returned.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::StoreError;
use crate::Store;

/// Which node holds an endpoint's tunnel, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointLease {
    pub tenant: String,
    pub endpoint: String,
    /// The holding node's name (`[cluster] node`).
    pub node: String,
    /// Where the other nodes open streams to the holding node (`host:port`).
    pub link_address: String,
    /// The holding node's number for this tunnel.
    pub connection: i64,
    /// When the tunnel was attached (unix milliseconds).
    pub since_ms: i64,
    /// When the lease lapses unless renewed (unix milliseconds).
    pub expires_ms: i64,
}

const LEASE_COLUMNS: &str =
    "tenant, endpoint, node, link_address, connection, since_ms, expires_ms";

fn lease_of(row: &AnyRow) -> Result<EndpointLease, sqlx::Error> {
    Ok(EndpointLease {
        tenant: row.try_get("tenant")?,
        endpoint: row.try_get("endpoint")?,
        node: row.try_get("node")?,
        link_address: row.try_get("link_address")?,
        connection: row.try_get("connection")?,
        since_ms: row.try_get("since_ms")?,
        expires_ms: row.try_get("expires_ms")?,
    })
}

impl Store {
    /// Writes the lease, taking over whatever lease the endpoint had (a newer tunnel wins,
    /// on this node or another).
    pub async fn put_endpoint_lease(&self, lease: &EndpointLease) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO rs_endpoint_leases ({LEASE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant, endpoint) DO UPDATE SET node = excluded.node, \
             link_address = excluded.link_address, connection = excluded.connection, \
             since_ms = excluded.since_ms, expires_ms = excluded.expires_ms"
        ))
        .bind(&lease.tenant)
        .bind(&lease.endpoint)
        .bind(&lease.node)
        .bind(&lease.link_address)
        .bind(lease.connection)
        .bind(lease.since_ms)
        .bind(lease.expires_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Renews every lease `node` still holds until `expires_ms`; returns how many. Leases
    /// another node took over are not touched.
    pub async fn renew_endpoint_leases(
        &self,
        node: &str,
        expires_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE rs_endpoint_leases SET expires_ms = $2 WHERE node = $1")
            .bind(node)
            .bind(expires_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Removes the endpoint's lease if it is still `node`'s connection `connection` (a
    /// tunnel that ended after being replaced leaves its successor's lease alone).
    pub async fn remove_endpoint_lease(
        &self,
        tenant: &str,
        endpoint: &str,
        node: &str,
        connection: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM rs_endpoint_leases WHERE tenant = $1 AND endpoint = $2 AND node = $3 AND connection = $4",
        )
        .bind(tenant)
        .bind(endpoint)
        .bind(node)
        .bind(connection)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes every lease of `node` (it starts again, or stops: its tunnels are gone).
    pub async fn remove_node_leases(&self, node: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM rs_endpoint_leases WHERE node = $1")
            .bind(node)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// The endpoint's lease, unless it lapsed by `now_ms`.
    pub async fn endpoint_lease(
        &self,
        tenant: &str,
        endpoint: &str,
        now_ms: i64,
    ) -> Result<Option<EndpointLease>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {LEASE_COLUMNS} FROM rs_endpoint_leases \
             WHERE tenant = $1 AND endpoint = $2 AND expires_ms > $3"
        ))
        .bind(tenant)
        .bind(endpoint)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(lease_of).transpose()?)
    }

    /// The tenant's unexpired leases, by endpoint name.
    pub async fn endpoint_leases(
        &self,
        tenant: &str,
        now_ms: i64,
    ) -> Result<Vec<EndpointLease>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {LEASE_COLUMNS} FROM rs_endpoint_leases \
             WHERE tenant = $1 AND expires_ms > $2 ORDER BY endpoint"
        ))
        .bind(tenant)
        .bind(now_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(lease_of).collect::<Result<_, _>>()?)
    }

    /// Every tenant's unexpired leases (a node's view of the whole cluster's directory).
    pub async fn all_endpoint_leases(&self, now_ms: i64) -> Result<Vec<EndpointLease>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {LEASE_COLUMNS} FROM rs_endpoint_leases WHERE expires_ms > $1 \
             ORDER BY tenant, endpoint"
        ))
        .bind(now_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(lease_of).collect::<Result<_, _>>()?)
    }
}
