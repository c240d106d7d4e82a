//! The accept loop of one worker on its own `SO_REUSEPORT` socket (design §5 step 1).
//!
//! Each accepted connection gets its own task (and `TCP_NODELAY` before its second write),
//! split into owned read and write halves for the HTTP/1.1 session (after a TLS handshake when
//! the generation has a `tls` block, see [`crate::tls::server`]), and is counted in the
//! worker's open connections until it ends — a WebSocket tunnel too, which runs after the
//! HTTP session's state is freed. Each connection task is contained (`worker::contain`): a
//! panic while serving it resets that connection only, and the loop goes on. Accept errors (EMFILE, ENFILE, ECONNABORTED) never end the
//! loop: they are logged at most once per second and retried after a short pause. The loop
//! ends when its stop signal fires (a new listener took over, or draining began); the socket
//! closes then.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::io::{OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpListener;
use monoio::time::Instant;
use rustls::ServerConfig;

use crate::http::session::{self, Served};
use crate::sys::{self, AbortHandle, ClientStream};
use crate::tls;
use crate::worker::contain::{contain, Scope};
use crate::worker::signal::LocalSignal;
use crate::worker::state::WorkerState;

/// Pause after a failed accept, so fd exhaustion does not spin the core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Starts accepting on `listener` until `stop` fires.
pub fn spawn_accept_loop(listener: TcpListener, worker: Rc<WorkerState>, stop: LocalSignal) {
    monoio::spawn(async move {
        monoio::select! {
            _ = accept_loop(&listener, &worker) => {}
            _ = stop.wait() => {}
        }
    });
}

/// Counts a connection as open while it lives (`active_connections`; draining waits for 0).
struct ConnectionGuard(Rc<WorkerState>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.metrics.connection_closed();
    }
}

async fn accept_loop(listener: &TcpListener, worker: &Rc<WorkerState>) {
    let mut last_warn: Option<Instant> = None;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // TCP_NODELAY (without it, small responses wait for delayed ACKs, see
                // monoio-notes) is set by the session before a connection's second write.
                // Every write to the client, in whatever protocol the connection turns out to
                // speak, gives up after `send_timeout` without progress.
                let send_timeout = worker.session_limits().send_timeout;
                let (stream, abort) = ClientStream::new(stream, send_timeout);
                worker.metrics.connection_opened();
                let guard = ConnectionGuard(worker.clone());
                let w = worker.clone();
                // The generation's listener config decides: a reload that changes the
                // certificate reaches the next accepted connection.
                let tls = worker.generation().server_tls.clone();
                let scope = Scope::connection(Some(abort.clone()));
                monoio::spawn(async move {
                    // Boxed: the task stays small, so the runtime's moves of it are cheap;
                    // the ~9 KiB connection state is written once, on the heap.
                    let serve = Box::pin(serve_connection(stream, abort, peer, w.clone(), tls));
                    if let Err(caught) = contain(scope, serve).await {
                        caught.report(&w.metrics, w.id, peer);
                    }
                    drop(guard);
                });
            }
            Err(e) => {
                let now = Instant::now();
                if last_warn.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                    tracing::warn!(worker = worker.id, error = %e, "accept failed");
                    last_warn = Some(now);
                }
                monoio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Serves one accepted connection to its end: TLS or plain HTTP/1.1, HTTP/2 after the
/// preface, and the WebSocket tunnel it may become once the HTTP state is freed.
async fn serve_connection(
    stream: ClientStream,
    abort: AbortHandle,
    peer: SocketAddr,
    w: Rc<WorkerState>,
    tls: Option<Arc<ServerConfig>>,
) {
    match tls {
        Some(config) => {
            let tls = tls::server::serve(stream, abort, peer, w.clone(), config);
            if let Some(tunnel) = Box::pin(tls).await {
                // The connection state is freed: a tunnel keeps only its own.
                Box::pin(tunnel.run(&w)).await;
            }
        }
        None => {
            let (rd, wr) = stream.into_split();
            let session = Box::pin(session::serve(rd, wr, abort, peer, false, w.clone()));
            match session.await {
                Served::Closed => {}
                Served::Http2 { rd, wr, read } => {
                    Box::pin(serve_h2c(rd, wr, read, peer, w)).await;
                }
                Served::Tunnel(tunnel) => Box::pin(tunnel.run(&w)).await,
            }
        }
    }
}

/// Hands a connection that opened with the HTTP/2 preface to the HTTP/2 server (h2c with
/// prior knowledge; see docs/decisions.md, issue 9).
async fn serve_h2c(
    rd: OwnedReadHalf<ClientStream>,
    wr: OwnedWriteHalf<ClientStream>,
    read: Vec<u8>,
    peer: SocketAddr,
    worker: Rc<WorkerState>,
) {
    let Ok(stream) = rd.reunite(wr) else {
        return;
    };
    let tcp = stream.into_inner();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
    sys::set_nodelay(fd);
    // The poll-io stream leaves `ClientStream`'s write bound behind: the adapter bounds them.
    let send_timeout = worker.session_limits().send_timeout;
    match tcp.try_into_poll_io() {
        Ok(io) => {
            let io = crate::h2::Prefixed::new(read, io).with_send_timeout(send_timeout, fd);
            crate::h2::serve(io, peer, false, worker).await
        }
        Err((e, _)) => tracing::debug!(client = %peer, error = %e, "HTTP/2 hand-off failed"),
    }
}
