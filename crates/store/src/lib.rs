//! Portico's data model and its persistence.
#![forbid(unsafe_code)]

pub mod model;
pub use model::*;
