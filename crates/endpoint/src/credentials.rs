//! The endpoint's own credentials: the OAuth client that registration created for it,
//! stored in a TOML file that only the agent's user may read.
//!
//! ```toml
//! client_id = "ep-2f6c…"
//! client_secret = "…"
//! tenant = "abc"          # written by `portico endpoint register`; optional when written by hand
//! endpoint = "press-7-ep"
//! kind = "device"
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read the credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the credentials file {path} can be read by other users (mode {mode:o}); \
         run `chmod 600` on it"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("cannot write the credentials file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the credentials file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
    /// The tenant the endpoint belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The endpoint's registered name, which the agent announces in its hello.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `device` or `service`, as registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A rotation wrote these credentials but has not confirmed them yet: the agent
    /// confirms them at its next (re)connect (see `rotate.rs`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub unconfirmed: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"********")
            .field("tenant", &self.tenant)
            .field("endpoint", &self.endpoint)
            .field("kind", &self.kind)
            .field("unconfirmed", &self.unconfirmed)
            .finish()
    }
}

impl Credentials {
    /// Credentials without the registration's details (tenant, endpoint name, kind).
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Credentials {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            tenant: None,
            endpoint: None,
            kind: None,
            unconfirmed: false,
        }
    }

    /// Reads the file, refusing one that other users can read: the secret is the endpoint's
    /// identity, and a copy lets anyone pose as this device.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let read_error = |source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        };
        let metadata = std::fs::metadata(path).map_err(read_error)?;
        check_mode(path, &metadata)?;
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let invalid = |reason: String| CredentialsError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        // toml's message is left out: it may quote the line that holds the secret.
        let credentials: Credentials = toml::from_str(&text)
            .map_err(|_| invalid("expected `client_id` and `client_secret` strings".into()))?;
        if credentials.client_id.trim().is_empty() || credentials.client_secret.is_empty() {
            return Err(invalid(
                "`client_id` and `client_secret` must not be empty".into(),
            ));
        }
        Ok(credentials)
    }

    /// Writes the file atomically with mode 0600: a temporary file in the same folder,
    /// created private, synced, then renamed over the old one, so a crash never leaves a
    /// half-written or readable secret behind.
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        let write_error = |source| CredentialsError::Write {
            path: path.to_path_buf(),
            source,
        };
        let text = toml::to_string(self)
            .map_err(|e| write_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "credentials".into());
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let result =
            write_private(&temp, text.as_bytes()).and_then(|()| std::fs::rename(&temp, path));
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map_err(write_error)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(unix)]
fn check_mode(path: &Path, metadata: &std::fs::Metadata) -> Result<(), CredentialsError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CredentialsError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &Path, _: &std::fs::Metadata) -> Result<(), CredentialsError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str, mode: u32) -> PathBuf {
        let path = dir.path().join("credentials.toml");
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        path
    }

    #[test]
    fn reads_a_private_file_and_masks_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "client_id = \"ep-1\"\nclient_secret = \"s3cr3t\"\n",
            0o600,
        );
        let c = Credentials::load(&path).unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.client_secret.as_str()),
            ("ep-1", "s3cr3t")
        );
        let shown = format!("{c:?}");
        assert!(
            shown.contains("ep-1") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_file_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "client_id = \"ep-1\"\nclient_secret = \"s\"\n", 0o644);
        let msg = Credentials::load(&path).unwrap_err().to_string();
        assert!(msg.contains("644") && msg.contains("chmod 600"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn saving_writes_a_private_file_that_loads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.toml");
        std::fs::write(&path, "old").unwrap();
        let c = Credentials {
            client_id: "ep-9".into(),
            client_secret: "s3cr3t".into(),
            tenant: Some("abc".into()),
            endpoint: Some("press-7-ep".into()),
            kind: Some("device".into()),
            unconfirmed: true,
        };
        c.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Credentials::load(&path).unwrap(), c);
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }

    #[test]
    fn bad_files_never_echo_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "client_id = \"ep-1\"\nclient_secret = s3cr3t\n",
            "client_id = \"ep-1\"\n",
            "client_id = \"\"\nclient_secret = \"s3cr3t\"\n",
            "client_id = \"ep-1\"\nclient_secret = \"s3cr3t\"\nextra = 1\n",
        ] {
            let path = write(&dir, text, 0o600);
            let msg = Credentials::load(&path).unwrap_err().to_string();
            assert!(
                msg.contains("not valid") && !msg.contains("s3cr3t"),
                "{text}: {msg}"
            );
        }
        let missing = Credentials::load(&dir.path().join("none.toml")).unwrap_err();
        assert!(missing.to_string().contains("none.toml"));
    }
}
