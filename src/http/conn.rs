//! The read side of a downstream connection: the socket's read half and its buffer.
//!
//! Bytes are appended after what is still unconsumed (monoio reads overwrite from index 0
//! unless given `slice_mut(len..)`), consumed from the front, and compacted only when more room
//! is needed, so pipelined requests and body bytes that arrive with a head are never lost.
//! Worker thread only.

use std::future::Future;
use std::io;
use std::time::Duration;

use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::AsyncReadRent;
use monoio::time::Instant;
use monoio::BufResult;

/// What a [`ConnReader`] reads from: every monoio reader (a socket's read half), and the
/// upstream TLS read half, which decrypts into the buffer without `unsafe` buffer access and
/// so cannot implement monoio's generic `AsyncReadRent`.
pub trait ReadSource {
    /// Reads at most `buf`'s room, appending after its start like `AsyncReadRent::read`;
    /// `Ok(0)` is the end of the stream.
    fn read_some(
        &mut self,
        buf: SliceMut<Vec<u8>>,
    ) -> impl Future<Output = BufResult<usize, SliceMut<Vec<u8>>>>;
}

impl<R: AsyncReadRent> ReadSource for R {
    fn read_some(
        &mut self,
        buf: SliceMut<Vec<u8>>,
    ) -> impl Future<Output = BufResult<usize, SliceMut<Vec<u8>>>> {
        self.read(buf)
    }
}

/// Initial read buffer capacity; grows only when a head or chunk needs more.
const INITIAL_CAPACITY: usize = 8 * 1024;
/// Smallest free space offered to one read.
const MIN_READ_ROOM: usize = 4 * 1024;
/// A buffer that keeps filling up doubles until this size (bulk bodies move in 64 KiB reads;
/// an idle connection keeps only its initial capacity).
const BULK_CAPACITY: usize = 64 * 1024;

/// Outcome of waiting for more bytes.
#[derive(Debug)]
pub enum ReadOutcome {
    /// At least one byte was appended.
    Data,
    /// The peer closed its write side.
    Eof,
    /// The deadline passed first.
    TimedOut,
    /// The socket failed.
    Failed(io::Error),
}

pub struct ConnReader<R> {
    io: R,
    buf: Vec<u8>,
    start: usize,
    /// The last read filled all the room it was given.
    filled_up: bool,
    /// Total bytes read from the client (for metrics later).
    pub bytes_read: u64,
}

impl<R: ReadSource> ConnReader<R> {
    pub fn new(io: R) -> Self {
        ConnReader {
            io,
            buf: Vec::with_capacity(INITIAL_CAPACITY),
            start: 0,
            filled_up: false,
            bytes_read: 0,
        }
    }

    /// The source this reader reads from.
    pub fn source(&self) -> &R {
        &self.io
    }

    /// The read half and the unconsumed bytes (for a hand-off to another protocol).
    pub fn into_parts(mut self) -> (R, Vec<u8>) {
        self.buf.drain(..self.start);
        (self.io, self.buf)
    }

    /// Unconsumed bytes.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn has_buffered(&self) -> bool {
        self.start < self.buf.len()
    }

    /// Marks `n` buffered bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Reads more bytes after the unconsumed ones, until `deadline` (None = no deadline).
    pub async fn fill(&mut self, deadline: Option<Instant>) -> ReadOutcome {
        self.make_room();
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        let room = buf.capacity() - len;
        let slice: SliceMut<Vec<u8>> = buf.slice_mut(len..);
        let (res, slice) = match deadline {
            None => self.io.read_some(slice).await,
            Some(d) => match monoio::time::timeout_at(d, self.io.read_some(slice)).await {
                Ok(r) => r,
                // The in-flight read is cancelled with its buffer; a timeout always ends the
                // connection, so nothing is lost that the caller still needs.
                Err(_) => return ReadOutcome::TimedOut,
            },
        };
        self.buf = slice.into_inner();
        match res {
            Ok(0) => ReadOutcome::Eof,
            Ok(n) => {
                self.bytes_read += n as u64;
                self.filled_up = n == room;
                ReadOutcome::Data
            }
            Err(e) => ReadOutcome::Failed(e),
        }
    }

    /// Reads up to `max` bytes straight into the end of `out` (another buffer, typically a
    /// client's pending output), bypassing this reader's buffer: one copy fewer for bulk
    /// bodies. Only valid when nothing is buffered here. Until `deadline` (None = none): a
    /// read still waiting then is cancelled with `out`, which comes back empty (a timeout
    /// always ends the exchange).
    pub async fn read_into_vec(
        &mut self,
        mut out: Vec<u8>,
        max: usize,
        deadline: Option<Instant>,
    ) -> (ReadOutcome, Vec<u8>) {
        debug_assert!(!self.has_buffered());
        out.reserve(max);
        let len = out.len();
        let slice = out.slice_mut(len..len + max);
        let (res, slice) = match deadline {
            None => self.io.read_some(slice).await,
            Some(d) => match monoio::time::timeout_at(d, self.io.read_some(slice)).await {
                Ok(r) => r,
                Err(_) => return (ReadOutcome::TimedOut, Vec::new()),
            },
        };
        let out = slice.into_inner();
        let outcome = match res {
            Ok(0) => ReadOutcome::Eof,
            Ok(n) => {
                self.bytes_read += n as u64;
                ReadOutcome::Data
            }
            Err(e) => ReadOutcome::Failed(e),
        };
        (outcome, out)
    }

    /// Same as [`fill`](Self::fill) with an idle timeout instead of a deadline.
    pub async fn fill_within(&mut self, idle: Duration) -> ReadOutcome {
        self.fill(Some(Instant::now() + idle)).await
    }

    /// Compacts consumed bytes away and guarantees free space for the next read.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let cap = self.buf.capacity();
        if self.filled_up && cap < BULK_CAPACITY {
            // Bulk data is flowing: offer bigger reads, fewer syscalls.
            self.buf
                .reserve((cap * 2).min(BULK_CAPACITY) - self.buf.len());
        } else if cap - self.buf.len() < MIN_READ_ROOM {
            self.buf.reserve(MIN_READ_ROOM.max(self.buf.len()));
        }
    }
}
