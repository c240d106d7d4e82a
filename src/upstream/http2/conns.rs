//! One worker's multiplexed HTTP/2 upstream connections: at most one per pool key (design
//! §5, spec §5 `force_http2`), opened on first use and shared by every request of that key on
//! this worker.
//!
//! Requests that arrive while the connection is being opened wait for that attempt instead of
//! opening their own, and share its result. A connection that ended (GOAWAY, an error, the
//! peer closed) is replaced by the next request that needs one. A connection with no open
//! stream for `idle_conn_timeout` is closed by its own task. The server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` is honoured by the h2 crate, which queues streams over it.
//! Single-threaded: `Rc` and `RefCell`, never borrowed across an await.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use h2::client::SendRequest;

use crate::error::UpstreamErrorKind;
use crate::fxhash::FxBuildHasher;
use crate::h2::activity::StreamActivity;
use crate::upstream::pool::PoolKey;

/// A usable connection: the handle to open streams on, and its shared state.
#[derive(Clone)]
pub struct H2Conn {
    pub send: SendRequest<Bytes>,
    pub state: Rc<ConnState>,
}

/// What the connection task and the requests share.
#[derive(Default)]
pub struct ConnState {
    /// The connection task ended: open no new stream here.
    pub closed: Cell<bool>,
    /// Streams in flight, for the idle close.
    pub activity: Rc<StreamActivity>,
}

/// A connection attempt others may wait for.
#[derive(Default)]
struct Opening {
    /// `Some` once the attempt ended: the connection, or why it failed; `Ok(None)` = the
    /// attempt was abandoned (its request went away), so a waiter tries itself.
    result: RefCell<Option<Result<Option<H2Conn>, UpstreamErrorKind>>>,
    waiters: RefCell<Vec<Waker>>,
}

impl Opening {
    fn finish(&self, result: Result<Option<H2Conn>, UpstreamErrorKind>) {
        *self.result.borrow_mut() = Some(result);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    async fn wait(&self) -> Result<Option<H2Conn>, UpstreamErrorKind> {
        poll_fn(|cx| match &*self.result.borrow() {
            Some(r) => Poll::Ready(r.clone()),
            None => {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

enum Slot {
    Ready(H2Conn),
    Opening(Rc<Opening>),
}

/// The connections of one worker, by pool key.
#[derive(Default)]
pub struct H2Conns {
    slots: RefCell<HashMap<PoolKey, Slot, FxBuildHasher>>,
}

/// What [`H2Conns::get`] found.
pub enum Found {
    /// A live connection opened earlier (`reused`) or by an attempt this request waited for.
    Conn { conn: H2Conn, reused: bool },
    /// None: the caller opens one and reports through the ticket.
    Open(OpenTicket),
}

/// The right (and duty) to open the connection of a key; abandoning it lets waiters retry.
pub struct OpenTicket {
    conns: Rc<H2Conns>,
    key: PoolKey,
    opening: Rc<Opening>,
    done: bool,
}

impl OpenTicket {
    /// Publishes the outcome of the attempt to the waiters (and the connection to the map).
    pub fn finish(mut self, result: Result<H2Conn, UpstreamErrorKind>) {
        self.done = true;
        let mut slots = self.conns.slots.borrow_mut();
        match &result {
            Ok(conn) => {
                slots.insert(self.key.clone(), Slot::Ready(conn.clone()));
            }
            Err(_) => {
                slots.remove(&self.key);
            }
        }
        drop(slots);
        self.opening.finish(result.map(Some));
    }
}

impl Drop for OpenTicket {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut slots = self.conns.slots.borrow_mut();
        if matches!(slots.get(&self.key), Some(Slot::Opening(o)) if Rc::ptr_eq(o, &self.opening)) {
            slots.remove(&self.key);
        }
        drop(slots);
        self.opening.finish(Ok(None));
    }
}

impl H2Conns {
    /// A live connection for `key`, or the ticket to open one.
    pub async fn get(self: &Rc<Self>, key: &PoolKey) -> Result<Found, UpstreamErrorKind> {
        // Bounded: each pass either returns or saw an abandoned attempt.
        for _ in 0..4 {
            let opening = {
                let mut slots = self.slots.borrow_mut();
                match slots.get(key) {
                    Some(Slot::Ready(c)) if !c.state.closed.get() => {
                        return Ok(Found::Conn {
                            conn: c.clone(),
                            reused: true,
                        });
                    }
                    Some(Slot::Opening(o)) => o.clone(),
                    _ => {
                        let opening = Rc::new(Opening::default());
                        slots.insert(key.clone(), Slot::Opening(opening.clone()));
                        return Ok(Found::Open(OpenTicket {
                            conns: self.clone(),
                            key: key.clone(),
                            opening,
                            done: false,
                        }));
                    }
                }
            };
            match opening.wait().await {
                Ok(Some(conn)) => {
                    return Ok(Found::Conn {
                        conn,
                        reused: false,
                    })
                }
                Ok(None) => continue,
                Err(kind) => return Err(kind),
            }
        }
        Err(UpstreamErrorKind::ConnectTimeout)
    }

    /// Forgets `conn` if it is still the key's connection (it failed).
    pub fn forget(&self, key: &PoolKey, conn: &H2Conn) {
        conn.state.closed.set(true);
        let mut slots = self.slots.borrow_mut();
        if matches!(slots.get(key), Some(Slot::Ready(c)) if Rc::ptr_eq(&c.state, &conn.state)) {
            slots.remove(key);
        }
    }

    /// Drops the entries of connections that ended (their tasks are gone already).
    pub fn sweep(&self) {
        self.slots
            .borrow_mut()
            .retain(|_, slot| !matches!(slot, Slot::Ready(c) if c.state.closed.get()));
    }
}
