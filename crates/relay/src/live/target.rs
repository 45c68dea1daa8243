//! The target an endpoint names when it opens a stream on the relay:
//! `session:{id}/listener:{n}`. The id is a connection session's id (hex, as the API makes
//! them); `n` is the index of the port mapping in the session's application, in the order
//! the API lists the listeners. The endpoint never names a host: the relay maps the
//! listener to the mapping's `host:port` itself, so a forged host cannot even be expressed.

use std::fmt;

/// The longest session id accepted; the API makes 32 hex digits.
const MAX_SESSION_ID: usize = 64;

/// A parsed `session:{id}/listener:{n}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTarget {
    pub session: String,
    pub listener: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("a stream target must read session:{{id}}/listener:{{n}}")]
    Shape,
    #[error("the session id must be 1..=64 hex digits")]
    SessionId,
    #[error("the listener must be a decimal number 0..=65535 without leading zeros")]
    Listener,
}

impl ListenerTarget {
    pub fn parse(target: &str) -> Result<ListenerTarget, TargetError> {
        let rest = target.strip_prefix("session:").ok_or(TargetError::Shape)?;
        let (session, listener) = rest.split_once("/listener:").ok_or(TargetError::Shape)?;
        let hex = session.bytes().all(|b| b.is_ascii_hexdigit());
        if session.is_empty() || session.len() > MAX_SESSION_ID || !hex {
            return Err(TargetError::SessionId);
        }
        Ok(ListenerTarget {
            session: session.to_string(),
            listener: parse_index(listener)?,
        })
    }
}

/// A canonical decimal: one spelling per number, so that the log says what was used.
fn parse_index(s: &str) -> Result<u16, TargetError> {
    let digits = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return Err(TargetError::Listener);
    }
    s.parse().map_err(|_| TargetError::Listener)
}

impl fmt::Display for ListenerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session:{}/listener:{}", self.session, self.listener)
    }
}

/// The target the relay opens on the dialling endpoint: `host:port`, with an IPv6 literal
/// in brackets so the port stays unambiguous.
pub fn dial_target(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        let t = ListenerTarget::parse("session:00ff/listener:3").unwrap();
        assert_eq!(t.session, "00ff");
        assert_eq!(t.listener, 3);
        assert_eq!(t.to_string(), "session:00ff/listener:3");
        assert_eq!(
            ListenerTarget::parse("session:a/listener:65535")
                .unwrap()
                .listener,
            65535
        );
    }

    #[test]
    fn malformed_targets_are_refused_with_their_reason() {
        let long = format!("session:{}/listener:0", "a".repeat(65));
        let table = [
            ("", TargetError::Shape),
            ("press.local:22", TargetError::Shape),
            ("session:ab", TargetError::Shape),
            ("session:ab/mapping:1", TargetError::Shape),
            ("session:/listener:1", TargetError::SessionId),
            ("session:xyz/listener:1", TargetError::SessionId),
            ("session:ab/../listener:1", TargetError::SessionId),
            (long.as_str(), TargetError::SessionId),
            ("session:ab/listener:", TargetError::Listener),
            ("session:ab/listener:01", TargetError::Listener),
            ("session:ab/listener:-1", TargetError::Listener),
            ("session:ab/listener:65536", TargetError::Listener),
            ("session:ab/listener:1/listener:2", TargetError::Listener),
            ("session:ab/listener:1 ", TargetError::Listener),
        ];
        for (input, expected) in table {
            assert_eq!(ListenerTarget::parse(input), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn dial_targets_bracket_ipv6() {
        assert_eq!(dial_target("press.local", 22), "press.local:22");
        assert_eq!(dial_target("fd00::7", 502), "[fd00::7]:502");
    }
}
