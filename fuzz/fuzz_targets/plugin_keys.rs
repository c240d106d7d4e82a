//! Public key, private key and `.sig` file contents; signatures verify only their image.
//! The property lives in `dito::fuzz_api::keys`, shared with the stable property tests.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dito::fuzz_api::keys::fuzz_one(data));
