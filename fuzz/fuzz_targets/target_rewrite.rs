//! `target_url` parsing and the upstream path rewrite of spec §3 against the spec's rule, and the
//! `RegexSet` lookup against a first-match scan.
//! The property lives in `dito::fuzz_api::route`, shared with the stable property tests.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dito::fuzz_api::route::fuzz_one(data));
