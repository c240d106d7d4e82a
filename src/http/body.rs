//! Streaming request-body decoding over a connection's read buffer.
//!
//! A [`BodyReader`] knows the framing of one request (none, Content-Length, chunked) and
//! hands out decoded body bytes in bounded pieces, reading the socket only when the buffer is
//! empty and only under the body idle timeout (spec §6). It never reads past the end of its
//! body, so the next pipelined request stays in the buffer. Worker thread only.

use std::time::Duration;

use super::chunked::{ChunkError, ChunkedDecoder};
use super::conn::{ConnReader, ReadOutcome, ReadSource};
use super::request::BodyFraming;

/// Why a body could not be read to its end.
#[derive(Debug)]
pub enum BodyError {
    /// Bad chunked framing: 400 (or an abort once a response has started).
    Malformed(ChunkError),
    /// The client closed before the body ended.
    Truncated,
    /// No body byte for `body_idle_timeout`: 408.
    IdleTimeout,
    /// The socket failed.
    Io(std::io::Error),
}

#[derive(Debug)]
enum Kind {
    Done,
    Length { remaining: u64 },
    Chunked(Box<ChunkedDecoder>),
}

#[derive(Debug)]
pub struct BodyReader {
    kind: Kind,
    /// Decoded body bytes handed out so far.
    pub received: u64,
}

impl BodyReader {
    pub fn new(framing: BodyFraming, max_trailer_bytes: usize) -> Self {
        let kind = match framing {
            BodyFraming::None => Kind::Done,
            BodyFraming::Length(n) => Kind::Length { remaining: n },
            BodyFraming::Chunked => Kind::Chunked(Box::new(ChunkedDecoder::new(max_trailer_bytes))),
        };
        BodyReader { kind, received: 0 }
    }

    /// True once every byte of the body (and for chunked, its trailers) has been read.
    pub fn is_done(&self) -> bool {
        match &self.kind {
            Kind::Done => true,
            Kind::Length { remaining } => *remaining == 0,
            Kind::Chunked(d) => d.is_done(),
        }
    }

    /// Body bytes still expected, when the framing says (`None` for chunked).
    pub fn remaining(&self) -> Option<u64> {
        match &self.kind {
            Kind::Done => Some(0),
            Kind::Length { remaining } => Some(*remaining),
            Kind::Chunked(d) => d.is_done().then_some(0),
        }
    }

    /// The raw trailer section of a chunked body, once done.
    pub fn trailers(&self) -> &[u8] {
        match &self.kind {
            Kind::Chunked(d) => d.trailers(),
            _ => &[],
        }
    }

    /// Appends up to `max` decoded body bytes to `out`. Returns how many were appended; 0 means
    /// the body is complete.
    pub async fn read_into<R: ReadSource>(
        &mut self,
        conn: &mut ConnReader<R>,
        out: &mut Vec<u8>,
        max: usize,
        idle: Duration,
    ) -> Result<usize, BodyError> {
        loop {
            if self.is_done() {
                return Ok(0);
            }
            if conn.has_buffered() {
                let n = self.take_buffered(conn, out, max)?;
                if n > 0 || self.is_done() {
                    self.received += n as u64;
                    return Ok(n);
                }
            }
            match conn.fill_within(idle).await {
                ReadOutcome::Data => {}
                ReadOutcome::Eof => return Err(BodyError::Truncated),
                ReadOutcome::TimedOut => return Err(BodyError::IdleTimeout),
                ReadOutcome::Failed(e) => return Err(BodyError::Io(e)),
            }
        }
    }

    /// Decodes from what is buffered without reading the socket.
    fn take_buffered<R: ReadSource>(
        &mut self,
        conn: &mut ConnReader<R>,
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<usize, BodyError> {
        match &mut self.kind {
            Kind::Done => Ok(0),
            Kind::Length { remaining } => {
                let avail = conn.buffered();
                let take = (*remaining).min(avail.len() as u64).min(max as u64) as usize;
                out.extend_from_slice(&avail[..take]);
                *remaining -= take as u64;
                conn.consume(take);
                Ok(take)
            }
            Kind::Chunked(dec) => {
                let mut appended = 0;
                while appended < max && conn.has_buffered() && !dec.is_done() {
                    let avail = conn.buffered();
                    let step = dec
                        .decode(avail, max - appended)
                        .map_err(BodyError::Malformed)?;
                    if let Some(range) = step.data {
                        appended += range.len();
                        out.extend_from_slice(&avail[range]);
                    }
                    if step.consumed == 0 {
                        break;
                    }
                    conn.consume(step.consumed);
                }
                Ok(appended)
            }
        }
    }
}
