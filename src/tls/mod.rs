//! TLS on both sides: the shared record pump over monoio sockets ([`io`]) and the listener's
//! per-worker server configs ([`server`]).

pub mod io;
pub mod server;
