//! The HTTP/1.1 implementation of [`Downstream`]: one request/response exchange on a client
//! connection.
//!
//! [`H1Body`] streams the request body; [`H1Sink`] frames the response for this client
//! (`Content-Length` kept, unknown lengths chunked for HTTP/1.1 and close-delimited for 1.0,
//! 1xx only where allowed, `Connection` as needed) and aborts with a reset (SO_LINGER 0) when
//! a response cannot be completed. Worker thread only.

use std::io;
use std::time::Duration;

use super::body::{BodyError, BodyReader};
use super::chunked::push_chunk_size;
use super::conn::{ConnReader, ReadSource};
use super::limits::SessionLimits;
use super::request::{RequestHead, Version};
use super::response::{write_status_line, ConnWriter, ConnectionDirective, Response, WriteSink};
use crate::downstream::{BodyLength, BodySource, Downstream, OutHead, ResponseSink, SinkReport};
use crate::error::ProxyError;
use crate::http::upgrade::UPGRADE_FIELDS;
use crate::sys::AbortHandle;
use crate::worker::signal::LocalSignal;

/// An unread request body up to this size is read and discarded to keep the connection.
pub const DRAIN_LIMIT: u64 = 64 * 1024;

pub struct H1Body<'c, R> {
    reader: &'c mut ConnReader<R>,
    body: BodyReader,
    idle: Duration,
}

impl<R: ReadSource> BodySource for H1Body<'_, R> {
    async fn read_body(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, BodyError> {
        self.body.read_into(self.reader, out, max, self.idle).await
    }

    fn received(&self) -> u64 {
        self.body.received
    }

    fn is_complete(&self) -> bool {
        self.body.is_done()
    }

    fn trailers(&self) -> &[u8] {
        self.body.trailers()
    }
}

impl<R: ReadSource> H1Body<'_, R> {
    /// Reads and discards the rest of a small body. `Ok(false)` when it is larger than
    /// [`DRAIN_LIMIT`]: the connection must close instead.
    pub async fn drain(&mut self) -> Result<bool, BodyError> {
        let mut scratch = Vec::new();
        let mut total = 0u64;
        while !self.body.is_done() {
            scratch.clear();
            total += self.read_body(&mut scratch, 16 * 1024).await? as u64;
            if total > DRAIN_LIMIT {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

pub struct H1Sink<'c, W> {
    writer: &'c mut ConnWriter<W>,
    abort: &'c AbortHandle,
    /// Fired when shutdown begins: every response from then on ends its connection.
    closing: &'c LocalSignal,
    head_only: bool,
    http10: bool,
    client_keep_alive: bool,
    /// The client sent `Expect: 100-continue`.
    expects_continue: bool,
    continue_sent: bool,
    committed: bool,
    chunked: bool,
    close_after: bool,
    aborted: bool,
    /// Status of the final response started (0: none yet).
    status: u16,
    /// A write to the client failed.
    client_gone: bool,
    /// The writer's byte count when the exchange began.
    written_at_start: u64,
    /// Where the final head starts in the writer's buffer while none of it was written.
    unsent_head: Option<usize>,
}

impl<W: WriteSink> H1Sink<'_, W> {
    /// Flushes the output, remembering a failure: the client left.
    async fn flush_out(&mut self) -> io::Result<()> {
        self.unsent_head = None;
        let r = self.writer.flush().await;
        self.client_gone |= r.is_err();
        r
    }

    fn directive(&self, close: bool) -> ConnectionDirective {
        if close {
            ConnectionDirective::Close
        } else {
            ConnectionDirective::KeepAlive {
                http10: self.http10,
            }
        }
    }
}

impl<W: WriteSink> ResponseSink for H1Sink<'_, W> {
    async fn send_interim(&mut self, head: &OutHead<'_>) -> io::Result<bool> {
        // 1xx never goes to HTTP/1.0 clients; 100 only to a client that asked, and once.
        let allowed = !self.http10
            && !self.committed
            && match head.status {
                100 => self.expects_continue && !self.continue_sent,
                101 => false,
                _ => true,
            };
        if !allowed {
            return Ok(false);
        }
        if head.status == 100 {
            self.continue_sent = true;
        }
        let out = self.writer.buffer();
        write_status_line(out, head.status, head.reason);
        head.headers.write_h1(out);
        out.extend_from_slice(b"\r\n");
        self.flush_out().await?;
        Ok(true)
    }

    async fn send_head(
        &mut self,
        head: &OutHead<'_>,
        length: BodyLength,
        close: bool,
    ) -> io::Result<()> {
        let mut close = close || !self.client_keep_alive || self.closing.is_fired();
        self.chunked = false;
        let http10 = self.http10;
        let mut chunked = false;
        let out = self.writer.buffer();
        self.unsent_head = Some(out.len());
        write_status_line(out, head.status, head.reason);
        head.headers.write_h1(out);
        match length {
            BodyLength::None => {}
            BodyLength::Exact(_) if head.length_in_headers => {}
            BodyLength::Exact(n) => {
                out.extend_from_slice(b"Content-Length: ");
                out.extend_from_slice(n.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            BodyLength::Unknown if http10 => close = true,
            BodyLength::Unknown => {
                chunked = !self.head_only;
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            }
        }
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        self.chunked = chunked;
        self.committed = true;
        self.status = head.status;
        self.close_after = close;
        // The head stays buffered: the first body bytes (or `finish`) go out with it.
        Ok(())
    }

    async fn send_body(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() || self.head_only {
            return Ok(());
        }
        let out = self.writer.buffer();
        if self.chunked {
            push_chunk_size(out, data.len());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(data);
        }
        self.flush_out().await
    }

    fn raw_body_buffer(&mut self) -> Option<&mut Vec<u8>> {
        (!self.chunked && !self.head_only).then(|| self.writer.buffer())
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_out().await
    }

    async fn finish(&mut self, trailers: &[u8]) -> io::Result<()> {
        if self.chunked {
            let out = self.writer.buffer();
            out.extend_from_slice(b"0\r\n");
            out.extend_from_slice(trailers);
            out.extend_from_slice(b"\r\n");
        }
        self.flush_out().await
    }

    async fn send_switching(&mut self, head: &OutHead<'_>) -> io::Result<()> {
        let out = self.writer.buffer();
        write_status_line(out, 101, head.reason);
        head.headers.write_h1(out);
        out.extend_from_slice(UPGRADE_FIELDS);
        out.extend_from_slice(b"\r\n");
        self.committed = true;
        self.status = 101;
        // Whatever follows is the tunnel's, never another HTTP exchange.
        self.close_after = true;
        self.flush_out().await
    }

    fn abort(&mut self) {
        // A reset, never a clean end: the client can always tell (spec §4).
        self.abort.abort();
        self.aborted = true;
        self.close_after = true;
    }

    fn retract(&mut self) -> bool {
        if !self.committed {
            return true;
        }
        // The head waits in the buffer for the first body bytes; until they go, it can go.
        let Some(at) = self.unsent_head.take() else {
            return false;
        };
        self.writer.buffer().truncate(at);
        self.committed = false;
        self.chunked = false;
        self.close_after = false;
        self.status = 0;
        true
    }

    fn committed(&self) -> bool {
        self.committed
    }
}

/// One request/response exchange on an HTTP/1.1 connection.
pub struct H1Exchange<'c, R, W> {
    body: H1Body<'c, R>,
    sink: H1Sink<'c, W>,
    request_id: &'c str,
}

impl<'c, R: ReadSource, W: WriteSink> H1Exchange<'c, R, W> {
    pub fn new(
        reader: &'c mut ConnReader<R>,
        writer: &'c mut ConnWriter<W>,
        abort: &'c AbortHandle,
        closing: &'c LocalSignal,
        head: &RequestHead,
        limits: &SessionLimits,
        request_id: &'c str,
    ) -> Self {
        let body = BodyReader::new(head.framing, limits.head.max_header_bytes);
        let expects_continue = head.expect_continue && !body.is_done();
        let written_at_start = writer.bytes_written;
        H1Exchange {
            body: H1Body {
                reader,
                body,
                idle: limits.body_idle_timeout,
            },
            sink: H1Sink {
                writer,
                abort,
                closing,
                head_only: head.is_method("HEAD"),
                http10: head.version == Version::Http10,
                client_keep_alive: head.keep_alive,
                expects_continue,
                continue_sent: false,
                committed: false,
                chunked: false,
                close_after: false,
                aborted: false,
                status: 0,
                client_gone: false,
                written_at_start,
                unsent_head: None,
            },
            request_id,
        }
    }

    /// Whether the connection can carry another request after this exchange.
    pub fn keeps_connection(&self) -> bool {
        self.sink.committed && !self.sink.close_after && self.body.body.is_done()
    }

    /// The request body (if any) was read to its end.
    pub fn body_complete(&self) -> bool {
        self.body.body.is_done()
    }

    pub fn aborted(&self) -> bool {
        self.sink.aborted
    }

    /// The client is waiting for a 100 that never came: it may or may not send the body.
    fn continue_pending(&self) -> bool {
        self.sink.expects_continue && !self.sink.continue_sent
    }

    /// Before Dito answers a request whose small body is still unread, reads that body, so a
    /// malformed one is answered 400 and a good one leaves the connection reusable. Returns
    /// the error to answer instead.
    async fn settle_body(&mut self) -> Result<Option<ProxyError>, io::Error> {
        let small = self.body.body.remaining().is_none_or(|r| r <= DRAIN_LIMIT);
        if self.body.body.is_done()
            || !self.sink.client_keep_alive
            || self.continue_pending()
            || !small
        {
            return Ok(None);
        }
        match self.body.drain().await {
            Ok(_) => Ok(None),
            Err(BodyError::Malformed(e)) => Ok(Some(ProxyError::BadRequest(e.reason()))),
            Err(BodyError::IdleTimeout) => Ok(Some(ProxyError::RequestTimeout)),
            Err(BodyError::Truncated) => Err(io::ErrorKind::UnexpectedEof.into()),
            Err(BodyError::Io(e)) => Err(e),
        }
    }
}

impl<'c, R: ReadSource, W: WriteSink> Downstream for H1Exchange<'c, R, W> {
    type Body = H1Body<'c, R>;
    type Sink = H1Sink<'c, W>;

    fn parts(&mut self) -> (&mut Self::Body, &mut Self::Sink) {
        (&mut self.body, &mut self.sink)
    }

    async fn respond(&mut self, resp: &Response, close: bool) -> io::Result<()> {
        // A response that ends the connection anyway needs no settled body.
        let settled = if close {
            Ok(None)
        } else {
            self.settle_body().await
        };
        let replaced = match settled {
            Ok(r) => r.map(|err| err.to_response(self.request_id)),
            Err(e) => {
                // The client's body ended early or its socket failed: it left.
                self.sink.committed = true;
                self.sink.close_after = true;
                self.sink.client_gone = true;
                return Err(e);
            }
        };
        let close = close
            || replaced.is_some()
            || !self.sink.client_keep_alive
            || self.sink.closing.is_fired()
            || !self.body.body.is_done();
        let resp = replaced.as_ref().unwrap_or(resp);
        self.sink.committed = true;
        self.sink.close_after = close;
        let directive = self.sink.directive(close);
        self.sink.status = resp.status;
        let r = self
            .sink
            .writer
            .send(resp, directive, self.sink.head_only)
            .await;
        self.sink.client_gone |= r.is_err();
        r
    }

    fn report(&self) -> SinkReport {
        SinkReport {
            status: (self.sink.status != 0).then_some(self.sink.status),
            client_gone: self.sink.client_gone,
            aborted: self.sink.aborted,
            bytes_sent: self.sink.writer.bytes_written - self.sink.written_at_start,
        }
    }
}
