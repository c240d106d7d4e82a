//! WebSocket frames (RFC 6455 §5.2): parsing a header from the front of a
//! buffer, (un)masking, and encoding a whole frame. Payloads above
//! `MAX_PAYLOAD` are refused rather than buffered.

/// Continuation frame.
pub const OP_CONT: u8 = 0x0;
/// Text frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame.
pub const OP_PING: u8 = 0x9;
/// Pong frame.
pub const OP_PONG: u8 = 0xA;

/// The largest payload either binary buffers (16 MiB).
pub const MAX_PAYLOAD: usize = 16 << 20;
/// The longest frame header: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER: usize = 14;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// FIN bit.
    pub fin: bool,
    /// Opcode (low 4 bits of the first byte).
    pub opcode: u8,
    /// Masking key, when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Bytes of header before the payload.
    pub header_len: usize,
    /// Payload bytes after the header.
    pub payload_len: usize,
}

impl Header {
    /// Header plus payload.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// A header that cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// RSV bits set (no extension is negotiated here).
    Reserved,
    /// Payload longer than `MAX_PAYLOAD`.
    TooLarge(u64),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Reserved => write!(f, "frame with RSV bits set"),
            FrameError::TooLarge(n) => {
                write!(f, "frame payload of {n} bytes (limit {MAX_PAYLOAD})")
            }
        }
    }
}

/// The header at the front of `buf`: `Ok(None)` while it is incomplete.
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>, FrameError> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    let (len, ext) = match b1 & 0x7f {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(bytes) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                (u64::from_be_bytes(be), 8)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 0),
    };
    let payload_len = match usize::try_from(len) {
        Ok(n) if n <= MAX_PAYLOAD => n,
        _ => return Err(FrameError::TooLarge(len)),
    };
    let mut header_len = 2 + ext;
    let mask = if b1 & 0x80 != 0 {
        match rest.get(ext..ext + 4) {
            Some(m) => {
                header_len += 4;
                Some([m[0], m[1], m[2], m[3]])
            }
            None => return Ok(None),
        }
    } else {
        None
    };
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        mask,
        header_len,
        payload_len,
    }))
}

/// XORs `data` with `mask` (masking and unmasking are the same operation).
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Appends one frame to `out`: masked with `mask` (client to server) or not.
pub fn encode(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    out.push(if fin { 0x80 } else { 0 } | (opcode & 0x0f));
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mbit | n as u8),
        n @ 126..=0xffff => {
            out.push(mbit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mbit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            let start = out.len();
            out.extend_from_slice(payload);
            apply_mask(&mut out[start..], m);
        }
        None => out.extend_from_slice(payload),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn round_trip_every_length_class() {
        for len in [0usize, 32, 125, 126, 65535, 65536] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut out = Vec::new();
                encode(&mut out, true, OP_BINARY, &payload, mask);
                let h = parse_header(&out).unwrap().unwrap();
                assert_eq!((h.fin, h.opcode, h.mask), (true, OP_BINARY, mask));
                assert_eq!((h.payload_len, h.frame_len()), (len, out.len()));
                let body = &mut out[h.header_len..];
                if let Some(m) = h.mask {
                    apply_mask(body, m);
                }
                assert_eq!(body, &payload[..]);
                // Every strict prefix of the header is "incomplete", never an error.
                for cut in 0..h.header_len {
                    assert_eq!(parse_header(&out[..cut]), Ok(None));
                }
            }
        }
    }

    #[test]
    fn rfc_examples_and_refusals() {
        // RFC 6455 §5.7: a masked "Hello".
        let mut f = vec![
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let h = parse_header(&f).unwrap().unwrap();
        apply_mask(&mut f[h.header_len..], h.mask.unwrap());
        assert_eq!(&f[h.header_len..], b"Hello");
        assert_eq!(parse_header(&[0xC1, 0x00]), Err(FrameError::Reserved));
        let huge = [0x82, 0x7f, 0, 0, 0, 0, 0x10, 0, 0, 0];
        assert!(matches!(parse_header(&huge), Err(FrameError::TooLarge(_))));
    }
}
