//! The messages of the control channel (`/ccf/`): JSON text, one message per WebSocket
//! message, tagged by `type`.
//!
//! Parsing is strict: the whole message is bounded before serde sees it, unknown fields are
//! refused, and every string and list is bounded afterwards. A hello with a version this
//! side does not speak is told apart from garbage, so the receiver can answer it with a
//! [`ControlMessage::Refused`] that says which versions it speaks.

use serde::{Deserialize, Serialize};

use crate::frame::{is_valid_target, Role};

/// The control protocol version this crate speaks.
pub const CONTROL_VERSION: u16 = 1;
/// The largest control message accepted, in bytes.
pub const MAX_CONTROL_MESSAGE: usize = 64 * 1024;
/// The most listeners one `Config` or `Connect` may carry.
pub const MAX_LISTENERS: usize = 256;
/// The longest session timeout a `connect` or `permit` may carry (30 days).
pub const MAX_TIMEOUT_SECS: u64 = 30 * 24 * 3600;
/// The longest identifier, name or free text in a control message.
pub const MAX_TEXT: usize = 256;

/// One control message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlMessage {
    /// The endpoint's first message.
    Hello {
        version: u16,
        role: Role,
        /// The endpoint's id as registered (RS-9).
        endpoint: String,
        /// The agent's software version, for the endpoint directory.
        agent: String,
    },
    /// The relay's answer to an accepted hello.
    Welcome {
        version: u16,
        /// How often the endpoint sends `KeepAlive`, in seconds.
        keep_alive_secs: u32,
    },
    /// The listeners the endpoint keeps open while it is connected, replacing any earlier
    /// configuration (e.g. a Device Endpoint's DTT Reverse listeners).
    Config {
        revision: u64,
        listeners: Vec<Listener>,
    },
    /// A connection session starts: open these listeners until `Disconnect` or the timeout.
    Connect {
        session: String,
        listeners: Vec<Listener>,
        /// The session timeout (RS-8), in seconds.
        timeout_secs: u64,
    },
    /// A connection session starts on the dialling side: for the session's time, the relay
    /// may open streams to these `host:port` targets, and to nothing else. The dialling
    /// endpoint checks every stream it is asked to open against its permits, so a forged or
    /// misrouted open is refused even when it reaches the endpoint (RS-7).
    Permit {
        session: String,
        targets: Vec<String>,
        /// The session timeout (RS-8), in seconds.
        timeout_secs: u64,
    },
    /// A connection session ends: close its listeners and streams, drop its permits.
    Disconnect {
        session: String,
        reason: DisconnectReason,
    },
    KeepAlive {
        nonce: u64,
    },
    /// The sender refuses the peer (bad version, revoked credentials) and closes.
    Refused {
        reason: RefusalReason,
        message: String,
    },
}

/// A local listener: accept on `local_port`, and open a stream to `target` per connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub id: u32,
    pub local_port: u16,
    /// The opaque target the stream's `Open` carries (`mapping:3`, `host:port`).
    pub target: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// The user ended the session.
    Ended,
    /// The session reached its timeout (RS-8).
    TimedOut,
    /// An administrator withdrew the grant or the assignment.
    Revoked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    UnsupportedVersion,
    Unauthorized,
    Revoked,
    Malformed,
}

/// Why a control message was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control message of {0} bytes exceeds {MAX_CONTROL_MESSAGE}")]
    TooLarge(usize),
    #[error("unsupported control protocol version {got}; this side speaks {CONTROL_VERSION}")]
    UnsupportedVersion { got: u16 },
    #[error("malformed control message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("control message field {field} is invalid: {problem}")]
    Invalid {
        field: &'static str,
        problem: &'static str,
    },
}

impl ControlError {
    /// The message to answer this error with before closing the channel.
    pub fn refusal(&self) -> ControlMessage {
        let reason = match self {
            ControlError::UnsupportedVersion { .. } => RefusalReason::UnsupportedVersion,
            _ => RefusalReason::Malformed,
        };
        ControlMessage::Refused {
            reason,
            message: self.to_string(),
        }
    }
}

/// Only what is needed to recognise a hello of another version, whatever else it carries.
#[derive(Deserialize)]
struct VersionProbe {
    #[serde(rename = "type")]
    kind: String,
    version: Option<u16>,
}

impl ControlMessage {
    /// Parses and validates one control message.
    pub fn decode(text: &[u8]) -> Result<ControlMessage, ControlError> {
        if text.len() > MAX_CONTROL_MESSAGE {
            return Err(ControlError::TooLarge(text.len()));
        }
        let message: ControlMessage = match serde_json::from_slice(text) {
            Ok(message) => message,
            Err(error) => {
                // A newer peer's hello may carry fields this version does not know; answer
                // it with the version mismatch, which tells its operator what to do.
                if let Ok(VersionProbe {
                    kind,
                    version: Some(got),
                }) = serde_json::from_slice(text)
                {
                    if (kind == "hello" || kind == "welcome") && got != CONTROL_VERSION {
                        return Err(ControlError::UnsupportedVersion { got });
                    }
                }
                return Err(ControlError::Malformed(error));
            }
        };
        message.validate()?;
        Ok(message)
    }

    /// Serialises the message. Serialising these types cannot fail (no maps with non-string
    /// keys, no foreign `Serialize` impls), so the fallback is unreachable in practice.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), ControlError> {
        match self {
            ControlMessage::Hello {
                version,
                endpoint,
                agent,
                ..
            } => {
                check_version(*version)?;
                check_text("endpoint", endpoint, false)?;
                check_text("agent", agent, true)
            }
            ControlMessage::Welcome {
                version,
                keep_alive_secs,
            } => {
                check_version(*version)?;
                if *keep_alive_secs == 0 || *keep_alive_secs > 3600 {
                    return Err(invalid("keep_alive_secs", "must be 1..=3600"));
                }
                Ok(())
            }
            ControlMessage::Config { listeners, .. } => check_listeners(listeners),
            ControlMessage::Connect {
                session,
                listeners,
                timeout_secs,
            } => {
                check_text("session", session, false)?;
                if *timeout_secs == 0 || *timeout_secs > MAX_TIMEOUT_SECS {
                    return Err(invalid("timeout_secs", "must be 1 second to 30 days"));
                }
                check_listeners(listeners)
            }
            ControlMessage::Permit {
                session,
                targets,
                timeout_secs,
            } => {
                check_text("session", session, false)?;
                if *timeout_secs == 0 || *timeout_secs > MAX_TIMEOUT_SECS {
                    return Err(invalid("timeout_secs", "must be 1 second to 30 days"));
                }
                if targets.len() > MAX_LISTENERS {
                    return Err(invalid("targets", "too many"));
                }
                if !targets.iter().all(|t| is_valid_target(t)) {
                    return Err(invalid("targets", "empty, too long or not printable"));
                }
                Ok(())
            }
            ControlMessage::Disconnect { session, .. } => check_text("session", session, false),
            ControlMessage::KeepAlive { .. } => Ok(()),
            ControlMessage::Refused { message, .. } => check_text("message", message, true),
        }
    }
}

fn invalid(field: &'static str, problem: &'static str) -> ControlError {
    ControlError::Invalid { field, problem }
}

fn check_version(version: u16) -> Result<(), ControlError> {
    if version == CONTROL_VERSION {
        Ok(())
    } else {
        Err(ControlError::UnsupportedVersion { got: version })
    }
}

fn check_text(field: &'static str, text: &str, may_be_empty: bool) -> Result<(), ControlError> {
    if text.is_empty() && !may_be_empty {
        return Err(invalid(field, "must not be empty"));
    }
    if text.len() > MAX_TEXT {
        return Err(invalid(field, "too long"));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

fn check_listeners(listeners: &[Listener]) -> Result<(), ControlError> {
    if listeners.len() > MAX_LISTENERS {
        return Err(invalid("listeners", "too many"));
    }
    for (index, listener) in listeners.iter().enumerate() {
        if listener.local_port == 0 {
            return Err(invalid("listeners.local_port", "must not be 0"));
        }
        if !is_valid_target(&listener.target) {
            return Err(invalid(
                "listeners.target",
                "empty, too long or not printable",
            ));
        }
        let duplicate = listeners[..index]
            .iter()
            .any(|other| other.id == listener.id || other.local_port == listener.local_port);
        if duplicate {
            return Err(invalid("listeners", "duplicate id or local port"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(id: u32, port: u16) -> Listener {
        Listener {
            id,
            local_port: port,
            target: format!("mapping:{id}"),
        }
    }

    #[test]
    fn every_message_round_trips() {
        let messages = vec![
            ControlMessage::Hello {
                version: CONTROL_VERSION,
                role: Role::Device,
                endpoint: "ep-7".into(),
                agent: "portico 0.1.0".into(),
            },
            ControlMessage::Welcome {
                version: CONTROL_VERSION,
                keep_alive_secs: 20,
            },
            ControlMessage::Config {
                revision: 3,
                listeners: vec![listener(1, 8080), listener(2, 8443)],
            },
            ControlMessage::Connect {
                session: "s-1".into(),
                listeners: vec![listener(1, 2222)],
                timeout_secs: 3600,
            },
            ControlMessage::Permit {
                session: "s-1".into(),
                targets: vec!["127.0.0.1:22".into(), "plc-7.local:502".into()],
                timeout_secs: 3600,
            },
            ControlMessage::Disconnect {
                session: "s-1".into(),
                reason: DisconnectReason::TimedOut,
            },
            ControlMessage::KeepAlive { nonce: 9 },
            ControlMessage::Refused {
                reason: RefusalReason::Revoked,
                message: "endpoint revoked".into(),
            },
        ];
        for message in messages {
            let text = message.encode();
            assert_eq!(ControlMessage::decode(text.as_bytes()).unwrap(), message);
        }
    }

    #[test]
    fn the_wire_form_is_tagged_json() {
        let text = ControlMessage::KeepAlive { nonce: 1 }.encode();
        assert_eq!(text, r#"{"type":"keep_alive","nonce":1}"#);
    }

    #[test]
    fn another_version_is_refused_with_a_message() {
        for text in [
            r#"{"type":"hello","version":2,"role":"device","endpoint":"e","agent":"a"}"#,
            r#"{"type":"hello","version":2,"role":"device","endpoint":"e","agent":"a","new":1}"#,
        ] {
            let error = ControlMessage::decode(text.as_bytes()).unwrap_err();
            assert!(
                matches!(error, ControlError::UnsupportedVersion { got: 2 }),
                "{error:?}"
            );
            let ControlMessage::Refused { reason, message } = error.refusal() else {
                panic!("not a refusal");
            };
            assert_eq!(reason, RefusalReason::UnsupportedVersion);
            assert!(message.contains("version 2"), "{message}");
        }
    }

    #[test]
    fn malformed_and_out_of_bounds_messages_are_refused() {
        let long = "x".repeat(MAX_TEXT + 1);
        let many: Vec<String> = (0..=MAX_LISTENERS as u32)
            .map(|id| format!(r#"{{"id":{id},"local_port":{},"target":"t"}}"#, id + 1))
            .collect();
        let cases = [
            "",
            "null",
            "[]",
            r#"{"type":"nope"}"#,
            r#"{"nonce":1}"#,
            r#"{"type":"keep_alive","nonce":1,"extra":true}"#,
            r#"{"type":"keep_alive","nonce":-1}"#,
            r#"{"type":"hello","version":1,"role":"robot","endpoint":"e","agent":"a"}"#,
            r#"{"type":"hello","version":1,"role":"device","endpoint":"","agent":"a"}"#,
            r#"{"type":"hello","version":1,"role":"device","endpoint":"a\u0000b","agent":"a"}"#,
            r#"{"type":"welcome","version":1,"keep_alive_secs":0}"#,
            r#"{"type":"config","revision":1,"listeners":[{"id":1,"local_port":0,"target":"t"}]}"#,
            r#"{"type":"config","revision":1,"listeners":[{"id":1,"local_port":1,"target":""}]}"#,
            r#"{"type":"config","revision":1,"listeners":[{"id":1,"local_port":1,"target":"t","x":1}]}"#,
            r#"{"type":"config","revision":1,"listeners":[{"id":1,"local_port":1,"target":"t"},{"id":1,"local_port":2,"target":"t"}]}"#,
            r#"{"type":"config","revision":1,"listeners":[{"id":1,"local_port":70000,"target":"t"}]}"#,
            r#"{"type":"connect","session":"s","listeners":[],"timeout_secs":0}"#,
            r#"{"type":"disconnect","session":"s","reason":"bored"}"#,
            r#"{"type":"permit","session":"s","targets":["h:1"],"timeout_secs":0}"#,
            r#"{"type":"permit","session":"s","targets":["h:1"],"timeout_secs":18446744073709551615}"#,
            r#"{"type":"connect","session":"s","listeners":[],"timeout_secs":2592001}"#,
            r#"{"type":"permit","session":"s","targets":[""],"timeout_secs":1}"#,
            r#"{"type":"permit","session":"","targets":[],"timeout_secs":1}"#,
        ];
        for text in cases {
            let result = ControlMessage::decode(text.as_bytes());
            assert!(result.is_err(), "{text} was accepted: {result:?}");
        }
        let long_session =
            format!(r#"{{"type":"disconnect","session":"{long}","reason":"ended"}}"#);
        assert!(matches!(
            ControlMessage::decode(long_session.as_bytes()),
            Err(ControlError::Invalid {
                field: "session",
                ..
            })
        ));
        let too_many = format!(
            r#"{{"type":"config","revision":1,"listeners":[{}]}}"#,
            many.join(",")
        );
        assert!(matches!(
            ControlMessage::decode(too_many.as_bytes()),
            Err(ControlError::Invalid {
                field: "listeners",
                ..
            })
        ));
        let huge = vec![b' '; MAX_CONTROL_MESSAGE + 1];
        assert!(matches!(
            ControlMessage::decode(&huge),
            Err(ControlError::TooLarge(_))
        ));
    }
}
