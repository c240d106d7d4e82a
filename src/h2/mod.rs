//! HTTP/2 to clients (issue 9), with the `h2` crate over monoio's `poll-io` streams.
//!
//! [`serve`] runs one HTTP/2 connection: it is generic over the IO type, so the plain
//! listener hands it a TCP stream after the prior-knowledge preface (h2c) and the TLS
//! listener can hand it a TLS stream after ALPN `h2` (its completion-style halves wrapped in
//! [`RentIo`]). Each stream becomes one request on the
//! protocol-neutral pipeline through [`stream::H2Exchange`]; [`head`] turns the
//! pseudo-headers and fields into a [`crate::http::request::RequestHead`]. Worker thread
//! only: the connection and its streams are `!Send` and run as local tasks.

pub mod activity;
mod body;
mod conn;
mod head;
mod io;
mod rent;
mod stream;

pub use conn::serve;
pub use io::Prefixed;
pub use rent::RentIo;
