//! Dito: a thread-per-core, io_uring reverse proxy.
//!
//! **Control path** (one plain thread, may block): `cli` → `control::run` loads and validates
//! the YAML (`config`), decides the io driver and worker layout (`worker::runtime`,
//! `worker::cores`), binds one `SO_REUSEPORT` socket per worker (`control::listeners`), builds
//! an immutable `snapshot::Snapshot`, and starts the workers.
//!
//! **Data path** (one pinned monoio runtime per worker, nothing shared that two threads
//! write): `worker::listener` accepts → `http::session` reads and strictly parses each request
//! head (`http::request`, `http::chunked`, `http::body`) → `pipeline::handle` runs the
//! lifecycle (Dito's endpoints, method checks, routing, forwarding) → `http::response` writes
//! the answer. Errors Dito answers itself are `error::ProxyError`, rendered in one place.
//!
//! **Profiler** (`-enable-profiler` only): `observe::profiler` serves CPU profiles from its own
//! std thread; it samples every thread through `SIGPROF` and touches no worker state.

#[cfg(test)]
mod alloc_tests;
pub mod cli;
pub mod config;
pub mod control;
pub mod downstream;
pub mod endpoints;
pub mod error;
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(any(test, feature = "fuzz-api"))]
#[doc(hidden)]
pub mod fuzz_api;
pub mod fxhash;
pub mod h2;
pub mod http;
pub mod json;
pub mod lifecycle;
pub mod observe;
pub mod pipeline;
pub mod plugin;
pub mod relay;
pub mod request_id;
pub mod route;
pub mod snapshot;
pub mod sys;
#[cfg(test)]
mod test_certs;
pub mod tls;
pub mod upstream;
pub mod worker;
