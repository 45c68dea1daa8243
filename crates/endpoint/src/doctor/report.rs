//! One line per check: `ok` or `FAIL`, what was checked, what was found, and for a failure
//! the fix to ask IT for. Informational lines (`info`) neither pass nor fail.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Something that stops the tunnel.
    Fail,
    /// Worth knowing, blocks nothing.
    Info,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub verdict: Verdict,
    /// What was checked, e.g. `tcp wss.eu1.vpnrts.example.com:443`.
    pub what: String,
    /// What was found, in plain words.
    pub found: String,
    /// What to ask IT (or to change in the configuration) when it failed.
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(what: impl Into<String>, found: impl Into<String>) -> Check {
        Check {
            verdict: Verdict::Ok,
            what: what.into(),
            found: found.into(),
            fix: None,
        }
    }

    pub fn fail(
        what: impl Into<String>,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            verdict: Verdict::Fail,
            what: what.into(),
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn info(what: impl Into<String>, found: impl Into<String>) -> Check {
        Check {
            verdict: Verdict::Info,
            what: what.into(),
            found: found.into(),
            fix: None,
        }
    }

    pub fn failed(&self) -> bool {
        self.verdict == Verdict::Fail
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Fail => "FAIL",
            Verdict::Info => "info",
        };
        write!(f, "{word}  {}: {}", self.what, self.found)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n      fix: {fix}")?;
        }
        Ok(())
    }
}

/// Where the checks go as they are made (the command prints them at once, so a long idle
/// probe shows its progress).
pub trait Sink {
    fn check(&mut self, check: Check);
    /// A line that is not a check: headings, the allow-list.
    fn line(&mut self, text: String);
}

/// Collects checks, for tests and for the final verdict.
#[derive(Default)]
pub struct Collected {
    pub checks: Vec<Check>,
    pub lines: Vec<String>,
}

impl Sink for Collected {
    fn check(&mut self, check: Check) {
        self.checks.push(check);
    }
    fn line(&mut self, text: String) {
        self.lines.push(text);
    }
}

/// Prints each check and line to standard output as it comes, and remembers failures.
#[derive(Default)]
pub struct Printer {
    pub failures: usize,
}

impl Sink for Printer {
    fn check(&mut self, check: Check) {
        if check.failed() {
            self.failures += 1;
        }
        println!("{check}");
    }
    fn line(&mut self, text: String) {
        println!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_carries_its_fix_on_the_next_line() {
        let c = Check::fail(
            "tcp wss.example.com:443",
            "connection refused",
            "allow outbound TCP 443 to wss.example.com",
        );
        assert_eq!(
            c.to_string(),
            "FAIL  tcp wss.example.com:443: connection refused\n      fix: allow outbound \
             TCP 443 to wss.example.com"
        );
        assert_eq!(
            Check::ok("dns x", "1.2.3.4").to_string(),
            "ok    dns x: 1.2.3.4"
        );
    }
}
