//! The relay's live side: endpoint tunnels while they are connected. Transport-agnostic:
//! a tunnel arrives as any message transport (the WebSocket plumbing maps its messages to
//! `Bytes`), so tests drive it over the tunnel crate's in-memory pair.
//!
//! - [`directory`]: which endpoint is online, since when, from where; one tunnel each;
//! - [`target`]: the stream targets endpoints open on the relay;
//! - [`join`]: a stream from one endpoint joined to a stream on the other (RS-7, byte counts);
//! - [`lanes`]: the spare lanes endpoints keep for streams of their own (one WebSocket each);
//! - [`pump`]: carrying a joined stream's bytes between its two sides, and moving a side
//!   from its tunnel to a lane;
//! - [`session_watch`]: one recheck per open session, ending all of its streams with it;
//! - [`relay`]: attaching an endpoint's tunnel and serving the streams it opens;
//! - [`cluster`]: a node of a cluster: the directory's leases in the database;
//! - [`link`]: streams to endpoints whose tunnels other nodes hold;
//! - [`reach`]: opening a stream on an endpoint, here or on the node holding it;
//! - [`control`]: the control channels (`/ccf/`): sessions announced, timed out, cut;
//! - [`clientless`]: a connection session's device web interface in the browser (RS-10).

pub mod clientless;
pub mod cluster;
pub mod control;
pub mod directory;
pub mod join;
pub mod lanes;
pub mod link;
pub(crate) mod pump;
pub mod reach;
pub mod relay;
pub(crate) mod session_watch;
pub mod target;

pub use cluster::{Cluster, ClusterOptions};
pub use control::{ChannelEnd, ControlChannelError, ControlHub, ControlOptions, RS_SESSIONS};
pub use directory::{Directory, EndpointKey, EndpointKind, LaneRefusal, Presence};
pub use join::{JoinError, Joiner, Route, StreamEnd, Transfer, DEFAULT_RECHECK};
pub use lanes::Lanes;
pub use relay::{AttachError, LiveOptions, Relay};
pub use target::{ListenerTarget, TargetError};
