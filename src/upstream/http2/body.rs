//! An HTTP/2 response body as a [`ReadSource`], so the relay of spec §6 (limits, holding,
//! streaming) reads it exactly as it reads an HTTP/1.1 connection: DATA frames are copied into
//! the reader's buffer as it offers room, and their flow-control capacity is released as they
//! are taken. The end of the stream reads as the end of input; a reset as an error. Response
//! trailers are not forwarded (see docs/decisions.md).

use std::io;

use bytes::Bytes;
use h2::RecvStream;
use monoio::buf::{IoBufMut, SliceMut};
use monoio::BufResult;

use crate::http::conn::ReadSource;

/// The DATA of one response stream.
pub struct H2ResponseBody {
    recv: RecvStream,
    /// Received but not handed out yet.
    pending: Bytes,
    done: bool,
}

impl H2ResponseBody {
    pub fn new(recv: RecvStream) -> Self {
        H2ResponseBody {
            recv,
            pending: Bytes::new(),
            done: false,
        }
    }
}

impl ReadSource for H2ResponseBody {
    async fn read_some(&mut self, buf: SliceMut<Vec<u8>>) -> BufResult<usize, SliceMut<Vec<u8>>> {
        while self.pending.is_empty() && !self.done {
            match self.recv.data().await {
                Some(Ok(chunk)) => {
                    // Taken now, so the upstream may send more while the client reads.
                    let _ = self.recv.flow_control().release_capacity(chunk.len());
                    self.pending = chunk;
                }
                Some(Err(e)) => return (Err(io::Error::other(e)), buf),
                None => self.done = true,
            }
        }
        let (begin, end) = (buf.begin(), buf.end());
        let mut vec = buf.into_inner();
        // Like monoio, the bytes go at the slice's start.
        vec.truncate(begin);
        let n = self.pending.len().min(end.saturating_sub(begin));
        vec.extend_from_slice(&self.pending[..n]);
        let _ = self.pending.split_to(n);
        (Ok(n), vec.slice_mut(begin..end))
    }
}
