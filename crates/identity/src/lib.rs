//! Sessions, login, the OAuth 2.0 server, JWT minting and verification, CSRF.
//! Arrives with the identity capability; until then every registration declares
//! `auth = "none"` and the gateway forwards requests without identity.
#![forbid(unsafe_code)]

