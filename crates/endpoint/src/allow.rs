//! The Device Endpoint's own allow-list (RS-7): the `host:port` pairs it agrees to dial,
//! whatever the backend asks. Checked in addition to the backend's check, never instead.

use std::fmt;

/// One allowed `host:port` pattern, e.g. `plc-7.factory.local:502`, `*.cell-3.local:*`,
/// `10.0.4.12:8000-8080`, `[fd00::7]:22`.
#[derive(Clone, PartialEq, Eq)]
pub struct AllowPattern {
    host: HostPattern,
    port: PortPattern,
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.local`: any name below `example.local`, not the name itself.
    Below(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

/// The list of patterns; a target is allowed when any pattern matches it.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AllowList {
    patterns: Vec<AllowPattern>,
}

impl AllowList {
    /// Parses every pattern; the error names the pattern and what is wrong with it.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let patterns = patterns
            .iter()
            .map(|p| AllowPattern::parse(p.as_ref()).map_err(|e| format!("`{}`: {e}", p.as_ref())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowList { patterns })
    }

    /// Whether the endpoint may dial `host:port`.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = normalize_host(host);
        self.patterns.iter().any(|p| p.matches(&host, port))
    }

    pub fn patterns(&self) -> &[AllowPattern] {
        &self.patterns
    }
}

impl AllowPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (host, port) = split_host_port(text)?;
        let host = normalize_host(host);
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(parent) = host.strip_prefix("*.") {
            check_host(parent)?;
            HostPattern::Below(parent.to_string())
        } else {
            check_host(&host)?;
            HostPattern::Exact(host)
        };
        Ok(AllowPattern {
            host,
            port: parse_port_pattern(port)?,
        })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Below(parent) => host
                .strip_suffix(parent.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Range(low, high) => (low..=high).contains(&port),
        };
        host_ok && port_ok
    }
}

impl fmt::Debug for AllowPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for AllowPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Any => f.write_str("*")?,
            HostPattern::Exact(h) if h.contains(':') => write!(f, "[{h}]")?,
            HostPattern::Exact(h) => f.write_str(h)?,
            HostPattern::Below(h) => write!(f, "*.{h}")?,
        }
        match self.port {
            PortPattern::Any => f.write_str(":*"),
            PortPattern::Range(l, h) if l == h => write!(f, ":{l}"),
            PortPattern::Range(l, h) => write!(f, ":{l}-{h}"),
        }
    }
}

/// Splits `host:port` and `[v6]:port`; a pattern without a port is refused rather than
/// guessed, because "every port" should be written down as `:*`.
fn split_host_port(text: &str) -> Result<(&str, &str), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address lacks its `]`")?;
        let port = after
            .strip_prefix(':')
            .ok_or("expected `:port` after the IPv6 address")?;
        return Ok((host, port));
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or("expected host:port (use `:*` for every port)")?;
    if host.contains(':') {
        return Err("write an IPv6 address in brackets, e.g. `[fd00::1]:22`".into());
    }
    Ok((host, port))
}

fn parse_port_pattern(text: &str) -> Result<PortPattern, String> {
    if text == "*" {
        return Ok(PortPattern::Any);
    }
    let port = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("`{p}` is not a port (1-65535)")),
            Ok(n) => Ok(n),
        }
    };
    match text.split_once('-') {
        Some((low, high)) => {
            let (low, high) = (port(low)?, port(high)?);
            if low > high {
                return Err(format!("the port range {low}-{high} is empty"));
            }
            Ok(PortPattern::Range(low, high))
        }
        None => {
            let p = port(text)?;
            Ok(PortPattern::Range(p, p))
        }
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host.contains('*') {
        return Err("`*` is allowed only alone or as a leading `*.`".into());
    }
    if host
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
    {
        return Err("the host has characters a host name cannot have".into());
    }
    Ok(())
}

/// Host names compare without case and without a trailing dot; IPv6 without brackets.
pub(crate) fn normalize_host(host: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(p: &[&str]) -> AllowList {
        AllowList::parse(p).unwrap()
    }

    #[test]
    fn exact_host_and_port() {
        let l = list(&["plc-7.factory.local:502"]);
        assert!(l.allows("plc-7.factory.local", 502));
        assert!(l.allows("PLC-7.Factory.Local.", 502));
        assert!(!l.allows("plc-7.factory.local", 503));
        assert!(!l.allows("plc-8.factory.local", 502));
    }

    #[test]
    fn wildcards_and_ranges() {
        let l = list(&["*.cell-3.local:*", "10.0.4.12:8000-8080", "[FD00::7]:22"]);
        assert!(l.allows("a.cell-3.local", 1));
        assert!(l.allows("b.a.cell-3.local", 65535));
        assert!(!l.allows("cell-3.local", 22), "`*.` is below the name only");
        assert!(!l.allows("xcell-3.local", 22));
        assert!(l.allows("10.0.4.12", 8000));
        assert!(l.allows("10.0.4.12", 8080));
        assert!(!l.allows("10.0.4.12", 8081));
        assert!(l.allows("fd00::7", 22));
        assert!(l.allows("[fd00::7]", 22));
        assert!(!l.allows("fd00::8", 22));
        assert!(list(&["*:*"]).allows("anything", 9));
        assert!(!AllowList::default().allows("localhost", 22));
    }

    #[test]
    fn bad_patterns_are_named() {
        for (bad, why) in [
            ("plc", "host:port"),
            ("plc:0", "not a port"),
            ("plc:70000", "not a port"),
            ("plc:90-80", "empty"),
            ("fd00::1:22", "brackets"),
            ("pl*c:22", "`*`"),
            (":22", "empty"),
            ("a b:22", "characters"),
            ("[fd00::1]22", "`:port`"),
        ] {
            let err = AllowList::parse(&[bad]).unwrap_err();
            assert!(err.contains(bad) && err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn patterns_print_as_written() {
        let l = list(&["*.a.local:*", "h:1-2", "[fd00::7]:22", "*:80"]);
        let shown: Vec<String> = l.patterns().iter().map(|p| p.to_string()).collect();
        assert_eq!(shown, ["*.a.local:*", "h:1-2", "[fd00::7]:22", "*:80"]);
    }
}
