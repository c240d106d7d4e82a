//! A one-shot, single-threaded broadcast: once fired, every current and future waiter
//! resolves. Used on a worker to stop its accept loop and to tell idle connections to close
//! when draining. `Rc`-based: never crosses threads.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

#[derive(Default)]
struct Inner {
    fired: bool,
    waiters: Vec<Waker>,
}

#[derive(Clone, Default)]
pub struct LocalSignal {
    inner: Rc<RefCell<Inner>>,
}

impl LocalSignal {
    pub fn fire(&self) {
        let waiters = {
            let mut inner = self.inner.borrow_mut();
            inner.fired = true;
            std::mem::take(&mut inner.waiters)
        };
        waiters.into_iter().for_each(Waker::wake);
    }

    pub fn is_fired(&self) -> bool {
        self.inner.borrow().fired
    }

    /// Resolves once the signal has fired.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            if inner.fired {
                return Poll::Ready(());
            }
            if !inner.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                inner.waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}
