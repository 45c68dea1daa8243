//! `portico admin site|device|member|endpoint|template|app|assignment|connection|audit`:
//! Remote Services administration of one tenant (`--tenant`) on the local store, through
//! the Remote Services API run in this process (see [`inprocess`]).

mod calls;
mod inprocess;
mod tables;

use crate::config::Config;
use anyhow::Result;
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;
use serde_json::Value;
use tables::Kind;

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Remote Services: sites, in a tree (works on the local store)
    #[command(subcommand)]
    Site(SiteCommand),
    /// Remote Services: devices in sites (works on the local store)
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Remote Services: users' roles on sites (works on the local store)
    #[command(subcommand)]
    Member(MemberCommand),
    /// Remote Services: device and service endpoints and their registration codes (works
    /// on the local store)
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Remote Services: the built-in Protocol Application templates
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Remote Services: Protocol Applications (works on the local store)
    #[command(subcommand, name = "app", alias = "application")]
    App(AppCommand),
    /// Remote Services: Protocol Applications assigned to devices (works on the local store)
    #[command(subcommand)]
    Assignment(AssignmentCommand),
    /// Remote Services: connection sessions (works on the local store)
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// Remote Services: the audit trail (works on the local store)
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// The tenant a command works in.
#[derive(Debug, Args)]
pub struct TenantArg {
    /// The tenant
    #[arg(long)]
    tenant: String,
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Add a site, at the top or under a parent site
    Add {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        name: String,
        /// The parent site
        #[arg(long)]
        parent: Option<String>,
    },
    /// The sites as a tree
    List {
        #[command(flatten)]
        t: TenantArg,
    },
    Show {
        #[command(flatten)]
        t: TenantArg,
        name: String,
    },
    /// Remove a site without devices or sub-sites
    Rm {
        #[command(flatten)]
        t: TenantArg,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    Add {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        name: String,
        #[arg(long)]
        site: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    List {
        #[command(flatten)]
        t: TenantArg,
    },
    Show {
        #[command(flatten)]
        t: TenantArg,
        name: String,
    },
    Rm {
        #[command(flatten)]
        t: TenantArg,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Give a user a role on a site and its sub-sites (replaces the role they had there)
    Set {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        site: String,
        #[arg(long)]
        user: String,
        /// site-owner or user
        #[arg(long)]
        role: String,
    },
    List {
        #[command(flatten)]
        t: TenantArg,
    },
    Rm {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        site: String,
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Add an endpoint; prints its one-time registration code (for `portico endpoint
    /// register --code …`)
    #[command(group(ArgGroup::new("binding").required(true).args(["device", "site", "user"])))]
    Add {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        name: String,
        /// A Device Endpoint of this device
        #[arg(long)]
        device: Option<String>,
        /// A Service Endpoint of this site
        #[arg(long)]
        site: Option<String>,
        /// A Service Endpoint of this user
        #[arg(long)]
        user: Option<String>,
    },
    List {
        #[command(flatten)]
        t: TenantArg,
    },
    Show {
        #[command(flatten)]
        t: TenantArg,
        name: String,
    },
    /// Revoke an endpoint for good: its credentials are withdrawn and its device's
    /// connections end
    Revoke {
        #[command(flatten)]
        t: TenantArg,
        name: String,
    },
    /// A new one-time registration code for an existing endpoint (e.g. a replaced device);
    /// registering with it withdraws the endpoint's earlier credentials
    Code {
        #[command(flatten)]
        t: TenantArg,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    List {
        #[command(flatten)]
        t: TenantArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Add a Protocol Application made from a template
    Add {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        name: String,
        /// What people call it, e.g. "Ticketing Server Access" [default: the name]
        #[arg(long, default_value = "")]
        label: String,
        /// A template id (`portico admin template list`): ssh, rdp, …, tcp, dtt-reverse
        #[arg(long)]
        template: String,
        /// A port mapping LOCAL:HOST:PORT, e.g. 2222:127.0.0.1:22 (repeatable; an IPv6
        /// host in brackets)
        #[arg(long = "map", value_name = "LOCAL:HOST:PORT", required = true, value_parser = parse_mapping)]
        mappings: Vec<Mapping>,
        /// DTT Reverse: the Service Endpoint that dials the mappings' targets
        #[arg(long)]
        target_endpoint: Option<String>,
        /// How long a connection session lasts, in seconds [default: 3600]
        #[arg(long)]
        session_timeout: Option<i64>,
    },
    List {
        #[command(flatten)]
        t: TenantArg,
    },
    Show {
        #[command(flatten)]
        t: TenantArg,
        name: String,
    },
    Rm {
        #[command(flatten)]
        t: TenantArg,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AssignmentCommand {
    /// Assign a Protocol Application to a device
    Add {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        device: String,
        #[arg(long)]
        app: String,
    },
    List {
        #[command(flatten)]
        t: TenantArg,
    },
    /// Withdraw an assignment; its open connections end
    Rm {
        #[command(flatten)]
        t: TenantArg,
        #[arg(long)]
        device: String,
        #[arg(long)]
        app: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    List {
        #[command(flatten)]
        t: TenantArg,
        /// Only the open ones
        #[arg(long)]
        open: bool,
    },
    /// End a connection session
    End {
        #[command(flatten)]
        t: TenantArg,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest records first
    List {
        #[command(flatten)]
        t: TenantArg,
        /// How many records (1-1000)
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

/// One port mapping as the API takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mapping {
    local_port: u16,
    target_host: String,
    target_port: u16,
}

/// `LOCAL:HOST:PORT`; the host may be an IPv6 address in brackets. The API checks the
/// rest (ports not 0, a valid host, no local port twice).
fn parse_mapping(text: &str) -> Result<Mapping, String> {
    let bad = || format!("\"{text}\" is not LOCAL:HOST:PORT, e.g. 2222:127.0.0.1:22");
    let (local, rest) = text.split_once(':').ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Mapping {
        local_port: local.parse().map_err(|_| bad())?,
        target_host: host.to_string(),
        target_port: port.parse().map_err(|_| bad())?,
    })
}

/// Runs `command`; `json` prints the API's answer as JSON instead of a table.
pub async fn run(command: &RemoteCommand, json: bool, config: &Config) -> Result<()> {
    let call = calls::call_for(command);
    let api = inprocess::RemoteApi::open(config, call.tenant).await?;
    let answer = api.send(call.method, &call.path, call.body.as_ref()).await;
    api.close().await;
    match answer? {
        None => println!("{}", call.done),
        Some(value) if json => println!("{}", serde_json::to_string_pretty(&value)?),
        Some(value) => print_answer(command, call.kind, &value),
    }
    Ok(())
}

fn print_answer(command: &RemoteCommand, kind: Kind, value: &Value) {
    match command {
        RemoteCommand::Endpoint(EndpointCommand::Add { .. } | EndpointCommand::Code { .. }) => {
            print!("{}", tables::table(kind, &value["endpoint"]));
            let code = value["registration_code"].as_str().unwrap_or("-");
            println!("registration code: {code}");
            eprintln!(
                "The code is shown this once; `portico endpoint register --code …` trades it for credentials."
            );
        }
        RemoteCommand::Endpoint(EndpointCommand::Revoke { .. }) => {
            print!("{}", tables::table(kind, value));
            eprintln!(
                "A running `portico serve` learns of this through the store: the device's \
                 connections stop within seconds and the endpoint opens no new stream; \
                 revoking through the API also cuts its tunnel at once."
            );
        }
        _ => print!("{}", tables::table(kind, value)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_with_ipv4_names_and_bracketed_ipv6() {
        let m = parse_mapping("2222:127.0.0.1:22").unwrap();
        assert_eq!(
            (m.local_port, m.target_host.as_str(), m.target_port),
            (2222, "127.0.0.1", 22)
        );
        assert_eq!(
            parse_mapping("80:plc.local:8080").unwrap().target_host,
            "plc.local"
        );
        assert_eq!(parse_mapping("2223:[::1]:22").unwrap().target_host, "::1");
    }

    #[test]
    fn malformed_mappings_are_refused_with_the_expected_shape() {
        for bad in [
            "2222",
            "2222:host",
            ":host:22",
            "x:host:22",
            "2222::22",
            "70000:h:22",
            "1:h:",
        ] {
            let e = parse_mapping(bad).unwrap_err();
            assert!(e.contains("LOCAL:HOST:PORT"), "{bad}: {e}");
        }
    }
}
