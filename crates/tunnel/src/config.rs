//! The settings of one side of a tunnel, shared by the multiplexer and the driver.

use std::time::Duration;

use crate::frame::{MAX_MAX_FRAME, MAX_WINDOW, MIN_MAX_FRAME};
use crate::mux::INITIAL_WINDOW;

/// Settings of one side of a tunnel.
#[derive(Clone, Debug)]
pub struct TunnelConfig {
    /// The largest `Data` payload this side accepts (declared in its hello).
    pub max_frame: u32,
    /// The receive window kept per stream; at least [`INITIAL_WINDOW`]. A larger window
    /// lets one stream fill a link with a long round trip, but it is also how much of that
    /// stream may sit in the connection's buffers ahead of an interactive stream's bytes.
    /// The default, 512 KiB, is the measured balance on loopback (`bench/tunnel`: with
    /// 256 KiB, 2.5 Gbit/s and 1.3 ms behind a bulk stream; 512 KiB, 3.1 Gbit/s and 1.9 ms;
    /// 4 MiB, 3.4 Gbit/s and 6 ms); it caps one stream at about 70 Mbit/s over a 60 ms
    /// round trip.
    pub receive_window: u32,
    /// The most streams open at once; further opens from the peer are reset.
    pub max_streams: usize,
    /// How often to ping when the link is otherwise quiet.
    pub keep_alive: Duration,
    /// A tunnel with no frame received for this long is dead.
    pub dead_after: Duration,
    /// Bytes of data queued for sending before writers wait.
    pub outbound_limit: usize,
    /// Largest outgoing message when several frames are packed into one.
    pub max_message: usize,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        TunnelConfig {
            max_frame: 256 * 1024,
            receive_window: 512 * 1024,
            max_streams: 1024,
            keep_alive: Duration::from_secs(20),
            dead_after: Duration::from_secs(45),
            outbound_limit: 1024 * 1024,
            max_message: 256 * 1024,
        }
    }
}

impl TunnelConfig {
    /// Brings every setting within what the protocol allows.
    pub(crate) fn clamped(mut self) -> Self {
        self.max_frame = self.max_frame.clamp(MIN_MAX_FRAME, MAX_MAX_FRAME);
        self.receive_window = self.receive_window.clamp(INITIAL_WINDOW, MAX_WINDOW);
        self.max_streams = self.max_streams.max(1);
        self.keep_alive = self.keep_alive.max(Duration::from_millis(1));
        self.dead_after = self.dead_after.max(self.keep_alive);
        self.outbound_limit = self.outbound_limit.max(MIN_MAX_FRAME as usize);
        self.max_message = self.max_message.max(MIN_MAX_FRAME as usize + 64);
        self
    }
}
