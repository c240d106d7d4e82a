//! The request body of one HTTP/2 stream as a [`BodySource`]: DATA frames handed out as the
//! pipeline reads them, flow-control capacity released as the bytes are consumed (so a slow
//! upstream holds the client back instead of growing a buffer), the trailing HEADERS kept in
//! the raw form of a chunked HTTP/1.1 body's trailers, each wait bounded by the body idle
//! timeout.
//!
//! A request with a declared `content-length` is complete only at END_STREAM (RFC 9113
//! §8.1.1): a zero-length request whose HEADERS did not end the stream is held until
//! END_STREAM, and the bytes that would complete a declared length are held until END_STREAM
//! confirms nothing follows; DATA beyond the length is refused (h2 resets the stream with
//! PROTOCOL_ERROR), so the upstream request is abandoned short of its length and no upstream
//! ever sees it complete. Worker thread only.

use std::future::poll_fn;
use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes};
use h2::RecvStream;

use crate::downstream::BodySource;
use crate::http::body::BodyError;
use crate::http::trailers::forbidden_in_trailer;

/// The request body of one stream.
pub struct H2Body {
    recv: RecvStream,
    pending: Bytes,
    received: u64,
    done: bool,
    idle: Duration,
    /// The request's `content-length`, if it declared one: the bytes that reach it are held
    /// until END_STREAM confirms it.
    pub(super) declared: Option<u64>,
    /// The trailing HEADERS of the request as `Name: value\r\n` lines (the raw form a chunked
    /// HTTP/1.1 body's trailers have), once the body ended.
    trailers: Vec<u8>,
}

impl BodySource for H2Body {
    async fn read_body(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, BodyError> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(max);
                out.extend_from_slice(&self.pending[..n]);
                self.pending.advance(n);
                self.received += n as u64;
                // Consumed: the client may send as much again.
                let _ = self.recv.flow_control().release_capacity(n);
                return Ok(n);
            }
            if self.done || max == 0 {
                return Ok(0);
            }
            match self.next_data().await? {
                None => {
                    self.done = true;
                    self.take_trailers().await?;
                }
                Some(b) => {
                    self.pending = b;
                    if self.completes_declared() {
                        // Not one byte of the chunk that would complete the request goes out
                        // before END_STREAM says nothing follows it.
                        self.confirm_end().await?;
                    }
                }
            }
        }
    }

    fn received(&self) -> u64 {
        self.received
    }

    fn is_complete(&self) -> bool {
        self.pending.is_empty() && (self.done || self.recv.is_end_stream())
    }

    fn trailers(&self) -> &[u8] {
        &self.trailers
    }
}

impl H2Body {
    /// The body of a stream whose request head was received; each wait for DATA may last
    /// `idle`.
    pub fn new(recv: RecvStream, idle: Duration) -> H2Body {
        H2Body {
            recv,
            pending: Bytes::new(),
            received: 0,
            done: false,
            idle,
            declared: None,
            trailers: Vec::new(),
        }
    }

    /// Whether what was received reaches the declared length.
    fn completes_declared(&self) -> bool {
        self.declared
            .is_some_and(|d| self.received + self.pending.len() as u64 >= d)
    }

    /// Waits for the end of the stream (END_STREAM, possibly on trailers) once the declared
    /// length is reached. DATA beyond the length is refused: h2 resets the stream with
    /// PROTOCOL_ERROR and reports the reset here (`Truncated`); a non-empty chunk that got
    /// through anyway is refused the same way.
    pub(super) async fn confirm_end(&mut self) -> Result<(), BodyError> {
        while !self.done {
            if self.recv.is_end_stream() {
                self.done = true;
                break;
            }
            match self.next_data().await? {
                None => {
                    self.done = true;
                    self.take_trailers().await?;
                }
                Some(b) if b.is_empty() => {}
                Some(_) => {
                    return Err(BodyError::Io(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "DATA beyond content-length",
                    )))
                }
            }
        }
        Ok(())
    }

    /// The next DATA frame's bytes, `None` at END_STREAM, within the body idle timeout.
    async fn next_data(&mut self) -> Result<Option<Bytes>, BodyError> {
        let next = monoio::time::timeout(self.idle, poll_fn(|cx| self.recv.poll_data(cx)));
        match next.await {
            Err(_) => Err(BodyError::IdleTimeout),
            Ok(None) => Ok(None),
            Ok(Some(Ok(b))) => Ok(Some(b)),
            Ok(Some(Err(e))) if e.is_reset() || e.is_io() => Err(BodyError::Truncated),
            Ok(Some(Err(e))) => Err(BodyError::Io(io::Error::other(e))),
        }
    }

    /// Reads the request's trailing HEADERS, if any (h2 already bounded them by the header
    /// list limit and checked their names and values).
    async fn take_trailers(&mut self) -> Result<(), BodyError> {
        let next = monoio::time::timeout(self.idle, poll_fn(|cx| self.recv.poll_trailers(cx)));
        let fields = match next.await {
            Err(_) => return Err(BodyError::IdleTimeout),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(fields))) => fields,
            Ok(Err(e)) if e.is_reset() || e.is_io() => return Err(BodyError::Truncated),
            Ok(Err(e)) => return Err(BodyError::Io(io::Error::other(e))),
        };
        for (name, value) in &fields {
            // Fields a trailer may not carry are never forwarded (spec §3).
            if forbidden_in_trailer(name.as_str().as_bytes()) {
                continue;
            }
            self.trailers.extend_from_slice(name.as_str().as_bytes());
            self.trailers.extend_from_slice(b": ");
            self.trailers.extend_from_slice(value.as_bytes());
            self.trailers.extend_from_slice(b"\r\n");
        }
        Ok(())
    }
}
