//! The firewall and proxy allow-list of a deployment, in a structured form: the binary
//! builds it from its configuration, `portico firewall-rules` prints it as text and the
//! console's Network page shows it as a table. One source, so both always agree.

use std::fmt::Write;

/// One host a site's network must let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRow {
    pub domain: String,
    pub region: String,
    pub host: String,
    pub port: u16,
    pub protocol: String,
    /// Who opens connections to the host, and what for.
    pub who: String,
}

/// Everything a site's IT department must allow (outbound only), and what firewalls and
/// proxies on the way must let through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// The one port clients use (443 behind the usual public listener).
    pub port: u16,
    /// Grouped by domain and region, in that order.
    pub rows: Vec<AllowRow>,
    pub advice: Vec<String>,
}

impl AllowList {
    /// The heading line of the list.
    pub fn heading(&self) -> String {
        format!(
            "Firewall and proxy allow-list for this Portico (outbound only; TCP {}, TLS):",
            self.port
        )
    }

    /// The list as plain text, one block per region of each domain, then the advice.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.heading());
        let mut group: Option<(&str, &str)> = None;
        for row in &self.rows {
            let this = (row.domain.as_str(), row.region.as_str());
            if group != Some(this) {
                let _ = writeln!(out, "\nRegion {} of {}:", row.region, row.domain);
                group = Some(this);
            }
            let _ = writeln!(
                out,
                "  {:<44} {:<5} {:<24} {}",
                row.host, row.port, row.protocol, row.who
            );
        }
        let _ = writeln!(out, "\nWhat firewalls and proxies must let through:");
        for line in &self.advice {
            let _ = writeln!(out, "- {line}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(domain: &str, region: &str, host: &str) -> AllowRow {
        AllowRow {
            domain: domain.into(),
            region: region.into(),
            host: host.into(),
            port: 443,
            protocol: "HTTPS".into(),
            who: "browsers".into(),
        }
    }

    #[test]
    fn text_groups_rows_by_region_and_domain_and_ends_with_the_advice() {
        let list = AllowList {
            port: 443,
            rows: vec![
                row("a.com", "eu1", "x.eu1.a.com"),
                row("a.com", "eu1", "y.eu1.a.com"),
                row("a.com", "us1", "x.us1.a.com"),
            ],
            advice: vec!["No TLS inspection.".into()],
        };
        let text = list.to_text();
        assert_eq!(text.matches("Region eu1 of a.com:").count(), 1);
        assert_eq!(text.matches("Region us1 of a.com:").count(), 1);
        assert!(text.starts_with(&list.heading()));
        assert!(text.contains("  x.eu1.a.com "));
        assert!(text.trim_end().ends_with("- No TLS inspection."));
    }
}
