//! Upstream response heads: never a panic, prefixes ask for more, framing per RFC 9112 §6.3,
//! and a head written back out parses the same.
//! The property lives in `dito::fuzz_api::response`, shared with the stable property tests.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dito::fuzz_api::response::fuzz_one(data));
