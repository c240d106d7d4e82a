//! Config text → validation → snapshot: errors, never a panic; accepted limits work in the codec.
//! The property lives in `dito::fuzz_api::config`, shared with the stable property tests.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dito::fuzz_api::config::fuzz_one(data));
