//! FNV-1a 64-bit hashing, used by `/echo` to fingerprint the decoded request
//! body (`body-fnv64:` line) without keeping the body in memory.

/// FNV-1a 64 offset basis.
const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// Incremental FNV-1a 64 hasher; feeding a body in pieces gives the same
/// result as hashing it in one go.
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Fnv64 {
    /// A hasher that has seen no bytes yet.
    pub fn new() -> Self {
        Fnv64(OFFSET)
    }

    /// Feeds `bytes` into the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
        self.0 = h;
    }

    /// The hash of everything fed so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Fnv64;

    fn hash(data: &[u8]) -> u64 {
        let mut h = Fnv64::new();
        h.update(data);
        h.finish()
    }

    #[test]
    fn known_vectors() {
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn incremental_matches_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut h = Fnv64::new();
        for piece in data.chunks(7) {
            h.update(piece);
        }
        assert_eq!(h.finish(), hash(&data));
    }
}
