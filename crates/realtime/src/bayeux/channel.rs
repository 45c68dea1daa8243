//! Bayeux channel names and the patterns clients subscribe with: `/a/b` names one channel,
//! `/a/*` every channel one segment below `/a`, `/a/**` every channel at any depth below
//! `/a`. Neither wildcard matches `/a` itself.

use super::Endpoint;

/// The longest channel name or pattern accepted.
pub const MAX_CHANNEL_LEN: usize = 256;

/// The kinds of things the real-time endpoint announces (`/measurements/<id>`…).
pub const REALTIME_KINDS: [&str; 5] = [
    "measurements",
    "events",
    "alarms",
    "operations",
    "managedobjects",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadChannel(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wildcard {
    None,
    /// `/*`: exactly one more segment.
    One,
    /// `/**`: one or more segments.
    Deep,
}

/// A validated channel name or subscription pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPattern {
    text: String,
    /// The segments before a trailing wildcard (all of them when there is none).
    prefix_len: usize,
    wildcard: Wildcard,
}

/// Segment characters: letters, digits and the Bayeux "mark" characters. `*` is allowed
/// only as a whole last segment.
fn valid_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_!~()$@.".contains(c)
}

impl ChannelPattern {
    /// Parses a channel name or pattern: `/` then non-empty segments of letters, digits
    /// and `-_!~()$@.`; the last segment may be `*` or `**`.
    pub fn parse(text: &str) -> Result<ChannelPattern, BadChannel> {
        if text.len() > MAX_CHANNEL_LEN {
            return Err(BadChannel(format!(
                "channel names are at most {MAX_CHANNEL_LEN} characters"
            )));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(BadChannel(format!("channel {text:?} must start with '/'")));
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let last = segments.len() - 1;
        let mut wildcard = Wildcard::None;
        for (i, segment) in segments.iter().enumerate() {
            match *segment {
                "" => return Err(BadChannel(format!("channel {text:?} has an empty segment"))),
                // `/*` and `/**` alone are every top-level channel, every channel.
                "*" | "**" if i == last => {
                    wildcard = if *segment == "*" {
                        Wildcard::One
                    } else {
                        Wildcard::Deep
                    };
                }
                s if s.chars().all(valid_segment_char) => {}
                _ => {
                    return Err(BadChannel(format!(
                        "channel {text:?}: a segment may hold letters, digits and -_!~()$@. \
                         and a wildcard only as the whole last segment"
                    )))
                }
            }
        }
        let prefix_len = if wildcard == Wildcard::None {
            segments.len()
        } else {
            last
        };
        Ok(ChannelPattern {
            text: text.to_owned(),
            prefix_len,
            wildcard,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_wildcard(&self) -> bool {
        self.wildcard != Wildcard::None
    }

    /// `/meta/**`: the protocol's own channels.
    pub fn is_meta(&self) -> bool {
        self.text == "/meta" || self.text.starts_with("/meta/")
    }

    /// `/service/**`: client-to-server messages, never broadcast.
    pub fn is_service(&self) -> bool {
        self.text == "/service" || self.text.starts_with("/service/")
    }

    /// Whether this pattern matches the channel `channel` (a name without wildcards).
    pub fn matches(&self, channel: &str) -> bool {
        let Some(rest) = channel.strip_prefix('/') else {
            return false;
        };
        let mut theirs = rest.split('/');
        for expected in self.text[1..].split('/').take(self.prefix_len) {
            if theirs.next() != Some(expected) {
                return false;
            }
        }
        let mut tail = 0usize;
        for segment in theirs {
            if segment.is_empty() {
                return false;
            }
            tail += 1;
        }
        match self.wildcard {
            Wildcard::None => tail == 0,
            Wildcard::One => tail == 1,
            Wildcard::Deep => tail >= 1,
        }
    }
}

/// The managed object a subscription of `endpoint` names (`/<id>`, `/<kind>/<id>`), if it
/// names one rather than a wildcard. Call after [`check_subscription`].
pub fn subscribed_object(endpoint: Endpoint, pattern: &ChannelPattern) -> Option<i64> {
    let id = match endpoint {
        Endpoint::Operations => pattern.as_str().get(1..)?,
        Endpoint::Realtime => pattern.as_str().get(1..)?.split_once('/')?.1,
    };
    id.parse().ok()
}

/// Whether a client of `endpoint` may subscribe to `pattern`; the error says what it may.
pub fn check_subscription(endpoint: Endpoint, pattern: &ChannelPattern) -> Result<(), BadChannel> {
    let segments: Vec<&str> = pattern.as_str()[1..].split('/').collect();
    let allowed = match endpoint {
        // `/<deviceId>` or `/*`.
        Endpoint::Operations => segments.len() == 1 && segments[0] != "**",
        // `/<kind>/<id or *>`.
        Endpoint::Realtime => {
            segments.len() == 2 && REALTIME_KINDS.contains(&segments[0]) && segments[1] != "**"
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(BadChannel(match endpoint {
            Endpoint::Operations => format!(
                "cannot subscribe to {:?}: the operations endpoint has the channels /<deviceId> and /*",
                pattern.as_str()
            ),
            Endpoint::Realtime => format!(
                "cannot subscribe to {:?}: the realtime endpoint has the channels \
                 /<measurements|events|alarms|operations|managedobjects>/<id or *>",
                pattern.as_str()
            ),
        }))
    }
}
