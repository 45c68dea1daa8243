//! Pure parsers and matchers of the routing layer; no I/O, fuzzed.

mod ant;
mod api_path;
mod host;
mod target;

pub use ant::*;
pub use api_path::*;
pub use host::*;
pub use target::*;

/// `text` split at the first `sep`, an ASCII byte. These parsers run on every request,
/// and splitting at a byte is cheaper than the standard library's search for a `char`,
/// which showed in per-request profiles.
fn cut(text: &str, sep: u8) -> Option<(&str, &str)> {
    let at = text.bytes().position(|b| b == sep)?;
    // An ASCII byte always stands on a character boundary.
    Some((&text[..at], &text[at + 1..]))
}
