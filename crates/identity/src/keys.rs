//! Token signing keys: ES256 (P-256) keys made by Portico and kept in the store, so that
//! every node signs and verifies with the same keys. A new key is made every
//! `key_rotation`; the keys it replaces stop signing but stay published (in the JWKS and
//! for verification) until every token they signed has expired.
//!
//! Verification never waits for the database: it reads an in-memory key set that
//! [`KeyRing::reload`] refreshes from the store.

use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use portico_store::{SigningKeyRecord, Store};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use crate::error::IdentityError;
use crate::secret::{ms, now_ms, sha256_b64url};

pub const ALGORITHM: &str = "ES256";

/// The key that signs new tokens.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
}

/// A published key: verifies tokens and appears in the JWKS.
#[derive(Clone)]
pub struct PublicKey {
    pub kid: String,
    pub decoding: DecodingKey,
    /// The JWK (kty, crv, x, y, kid, use, alg).
    pub jwk: Value,
}

#[derive(Clone, Default)]
pub struct KeySet {
    pub signing: Option<SigningKey>,
    pub published: Vec<PublicKey>,
}

impl KeySet {
    /// A set of one fresh key that lives only in memory (fuzzing, tests, tools).
    pub fn ephemeral() -> Result<KeySet, IdentityError> {
        let (signing, public) = load(&generate(now_ms())?).map_err(IdentityError::Internal)?;
        Ok(KeySet {
            signing: Some(signing),
            published: vec![public],
        })
    }

    pub fn key(&self, kid: &str) -> Option<&PublicKey> {
        self.published.iter().find(|k| k.kid == kid)
    }
}

pub struct KeyRing {
    store: Store,
    rotation_ms: i64,
    /// How long a retired key stays published: the longest a token it signed lives, plus
    /// the tolerated clock skew.
    publish_for_ms: i64,
    current: RwLock<Arc<KeySet>>,
}

impl KeyRing {
    pub fn new(store: Store, config: &crate::IdentityConfig) -> KeyRing {
        KeyRing {
            store,
            rotation_ms: ms(config.key_rotation),
            publish_for_ms: ms(config.access_token_lifetime) + ms(config.clock_skew),
            current: RwLock::new(Arc::new(KeySet::default())),
        }
    }

    /// The keys in use now.
    pub fn current(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Makes a new signing key when there is none or the newest is `key_rotation` old,
    /// retiring the others; then reloads. Two nodes rotating at once both add a key:
    /// harmless, since each key signs only until it is retired and stays published.
    pub async fn rotate_if_due(&self) -> Result<(), IdentityError> {
        let now = now_ms();
        let keys = self.store.signing_keys().await?;
        let newest_active = keys.iter().find(|k| k.retired_ms.is_none());
        let due = newest_active.is_none_or(|k| now - k.created_ms >= self.rotation_ms);
        if due {
            self.rotate(now, &keys).await?;
        }
        self.reload().await
    }

    /// Makes a new signing key now and retires every other one.
    pub async fn rotate_now(&self) -> Result<(), IdentityError> {
        let keys = self.store.signing_keys().await?;
        self.rotate(now_ms(), &keys).await?;
        self.reload().await
    }

    async fn rotate(&self, now: i64, keys: &[SigningKeyRecord]) -> Result<(), IdentityError> {
        let new = generate(now)?;
        self.store.add_signing_key(&new).await?;
        for old in keys.iter().filter(|k| k.retired_ms.is_none()) {
            self.store
                .retire_signing_key(&old.kid, now, now + self.publish_for_ms)
                .await?;
        }
        tracing::info!(kid = %new.kid, "new token signing key");
        Ok(())
    }

    /// Reads the keys from the store, drops the ones no longer published, and swaps the
    /// in-memory set. A key that cannot be read is logged and left out.
    pub async fn reload(&self) -> Result<(), IdentityError> {
        let now = now_ms();
        self.store.purge_signing_keys(now).await?;
        let mut set = KeySet::default();
        for record in self.store.signing_keys().await? {
            if record.publish_until_ms.is_some_and(|until| until < now) {
                continue;
            }
            match load(&record) {
                Ok((signing, public)) => {
                    // Newest first: the first key not retired signs.
                    if set.signing.is_none() && record.retired_ms.is_none() {
                        set.signing = Some(signing);
                    }
                    set.published.push(public);
                }
                Err(e) => tracing::error!(kid = %record.kid, error = %e, "unusable signing key"),
            }
        }
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
        Ok(())
    }

    /// The JSON Web Key Set of the published keys (RFC 7517).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .current()
            .published
            .iter()
            .map(|k| k.jwk.clone())
            .collect();
        json!({ "keys": keys })
    }
}

/// A new ES256 key pair as a store record.
fn generate(now: i64) -> Result<SigningKeyRecord, IdentityError> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| IdentityError::Internal("cannot generate a P-256 key".into()))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| IdentityError::Internal("cannot read a generated P-256 key".into()))?;
    Ok(SigningKeyRecord {
        kid: key_id(pair.public_key().as_ref()),
        algorithm: ALGORITHM.into(),
        private_key_pem: to_pem(pkcs8.as_ref()),
        created_ms: now,
        retired_ms: None,
        publish_until_ms: None,
    })
}

/// The key id: the first 128 bits of the public point's SHA-256, base64url.
fn key_id(public_point: &[u8]) -> String {
    let digest = sha256_b64url(public_point);
    digest.chars().take(22).collect()
}

fn load(record: &SigningKeyRecord) -> Result<(SigningKey, PublicKey), String> {
    if record.algorithm != ALGORITHM {
        return Err(format!("algorithm {} is not supported", record.algorithm));
    }
    let der = from_pem(&record.private_key_pem)?;
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
            .map_err(|_| "not a PKCS#8 P-256 key".to_string())?;
    let point = pair.public_key().as_ref();
    // An uncompressed point: 0x04, then x and y of 32 bytes each.
    if point.len() != 65 || point[0] != 4 {
        return Err("unexpected public key encoding".into());
    }
    let (x, y) = (
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..]),
    );
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "x": x, "y": y,
        "kid": record.kid, "use": "sig", "alg": ALGORITHM,
    });
    Ok((
        SigningKey {
            kid: record.kid.clone(),
            encoding: EncodingKey::from_ec_der(&der),
        },
        PublicKey {
            kid: record.kid.clone(),
            decoding: DecodingKey::from_ec_der(point),
            jwk,
        },
    ))
}

fn to_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

fn from_pem(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
        .skip(1)
        .take_while(|l| *l != "-----END PRIVATE KEY-----")
        .collect();
    STANDARD
        .decode(body)
        .map_err(|_| "the private key is not PEM".to_string())
}

#[cfg(test)]
pub(crate) fn test_key_set() -> KeySet {
    KeySet::ephemeral().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pem() {
        let record = generate(1_000).unwrap();
        assert!(record
            .private_key_pem
            .starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let (signing, public) = load(&record).unwrap();
        assert_eq!(signing.kid, record.kid);
        assert_eq!(public.jwk["kty"], "EC");
        assert_eq!(public.jwk["crv"], "P-256");
        assert_eq!(public.jwk["x"].as_str().unwrap().len(), 43);
        assert!(public.jwk.get("d").is_none(), "no private part in the JWK");
        assert_ne!(generate(1_000).unwrap().kid, record.kid);
    }

    #[test]
    fn broken_records_are_refused() {
        let mut record = generate(1_000).unwrap();
        record.private_key_pem =
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
        assert!(load(&record).is_err());
        record.algorithm = "HS256".into();
        assert!(load(&record).is_err());
    }
}
