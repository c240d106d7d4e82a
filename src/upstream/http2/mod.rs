//! HTTP/2 to upstreams (`transport.http.force_http2: true`, spec §5): ALPN `h2` on https
//! targets, prior knowledge on http ones, one multiplexed connection per pool key per worker
//! ([`conns`]), each request one stream ([`exchange`]) whose response is relayed by the same
//! code as HTTP/1.1's ([`body`] makes the stream's DATA a byte source). Worker thread only.

pub mod body;
pub mod conns;
pub mod exchange;
mod open;
pub mod request;

pub use conns::H2Conns;
pub use exchange::forward;
