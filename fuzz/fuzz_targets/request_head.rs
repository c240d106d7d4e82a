//! Request heads: parse whole, in two reads and into reused storage; accepted heads re-assembled
//! as HTTP/2 would (and, with byte 0's high bit, the assembler on arbitrary parts).
//! The property lives in `dito::fuzz_api::request`, shared with the stable property tests.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dito::fuzz_api::request::fuzz_one(data));
