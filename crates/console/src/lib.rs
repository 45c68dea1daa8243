//! The admin REST API and the web console.
#![forbid(unsafe_code)]
