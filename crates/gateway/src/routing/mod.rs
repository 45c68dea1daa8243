//! Pure parsers and matchers of the routing layer; no I/O, fuzzed.

mod ant;
mod api_path;
mod host;
mod target;

pub use ant::*;
pub use api_path::*;
pub use host::*;
pub use target::*;
