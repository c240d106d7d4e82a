//! How busy a multiplexed connection is: streams open now, and since when it has had none.
//! Both HTTP/2 sides close a connection that stays without streams for its idle timeout (the
//! server side after `keep_alive_timeout`, the upstream side after `idle_conn_timeout`).
//! Single-threaded (`Cell`s).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use monoio::time::Instant;

/// Open streams, and when the last one ended (or the connection began).
#[derive(Debug)]
pub struct StreamActivity {
    open: Cell<usize>,
    since: Cell<Instant>,
}

impl Default for StreamActivity {
    fn default() -> Self {
        StreamActivity {
            open: Cell::new(0),
            since: Cell::new(Instant::now()),
        }
    }
}

impl StreamActivity {
    /// Counts a stream as open until the guard drops.
    pub fn stream(self: &Rc<Self>) -> StreamGuard {
        self.open.set(self.open.get() + 1);
        StreamGuard(self.clone())
    }

    /// Resolves once no stream has been open for `idle`.
    pub async fn idle(&self, idle: Duration) {
        // A zero timeout must not turn the re-checks into a busy loop.
        let idle = idle.max(Duration::from_millis(10));
        loop {
            let due = self.since.get() + idle;
            let now = Instant::now();
            if self.open.get() == 0 && now >= due {
                return;
            }
            // While streams are open, look again after a full period.
            let wait = if self.open.get() == 0 {
                due - now
            } else {
                idle
            };
            monoio::time::sleep(wait).await;
        }
    }
}

/// An open stream, counted in [`StreamActivity`] while it lives.
pub struct StreamGuard(Rc<StreamActivity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get().saturating_sub(1));
        self.0.since.set(Instant::now());
    }
}
