//! The command line, and credentials in the `tenant/user:password` form devices use.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Parser;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Long-polling Bayeux clients on /notification/operations, and operation \
                   delivery latency from creation to receipt"
)]
pub struct Args {
    /// Portico's plain-HTTP listener on loopback, e.g. 127.0.0.1:8080.
    #[arg(long)]
    pub server: SocketAddr,
    /// The Host header: the device host.
    #[arg(long, default_value = "southgate.eu1.portico.localhost")]
    pub host: String,
    /// The tenant admin who creates the operations: tenant/user:password.
    #[arg(long, value_parser = Credentials::parse)]
    pub admin: Credentials,
    /// A device user the clients log in as (repeat it to spread the clients over several,
    /// round-robin); each client's managed object is created by the same user. Without
    /// one, the clients log in as the admin.
    #[arg(long = "device-user", value_parser = Credentials::parse)]
    pub device_users: Vec<Credentials>,
    /// Long-polling clients, one managed object and one HTTP connection each.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// Operations created per second (each POST checks the admin's password).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Seconds operations are created for.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds to wait, after the last operation, for the ones not received yet; any still
    /// missing then count as lost.
    #[arg(long, default_value_t = 30)]
    pub drain: u64,
    /// Seconds to pause after the setup, before the clients start: the window in which the
    /// server's memory without clients is sampled (after `setup_done` is printed).
    #[arg(long, default_value_t = 0)]
    pub settle: u64,
    /// Seconds the connected clients idle (polling, nothing published) before operations
    /// start: the window in which the server's memory per client is sampled.
    #[arg(long, default_value_t = 10)]
    pub idle: u64,
    /// Seconds to wait for every client to be subscribed; the run goes on with those that
    /// are by then.
    #[arg(long, default_value_t = 600)]
    pub connect_timeout: u64,
    /// Managed objects created at once during setup. Every request checks a password
    /// (argon2id, deliberately slow and 19 MiB each), so more than the server's cores buys
    /// nothing and only inflates its peak memory.
    #[arg(long, default_value_t = 8)]
    pub setup_parallelism: usize,
    /// Clients handshaking and subscribing at once (each handshake checks a password).
    #[arg(long, default_value_t = 8)]
    pub connect_parallelism: usize,
    /// Connections the operation creator sends over (keep-alive).
    #[arg(long, default_value_t = 16)]
    pub creator_connections: usize,
    /// Source addresses 127.0.0.1 ... 127.0.0.K the clients' sockets are spread over, so
    /// that no source address runs out of ephemeral ports.
    #[arg(long, default_value_t = 8)]
    pub source_addresses: u8,
    /// Seconds any request but a held connect may take.
    #[arg(long, default_value_t = 30)]
    pub request_timeout: u64,
    /// Seconds a held connect may take (the server holds one ~25 s by default).
    #[arg(long, default_value_t = 90)]
    pub poll_timeout: u64,
}

impl Args {
    /// Checks what clap cannot: values that must be positive and fit together.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err("--rate must be a positive number of operations per second".into());
        }
        if self.duration == 0 {
            return Err("--duration must be at least 1 second".into());
        }
        for (name, value) in [
            ("--setup-parallelism", self.setup_parallelism),
            ("--connect-parallelism", self.connect_parallelism),
            ("--creator-connections", self.creator_connections),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.source_addresses == 0 || self.source_addresses > 254 {
            return Err("--source-addresses must be 1..=254".into());
        }
        if self.source_addresses > 1 && !self.server.ip().is_loopback() {
            return Err("--source-addresses above 1 needs a server on 127.0.0.1".into());
        }
        Ok(())
    }

    /// The source address of client `index`: 127.0.0.1 + index mod K.
    pub fn source_of(&self, index: usize) -> IpAddr {
        if self.source_addresses == 1 {
            return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        }
        let k = usize::from(self.source_addresses);
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % k) as u8))
    }

    /// The credentials client `index` logs in as.
    pub fn credentials_of(&self, index: usize) -> &Credentials {
        if self.device_users.is_empty() {
            &self.admin
        } else {
            &self.device_users[index % self.device_users.len()]
        }
    }
}

/// `tenant/user:password`, kept as the base64 token Cumulocity clients send: in the
/// `Authorization: Basic` header and as the Bayeux handshake's `ext` token.
#[derive(Clone)]
pub struct Credentials {
    /// `tenant/user`, for messages (the password never is printed).
    pub login: String,
    /// base64 of `tenant/user:password`.
    pub token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}:***)", self.login)
    }
}

impl Credentials {
    pub fn parse(text: &str) -> Result<Credentials, String> {
        let malformed = || "credentials must be tenant/user:password".to_string();
        let (login, password) = text.split_once(':').ok_or_else(malformed)?;
        let (tenant, user) = login.split_once('/').ok_or_else(malformed)?;
        if tenant.is_empty() || user.is_empty() || password.is_empty() {
            return Err(malformed());
        }
        Ok(Credentials {
            login: login.to_owned(),
            token: STANDARD.encode(text),
        })
    }

    pub fn basic(&self) -> String {
        format!("Basic {}", self.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec![
            "realtime-load",
            "--server",
            "127.0.0.1:8080",
            "--admin",
            "acme/admin:secret",
        ];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn credentials_are_tenant_user_password() {
        let c = Credentials::parse("acme/device_7:pa:ss").unwrap();
        assert_eq!(c.login, "acme/device_7");
        assert_eq!(c.token, STANDARD.encode("acme/device_7:pa:ss"));
        assert_eq!(c.basic(), format!("Basic {}", c.token));
        assert!(!format!("{c:?}").contains("pa:ss"));
        for bad in [
            "acme/admin",
            "admin:pw",
            "/admin:pw",
            "acme/:pw",
            "acme/admin:",
            "",
        ] {
            assert!(Credentials::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_ten_thousand_clients_and_valid() {
        let a = args(&[]);
        assert_eq!(a.clients, 10_000);
        assert_eq!(a.host, "southgate.eu1.portico.localhost");
        assert!(a.validate().is_ok());
        assert_eq!(a.credentials_of(3).login, "acme/admin");
    }

    #[test]
    fn clients_spread_over_device_users_and_source_addresses() {
        let a = args(&[
            "--device-user",
            "acme/d1:x",
            "--device-user",
            "acme/d2:y",
            "--source-addresses",
            "3",
        ]);
        assert_eq!(a.credentials_of(0).login, "acme/d1");
        assert_eq!(a.credentials_of(1).login, "acme/d2");
        assert_eq!(a.credentials_of(2).login, "acme/d1");
        assert_eq!(a.source_of(0), "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(a.source_of(2), "127.0.0.3".parse::<IpAddr>().unwrap());
        assert_eq!(a.source_of(3), "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            args(&["--source-addresses", "1"]).source_of(5),
            "0.0.0.0".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(args(&["--clients", "0"]).validate().is_err());
        assert!(args(&["--rate", "0"]).validate().is_err());
        assert!(args(&["--rate", "NaN"]).validate().is_err());
        assert!(args(&["--duration", "0"]).validate().is_err());
        assert!(args(&["--creator-connections", "0"]).validate().is_err());
        assert!(args(&["--source-addresses", "0"]).validate().is_err());
        assert!(args(&["--source-addresses", "255"]).validate().is_err());
        assert!(Args::try_parse_from(["realtime-load", "--server", "127.0.0.1:1"]).is_err());
        assert!(Args::try_parse_from([
            "realtime-load",
            "--server",
            "127.0.0.1:1",
            "--admin",
            "nope"
        ])
        .is_err());
    }
}
