//! Body framing of an upstream response, sans IO: which of the bytes that arrive are body
//! data, and when the body ends (Content-Length, chunked, or the upstream's close).

use std::ops::Range;

use crate::http::chunked::ChunkedDecoder;
use crate::http::response_head::ResponseFraming;

/// Largest trailer section accepted from an upstream.
const MAX_UPSTREAM_TRAILERS: usize = 64 * 1024;

/// The upstream broke its own framing (bad chunk, early close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramingError;

pub enum BodyDecoder {
    Length { remaining: u64 },
    Chunked(Box<ChunkedDecoder>),
    Close { ended: bool },
    Empty,
}

/// One decoding step: `consumed` input bytes, of which `data` is body.
pub struct Piece {
    pub consumed: usize,
    pub data: Option<Range<usize>>,
}

impl BodyDecoder {
    pub fn new(framing: ResponseFraming) -> Self {
        match framing {
            ResponseFraming::None => BodyDecoder::Empty,
            ResponseFraming::Length(n) => BodyDecoder::Length { remaining: n },
            ResponseFraming::Chunked => {
                BodyDecoder::Chunked(Box::new(ChunkedDecoder::new(MAX_UPSTREAM_TRAILERS)))
            }
            ResponseFraming::Close => BodyDecoder::Close { ended: false },
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Length { remaining } => *remaining == 0,
            BodyDecoder::Chunked(d) => d.is_done(),
            BodyDecoder::Close { ended } => *ended,
            BodyDecoder::Empty => true,
        }
    }

    /// Decodes the next piece of `input`.
    pub fn step(&mut self, input: &[u8]) -> Result<Piece, FramingError> {
        match self {
            BodyDecoder::Length { remaining } => {
                let take = (*remaining).min(input.len() as u64) as usize;
                *remaining -= take as u64;
                Ok(Piece {
                    consumed: take,
                    data: (take > 0).then_some(0..take),
                })
            }
            BodyDecoder::Chunked(d) => {
                let s = d.decode(input, usize::MAX).map_err(|_| FramingError)?;
                Ok(Piece {
                    consumed: s.consumed,
                    data: s.data.filter(|r| !r.is_empty()),
                })
            }
            BodyDecoder::Close { .. } => Ok(Piece {
                consumed: input.len(),
                data: (!input.is_empty()).then_some(0..input.len()),
            }),
            BodyDecoder::Empty => Ok(Piece {
                consumed: 0,
                data: None,
            }),
        }
    }

    /// The upstream closed: the end of a close-delimited body, an error for the others.
    pub fn on_eof(&mut self) -> Result<(), FramingError> {
        match self {
            BodyDecoder::Close { ended } => {
                *ended = true;
                Ok(())
            }
            _ if self.is_done() => Ok(()),
            _ => Err(FramingError),
        }
    }

    /// Trailer fields of a chunked body (`Name: value\r\n` lines), once done.
    pub fn trailers(&self) -> &[u8] {
        match self {
            BodyDecoder::Chunked(d) => d.trailers(),
            _ => &[],
        }
    }
}
