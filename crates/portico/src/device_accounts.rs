//! The device API's callers, checked by Portico's identity service (DC-1). Devices send
//! HTTP Basic `tenant/user:password` on every request, as Cumulocity devices do; a
//! password check costs an argon2 hashing, so a verified header is remembered for a
//! minute (keyed by its SHA-256, never the password itself). Bearer tokens from
//! `/uaa/oauth/token` are verified on each request (a signature check).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::future::BoxFuture;
use portico_identity::{Identity, LoginError, Role};
use portico_realtime::accounts::DEVICE_ROLE;
use portico_realtime::{Accounts, AuthError, Caller, DeviceCredentials};
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a verified Basic header is trusted without a new password check. A changed
/// or removed password stops working after at most this long.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Verified headers kept at most; beyond, the expired ones are dropped, then all.
const MAX_VERIFIED: usize = 100_000;
/// Length of a device's generated password (alphanumeric, ~190 bits).
const DEVICE_PASSWORD_LENGTH: usize = 32;
/// The role of a client-credentials token (an operator's tool).
const CLIENT_ROLE: &str = "client";

pub struct DeviceAccounts {
    identity: Identity,
    verified: Mutex<HashMap<[u8; 32], (Caller, Instant)>>,
    /// Checks under way, by header: a device that sends several requests at once (after a
    /// restart emptied the memory above) gets one password check, not one per request,
    /// which would also count as a burst of attempts against its account.
    checking: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
}

impl DeviceAccounts {
    pub fn new(identity: Identity) -> DeviceAccounts {
        DeviceAccounts {
            identity,
            verified: Mutex::new(HashMap::new()),
            checking: Mutex::new(HashMap::new()),
        }
    }

    async fn basic(&self, encoded: &str, client: IpAddr) -> Result<Caller, AuthError> {
        let key: [u8; 32] = Sha256::digest(encoded.as_bytes()).into();
        if let Some(caller) = self.remembered(&key) {
            return Ok(caller);
        }
        let turn = {
            let mut checking = self.checking.lock().unwrap_or_else(|p| p.into_inner());
            checking.entry(key).or_default().clone()
        };
        // Removed however this ends, also when the request is dropped mid-check (its
        // client went away): the map must not keep an entry per abandoned header.
        let _done = Forget {
            checking: &self.checking,
            key,
        };
        let _turn = turn.lock().await;
        // The check before this one may have succeeded meanwhile.
        if let Some(caller) = self.remembered(&key) {
            return Ok(caller);
        }
        self.check(key, encoded, client).await
    }

    async fn check(
        &self,
        key: [u8; 32],
        encoded: &str,
        client: IpAddr,
    ) -> Result<Caller, AuthError> {
        let (tenant, user, password) = parse_basic(encoded)?;
        let record = self
            .identity
            .check_password(&tenant, &user, &password, client)
            .await
            .map_err(|e| match e {
                LoginError::Throttled { retry_after } => AuthError::Throttled { retry_after },
                LoginError::WrongCredentials => {
                    AuthError::Invalid("wrong tenant, user name or password".into())
                }
                LoginError::Failed(e) => AuthError::Unavailable(e.to_string()),
            })?;
        let caller = Caller {
            tenant,
            user: record.name,
            role: record.role,
        };
        self.remember(key, caller.clone());
        Ok(caller)
    }

    /// A client-credentials token (its subject is the client) acts as an operator's tool of
    /// its tenant. A user's token acts with the user's role as stored now, not as its
    /// scopes say: a token's scopes can be narrowed on refresh, and dropping `role:device`
    /// must not make a device a person.
    async fn bearer(&self, token: &str) -> Result<Caller, AuthError> {
        let token = self
            .identity
            .verify(token)
            .map_err(|e| AuthError::Invalid(format!("the bearer token is not valid: {e}")))?;
        if token.client_id.as_deref() == Some(token.subject.as_str()) {
            return Ok(Caller {
                tenant: token.tenant,
                user: token.subject,
                role: CLIENT_ROLE.to_string(),
            });
        }
        let user = self
            .identity
            .store()
            .user(&token.tenant, &token.subject)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or_else(|| AuthError::Invalid("the bearer token's user no longer exists".into()))?;
        Ok(Caller {
            tenant: token.tenant,
            user: user.name,
            role: user.role,
        })
    }

    fn remembered(&self, key: &[u8; 32]) -> Option<Caller> {
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        let (caller, at) = verified.get(key)?;
        (at.elapsed() < VERIFIED_FOR).then(|| caller.clone())
    }

    fn remember(&self, key: [u8; 32], caller: Caller) {
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= MAX_VERIFIED {
            verified.retain(|_, (_, at)| at.elapsed() < VERIFIED_FOR);
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
        }
        verified.insert(key, (caller, Instant::now()));
    }

    /// Forgets every remembered header of one user (its password just changed).
    fn forget(&self, tenant: &str, user: &str) {
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        verified.retain(|_, (c, _)| !(c.tenant == tenant && c.user == user));
    }
}

/// Takes a header's entry out of the checks under way when dropped.
struct Forget<'a> {
    checking: &'a Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    key: [u8; 32],
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.checking
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

impl Accounts for DeviceAccounts {
    fn authenticate<'a>(
        &'a self,
        authorization: &'a str,
        client: IpAddr,
    ) -> BoxFuture<'a, Result<Caller, AuthError>> {
        Box::pin(async move {
            let (scheme, credentials) = authorization
                .trim()
                .split_once(' ')
                .ok_or(AuthError::Missing)?;
            let credentials = credentials.trim();
            if scheme.eq_ignore_ascii_case("basic") {
                self.basic(credentials, client).await
            } else if scheme.eq_ignore_ascii_case("bearer") {
                self.bearer(credentials).await
            } else {
                Err(AuthError::Invalid(format!(
                    "the {scheme} scheme is not accepted: send Basic tenant/user:password or a Bearer token"
                )))
            }
        })
    }

    fn issue_device_credentials<'a>(
        &'a self,
        tenant: &'a str,
        external_id: &'a str,
    ) -> BoxFuture<'a, Result<DeviceCredentials, AuthError>> {
        Box::pin(async move {
            let username = device_user_name(external_id)?;
            let password =
                Alphanumeric.sample_string(&mut rand::thread_rng(), DEVICE_PASSWORD_LENGTH);
            let store = self.identity.store();
            let existing = store
                .user(tenant, &username)
                .await
                .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            let result = match existing {
                Some(user) if user.role != DEVICE_ROLE => {
                    return Err(AuthError::Invalid(format!(
                        "the user name {username} is taken by a user who is not a device"
                    )))
                }
                Some(_) => {
                    self.identity
                        .set_password(tenant, &username, &password)
                        .await
                }
                None => {
                    self.identity
                        .add_user(tenant, &username, Role::Device, &password)
                        .await
                }
            };
            result.map_err(|e| AuthError::Unavailable(e.to_string()))?;
            self.forget(tenant, &username);
            tracing::info!(tenant, user = %username, "device credentials issued");
            Ok(DeviceCredentials {
                tenant: tenant.to_string(),
                username,
                password,
            })
        })
    }
}

/// `base64(tenant/user:password)`.
fn parse_basic(encoded: &str) -> Result<(String, String, String), AuthError> {
    let invalid =
        || AuthError::Invalid("Basic credentials must be base64 of tenant/user:password".into());
    let decoded = STANDARD.decode(encoded).map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (login, password) = text.split_once(':').ok_or_else(invalid)?;
    let (tenant, user) = login.split_once('/').ok_or_else(invalid)?;
    if tenant.is_empty() || user.is_empty() {
        return Err(invalid());
    }
    Ok((tenant.to_string(), user.to_string(), password.to_string()))
}

/// `device_{serial}`, made a valid Portico user name (lower-case letters, digits, `.`, `_`,
/// `-`, `@`) without two serials ever sharing one: lower-case letters, digits, `.` and `-`
/// stay; an upper-case letter becomes `_` and the letter (`SN-1` → `_s_n-1`), `_` becomes
/// `__`, and any other byte (`@` included) `@` and two hex digits. Serials that differ only
/// in case or punctuation get different users, so accepting one device never hands it
/// another's objects.
fn device_user_name(external_id: &str) -> Result<String, AuthError> {
    let mut name = String::from("device_");
    for byte in external_id.trim().bytes() {
        match byte {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' => name.push(char::from(byte)),
            b'A'..=b'Z' => {
                name.push('_');
                name.push(char::from(byte.to_ascii_lowercase()));
            }
            b'_' => name.push_str("__"),
            other => name.push_str(&format!("@{other:02x}")),
        }
    }
    portico_identity::users::check_user_name(&name).map_err(|e| {
        AuthError::Invalid(format!(
            "the device id {external_id:?} cannot name a user: {e}"
        ))
    })?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_name_tenant_user_and_password() {
        let encoded = STANDARD.encode("acme/device_x1:pa:ss");
        let (t, u, p) = parse_basic(&encoded).unwrap();
        assert_eq!(
            (t.as_str(), u.as_str(), p.as_str()),
            ("acme", "device_x1", "pa:ss")
        );
        for bad in ["no-slash:pw", "/user:pw", "tenant/:pw", "nocolon"] {
            assert!(parse_basic(&STANDARD.encode(bad)).is_err(), "{bad}");
        }
        assert!(parse_basic("%%%").is_err());
    }

    /// A device firing many requests at once, with nothing remembered yet (after a
    /// restart), is checked once: all get through, none is throttled as a burst of
    /// attempts, and a wrong password still fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_of_one_device_share_one_password_check() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/portico.db", dir.path().display());
        let store = portico_store::Store::open(&url).await.unwrap();
        let identity = Identity::open(store, Default::default(), "https://portico.test")
            .await
            .unwrap();
        identity
            .add_user("acme", "device_a1", Role::Device, "device-password-1")
            .await
            .unwrap();
        let accounts = Arc::new(DeviceAccounts::new(identity));
        let header = format!(
            "Basic {}",
            STANDARD.encode("acme/device_a1:device-password-1")
        );
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let checks: Vec<_> = (0..24)
            .map(|_| {
                let (accounts, header) = (accounts.clone(), header.clone());
                tokio::spawn(async move { accounts.authenticate(&header, client).await })
            })
            .collect();
        for check in checks {
            let caller = check.await.unwrap().expect("every request gets through");
            assert_eq!(
                (caller.tenant.as_str(), caller.role.as_str()),
                ("acme", "device")
            );
        }
        let wrong = format!("Basic {}", STANDARD.encode("acme/device_a1:wrong-password"));
        assert!(matches!(
            accounts.authenticate(&wrong, client).await,
            Err(AuthError::Invalid(_))
        ));
    }

    /// A user's bearer token acts with the user's stored role, whatever scopes it was
    /// narrowed to; a client-credentials token acts as an operator's tool.
    #[tokio::test]
    async fn a_bearer_token_acts_with_its_users_stored_role() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/portico.db", dir.path().display());
        let store = portico_store::Store::open(&url).await.unwrap();
        let identity = Identity::open(store, Default::default(), "https://portico.test")
            .await
            .unwrap();
        identity
            .add_user("acme", "device_a1", Role::Device, "device-password-1")
            .await
            .unwrap();
        let mint = |subject: &str, client: &str| {
            identity
                .mint(&portico_identity::TokenGrant {
                    subject: subject.into(),
                    tenant: "acme".into(),
                    audiences: vec!["portico".into()],
                    // No `role:` scope: narrowed away on a refresh.
                    scopes: vec!["portico".into()],
                    client_id: Some(client.into()),
                    actor: None,
                })
                .unwrap()
        };
        let accounts = DeviceAccounts::new(identity.clone());
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let device = accounts
            .authenticate(&format!("Bearer {}", mint("device_a1", "console")), client)
            .await
            .unwrap();
        assert_eq!(device.role, "device");
        let tool = accounts
            .authenticate(&format!("Bearer {}", mint("ops-tool", "ops-tool")), client)
            .await
            .unwrap();
        assert_eq!(
            (tool.user.as_str(), tool.role.as_str()),
            ("ops-tool", CLIENT_ROLE)
        );
        let gone = accounts
            .authenticate(&format!("Bearer {}", mint("nobody", "console")), client)
            .await;
        assert!(matches!(gone, Err(AuthError::Invalid(_))));
    }

    #[test]
    fn device_user_names_are_valid_and_never_shared_by_two_serials() {
        assert_eq!(device_user_name("sn-0042").unwrap(), "device_sn-0042");
        assert_eq!(device_user_name("SN-0042").unwrap(), "device__s_n-0042");
        assert_eq!(device_user_name("a b/c").unwrap(), "device_a@20b@2fc");
        let serials = [
            "ABC", "abc", "aBc", "a b", "a-b", "a_b", "a@b", "a@40b", "_a", "A",
        ];
        let names: std::collections::HashSet<String> = serials
            .iter()
            .map(|s| device_user_name(s).unwrap())
            .collect();
        assert_eq!(names.len(), serials.len(), "{names:?}");
        for name in &names {
            portico_identity::users::check_user_name(name).unwrap();
        }
        assert!(device_user_name(&"x".repeat(100)).is_err());
    }
}
