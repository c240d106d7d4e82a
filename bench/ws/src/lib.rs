//! WebSocket pieces for Dito's bench (bench/README.md, "WebSocket echo"): the
//! frame codec and the opening handshake written by hand (RFC 6455 §4, §5), an
//! echo server (`ws-echo`) and a client that keeps exactly one message in
//! flight per connection (`ws-load`). Nothing here is fast by cleverness; it
//! is small so that the backend and the load generator cost little beside the
//! proxy being measured.

pub mod client;
pub mod frame;
pub mod handshake;
pub mod server;

/// splitmix64: masking keys and `Sec-WebSocket-Key`s. A bench client needs
/// keys that differ, not unpredictable ones.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (mixed with the clock and the process id).
    pub fn new(seed: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(seed ^ nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A 4-byte masking key.
    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }
}
