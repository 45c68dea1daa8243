//! The registry operations of [`Store`]. Every write runs in one serialized
//! transaction (see `Store::write_tx`) that checks, then writes, then commits, and
//! bumps [`Store::changes`] and sends the [`REGISTRY_NOTICE`] once committed.

use std::collections::HashMap;

use crate::error::StoreError;
use crate::model::{Api, EntryKind, Origin, Registry, Tenant, WebApp};
use crate::queries::{self as q, provider_col};
use crate::Store;

/// The notice every node hears after a committed registry write (payload empty): each
/// rebuilds its routing table from the store.
pub const REGISTRY_NOTICE: &str = "registry";

const ADMIN_TOKEN_HASH: &str = "admin_token_hash";

fn conflict(kind: EntryKind, key: String, origin: Origin) -> StoreError {
    StoreError::Conflict {
        kind: kind.as_str(),
        key,
        origin,
    }
}

/// NotFound or WrongOrigin unless the entry exists with origin `origin`.
fn check_owner(
    kind: EntryKind,
    key: String,
    stored: Option<Origin>,
    origin: Origin,
) -> Result<(), StoreError> {
    match stored {
        None => Err(StoreError::NotFound {
            kind: kind.as_str(),
            key,
        }),
        Some(o) if o != origin => Err(StoreError::WrongOrigin {
            kind: kind.as_str(),
            key,
            origin: o,
        }),
        Some(_) => Ok(()),
    }
}

fn unknown_tenants(kind: EntryKind, key: &str, missing: &[String]) -> Result<(), StoreError> {
    match missing.first() {
        None => Ok(()),
        Some(t) => Err(StoreError::Invalid(format!(
            "{kind} \"{key}\": tenants: tenant \"{t}\" is not registered"
        ))),
    }
}

impl Store {
    /// The whole registry, read in one snapshot. Tenants by name, web apps by key, APIs
    /// by name, provider and version (numerically); routes in registration order.
    pub async fn registry(&self) -> Result<Registry, StoreError> {
        let mut tx = self.read_tx().await?;
        let registry = q::registry(&mut tx).await?;
        tx.commit().await?;
        Ok(registry)
    }

    /// In one transaction, replaces every entry of `origin` by `entries` (whose own
    /// `origin` fields are ignored: they are stored with `origin`). Changes nothing and
    /// fails with `Conflict` when a key in `entries` belongs to another origin, and with
    /// `Invalid` when the resulting registry would not pass [`Registry::validate`].
    pub async fn replace_origin(
        &self,
        origin: Origin,
        entries: &Registry,
    ) -> Result<(), StoreError> {
        let mut new = entries.clone();
        new.tenants.iter_mut().for_each(|t| t.origin = origin);
        new.webapps.iter_mut().for_each(|w| w.origin = origin);
        new.apis.iter_mut().for_each(|a| a.origin = origin);

        let mut tx = self.write_tx().await?;
        let current = q::registry(&mut tx).await?;

        let held: HashMap<String, Origin> = current
            .tenants
            .iter()
            .filter(|t| t.origin != origin)
            .map(|t| (t.name.clone(), t.origin))
            .collect();
        if let Some((t, o)) = new
            .tenants
            .iter()
            .find_map(|t| held.get(&t.name).map(|o| (t, *o)))
        {
            return Err(conflict(EntryKind::Tenant, t.name.clone(), o));
        }
        let held: HashMap<String, Origin> = current
            .webapps
            .iter()
            .filter(|w| w.origin != origin)
            .map(|w| (w.key(), w.origin))
            .collect();
        if let Some((w, o)) = new
            .webapps
            .iter()
            .find_map(|w| held.get(&w.key()).map(|o| (w, *o)))
        {
            return Err(conflict(EntryKind::WebApp, w.key(), o));
        }
        let held: HashMap<String, Origin> = current
            .apis
            .iter()
            .filter(|a| a.origin != origin)
            .map(|a| (a.key(), a.origin))
            .collect();
        if let Some((a, o)) = new
            .apis
            .iter()
            .find_map(|a| held.get(&a.key()).map(|o| (a, *o)))
        {
            return Err(conflict(EntryKind::Api, a.key(), o));
        }

        let mut result = Registry {
            tenants: current
                .tenants
                .into_iter()
                .filter(|t| t.origin != origin)
                .collect(),
            webapps: current
                .webapps
                .into_iter()
                .filter(|w| w.origin != origin)
                .collect(),
            apis: current
                .apis
                .into_iter()
                .filter(|a| a.origin != origin)
                .collect(),
        };
        result.tenants.extend(new.tenants.iter().cloned());
        result.webapps.extend(new.webapps.iter().cloned());
        result.apis.extend(new.apis.iter().cloned());
        result.validate().map_err(StoreError::Invalid)?;

        q::delete_origin(&mut tx, origin).await?;
        for t in &new.tenants {
            q::insert_tenant(&mut tx, t).await?;
        }
        for w in &new.webapps {
            q::insert_webapp(&mut tx, w).await?;
        }
        for a in &new.apis {
            q::insert_api(&mut tx, a).await?;
        }
        tx.commit().await?;
        self.registry_changed().await;
        Ok(())
    }

    pub async fn tenant(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Ok(q::tenants(&mut conn, Some(name)).await?.pop())
    }

    /// Adds `t` with its own origin. `Invalid` when the name is not valid, `Conflict`
    /// when the tenant exists.
    pub async fn add_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        t.validate()
            .map_err(|e| StoreError::Invalid(format!("tenant \"{}\": {e}", t.name)))?;
        let mut tx = self.write_tx().await?;
        if let Some(o) = q::tenant_origin(&mut tx, &t.name).await? {
            return Err(conflict(EntryKind::Tenant, t.name.clone(), o));
        }
        q::insert_tenant(&mut tx, t).await?;
        tx.commit().await?;
        self.registry_changed().await;
        Ok(())
    }

    /// Removes the tenant `name` if it has origin `origin` and nothing subscribes it.
    pub async fn remove_tenant(&self, name: &str, origin: Origin) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let stored = q::tenant_origin(&mut tx, name).await?;
        check_owner(EntryKind::Tenant, name.to_string(), stored, origin)?;
        let subscribers = q::subscribers(&mut tx, name).await?;
        if !subscribers.is_empty() {
            return Err(StoreError::Invalid(format!(
                "tenant \"{name}\" is still subscribed by {}; unsubscribe it first",
                subscribers.join(", ")
            )));
        }
        q::delete_tenant(&mut tx, name).await?;
        tx.commit().await?;
        self.registry_changed().await;
        Ok(())
    }

    pub async fn webapp(
        &self,
        name: &str,
        provider: Option<&str>,
    ) -> Result<Option<WebApp>, StoreError> {
        let mut tx = self.read_tx().await?;
        let found = q::webapps(&mut tx, Some((name, provider_col(provider))))
            .await?
            .pop();
        tx.commit().await?;
        Ok(found)
    }

    /// Adds `w` with its own origin. `Invalid` when an entry field is not valid or a
    /// subscribed tenant is not registered, `Conflict` when the web app exists.
    pub async fn add_webapp(&self, w: &WebApp) -> Result<(), StoreError> {
        let key = w.key();
        w.validate()
            .map_err(|e| StoreError::Invalid(format!("webapp \"{key}\": {e}")))?;
        let mut tx = self.write_tx().await?;
        if let Some(o) =
            q::webapp_origin(&mut tx, &w.name, provider_col(w.provider.as_deref())).await?
        {
            return Err(conflict(EntryKind::WebApp, key, o));
        }
        unknown_tenants(
            EntryKind::WebApp,
            &key,
            &q::missing_tenants(&mut tx, &w.tenants).await?,
        )?;
        q::insert_webapp(&mut tx, w).await?;
        tx.commit().await?;
        self.registry_changed().await;
        Ok(())
    }

    pub async fn remove_webapp(
        &self,
        name: &str,
        provider: Option<&str>,
        origin: Origin,
    ) -> Result<(), StoreError> {
        let provider = provider_col(provider);
        let mut tx = self.write_tx().await?;
        let stored = q::webapp_origin(&mut tx, name, provider).await?;
        let key = crate::model::app_key(name, Some(provider).filter(|p| !p.is_empty()));
        check_owner(EntryKind::WebApp, key, stored, origin)?;
        q::delete_webapp(&mut tx, name, provider).await?;
        tx.commit().await?;
        self.registry_changed().await;
        Ok(())
    }

    pub async fn api(
        &self,
        name: &str,
        provider: Option<&str>,
        version: u32,
    ) -> Result<Option<Api>, StoreError> {
        let mut tx = self.read_tx().await?;
        let found = q::apis(
            &mut tx,
            Some((name, provider_col(provider), i64::from(version))),
        )
        .await?
        .pop();
        tx.commit().await?;
        Ok(found)
    }

    /// Adds `a` with its own origin. `Invalid` when an entry field is not valid or a
    /// subscribed tenant is not registered, `Conflict` when the API exists.
    pub async fn add_api(&self, a: &Api) -> Result<(), StoreError> {
        let key = a.key();
        a.validate()
            .map_err(|e| StoreError::Invalid(format!("api \"{key}\": {e}")))?;
        let mut tx = self.write_tx().await?;
        let provider = provider_col(a.provider.as_deref());
        if let Some(o) = q::api_origin(&mut tx, &a.name, provider, i64::from(a.version)).await? {
            return Err(conflict(EntryKind::Api, key, o));
        }
        unknown_tenants(
            EntryKind::Api,
            &key,
            &q::missing_tenants(&mut tx, &a.tenants).await?,
        )?;
        q::insert_api(&mut tx, a).await?;
        tx.commit().await?;
        self.registry_changed().await;
        Ok(())
    }

    pub async fn remove_api(
        &self,
        name: &str,
        provider: Option<&str>,
        version: u32,
        origin: Origin,
    ) -> Result<(), StoreError> {
        let provider = provider_col(provider);
        let version = i64::from(version);
        let mut tx = self.write_tx().await?;
        let stored = q::api_origin(&mut tx, name, provider, version).await?;
        let key = format!(
            "{}/v{version}",
            crate::model::app_key(name, Some(provider).filter(|p| !p.is_empty()))
        );
        check_owner(EntryKind::Api, key, stored, origin)?;
        q::delete_api(&mut tx, name, provider, version).await?;
        tx.commit().await?;
        self.registry_changed().await;
        Ok(())
    }

    /// The hash (hex SHA-256) of the bootstrap admin token, if one was set.
    pub async fn admin_token_hash(&self) -> Result<Option<String>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Ok(q::setting(&mut conn, ADMIN_TOKEN_HASH).await?)
    }

    /// Stores (or replaces) the hash of the bootstrap admin token: 64 hex digits.
    pub async fn set_admin_token_hash(&self, hash: &str) -> Result<(), StoreError> {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid(
                "admin token hash: must be a hex SHA-256 digest (64 hex digits)".to_string(),
            ));
        }
        let mut conn = self.pool().acquire().await?;
        q::set_setting(&mut conn, ADMIN_TOKEN_HASH, hash).await?;
        Ok(())
    }
}
