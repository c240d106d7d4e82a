//! A WebSocket tunnel's life on a worker (spec §13, §10, §12).
//!
//! After the 101 went out, the HTTP/1.1 session hands the client connection's halves (and
//! what the client sent after its head) with the upstream connection up to the connection
//! task as a [`Tunnel`], and its own state — sized for the largest HTTP exchange — is freed:
//! an idle tunnel keeps only this small future and the copy buffers. Here the tunnel is
//! counted in the tunnel metrics while it runs (bytes as they move, and in
//! `data_transferred_bytes_total`), closed after `websocket_idle_timeout` without traffic, and
//! ended `shutdown_timeout` after the worker starts draining — a tunnel is not a request that
//! finishes by itself, so shutdown would otherwise wait for it in vain. The bytes are moved by
//! `relay::tunnel`. Worker thread only.

use crate::http::conn::ReadSource;
use crate::http::response::WriteSink;
use crate::relay::tunnel::{self, Direction, Side, TunnelEnd};
use crate::upstream::upgrade::Upgraded;
use crate::worker::state::WorkerState;

/// A client connection that switched to WebSocket, with its upstream.
pub struct Tunnel<R, W> {
    pub rd: R,
    pub wr: W,
    /// What the client sent after its request head: forwarded first.
    pub early: Vec<u8>,
    pub upstream: Upgraded,
}

impl<R: ReadSource, W: WriteSink> Tunnel<R, W> {
    /// Relays until the tunnel ends; the connections close when it returns.
    pub async fn run(self, worker: &WorkerState) {
        let Tunnel {
            mut rd,
            mut wr,
            early,
            upstream,
        } = self;
        let Upgraded {
            reader: mut up_rd,
            writer: mut up_wr,
            early: up_early,
            idle,
            request_id,
        } = upstream;
        worker.metrics.tunnel_opened();
        // Counted as ended however the tunnel ends: a panic unwinding through here (a
        // contained connection task, `worker::contain`) counts as `error`.
        let mut open = OpenTunnel {
            worker,
            end: TunnelEnd::Failed,
        };
        let shutdown_timeout = worker.generation().snapshot.config.shutdown_timeout;
        let stop = async {
            worker.drain.wait().await;
            monoio::time::sleep(shutdown_timeout).await;
        };
        let moved = |dir, n| {
            worker.metrics.tunnel_moved(dir, n);
            match dir {
                Direction::ClientToUpstream => worker.metrics.add_inbound(n as usize),
                Direction::UpstreamToClient => worker.metrics.add_outbound(n as usize),
            }
        };
        let client = Side {
            rd: &mut rd,
            wr: &mut wr,
            early,
        };
        let upstream = Side {
            rd: &mut up_rd,
            wr: &mut up_wr,
            early: up_early,
        };
        let (end, bytes) = tunnel::run(client, upstream, idle, stop, &moved).await;
        open.end = end;
        drop(open);
        tracing::debug!(
            request_id,
            end = ?end,
            client_to_upstream = bytes.client_to_upstream,
            upstream_to_client = bytes.upstream_to_client,
            "websocket tunnel ended"
        );
    }
}

/// An open tunnel in the tunnel gauge until dropped, then counted as ended with `end`.
struct OpenTunnel<'a> {
    worker: &'a WorkerState,
    end: TunnelEnd,
}

impl Drop for OpenTunnel<'_> {
    fn drop(&mut self) {
        self.worker.metrics.tunnel_closed(self.end);
    }
}
