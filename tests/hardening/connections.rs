//! Hardening tests: connections (issue 17). Pooled upstream connections the upstream closed
//! while they sat idle (`idle_pool`, spec §4), clients that stop reading their response
//! (`send_timeout`, spec §6), HTTP/2 requests whose DATA contradicts their `content-length`
//! (`h2_framing`, RFC 9113 §8.1.1), and log lines a client can multiply (`log_flood`). The
//! purpose-built peers they drive: upstreams in `peers` (idle-closing) and `flood` (a body far
//! larger than any socket buffer), and `raw_h2`, an HTTP/2 client that writes frames byte for
//! byte, so it can send what the `h2` crate refuses to.

mod flood;
mod h2_framing;
mod idle_pool;
mod log_flood;
mod peers;
mod raw_h2;
mod send_timeout;
