//! Downstream limits and timeouts of one generation, in the shape the codec uses (spec §6).

use std::time::Duration;

pub use crate::config::HeadersWithUnderscores;

/// Size limits for a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Longest request line, without its CRLF (414 above it).
    pub max_request_line_bytes: usize,
    /// Largest header section: the bytes after the request line up to, not including, the
    /// empty line that ends the head (431 above it). Also bounds a chunked trailer section.
    pub max_header_bytes: usize,
    /// Most header fields (431 above it).
    pub max_headers: usize,
    /// Fields whose names contain `_`: dropped at parse (before routing, plugins and the
    /// upstream see them), kept, or refused with 400 (spec §3).
    pub headers_with_underscores: HeadersWithUnderscores,
}

/// Everything the HTTP/1.1 session needs to police a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub head: HeadLimits,
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub max_request_body_size: u64,
    /// How long a write to the client may make no progress (`request_limits.send_timeout`;
    /// `None`: no limit).
    pub send_timeout: Option<Duration>,
}
