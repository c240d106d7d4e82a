//! Hardening tests: connections (issue 17). Pooled upstream connections the upstream closed
//! while they sat idle (`idle_pool`, spec §4). The purpose-built peers they drive: upstreams
//! in `peers` (idle-closing).

mod idle_pool;
mod peers;
