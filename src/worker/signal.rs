//! A one-shot, single-threaded broadcast: once fired, every current and future waiter
//! resolves. Used on a worker to stop its accept loop and to tell idle connections to close
//! when draining. `Rc`-based: never crosses threads.
//!
//! Each waiting future owns one slot and frees it when dropped, so connections that wait
//! while idle and then go away leave nothing behind, and registering is O(1).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Inner {
    fired: bool,
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

#[derive(Clone, Default)]
pub struct LocalSignal {
    inner: Rc<RefCell<Inner>>,
}

impl LocalSignal {
    pub fn fire(&self) {
        let wakers: Vec<Waker> = {
            let mut inner = self.inner.borrow_mut();
            inner.fired = true;
            inner.slots.iter_mut().filter_map(Option::take).collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    pub fn is_fired(&self) -> bool {
        self.inner.borrow().fired
    }

    /// Resolves once the signal has fired.
    pub fn wait(&self) -> Wait {
        Wait {
            inner: self.inner.clone(),
            slot: None,
        }
    }
}

/// The future of [`LocalSignal::wait`].
pub struct Wait {
    inner: Rc<RefCell<Inner>>,
    slot: Option<usize>,
}

impl Future for Wait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut inner = this.inner.borrow_mut();
        if inner.fired {
            return Poll::Ready(());
        }
        let waker = Some(cx.waker().clone());
        match this.slot {
            Some(i) => inner.slots[i] = waker,
            None => {
                let i = match inner.free.pop() {
                    Some(i) => {
                        inner.slots[i] = waker;
                        i
                    }
                    None => {
                        inner.slots.push(waker);
                        inner.slots.len() - 1
                    }
                };
                this.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let mut inner = self.inner.borrow_mut();
            if let Some(s) = inner.slots.get_mut(i) {
                *s = None;
            }
            inner.free.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_waiters_free_their_slots() {
        let sig = LocalSignal::default();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..100 {
            let mut w = Box::pin(sig.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(sig.inner.borrow().slots.len(), 1);
        let mut w = Box::pin(sig.wait());
        assert!(w.as_mut().poll(&mut cx).is_pending());
        sig.fire();
        assert!(w.as_mut().poll(&mut cx).is_ready());
        assert!(Box::pin(sig.wait()).as_mut().poll(&mut cx).is_ready());
    }
}
