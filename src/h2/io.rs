//! Adapts a poll-style stream for the h2 crate: bytes already read by the HTTP/1 session
//! (the connection preface) are served first, the bytes moved are counted for the transfer
//! metrics (spec §10), and on a stream that does not bound its own writes (h2c's poll-io TCP
//! stream) a write that stays pending for `send_timeout` fails and arms the reset (spec §6).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use monoio::time::{Instant, Sleep};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::sys;

/// Bytes read from and written to a client connection, shared with its owner.
#[derive(Debug, Default)]
pub struct Counts {
    pub read: Cell<u64>,
    pub written: Cell<u64>,
}

/// A stream that first yields `prefix`, then reads from `inner`.
pub struct Prefixed<T> {
    prefix: Vec<u8>,
    pos: usize,
    inner: T,
    counts: Rc<Counts>,
    watch: Option<SendWatch>,
}

impl<T> Prefixed<T> {
    /// `prefix`: bytes read from the client before the hand-off (counted already).
    pub fn new(prefix: Vec<u8>, inner: T) -> Self {
        Prefixed {
            prefix,
            pos: 0,
            inner,
            counts: Rc::new(Counts::default()),
            watch: None,
        }
    }

    /// Bounds each write that waits for the client to read (`send_timeout`): once one has been
    /// pending for `limit`, it fails with `TimedOut` and the socket `fd` is set to close with
    /// a reset. For streams whose writes are not bounded underneath (h2c's TCP stream).
    pub fn with_send_timeout(mut self, limit: Option<Duration>, fd: RawFd) -> Self {
        self.watch = limit.map(|limit| SendWatch {
            limit,
            fd,
            timer: None,
            armed: false,
        });
        self
    }

    pub(crate) fn counts(&self) -> Rc<Counts> {
        self.counts.clone()
    }
}

/// The `send_timeout` of a poll-style stream: a timer armed when a write first returns
/// `Pending`, disarmed by the next write that completes. No timer for writes that complete
/// when polled (the socket had room), and the timer's allocation is made once, at the first
/// stall.
struct SendWatch {
    limit: Duration,
    fd: RawFd,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl SendWatch {
    /// After a write returned `Ready`.
    fn progressed(&mut self) {
        self.armed = false;
    }

    /// After a write returned `Pending`: whether it has now waited too long (then the
    /// connection is set to close with a reset).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.armed {
            self.armed = true;
            let deadline = Instant::now() + self.limit;
            match self.timer.as_mut() {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(monoio::time::sleep_until(deadline))),
            }
        }
        let Some(timer) = self.timer.as_mut() else {
            return false;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        sys::set_linger_zero(self.fd);
        true
    }
}

/// What a watched write reports: `Pending` turns into `TimedOut` once the watch expires.
fn watched<R>(
    watch: &mut Option<SendWatch>,
    cx: &mut Context<'_>,
    r: Poll<io::Result<R>>,
) -> Poll<io::Result<R>> {
    let Some(w) = watch.as_mut() else {
        return r;
    };
    match r {
        Poll::Pending if w.expired(cx) => Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "send_timeout: the client stopped reading",
        ))),
        Poll::Pending => Poll::Pending,
        Poll::Ready(r) => {
            w.progressed();
            Poll::Ready(r)
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        this.counts.read.set(this.counts.read.get() + n);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        let r = watched(&mut this.watch, cx, r);
        if let Poll::Ready(Ok(n)) = r {
            this.counts
                .written
                .set(this.counts.written.get() + n as u64);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        let r = watched(&mut this.watch, cx, r);
        if let Poll::Ready(Ok(n)) = r {
            this.counts
                .written
                .set(this.counts.written.get() + n as u64);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
