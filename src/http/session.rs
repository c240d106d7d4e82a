//! The HTTP/1.1 keep-alive loop of one client connection.
//!
//! Reads a head under `header_read_timeout` (from the request's first byte) or waits for one
//! under `keep_alive_timeout` (silent close), rejects bad heads with their status and a close,
//! hands good ones to the pipeline through [`H1Exchange`] (the HTTP/1.1 implementation of
//! [`Downstream`]), then decides whether the connection can carry another request: an unread
//! body is drained when small and close otherwise, and `Expect: 100-continue` that was never
//! answered with 100 ends the connection. Pipelined requests are answered in order because
//! they are read one at a time from the same buffer. Shutdown (spec §12): from SIGTERM on,
//! each response says `Connection: close` (the exchange decides); when the worker drains, an
//! idle connection closes — unless its next request has already arrived, which is served.
//! Worker thread only.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use monoio::time::Instant;

use super::conn::{ConnReader, ReadOutcome, ReadSource};
use super::exchange::H1Exchange;
use super::limits::SessionLimits;
use super::request::{parse_head_into, HeadError, HeadStorage, RequestHead};
use super::response::{ConnWriter, ConnectionDirective, WriteSink};
use crate::error::ProxyError;
use crate::observe;
use crate::pipeline::{self, RequestCtx};
use crate::relay::websocket::Tunnel;
use crate::sys::{self, AbortHandle};
use crate::worker::signal::LocalSignal;
use crate::worker::state::WorkerState;

/// After the last response of a closing connection: how long unread client bytes are
/// discarded so the kernel does not answer them with a reset that destroys the response.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 1024 * 1024;
/// The same after `request_timeout` cut a request body short: the deadline is hard, so the
/// client gets only a moment to read its 504 (spec §6: "at most ~1 s").
const PAST_DEADLINE_LINGER_TIME: Duration = Duration::from_secs(1);

/// How a connection left the HTTP/1.1 session.
pub enum Served<R, W> {
    /// It is finished.
    Closed,
    /// It opened with the HTTP/2 connection preface (h2c with prior knowledge): the halves
    /// and the bytes read so far, preface included, for the HTTP/2 server.
    Http2 { rd: R, wr: W, read: Vec<u8> },
    /// The upstream switched to WebSocket and the 101 went out: the connection is a tunnel
    /// now, to run after this session's state is freed (`relay::websocket`).
    Tunnel(Box<Tunnel<R, W>>),
}

/// Serves one accepted client connection until it closes, turns out to be HTTP/2, or becomes
/// a WebSocket tunnel.
/// `abort` ends the connection with a reset when a response cannot be completed; `tls`: the
/// connection came through the TLS listener.
pub async fn serve<R, W>(
    rd: R,
    wr: W,
    abort: AbortHandle,
    peer: SocketAddr,
    tls: bool,
    worker: Rc<WorkerState>,
) -> Served<R, W>
where
    R: ReadSource,
    W: WriteSink,
{
    let mut reader = ConnReader::new(rd);
    let mut writer = ConnWriter::new(wr, Some(abort.fd()));
    let mut first = true;
    let mut storage = HeadStorage::default();
    let mut transferred = Transferred::default();
    loop {
        let limits = worker.session_limits();
        let read = read_head(
            &mut reader,
            &limits,
            first,
            &worker.drain,
            abort.fd(),
            &mut storage,
        )
        .await;
        let read = match read {
            HeadRead::Http2 if first => {
                transferred.account(&worker, &reader, &writer);
                let (rd, read) = reader.into_parts();
                let wr = writer.into_inner();
                return Served::Http2 { rd, wr, read };
            }
            HeadRead::Http2 => HeadRead::Reject(
                ProxyError::BadRequest("HTTP/2 preface"),
                "HTTP/2 preface after an HTTP/1.1 request",
            ),
            other => other,
        };
        let head = match read {
            HeadRead::Head(h) => h,
            HeadRead::Http2 | HeadRead::Closed => {
                transferred.account(&worker, &reader, &writer);
                return Served::Closed;
            }
            HeadRead::Reject(err, reason) => {
                tracing::debug!(client = %peer, status = err.status(), reason, "request rejected");
                let request_id = worker.ids.generate();
                let resp = err.to_response(&request_id);
                let before = writer.bytes_written;
                let sent = writer.send(&resp, ConnectionDirective::Close, false).await;
                let head_bytes = reader.buffered();
                let sent_bytes = writer.bytes_written - before;
                observe::request::finish_rejected(
                    &worker,
                    &err,
                    head_bytes,
                    peer,
                    &request_id,
                    sent_bytes,
                );
                transferred.account(&worker, &reader, &writer);
                if sent.is_ok() {
                    linger_close(&mut reader, &mut writer, LINGER_TIME).await;
                }
                transferred.account(&worker, &reader, &writer);
                return Served::Closed;
            }
        };
        first = false;
        let ctx = RequestCtx::new(&head, peer, tls, &worker);
        let mut exchange = H1Exchange::new(
            &mut reader,
            &mut writer,
            &abort,
            &worker.closing,
            &head,
            &limits,
            &ctx.request_id,
        );
        let mut outcome = pipeline::handle(&worker, &head, &ctx, &mut exchange).await;
        let aborted = exchange.aborted();
        let keeps = exchange.keeps_connection();
        let body_complete = exchange.body_complete();
        drop(exchange);
        if let Some(upstream) = outcome.take_tunnel() {
            // What the client sent after its head is the tunnel's, counted as it forwards it.
            reader.bytes_read -= reader.buffered().len() as u64;
            transferred.account(&worker, &reader, &writer);
            let early = reader.buffered().to_vec();
            let (rd, _) = reader.into_parts();
            let wr = writer.into_tunnel();
            return Served::Tunnel(Box::new(Tunnel {
                rd,
                wr,
                early,
                upstream,
            }));
        }
        transferred.account(&worker, &reader, &writer);
        if aborted {
            // Dropping the socket now sends the reset the abort asked for.
            return Served::Closed;
        }
        if outcome.close || !keeps {
            // A client that asked to close and whose request was read to the end has nothing
            // left in flight: close at once. Otherwise linger so unread bytes cannot turn
            // into a reset that destroys the response.
            let clean = !head.keep_alive && body_complete && !reader.has_buffered();
            if outcome.sent && !clean {
                let linger = if outcome.past_deadline {
                    PAST_DEADLINE_LINGER_TIME
                } else {
                    LINGER_TIME
                };
                linger_close(&mut reader, &mut writer, linger).await;
                transferred.account(&worker, &reader, &writer);
            } else if clean {
                abort.close_plainly();
            }
            return Served::Closed;
        }
        storage = head.into_storage();
    }
}

/// The connection's byte counts already added to the worker's transfer metrics.
#[derive(Default)]
struct Transferred {
    read: u64,
    written: u64,
}

impl Transferred {
    /// Adds what was read from and written to the client since the last call (spec §10
    /// `data_transferred_bytes_total`, heads included).
    fn account<R, W>(
        &mut self,
        worker: &WorkerState,
        reader: &ConnReader<R>,
        writer: &ConnWriter<W>,
    ) {
        let (read, written) = (reader.bytes_read, writer.bytes_written);
        worker.metrics.add_inbound((read - self.read) as usize);
        worker
            .metrics
            .add_outbound((written - self.written) as usize);
        (self.read, self.written) = (read, written);
    }
}

enum HeadRead {
    Head(RequestHead),
    /// The client left or stayed silent between requests: close without a response.
    Closed,
    /// Answer with this error and close.
    Reject(ProxyError, &'static str),
    /// The HTTP/2 connection preface.
    Http2,
}

async fn read_head<R: ReadSource>(
    reader: &mut ConnReader<R>,
    limits: &SessionLimits,
    first: bool,
    drain: &LocalSignal,
    fd: RawFd,
    storage: &mut HeadStorage,
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
            match parse_head_into(reader.buffered(), &limits.head, storage) {
                Ok(Some((head, len))) => {
                    reader.consume(len);
                    return HeadRead::Head(head);
                }
                Ok(None) => deadline = Some(d),
                Err(e) => return reject(e),
            }
        }
        let outcome = if deadline.is_some() {
            reader.fill(deadline).await
        } else {
            match wait_idle(reader, idle_deadline, drain, fd).await {
                Some(outcome) => outcome,
                None => return HeadRead::Closed,
            }
        };
        match outcome {
            ReadOutcome::Data => {}
            ReadOutcome::Eof | ReadOutcome::Failed(_) => return HeadRead::Closed,
            ReadOutcome::TimedOut if deadline.is_some() => {
                return HeadRead::Reject(ProxyError::RequestTimeout, "header read timeout");
            }
            ReadOutcome::TimedOut => return HeadRead::Closed,
        }
    }
}

/// Waits, idle between requests, for the next bytes until `deadline`. `None` when the worker
/// drains while nothing of a next request has arrived: the connection closes. A request that
/// already arrived when the drain comes is read and served (its response closes the
/// connection), as nginx does; the pending read is never dropped with bytes in it, which
/// would lose them (io_uring) or make the close a reset (bytes left unread).
async fn wait_idle<R: ReadSource>(
    reader: &mut ConnReader<R>,
    deadline: Instant,
    drain: &LocalSignal,
    fd: RawFd,
) -> Option<ReadOutcome> {
    if drain.is_fired() && !sys::has_pending_input(fd) {
        return None;
    }
    let mut fill = std::pin::pin!(reader.fill(Some(deadline)));
    let mut drained = std::pin::pin!(drain.wait());
    let mut drain_seen = false;
    poll_fn(|cx| {
        // The read first: bytes that are already there always win.
        if let Poll::Ready(outcome) = fill.as_mut().poll(cx) {
            return Poll::Ready(Some(outcome));
        }
        if !drain_seen && drained.as_mut().poll(cx).is_ready() {
            drain_seen = true;
            if !sys::has_pending_input(fd) {
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    })
    .await
}

fn reject(e: HeadError) -> HeadRead {
    match e {
        HeadError::BadRequest(r) => HeadRead::Reject(ProxyError::BadRequest(r), r),
        HeadError::UriTooLong => HeadRead::Reject(ProxyError::UriTooLong, "request line too long"),
        HeadError::HeadersTooLarge => {
            HeadRead::Reject(ProxyError::HeadersTooLarge, "header section too large")
        }
        HeadError::Http2Preface => HeadRead::Http2,
    }
}

/// Half-closes, then discards what the client still sends for a moment, so our last
/// response is not destroyed by a reset answering unread bytes.
async fn linger_close<R: ReadSource, W: WriteSink>(
    reader: &mut ConnReader<R>,
    writer: &mut ConnWriter<W>,
    linger: Duration,
) {
    if writer.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + linger;
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
