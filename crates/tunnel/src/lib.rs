//! The wire protocol shared by the Remote Services relay and the endpoint agent
//! (frames, stream multiplexing, credit flow control). It arrives with the Remote
//! Services capability; the crate exists now so that the dependency boundary is fixed:
//! it depends on nothing of the server.
#![forbid(unsafe_code)]
