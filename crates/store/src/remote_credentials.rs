//! An endpoint's OAuth clients (migration `0005_endpoint_rotation.sql`): the current one,
//! and the pending one between a rotation and its confirmation; a new registration code for
//! a registered endpoint, and registering again with it.
//!
//! Every write is conditional on the state it expects (registered, the client the caller
//! holds), so that two rotations, a rotation and a revocation, or a confirmation and a
//! re-registration racing each other leave one consistent answer.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::StoreError;
use crate::remote_store::{endpoint_of, ENDPOINT_COLUMNS};
use crate::{EndpointRecord, Store};

/// Which of its endpoint's clients a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStanding {
    /// The client the endpoint uses (`client_id`).
    Current,
    /// The client issued by a rotation that is not confirmed yet.
    Pending,
}

/// The OAuth clients an endpoint holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointClients {
    pub current: Option<String>,
    pub pending: Option<String>,
    /// When the current client was issued.
    pub credentials_ms: Option<i64>,
    /// When the pending client was issued.
    pub pending_ms: Option<i64>,
}

impl EndpointClients {
    /// Every client, current first.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.current.iter().chain(&self.pending).map(String::as_str)
    }
}

const CLIENT_COLUMNS: &str = "client_id, pending_client_id, credentials_ms, pending_ms";

fn clients_of(row: &AnyRow) -> Result<EndpointClients, sqlx::Error> {
    Ok(EndpointClients {
        current: row.try_get("client_id")?,
        pending: row.try_get("pending_client_id")?,
        credentials_ms: row.try_get("credentials_ms")?,
        pending_ms: row.try_get("pending_ms")?,
    })
}

impl Store {
    /// The tenant's *registered* endpoint that holds OAuth client `client_id`, as its
    /// current or its pending client.
    pub async fn endpoint_by_client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<(EndpointRecord, ClientStanding)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS}, pending_client_id FROM rs_endpoints \
             WHERE tenant = $1 AND state = 'registered' \
             AND (client_id = $2 OR pending_client_id = $2)"
        ))
        .bind(tenant)
        .bind(client_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let endpoint = endpoint_of(&row)?;
        let standing = if endpoint.client_id.as_deref() == Some(client_id) {
            ClientStanding::Current
        } else {
            ClientStanding::Pending
        };
        Ok(Some((endpoint, standing)))
    }

    /// The endpoint's clients; `NotFound` when the tenant has no endpoint of that name.
    pub async fn endpoint_clients(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<EndpointClients, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM rs_endpoints WHERE tenant = $1 AND name = $2"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => Ok(clients_of(&row)?),
            None => Err(StoreError::NotFound {
                kind: "endpoint",
                key: format!("{tenant}/{name}"),
            }),
        }
    }

    /// Records `pending` as the endpoint's pending client, if the endpoint is registered
    /// and its current client is still `current`. Returns the pending client it replaced
    /// (`Some(None)` when there was none), or `None` when nothing was written.
    pub async fn set_pending_client(
        &self,
        tenant: &str,
        name: &str,
        current: &str,
        pending: &str,
        now_ms: i64,
    ) -> Result<Option<Option<String>>, StoreError> {
        let mut tx = self.remote_tx().await?;
        let before: Option<Option<String>> = sqlx::query_scalar(
            "SELECT pending_client_id FROM rs_endpoints \
             WHERE tenant = $1 AND name = $2 AND state = 'registered' AND client_id = $3",
        )
        .bind(tenant)
        .bind(name)
        .bind(current)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(before) = before else {
            return Ok(None);
        };
        let done = sqlx::query(
            "UPDATE rs_endpoints SET pending_client_id = $4, pending_ms = $5 \
             WHERE tenant = $1 AND name = $2 AND state = 'registered' AND client_id = $3",
        )
        .bind(tenant)
        .bind(name)
        .bind(current)
        .bind(pending)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(before))
    }

    /// Makes the pending client `pending` the endpoint's current client, if the endpoint
    /// is registered and `pending` is still its pending client. Returns the client it
    /// replaced, or `None` when nothing was written.
    pub async fn confirm_pending_client(
        &self,
        tenant: &str,
        name: &str,
        pending: &str,
        now_ms: i64,
    ) -> Result<Option<Option<String>>, StoreError> {
        let mut tx = self.remote_tx().await?;
        let before: Option<Option<String>> = sqlx::query_scalar(
            "SELECT client_id FROM rs_endpoints \
             WHERE tenant = $1 AND name = $2 AND state = 'registered' AND pending_client_id = $3",
        )
        .bind(tenant)
        .bind(name)
        .bind(pending)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(before) = before else {
            return Ok(None);
        };
        let done = sqlx::query(
            "UPDATE rs_endpoints SET client_id = pending_client_id, credentials_ms = $4, \
             pending_client_id = NULL, pending_ms = NULL \
             WHERE tenant = $1 AND name = $2 AND state = 'registered' AND pending_client_id = $3",
        )
        .bind(tenant)
        .bind(name)
        .bind(pending)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(before))
    }

    /// Gives a pending or registered endpoint a new one-time registration code (replacing
    /// an unused one). The endpoint keeps its clients until the code is used. Returns the
    /// endpoint, or `None` when it is revoked; `NotFound` when there is none of that name.
    pub async fn set_registration_code(
        &self,
        tenant: &str,
        name: &str,
        code_hash: &str,
        expires_ms: i64,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let mut tx = self.remote_tx().await?;
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM rs_endpoints WHERE tenant = $1 AND name = $2"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                kind: "endpoint",
                key: format!("{tenant}/{name}"),
            });
        };
        let mut endpoint = endpoint_of(&row)?;
        let done = sqlx::query(
            "UPDATE rs_endpoints SET code_hash = $3, code_expires_ms = $4 \
             WHERE tenant = $1 AND name = $2 AND state IN ('pending', 'registered')",
        )
        .bind(tenant)
        .bind(name)
        .bind(code_hash)
        .bind(expires_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        endpoint.code_hash = Some(code_hash.to_string());
        endpoint.code_expires_ms = Some(expires_ms);
        Ok(Some(endpoint))
    }

    /// Registers a pending endpoint, or registers a registered one again, with the OAuth
    /// client `client_id` as its only client. Returns the clients it held before (to be
    /// withdrawn), or `None` when it is revoked (nothing was written).
    pub async fn set_endpoint_credentials(
        &self,
        tenant: &str,
        name: &str,
        client_id: &str,
        now_ms: i64,
    ) -> Result<Option<EndpointClients>, StoreError> {
        let mut tx = self.remote_tx().await?;
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM rs_endpoints \
             WHERE tenant = $1 AND name = $2 AND state IN ('pending', 'registered')"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let before = clients_of(&row)?;
        let done = sqlx::query(
            "UPDATE rs_endpoints SET state = 'registered', client_id = $3, registered_ms = $4, \
             credentials_ms = $4, pending_client_id = NULL, pending_ms = NULL \
             WHERE tenant = $1 AND name = $2 AND state IN ('pending', 'registered')",
        )
        .bind(tenant)
        .bind(name)
        .bind(client_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(before))
    }
}
