//! One HTTP/2 client connection: handshake, settings and limits, the accept loop that drives
//! the connection and spawns a local (contained) task per stream, idle close, and GOAWAY as
//! soon as shutdown begins.
//!
//! Limits (spec §6 and the published h2 DoS fixes): at most [`MAX_CONCURRENT_STREAMS`]
//! streams; the header list is limited to the configured `max_header_bytes` (h2 answers a
//! larger one with 431 and resets the stream); accepted-but-unserved client resets
//! (Rapid Reset, CVE-2023-44487), locally caused resets (CVE-2024-2653-style floods) and the
//! per-stream send buffer are bounded explicitly.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use h2::server::SendResponse;
use tokio::io::{AsyncRead, AsyncWrite};

use super::activity::StreamActivity;
use super::io::Prefixed;
use super::stream::serve_stream;
use crate::worker::contain::{self, contain, Scope};
use crate::worker::state::WorkerState;

/// Streams a client may have open at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;
/// Receive window of each stream.
const STREAM_WINDOW: u32 = 256 * 1024;
/// Receive window of the whole connection.
const CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Streams reset by the client before Dito accepted them (Rapid Reset).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams Dito resets because of the client's errors before the connection is closed.
const MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Bytes queued for sending per stream before `poll_capacity` holds the sender back.
const MAX_SEND_BUFFER: usize = 256 * 1024;
/// Reset streams remembered (to ignore frames racing the reset).
const MAX_CONCURRENT_RESETS: usize = 32;

/// What the accept loop gets from the connection: a stream, an error, or the end.
type Accepted = Option<Result<(http::Request<h2::RecvStream>, SendResponse<Bytes>), h2::Error>>;

enum Event {
    Stream(Box<Accepted>),
    Drain,
    Idle,
    /// A stream task of this connection panicked.
    Panicked,
}

/// Resolves when a stream task of the connection in `scope` panicked; never without one.
async fn stream_panicked(scope: Option<&Scope>) {
    match scope {
        Some(scope) => scope.ended().await,
        None => std::future::pending().await,
    }
}

/// Serves one HTTP/2 connection until it closes. `io` starts with the connection preface
/// (already-read bytes may be given back through [`Prefixed`]); `tls`: it is a TLS connection
/// (ALPN `h2`), not h2c.
pub async fn serve<T>(io: Prefixed<T>, peer: SocketAddr, tls: bool, worker: Rc<WorkerState>)
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let counts = io.counts();
    let limits = worker.session_limits();
    let header_list = u32::try_from(limits.head.max_header_bytes).unwrap_or(u32::MAX);
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(header_list)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_concurrent_reset_streams(MAX_CONCURRENT_RESETS);
    let handshake = builder.handshake::<_, Bytes>(io);
    let mut conn = match monoio::time::timeout(limits.header_read_timeout, handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(client = %peer, error = %e, "HTTP/2 handshake failed");
            account(&worker, &counts);
            return;
        }
        Err(_) => {
            tracing::debug!(client = %peer, "HTTP/2 handshake timed out");
            account(&worker, &counts);
            return;
        }
    };
    let activity = Rc::new(StreamActivity::default());
    // A stream task that panics resets this connection (`worker::contain`): end it then.
    let scope = contain::current();
    let mut draining = false;
    // Like HTTP/1.1: a new connection waits for its first request under the header timeout,
    // later idle periods under the keep-alive timeout.
    let mut idle_for = limits.header_read_timeout;
    loop {
        let idle = activity.idle(idle_for);
        let event = monoio::select! {
            s = conn.accept() => Event::Stream(Box::new(s)),
            // Shutdown began (spec §12): GOAWAY at once, during `shutdown_delay` too, so the
            // client moves to another replica; open streams finish.
            _ = worker.closing.wait(), if !draining => Event::Drain,
            _ = idle, if !draining => Event::Idle,
            _ = stream_panicked(scope.as_deref()) => Event::Panicked,
        };
        match event {
            Event::Stream(s) => match *s {
                Some(Ok((req, respond))) => {
                    idle_for = limits.keep_alive_timeout;
                    let (w, open) = (worker.clone(), activity.stream());
                    let stream_scope = Scope::child();
                    monoio::spawn(async move {
                        let served = contain(
                            stream_scope,
                            serve_stream(req, respond, peer, tls, w.clone()),
                        );
                        if let Err(caught) = served.await {
                            caught.report(&w.metrics, w.id, peer);
                        }
                        drop(open);
                    });
                }
                Some(Err(e)) => {
                    tracing::debug!(client = %peer, error = %e, "HTTP/2 connection failed");
                    break;
                }
                None => break,
            },
            Event::Drain | Event::Idle => {
                // GOAWAY: no new streams; open ones finish, then accept returns None.
                conn.graceful_shutdown();
                draining = true;
            }
            // The reset is armed: dropping the connection sends it.
            Event::Panicked => break,
        }
    }
    account(&worker, &counts);
}

fn account(worker: &WorkerState, counts: &super::io::Counts) {
    worker.metrics.add_inbound(counts.read.get() as usize);
    worker.metrics.add_outbound(counts.written.get() as usize);
}
