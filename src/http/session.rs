//! The HTTP/1.1 keep-alive loop of one client connection.
//!
//! Reads a head under `header_read_timeout` (from the request's first byte) or waits for one
//! under `keep_alive_timeout` (silent close), rejects bad heads with their status and a close,
//! hands good ones to the pipeline through [`H1Exchange`] (the HTTP/1.1 implementation of
//! [`Downstream`]), then decides whether the connection can carry another request: an unread
//! body is drained when small and close otherwise, and `Expect: 100-continue` that was never
//! answered with 100 ends the connection. Pipelined requests are answered in order because
//! they are read one at a time from the same buffer. Worker thread only.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::time::Instant;

use super::body::{BodyError, BodyReader};
use super::conn::{ConnReader, ReadOutcome};
use super::limits::SessionLimits;
use super::request::{parse_head, HeadError, RequestHead, Version};
use super::response::{ConnWriter, ConnectionDirective, Response};
use crate::error::ProxyError;
use crate::pipeline::{self, Downstream, RequestCtx};
use crate::worker::state::WorkerState;

/// An unread request body up to this size is read and discarded to keep the connection.
const DRAIN_LIMIT: u64 = 64 * 1024;
/// After the last response of a closing connection: how long unread client bytes are
/// discarded so the kernel does not answer them with a reset that destroys the response.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 1024 * 1024;

/// Serves one accepted client connection until it closes.
pub async fn serve<R, W>(rd: R, wr: W, peer: SocketAddr, worker: Rc<WorkerState>)
where
    R: AsyncReadRent,
    W: AsyncWriteRent,
{
    let mut reader = ConnReader::new(rd);
    let mut writer = ConnWriter::new(wr);
    let mut first = true;
    loop {
        let limits = worker.session_limits();
        let head = match read_head(&mut reader, &limits, first).await {
            HeadRead::Head(h) => h,
            HeadRead::Closed => return,
            HeadRead::Reject(err, reason) => {
                tracing::debug!(client = %peer, status = err.status(), reason, "request rejected");
                let resp = err.to_response(&worker.ids.generate());
                if writer
                    .send(&resp, ConnectionDirective::Close, false)
                    .await
                    .is_ok()
                {
                    linger_close(&mut reader, &mut writer).await;
                }
                return;
            }
        };
        first = false;
        let ctx = RequestCtx::new(&head, peer, &worker);
        let mut exchange = H1Exchange::new(&mut reader, &mut writer, &head, &limits, &ctx);
        let outcome = pipeline::handle(&worker, &head, &ctx, &mut exchange).await;
        let keep = !outcome.close && exchange.keeps_connection() && exchange.drain().await.is_ok();
        if !keep {
            if outcome.sent {
                linger_close(&mut reader, &mut writer).await;
            }
            return;
        }
    }
}

enum HeadRead {
    Head(RequestHead),
    /// The client left or stayed silent between requests: close without a response.
    Closed,
    /// Answer with this error and close.
    Reject(ProxyError, &'static str),
}

async fn read_head<R: AsyncReadRent>(
    reader: &mut ConnReader<R>,
    limits: &SessionLimits,
    first: bool,
) -> HeadRead {
    // The header timeout runs from the request's first byte; before it, the connection is
    // idle (keep-alive timeout, or the header timeout for a brand-new connection).
    let mut deadline: Option<Instant> = None;
    let idle = if first {
        limits.header_read_timeout
    } else {
        limits.keep_alive_timeout
    };
    let idle_deadline = Instant::now() + idle;
    loop {
        if reader.has_buffered() {
            let d = *deadline.get_or_insert_with(|| Instant::now() + limits.header_read_timeout);
            match parse_head(reader.buffered(), &limits.head) {
                Ok(Some((head, len))) => {
                    reader.consume(len);
                    return HeadRead::Head(head);
                }
                Ok(None) => deadline = Some(d),
                Err(e) => return reject(e),
            }
        }
        match reader.fill(Some(deadline.unwrap_or(idle_deadline))).await {
            ReadOutcome::Data => {}
            ReadOutcome::Eof | ReadOutcome::Failed(_) => return HeadRead::Closed,
            ReadOutcome::TimedOut if deadline.is_some() => {
                return HeadRead::Reject(ProxyError::RequestTimeout, "header read timeout");
            }
            ReadOutcome::TimedOut => return HeadRead::Closed,
        }
    }
}

fn reject(e: HeadError) -> HeadRead {
    match e {
        HeadError::BadRequest(r) => HeadRead::Reject(ProxyError::BadRequest(r), r),
        HeadError::UriTooLong => HeadRead::Reject(ProxyError::UriTooLong, "request line too long"),
        HeadError::HeadersTooLarge => {
            HeadRead::Reject(ProxyError::HeadersTooLarge, "header section too large")
        }
        HeadError::Http2Preface => HeadRead::Reject(
            ProxyError::BadRequest("HTTP/2 preface"),
            "HTTP/2 preface on an HTTP/1 port",
        ),
    }
}

/// Half-closes, then discards what the client still sends for a moment, so our last
/// response is not destroyed by a reset answering unread bytes.
async fn linger_close<R: AsyncReadRent, W: AsyncWriteRent>(
    reader: &mut ConnReader<R>,
    writer: &mut ConnWriter<W>,
) {
    if writer.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut discarded = 0u64;
    while discarded < LINGER_BYTES {
        let before = reader.buffered().len();
        reader.consume(before);
        discarded += before as u64;
        match reader.fill(Some(deadline)).await {
            ReadOutcome::Data => {}
            _ => return,
        }
    }
}

/// One request/response exchange on an HTTP/1.1 connection.
pub struct H1Exchange<'c, R, W> {
    reader: &'c mut ConnReader<R>,
    writer: &'c mut ConnWriter<W>,
    request_id: &'c str,
    body: BodyReader,
    body_idle: Duration,
    head_only: bool,
    http10: bool,
    client_keep_alive: bool,
    /// `Expect: 100-continue` that has not been answered with 100 yet.
    continue_pending: bool,
    sent: bool,
    close_after: bool,
}

impl<'c, R: AsyncReadRent, W: AsyncWriteRent> H1Exchange<'c, R, W> {
    fn new(
        reader: &'c mut ConnReader<R>,
        writer: &'c mut ConnWriter<W>,
        head: &RequestHead,
        limits: &SessionLimits,
        ctx: &'c RequestCtx,
    ) -> Self {
        let body = BodyReader::new(head.framing, limits.head.max_header_bytes);
        H1Exchange {
            request_id: &ctx.request_id,
            continue_pending: head.expect_continue && !body.is_done(),
            reader,
            writer,
            body,
            body_idle: limits.body_idle_timeout,
            head_only: head.is_method("HEAD"),
            http10: head.version == Version::Http10,
            client_keep_alive: head.keep_alive,
            sent: false,
            close_after: false,
        }
    }

    /// Whether what is left of the request body allows another request on this connection.
    fn body_allows_reuse(&self) -> bool {
        if self.body.is_done() {
            return true;
        }
        // The client is waiting for a 100 that will never come: it may or may not send the
        // body, so the byte stream can no longer be trusted.
        !self.continue_pending && self.body.remaining().is_none_or(|r| r <= DRAIN_LIMIT)
    }

    fn keeps_connection(&self) -> bool {
        self.sent && !self.close_after
    }

    /// Reads and discards the rest of a small request body. `Ok(false)` when it is larger
    /// than [`DRAIN_LIMIT`]: the connection must close instead.
    async fn drain(&mut self) -> Result<bool, BodyError> {
        let mut scratch = Vec::new();
        let mut total = 0u64;
        while !self.body.is_done() {
            scratch.clear();
            total += self
                .body
                .read_into(self.reader, &mut scratch, 16 * 1024, self.body_idle)
                .await? as u64;
            if total > DRAIN_LIMIT {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Before Dito answers a request whose small body is still unread, reads that body, so a
    /// malformed one is answered 400 (not with a reply that pretends the request was fine)
    /// and a good one leaves the connection reusable. Returns the error to answer instead.
    async fn settle_body(&mut self) -> Result<Option<ProxyError>, io::Error> {
        if self.body.is_done() || !self.client_keep_alive || !self.body_allows_reuse() {
            return Ok(None);
        }
        match self.drain().await {
            Ok(_) => Ok(None),
            Err(BodyError::Malformed(e)) => Ok(Some(ProxyError::BadRequest(e.reason()))),
            Err(BodyError::IdleTimeout) => Ok(Some(ProxyError::RequestTimeout)),
            Err(BodyError::Truncated) => Err(io::ErrorKind::UnexpectedEof.into()),
            Err(BodyError::Io(e)) => Err(e),
        }
    }
}

impl<R: AsyncReadRent, W: AsyncWriteRent> Downstream for H1Exchange<'_, R, W> {
    async fn read_body(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, BodyError> {
        if self.continue_pending && !self.sent {
            self.continue_pending = false;
            if !self.http10 {
                self.writer
                    .send_raw(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .map_err(BodyError::Io)?;
            }
        }
        self.body
            .read_into(self.reader, out, max, self.body_idle)
            .await
    }

    async fn send_response(&mut self, resp: &Response, close: bool) -> io::Result<()> {
        let replaced = match self.settle_body().await {
            Ok(r) => r.map(|err| err.to_response(self.request_id)),
            Err(e) => {
                self.sent = true;
                self.close_after = true;
                return Err(e);
            }
        };
        let close = close || replaced.is_some() || !self.client_keep_alive || !self.body.is_done();
        let resp = replaced.as_ref().unwrap_or(resp);
        let directive = if close {
            ConnectionDirective::Close
        } else {
            ConnectionDirective::KeepAlive {
                http10: self.http10,
            }
        };
        self.sent = true;
        self.close_after = close;
        self.writer.send(resp, directive, self.head_only).await
    }
}
