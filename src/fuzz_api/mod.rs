//! Property checks over the parsers that untrusted bytes reach, shared by the cargo-fuzz
//! targets (`fuzz/`, which enable the `fuzz-api` feature) and the property tests that CI runs
//! on stable (`proptests`, under `cfg(test)`). Each `check_*` function takes one input, runs
//! the code under test, and panics when a property does not hold, so a fuzzer reports the
//! input as a crash and proptest shrinks it. Nothing here is compiled into the shipped binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod chunked;
pub mod config;
pub mod keys;
pub mod request;
pub mod response;
pub mod route;

#[cfg(test)]
mod proptests;
