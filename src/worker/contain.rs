//! Panic containment for the tasks that serve client connections (spec §12).
//!
//! Each such task — an HTTP/1.1 connection (plain or TLS) with the WebSocket tunnel it may
//! become, an HTTP/2 connection, each HTTP/2 stream — runs inside [`contain`]: its future is
//! polled under `catch_unwind`, with the connection's [`Scope`] as the thread's current scope.
//! The process panic hook ([`install_hook`]) looks at that scope the moment a panic starts,
//! before unwinding drops anything: it arms the connection's reset (SO_LINGER 0 and no FIN,
//! while the socket is still open) and records the message and location instead of printing
//! them. The unwind is then caught, the task ends with [`Caught`], and its owner logs one
//! ERROR line with the request id and counts `dito_worker_panics_total` ([`Caught::report`]).
//! A panic in an HTTP/2 stream also ends its connection ([`Scope::ended`]). A panic on a
//! worker thread outside every scope (the accept loop, the command loop, a timer task) goes to
//! the default hook, and then the process exits at once, non-zero (`worker::worker_died`):
//! never a process whose listener accepts into a queue no thread reads. So no worker code may
//! `catch_unwind` outside [`contain`].
//!
//! What an unwinding task leaves behind: its locals are dropped as it unwinds, so its guards
//! run — the connection count, pool permits, held-body bytes, HTTP/2 stream counts, the
//! tunnel gauge — and `RefCell` borrows are released (a `RefCell` does not poison). Worker
//! state (`WorkerState`: pool, generation, metrics, caches) is only borrowed in synchronous
//! sections, never across an await, so no other task can see an update half done; only a
//! panic inside such a section itself (a bug in that structure) could leave it inconsistent.
//!
//! Cost on the request path: per poll of a connection task, swapping one thread-local `Rc`
//! in and out; per request, copying its id into the scope. No allocation, no syscall.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe, PanicHookInfo};
use std::rc::Rc;
use std::task::Poll;

use crate::observe::recorder::Recorder;
use crate::request_id::RequestId;
use crate::sys::AbortHandle;
use crate::worker::signal::LocalSignal;

thread_local! {
    /// The scope of the task being polled on this thread, if it is a contained one.
    static CURRENT: Cell<Option<Rc<Scope>>> = const { Cell::new(None) };
    /// This thread is worker N: a panic outside every scope ends the process.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks the calling thread as worker `id` (before its runtime starts): from then on a panic
/// on it outside every contained task ends the process at once (after the default hook has
/// printed it), without unwinding through the runtime.
pub fn mark_worker_thread(id: usize) {
    WORKER.with(|w| w.set(Some(id)));
}

/// What one contained task (and the tasks it spawns for the same connection) shares.
pub struct Scope {
    /// Resets the client connection; `None` for a task without its own socket.
    abort: Option<AbortHandle>,
    /// Fired when a task of this connection panicked: the connection's own task ends.
    ended: LocalSignal,
    /// The id of the request this task serves (its latest one on a keep-alive connection).
    request_id: Cell<Option<RequestId>>,
    /// What the panic hook recorded.
    panic: RefCell<Option<PanicText>>,
}

#[derive(Debug, Clone)]
struct PanicText {
    message: String,
    location: String,
}

impl Scope {
    /// The scope of a connection task; `abort` resets that connection.
    pub fn connection(abort: Option<AbortHandle>) -> Rc<Scope> {
        Rc::new(Scope {
            abort,
            ended: LocalSignal::default(),
            request_id: Cell::new(None),
            panic: RefCell::new(None),
        })
    }

    /// A scope for a task that serves part of the current task's connection (an HTTP/2
    /// stream): a panic there resets and ends that connection. Outside any scope, a scope
    /// of its own without a socket.
    pub fn child() -> Rc<Scope> {
        let parent = CURRENT.with(|c| {
            let s = c.take();
            let parent = s.as_ref().map(|s| (s.abort.clone(), s.ended.clone()));
            c.set(s);
            parent
        });
        let (abort, ended) = parent.unwrap_or_default();
        Rc::new(Scope {
            abort,
            ended,
            request_id: Cell::new(None),
            panic: RefCell::new(None),
        })
    }

    /// Resolves once a task of this connection panicked (an HTTP/2 stream): the connection
    /// must end.
    pub fn ended(&self) -> crate::worker::signal::Wait {
        self.ended.wait()
    }
}

/// The scope of the task being polled (a connection's own task asks for its [`Scope::ended`]).
pub fn current() -> Option<Rc<Scope>> {
    CURRENT.with(|c| {
        let s = c.take();
        let copy = s.clone();
        c.set(s);
        copy
    })
}

/// Notes the id of the request the current task serves, for the panic line. Outside a
/// contained task, nothing.
pub fn note_request_id(id: &RequestId) {
    let _ = CURRENT.try_with(|c| {
        let s = c.take();
        if let Some(scope) = &s {
            scope.request_id.set(Some(*id));
        }
        c.set(s);
    });
}

/// A contained task's panic: what to log.
#[derive(Debug)]
pub struct Caught {
    message: String,
    location: String,
    request_id: Option<RequestId>,
}

impl Caught {
    /// Logs the panic once (ERROR, with the request id when one was known) and counts it
    /// (`dito_worker_panics_total`).
    pub fn report(&self, metrics: &Recorder, worker: usize, client: SocketAddr) {
        metrics.worker_panic();
        let request_id = self.request_id.as_ref().map_or("", RequestId::as_str);
        tracing::error!(
            worker,
            client = %client,
            request_id,
            panic = %self.message,
            location = %self.location,
            "a connection task panicked; its connection was reset and the worker goes on"
        );
    }
}

/// Runs `fut` as a contained task of `scope`: `Err` when it panicked (the unwind already
/// dropped its state; its connection is reset, see the module doc).
pub async fn contain<F: Future>(scope: Rc<Scope>, fut: F) -> Result<F::Output, Caught> {
    let mut fut = std::pin::pin!(fut);
    poll_fn(|cx| {
        let outer = CURRENT.with(|c| c.replace(Some(scope.clone())));
        let polled = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
        CURRENT.with(|c| c.set(outer));
        match polled {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                // The hook armed the reset and recorded the text. Without the hook (unit
                // tests) only the payload is known; the reset cannot be armed now, as the
                // unwind may have closed the socket and its descriptor number be reused.
                let text = scope
                    .panic
                    .borrow_mut()
                    .take()
                    .unwrap_or_else(|| PanicText {
                        message: payload_text(payload.as_ref()),
                        location: String::new(),
                    });
                scope.ended.fire();
                Poll::Ready(Err(Caught {
                    message: text.message,
                    location: text.location,
                    request_id: scope.request_id.get(),
                }))
            }
        }
    })
    .await
}

/// Installs the panic hook that contains panics of scoped tasks; every other panic goes to
/// the hook that was installed before, and on a worker thread then ends the process. Call
/// once, before the workers start.
pub fn install_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if record_in_scope(info) {
            return;
        }
        previous(info);
        if let Some(id) = WORKER.try_with(Cell::get).ok().flatten() {
            super::worker_died(id);
        }
    }));
}

/// When a contained task is being polled on this thread: arm its connection's reset and
/// record the panic for [`contain`]. Returns whether it did.
fn record_in_scope(info: &PanicHookInfo<'_>) -> bool {
    CURRENT
        .try_with(|c| {
            let s = c.take();
            let Some(scope) = &s else {
                return false;
            };
            if let Some(abort) = &scope.abort {
                abort.abort();
            }
            let text = PanicText {
                message: payload_text(info.payload()),
                location: info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default(),
            };
            if let Ok(mut slot) = scope.panic.try_borrow_mut() {
                *slot = Some(text);
            }
            c.set(s);
            true
        })
        .unwrap_or(false)
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Waker};

    fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
        let mut fut = std::pin::pin!(fut);
        fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_panic_becomes_caught_with_the_noted_request_id() {
        let scope = Scope::connection(None);
        let ended = scope.ended();
        let id = crate::request_id::IdGenerator::new().for_request(Some(b"rid-7"));
        let r = poll_once(contain(scope.clone(), async move {
            note_request_id(&id);
            if id.len() == 5 {
                panic!("boom");
            }
        }));
        let Poll::Ready(Err(caught)) = r else {
            panic!("not caught")
        };
        assert_eq!(caught.message, "boom");
        assert_eq!(
            caught.request_id.map(|i| i.to_string()).as_deref(),
            Some("rid-7")
        );
        assert!(poll_once(ended).is_ready(), "the connection is told to end");
        assert!(current().is_none(), "the scope is left after the poll");
    }

    #[test]
    fn a_child_shares_its_parents_end() {
        let parent = Scope::connection(None);
        let ended = parent.ended();
        let r = poll_once(contain(parent, async {
            let child = Scope::child();
            poll_once(contain(child, async { panic!("in a stream") }))
        }));
        assert!(matches!(r, Poll::Ready(Ok(Poll::Ready(Err(_))))));
        assert!(poll_once(ended).is_ready());
    }

    #[test]
    fn output_passes_through() {
        let r = poll_once(contain(Scope::connection(None), async { 7 }));
        assert!(matches!(r, Poll::Ready(Ok(7))));
    }
}
