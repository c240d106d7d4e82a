//! Request IDs (spec §3 step 5): keep a client's well-formed `X-Request-ID`, else make one.
//!
//! Each worker owns one [`IdGenerator`]: a splitmix64 stream seeded from the OS-randomised
//! `RandomState`, so generating an ID takes no lock, no syscall and no shared state.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

/// Longest client-supplied ID that is kept.
pub const MAX_CLIENT_ID_LEN: usize = 128;

/// True when a client's `X-Request-ID` may be propagated: 1–128 visible ASCII characters.
pub fn is_acceptable_client_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_CLIENT_ID_LEN && v.iter().all(|b| b.is_ascii_graphic())
}

/// Per-worker generator of 32-character lowercase hex IDs.
pub struct IdGenerator {
    state: Cell<u64>,
}

impl Default for IdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

impl IdGenerator {
    pub fn new() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        IdGenerator {
            state: Cell::new(h.finish()),
        }
    }

    fn next_u64(&self) -> u64 {
        let s = self.state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A new random ID: 32 lowercase hex characters.
    pub fn generate(&self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }

    /// The client's ID when acceptable, else a new one.
    pub fn for_request(&self, client: Option<&[u8]>) -> String {
        match client {
            Some(v) if is_acceptable_client_id(v) => String::from_utf8_lossy(v).into_owned(),
            _ => self.generate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_32_hex_and_differ() {
        let g = IdGenerator::new();
        let (a, b) = (g.generate(), g.generate());
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn client_ids_are_validated() {
        let g = IdGenerator::new();
        assert_eq!(g.for_request(Some(b"abc-1")), "abc-1");
        assert_eq!(g.for_request(Some(b"has space")).len(), 32);
        assert_eq!(g.for_request(Some(b"")).len(), 32);
        assert_eq!(g.for_request(Some(&[b'a'; 129])).len(), 32);
        assert_eq!(g.for_request(Some(&[b'a'; 128])).len(), 128);
    }
}
