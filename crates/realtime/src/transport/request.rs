//! Turning an HTTP poll into Bayeux messages: the body (JSON, or a form with `message=`),
//! or the query of a callback-polling `GET`, within the size limit; and the JSONP
//! callback name, checked so it can only ever name a function.

use axum::body::Body;
use bytes::Bytes;
use http::{header, HeaderMap};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::error::TransportError;
use crate::bayeux::{Bayeux, Message};

/// The longest JSONP callback name accepted; real clients use short generated names
/// (`__jsonp1__`, `jQuery1234_5678`).
pub(super) const MAX_CALLBACK_LEN: usize = 128;

/// The messages of one poll, and the function to wrap the replies in when it is JSONP.
#[derive(Debug)]
pub(super) struct Poll {
    pub messages: Vec<Message>,
    pub callback: Option<Callback>,
}

/// A JSONP callback name that is safe to write into a script: JavaScript identifiers
/// joined by dots, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Callback(String);

impl Callback {
    pub fn parse(name: &str) -> Result<Callback, TransportError> {
        let identifier = |part: &str| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        };
        if name.len() <= MAX_CALLBACK_LEN && name.split('.').all(identifier) {
            Ok(Callback(name.to_owned()))
        } else {
            Err(TransportError::BadCallback {
                max: MAX_CALLBACK_LEN,
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `POST`: a JSON body (array or object), or a form body with `message=` (and `jsonp=`
/// for callback-polling), as faye and older CometD clients send it.
pub(super) async fn from_post(
    headers: &HeaderMap,
    body: Body,
    max_body: usize,
) -> Result<Poll, TransportError> {
    let too_large = TransportError::TooLarge { limit: max_body };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_body as u64) {
        return Err(too_large);
    }
    let body = read_limited(body, max_body).await?;
    if is_form(headers) {
        from_form(&body)
    } else {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(TransportError::Empty("the body is empty"));
        }
        Ok(Poll {
            messages: Bayeux::parse(&body)?,
            callback: None,
        })
    }
}

/// A `GET`'s query: `message=<json>`, and `jsonp=<callback>` for callback-polling.
pub(super) fn from_query(query: Option<&str>, max_body: usize) -> Result<Poll, TransportError> {
    let query = query.unwrap_or_default();
    if query.len() > max_body {
        return Err(TransportError::TooLarge { limit: max_body });
    }
    if !form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "message") {
        return Err(TransportError::NotAPoll);
    }
    from_form(query.as_bytes())
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The `message` (and optional `jsonp`) fields of a form; the first of each counts.
fn from_form(form: &[u8]) -> Result<Poll, TransportError> {
    if std::str::from_utf8(form).is_err() {
        return Err(TransportError::BadForm);
    }
    let mut message = None;
    let mut callback = None;
    for (name, value) in form_urlencoded::parse(form) {
        match &*name {
            "message" if message.is_none() => message = Some(value),
            "jsonp" if callback.is_none() => callback = Some(Callback::parse(&value)?),
            _ => {}
        }
    }
    let message = message.ok_or(TransportError::Empty(
        "the form has no `message` field (send message=<JSON array of Bayeux messages>)",
    ))?;
    Ok(Poll {
        messages: Bayeux::parse(message.as_bytes())?,
        callback,
    })
}

async fn read_limited(body: Body, max_body: usize) -> Result<Bytes, TransportError> {
    match Limited::new(body, max_body).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(TransportError::TooLarge { limit: max_body })
        }
        Err(error) => Err(TransportError::Unreadable(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_names_are_dotted_identifiers() {
        for good in [
            "cb",
            "__jsonp1__",
            "jQuery123_456",
            "$.x",
            "a.b.c",
            "_cometd$1",
        ] {
            assert!(Callback::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "", "1cb", "a..b", ".a", "a.", "alert(1)", "a b", "a;b", "a[0]", "a-b", "é",
        ] {
            assert!(Callback::parse(bad).is_err(), "{bad}");
        }
        assert!(Callback::parse(&"a".repeat(MAX_CALLBACK_LEN)).is_ok());
        assert!(Callback::parse(&"a".repeat(MAX_CALLBACK_LEN + 1)).is_err());
    }

    #[test]
    fn forms_carry_message_and_callback() {
        let poll =
            from_form(b"message=%5B%7B%22channel%22%3A%22%2Fmeta%2Fconnect%22%7D%5D&jsonp=cb")
                .unwrap();
        assert_eq!(poll.messages.len(), 1);
        assert_eq!(poll.callback, Some(Callback("cb".into())));
        assert!(matches!(
            from_form(b"jsonp=cb"),
            Err(TransportError::Empty(_))
        ));
        assert!(matches!(
            from_form(b"message=nope"),
            Err(TransportError::NotBayeux(_))
        ));
    }

    #[test]
    fn a_get_without_message_is_not_a_poll() {
        assert!(matches!(
            from_query(None, 100),
            Err(TransportError::NotAPoll)
        ));
        assert!(matches!(
            from_query(Some("jsonp=cb"), 100),
            Err(TransportError::NotAPoll)
        ));
        assert!(matches!(
            from_query(Some(&format!("message={}", "x".repeat(200))), 100),
            Err(TransportError::TooLarge { .. })
        ));
    }
}
