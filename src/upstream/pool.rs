//! The per-worker upstream connection pool (spec §5), outside any config generation so a
//! reload keeps it.
//!
//! Keyed by (scheme, host, port, a hash of the TLS settings' content). Idle connections are
//! reused newest first and dropped once older than `idle_conn_timeout`; `max_idle_conns`
//! (per worker) and `max_idle_conns_per_host` bound what is kept. A connection the upstream
//! closed while it sat idle (FIN, RST, TLS close_notify; gunicorn closes after 2 s, Node.js
//! after 5 s) is noticed and discarded before reuse (spec §4): a checkout of a connection
//! idle for `VERIFY_IDLE_AFTER` (1 ms) or longer first peeks at its socket (one non-blocking
//! `recv(MSG_PEEK)`, see [`crate::sys::socket_is_quiet`]), and the periodic sweep peeks at
//! every idle connection so closed ones free their descriptors within a second. Under load
//! the newest-first order hands out connections idle for microseconds, which skip the peek:
//! the keep-alive hot path makes no extra syscall. `max_conns_per_host`
//! counts open connections, idle or busy: at the cap a request waits for one to come back or
//! close, up to its deadline. Every busy connection holds a [`Permit`]; dropping it (the
//! connection was closed) frees the slot and wakes one waiter. Single-threaded: `Rc` and
//! `RefCell`, never borrowed across an await.

use crate::fxhash::FxBuildHasher;
use crate::http::headers::HeaderList;
use crate::http::response_head::ResponseStorage;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use monoio::time::Instant;

use super::stream::{UpstreamReader, UpstreamWriter};
use crate::http::conn::ConnReader;
use crate::sys;

/// A connection idle this long is checked for a close by the upstream before it is reused.
/// Shorter idle periods are the keep-alive hot path, where a peer's idle timeout (seconds)
/// cannot have struck; the check costs one syscall.
const VERIFY_IDLE_AFTER: Duration = Duration::from_millis(1);

/// Identity of the connections that may serve a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub scheme: &'static str,
    pub host: Rc<str>,
    pub port: u16,
    /// Hash of the TLS settings' content (0 for plain HTTP).
    pub settings: u64,
}

/// The transport limits that apply to one checkout or check-in.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    pub max_idle: usize,
    pub max_idle_per_host: usize,
    /// 0 = unlimited.
    pub max_conns_per_host: usize,
    pub idle_timeout: Duration,
}

/// An upstream connection (plain or TLS) with the buffers it keeps between exchanges, so a
/// reused connection costs no allocation.
pub struct UpstreamConn {
    pub reader: ConnReader<UpstreamReader>,
    pub writer: UpstreamWriter,
    /// Reusable buffer for the request head.
    pub head_buf: Vec<u8>,
    /// Reusable storage for the response heads read from this connection.
    pub scratch: ResponseScratch,
}

/// What relaying a response head needs, kept per connection so the steady path allocates
/// nothing: the parsed head's storage and the header list sent to the client.
#[derive(Debug, Default)]
pub struct ResponseScratch {
    pub head: ResponseStorage,
    pub out: HeaderList,
}

impl UpstreamConn {
    pub fn new((rd, wr): (UpstreamReader, UpstreamWriter)) -> Self {
        UpstreamConn {
            reader: ConnReader::new(rd),
            writer: wr,
            head_buf: Vec::with_capacity(1024),
            scratch: ResponseScratch::default(),
        }
    }

    /// Whether an idle connection can still carry a request: the upstream has not closed it
    /// or reset it, and has sent nothing since the last response (no TLS record either — a
    /// close_notify is one).
    fn still_open(&self) -> bool {
        let source = self.reader.source();
        !self.reader.has_buffered()
            && !source.has_unread_input()
            && sys::socket_is_quiet(source.fd())
    }
}

/// Whether an idle connection may be handed out: young enough, and — once idle long enough
/// for the upstream to have given up on it — not closed by the upstream.
fn reusable(idle: &IdleConn, limits: &PoolLimits) -> bool {
    let idle_for = idle.since.elapsed();
    idle_for < limits.idle_timeout && (idle_for < VERIFY_IDLE_AFTER || idle.conn.still_open())
}

struct IdleConn {
    conn: UpstreamConn,
    since: Instant,
    /// `since` + the `idle_conn_timeout` it was checked in under: [`Pool::sweep`] closes it
    /// then even if no request for its key ever comes again.
    expires: Instant,
}

#[derive(Default)]
struct HostEntry {
    idle: Vec<IdleConn>,
    /// Open connections, idle or busy.
    open: usize,
    waiters: VecDeque<Waker>,
}

#[derive(Default)]
struct Inner {
    hosts: HashMap<PoolKey, HostEntry, FxBuildHasher>,
    total_idle: usize,
}

/// One worker's pool.
#[derive(Clone, Default)]
pub struct Pool {
    inner: Rc<RefCell<Inner>>,
}

/// A slot counted against `max_conns_per_host` while a connection is busy.
pub struct Permit {
    pool: Rc<RefCell<Inner>>,
    key: PoolKey,
    armed: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut inner = self.pool.borrow_mut();
        if let Some(e) = inner.hosts.get_mut(&self.key) {
            e.open = e.open.saturating_sub(1);
            // Wake every waiter: some may have given up, and a lost wake would strand the rest.
            e.waiters.drain(..).for_each(Waker::wake);
        }
    }
}

/// What a checkout yields: a pooled connection to reuse, or a slot to connect with.
pub enum Checkout {
    Reuse(UpstreamConn, Permit),
    Connect(Permit),
}

impl Pool {
    /// An idle connection or an open slot for `key`, waiting at the cap up to `max_wait`.
    /// `None` when the deadline passes first (`connection_limit`).
    /// With `reuse` false, idle connections are left alone (a retry wants a new one).
    pub async fn checkout(
        &self,
        key: &PoolKey,
        limits: PoolLimits,
        reuse: bool,
        max_wait: Duration,
    ) -> Option<Checkout> {
        let mut deadline = None;
        loop {
            if let Some(c) = self.try_checkout(key, limits, reuse) {
                return Some(c);
            }
            let d = *deadline.get_or_insert_with(|| Instant::now() + max_wait);
            let woken = monoio::time::timeout_at(d, self.wait(key)).await;
            if woken.is_err() {
                return None;
            }
        }
    }

    /// An idle, unexpired connection for `key`, if there is one; expired ones met on the way
    /// close (as in a checkout). Never takes a slot for a new connection.
    pub fn try_reuse(&self, key: &PoolKey, limits: PoolLimits) -> Option<(UpstreamConn, Permit)> {
        let mut inner = self.inner.borrow_mut();
        let Inner { hosts, total_idle } = &mut *inner;
        let entry = hosts.get_mut(key)?;
        while let Some(idle) = entry.idle.pop() {
            *total_idle -= 1;
            if reusable(&idle, &limits) {
                return Some((idle.conn, self.permit(key)));
            }
            // Expired or closed by the upstream: closing it frees its slot.
            entry.open = entry.open.saturating_sub(1);
        }
        None
    }

    fn try_checkout(&self, key: &PoolKey, limits: PoolLimits, reuse: bool) -> Option<Checkout> {
        let mut inner = self.inner.borrow_mut();
        let Inner { hosts, total_idle } = &mut *inner;
        let entry = hosts.entry(key.clone()).or_default();
        if reuse {
            while let Some(idle) = entry.idle.pop() {
                *total_idle -= 1;
                if reusable(&idle, &limits) {
                    return Some(Checkout::Reuse(idle.conn, self.permit(key)));
                }
                // Expired or closed by the upstream: closing it frees its slot.
                entry.open = entry.open.saturating_sub(1);
            }
        }
        if limits.max_conns_per_host == 0 || entry.open < limits.max_conns_per_host {
            entry.open += 1;
            return Some(Checkout::Connect(self.permit(key)));
        }
        None
    }

    fn permit(&self, key: &PoolKey) -> Permit {
        Permit {
            pool: self.inner.clone(),
            key: key.clone(),
            armed: true,
        }
    }

    /// Resolves once this key's state changes (a connection came back or closed).
    async fn wait(&self, key: &PoolKey) {
        let mut registered = false;
        poll_fn(|cx| {
            if registered {
                return Poll::Ready(());
            }
            registered = true;
            let mut inner = self.inner.borrow_mut();
            inner
                .hosts
                .entry(key.clone())
                .or_default()
                .waiters
                .push_back(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Returns a connection that finished a clean exchange; keeps it if the limits allow,
    /// else closes it.
    pub fn check_in(&self, conn: UpstreamConn, mut permit: Permit, limits: PoolLimits) {
        let mut inner = self.inner.borrow_mut();
        let Inner { hosts, total_idle } = &mut *inner;
        let Some(entry) = hosts.get_mut(&permit.key) else {
            return;
        };
        if entry.idle.len() >= limits.max_idle_per_host || *total_idle >= limits.max_idle {
            drop(inner);
            drop(conn);
            return; // `permit` drops here and frees the slot.
        }
        permit.armed = false;
        let since = Instant::now();
        entry.idle.push(IdleConn {
            conn,
            since,
            expires: since + limits.idle_timeout,
        });
        *total_idle += 1;
        entry.waiters.drain(..).for_each(Waker::wake);
    }
}

impl Pool {
    /// Closes idle connections past their `idle_conn_timeout` or closed by the upstream (one
    /// peek each), and forgets keys with nothing left (a location a reload removed, TLS files
    /// that rotated): without it they would wait for a checkout of their key that may never
    /// come. The worker calls it periodically.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            let Inner { hosts, total_idle } = &mut *inner;
            hosts.retain(|_, entry| {
                let before = entry.idle.len();
                let mut i = 0;
                while i < entry.idle.len() {
                    let c = &entry.idle[i];
                    if c.expires <= now || !c.conn.still_open() {
                        expired.push(entry.idle.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
                // Newest last, as checkout expects.
                entry.idle.sort_by_key(|c| c.since);
                let gone = before - entry.idle.len();
                *total_idle -= gone;
                entry.open = entry.open.saturating_sub(gone);
                if gone > 0 {
                    entry.waiters.drain(..).for_each(Waker::wake);
                }
                entry.open > 0 || !entry.waiters.is_empty()
            });
        }
        // Closed outside the borrow.
        drop(expired);
    }
}
