//! Device Connectivity: the device REST API, the Bayeux notification server and
//! operations. Arrives with the Device Connectivity capability.
#![forbid(unsafe_code)]
