//! HTTP/1.1 downstream: Dito's own strict codec on `httparse`.
//!
//! `request` and `chunked` are sans-IO parsers; `conn` and `response` are the read and write
//! halves of a client connection; `body` streams a request body; `session` is the keep-alive
//! loop that ties them to the pipeline. Worker threads only; nothing here knows about routes
//! or upstreams.

pub mod body;
pub mod chunked;
pub mod conn;
pub mod exchange;
pub mod headers;
pub mod limits;
pub mod request;
pub mod response;
pub mod response_head;
pub mod session;
pub mod span;
pub mod status;
pub mod trailers;
pub mod upgrade;
