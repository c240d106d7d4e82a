//! A WebSocket tunnel's life on a worker (spec §13, §10, §12): counted in the tunnel metrics
//! while it runs (bytes as they move), closed after `websocket_idle_timeout` without traffic,
//! and ended `shutdown_timeout` after the worker starts draining — a tunnel is not a request
//! that finishes by itself, so shutdown would otherwise wait for it in vain. The bytes are
//! moved by `relay::tunnel` over the client connection the [`Downstream`] holds. Worker thread
//! only.

use std::time::Duration;

use crate::downstream::Downstream;
use crate::relay::tunnel::Side;
use crate::upstream::upgrade::Upgraded;
use crate::worker::state::WorkerState;

/// Runs the tunnel between the client connection and `upstream` until it ends.
pub async fn run<D: Downstream>(
    worker: &WorkerState,
    down: &mut D,
    upstream: Upgraded,
    shutdown_timeout: Duration,
    request_id: &str,
) {
    worker.metrics.tunnel_opened();
    let Upgraded {
        mut reader,
        mut writer,
        early,
        idle,
    } = upstream;
    let side = Side {
        rd: &mut reader,
        wr: &mut writer,
        early,
    };
    let stop = async {
        worker.drain.wait().await;
        monoio::time::sleep(shutdown_timeout).await;
    };
    let moved = |dir, n| worker.metrics.tunnel_moved(dir, n);
    let (end, bytes) = down.tunnel(side, idle, stop, &moved).await;
    worker.metrics.tunnel_closed(end);
    tracing::debug!(
        request_id,
        end = ?end,
        client_to_upstream = bytes.client_to_upstream,
        upstream_to_client = bytes.upstream_to_client,
        "websocket tunnel ended"
    );
}
