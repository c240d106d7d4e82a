//! Opening one multiplexed HTTP/2 upstream connection: DNS, TCP connect and (for https) the
//! TLS handshake exactly as for HTTP/1.1, then ALPN must have chosen `h2` (a server that did
//! not agree gets no HTTP/1.1 fallback: `invalid_response`), then the HTTP/2 handshake. The
//! connection is driven by its own local task until it fails, the server ends it, or it has
//! had no stream for `idle_conn_timeout`.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use super::conns::{ConnState, H2Conn};
use crate::error::UpstreamErrorKind;
use crate::upstream::forward::Forward;
use crate::upstream::{connect, stream, tls};

/// Receive window of each stream from the upstream.
const STREAM_WINDOW: u32 = 256 * 1024;
/// Receive window of the whole connection.
const CONNECTION_WINDOW: u32 = 2 * 1024 * 1024;
/// Request bytes queued per stream before the upload waits for the upstream's window.
const MAX_SEND_BUFFER: usize = 256 * 1024;

/// Opens the connection for `f`'s route.
pub async fn open(f: &Forward<'_>) -> Result<H2Conn, UpstreamErrorKind> {
    let t = &f.route.transport;
    let key = &f.route.key;
    let addrs = f.worker.resolver.resolve(&key.host, key.port).await?;
    let tcp = connect::connect(&addrs, t.dial_timeout, t.keep_alive).await?;
    let (rd, wr) = match &f.route.tls {
        None => stream::plain(tcp),
        Some(config) => tls::handshake(tcp, config, t.tls_handshake_timeout).await?,
    };
    if rd.negotiated_h2() == Some(false) {
        tracing::warn!(upstream = %key.host, "upstream did not agree to HTTP/2 by ALPN (force_http2)");
        return Err(UpstreamErrorKind::InvalidResponse);
    }
    let io = crate::h2::RentIo::new(rd, wr);
    let mut builder = h2::client::Builder::new();
    builder
        .enable_push(false)
        // One stream until the server's SETTINGS say how many it takes: without this h2
        // would open every queued stream at once and the server would refuse the extras.
        .initial_max_send_streams(1)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buffer_size(MAX_SEND_BUFFER);
    let handshake = builder.handshake::<_, Bytes>(io);
    let (send, conn) = match bounded(t.dial_timeout, handshake).await {
        Some(Ok(pair)) => pair,
        Some(Err(e)) => {
            tracing::warn!(upstream = %key.host, error = %e, "HTTP/2 upstream handshake failed");
            return Err(UpstreamErrorKind::InvalidResponse);
        }
        None => return Err(UpstreamErrorKind::ConnectTimeout),
    };
    let state = Rc::new(ConnState::default());
    let (task_state, idle, host) = (state.clone(), t.idle_conn_timeout, key.host.clone());
    monoio::spawn(async move {
        monoio::select! {
            r = conn => {
                if let Err(e) = r {
                    tracing::debug!(upstream = %host, error = %e, "HTTP/2 upstream connection ended");
                }
            }
            _ = idle_close(&task_state, idle) => {}
        }
        task_state.closed.set(true);
    });
    Ok(H2Conn { send, state })
}

/// Resolves once the connection has had no stream for `idle` (0 = never).
async fn idle_close(state: &ConnState, idle: Duration) {
    if idle.is_zero() {
        return std::future::pending().await;
    }
    state.activity.idle(idle).await
}

/// `work` within `limit` (0 = no limit); `None` when it timed out.
async fn bounded<F: std::future::Future>(limit: Duration, work: F) -> Option<F::Output> {
    if limit.is_zero() {
        return Some(work.await);
    }
    monoio::time::timeout(limit, work).await.ok()
}
