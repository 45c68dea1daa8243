//! The store's error type.

use crate::model::Origin;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or created. `url` has its password masked.
    #[error("cannot open the database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Validation failed; the message names the entry and the field, in the words of
    /// [`crate::model`] (e.g. `webapp "shop-xyz": tenants: tenant "abc" is not registered`).
    #[error("{0}")]
    Invalid(String),
    #[error("{kind} \"{key}\" already exists (from {origin})")]
    Conflict {
        kind: &'static str,
        key: String,
        origin: Origin,
    },
    /// An identity record (user, OAuth client…) with this key exists already.
    #[error("{kind} \"{key}\" already exists")]
    Exists { kind: &'static str, key: String },
    #[error("{kind} \"{key}\" is not registered")]
    NotFound { kind: &'static str, key: String },
    #[error("{kind} \"{key}\" comes from the {origin} registrations and cannot be changed here")]
    WrongOrigin {
        kind: &'static str,
        key: String,
        origin: Origin,
    },
}

/// `url` with the password of its user info, and any `password=` query parameter,
/// replaced by `***`.
pub fn mask_password(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = url.find("://") {
        let start = scheme_end + 3;
        let rest = &url[start..];
        let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                out = format!("{}***{}", &url[..start + colon + 1], &url[start + at..]);
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out = format!("{head}{}", masked.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::mask_password;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            mask_password("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(mask_password("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            mask_password("postgres://h/db?user=u&password=x"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(mask_password("sqlite://data/p.db"), "sqlite://data/p.db");
    }
}
