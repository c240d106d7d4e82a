//! The chunked decoder in arbitrary reads and data budgets against a reference decoder.
//! The property lives in `dito::fuzz_api::chunked`, shared with the stable property tests.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dito::fuzz_api::chunked::fuzz_one(data));
