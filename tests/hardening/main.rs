//! Black-box tests for the hardening defects of issue 17, one module per area: the upstream
//! response side (`response`), the client request side and its limits (`request`), worker and
//! process lifecycle (`lifecycle`), connections that stop making progress or sit idle
//! (`connections`), and failed uploads to HTTP/2 upstreams (`upstream_h2`). Each test starts the real `dito` binary against real loopback peers.
//!
//! One test binary for all of them, so the crate is linked once for the lot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../proxy_common/mod.rs"]
mod proxy_common;
#[path = "../support/mod.rs"]
mod support;

mod connections;
mod lifecycle;
mod request;
mod response;
mod upstream_h2;
