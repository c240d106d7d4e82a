//! Strict chunked transfer-coding decoder (RFC 9112 §7.1), sans IO.
//!
//! Fed whatever bytes have arrived, it reports how many it consumed and which of them are body
//! data, so a caller can stream a chunked body through bounded buffers. Chunk extensions are
//! accepted and dropped (spec §3), with the optional whitespace (BWS) RFC 9112 §7.1.1 allows
//! before their `;`; trailer fields are kept, bounded, and validated, and the fields a trailer
//! may not carry are dropped (`super::trailers`), so a forwarded section is clean whichever
//! direction it goes. Every malformed size, line or terminator is an error: the connection it
//! came from is closed.

use std::ops::Range;

/// Why a chunked body was refused (always a 400 for requests, a 502 for responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    BadLine,
    BadTrailer,
    TrailerTooLarge,
}

impl ChunkError {
    pub fn reason(self) -> &'static str {
        match self {
            ChunkError::BadSize => "bad chunk size",
            ChunkError::BadLine => "bad chunk line",
            ChunkError::BadTrailer => "malformed trailer field",
            ChunkError::TrailerTooLarge => "trailer section too large",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size; `digits` counts them.
    Size { value: u64, digits: u8 },
    /// Spaces or tabs after the size digits: only a `;` (an extension) may follow them.
    SizeBws { value: u64 },
    /// After `;`: a chunk extension, dropped, up to CR.
    Extension { value: u64 },
    /// Expecting the LF of a size line.
    SizeLf { value: u64 },
    /// Inside chunk data.
    Data { remaining: u64 },
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// Inside the trailer section after the last chunk.
    Trailers,
    /// The body is complete.
    Done,
}

/// One step of decoding: `consumed` input bytes, of which `data` (if any) is body data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub consumed: usize,
    pub data: Option<Range<usize>>,
}

/// Incremental decoder state for one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    trailers: Vec<u8>,
    max_trailer_bytes: usize,
}

/// More hex digits than this cannot be a sane size (16 digits = u64).
const MAX_SIZE_DIGITS: u8 = 16;

impl ChunkedDecoder {
    pub fn new(max_trailer_bytes: usize) -> Self {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            trailers: Vec::new(),
            max_trailer_bytes,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The raw trailer section (`Name: value\r\n` lines), empty when there were none.
    pub fn trailers(&self) -> &[u8] {
        &self.trailers
    }

    /// Decodes from `input`; stops after the first run of body data (at most `max_data` bytes)
    /// so the caller can hand it on before asking for more. A step that consumes nothing needs
    /// more input (or more room).
    pub fn decode(&mut self, input: &[u8], max_data: usize) -> Result<Step, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { value, digits } => {
                    if let Some(d) = hex_value(b) {
                        if digits >= MAX_SIZE_DIGITS {
                            return Err(ChunkError::BadSize);
                        }
                        let v = value
                            .checked_mul(16)
                            .and_then(|v| v.checked_add(u64::from(d)))
                            .ok_or(ChunkError::BadSize)?;
                        self.state = State::Size {
                            value: v,
                            digits: digits + 1,
                        };
                    } else if digits == 0 {
                        return Err(ChunkError::BadSize);
                    } else if b == b';' {
                        self.state = State::Extension { value };
                    } else if b == b'\r' {
                        self.state = State::SizeLf { value };
                    } else if b == b' ' || b == b'\t' {
                        self.state = State::SizeBws { value };
                    } else {
                        return Err(ChunkError::BadSize);
                    }
                    i += 1;
                }
                State::SizeBws { value } => {
                    // `chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`: the
                    // whitespace after the size belongs to an extension, so a `;` must follow.
                    if b == b';' {
                        self.state = State::Extension { value };
                    } else if b != b' ' && b != b'\t' {
                        return Err(ChunkError::BadSize);
                    }
                    i += 1;
                }
                State::Extension { value } => {
                    if b == b'\r' {
                        self.state = State::SizeLf { value };
                    } else if b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f {
                        return Err(ChunkError::BadLine);
                    }
                    i += 1;
                }
                State::SizeLf { value } => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLine);
                    }
                    i += 1;
                    self.state = if value == 0 {
                        State::Trailers
                    } else {
                        State::Data { remaining: value }
                    };
                }
                State::Data { remaining } => {
                    let avail = (input.len() - i) as u64;
                    let take = remaining.min(avail).min(max_data as u64) as usize;
                    if take == 0 {
                        break;
                    }
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining: left }
                    };
                    return Ok(Step {
                        consumed: i + take,
                        data: Some(i..i + take),
                    });
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::BadLine);
                    }
                    self.state = State::DataLf;
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLine);
                    }
                    self.state = State::Size {
                        value: 0,
                        digits: 0,
                    };
                    i += 1;
                }
                State::Trailers => {
                    i += self.take_trailer_bytes(&input[i..])?;
                }
                State::Done => break,
            }
        }
        Ok(Step {
            consumed: i,
            data: None,
        })
    }

    /// Collects trailer bytes up to and including the empty line that ends the section.
    fn take_trailer_bytes(&mut self, input: &[u8]) -> Result<usize, ChunkError> {
        for (k, &b) in input.iter().enumerate() {
            self.trailers.push(b);
            if self.trailers.len() > self.max_trailer_bytes.saturating_add(2) {
                return Err(ChunkError::TrailerTooLarge);
            }
            if b == b'\n' {
                let t = &self.trailers;
                if t.len() < 2 || t[t.len() - 2] != b'\r' {
                    return Err(ChunkError::BadLine);
                }
                // An empty line (the whole section so far is "\r\n" or ends in "\r\n\r\n").
                if t.len() == 2 || t.ends_with(b"\r\n\r\n") {
                    let section_len = t.len() - 2;
                    self.trailers.truncate(section_len);
                    validate_trailers(&self.trailers)?;
                    super::trailers::retain_forwardable(&mut self.trailers);
                    self.state = State::Done;
                    return Ok(k + 1);
                }
            }
        }
        Ok(input.len())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Each trailer line must be a valid header field (no obs-fold, no CTLs, token name).
fn validate_trailers(section: &[u8]) -> Result<(), ChunkError> {
    if section.is_empty() {
        return Ok(());
    }
    let mut with_end = Vec::with_capacity(section.len() + 2);
    with_end.extend_from_slice(section);
    with_end.extend_from_slice(b"\r\n");
    let mut slots = [httparse::EMPTY_HEADER; 64];
    match httparse::parse_headers(&with_end, &mut slots) {
        Ok(httparse::Status::Complete(_)) => Ok(()),
        _ => Err(ChunkError::BadTrailer),
    }
}

/// Appends `{len:x}\r\n` without allocating.
pub fn push_chunk_size(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
