//! IO glue the standard library and monoio do not provide (design §4 allows `unsafe` here):
//! SO_LINGER through the raw fd, a non-blocking peek at a socket's receive queue (has an idle
//! socket heard from its peer?), the memlock limit, and a client stream whose close can be a
//! pure reset and whose writes give up when the client stops reading
//! (`request_limits.send_timeout`, spec §6). Each call works on a raw fd the caller owns and
//! keeps open.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use monoio::net::TcpStream;
use monoio::BufResult;

/// Sets SO_LINGER to {on, 0 s}: closing the socket then sends a reset instead of a FIN, so a
/// client can tell an aborted response from a complete one (spec §4).
pub fn set_linger_zero(fd: RawFd) -> bool {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is an open socket owned by the caller for the duration of the call, and
    // `linger` is a valid, properly sized `struct linger` that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// Sets TCP_NODELAY on an open TCP socket; false if the kernel refused.
pub fn set_nodelay(fd: RawFd) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is an open socket owned by the caller for the duration of the call, and
    // `on` is a valid `int` that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            std::ptr::addr_of!(on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// What a non-blocking peek at a socket's receive queue found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// Nothing to read, no end of stream, no error.
    Quiet,
    /// Bytes wait unread (left queued).
    Pending,
    /// The peer closed (FIN or RST) or the socket has an error.
    Closed,
}

/// One non-blocking `recv(MSG_PEEK | MSG_DONTWAIT)` of one byte, which consumes nothing.
pub fn peek(fd: RawFd) -> Peek {
    let mut byte = 0u8;
    // SAFETY: `fd` is an open socket owned by the caller for the duration of the call, and
    // `byte` is a valid one-byte buffer that outlives the call; MSG_PEEK leaves it queued.
    let n = unsafe {
        libc::recv(
            fd,
            std::ptr::addr_of_mut!(byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        n if n > 0 => Peek::Pending,
        n if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock => Peek::Quiet,
        _ => Peek::Closed,
    }
}

/// Whether an idle socket is still quiet. A pooled upstream connection that is not was closed
/// by its peer (FIN, RST, a TLS close_notify) or sent bytes nobody asked for; either way it
/// must not carry a request.
pub fn socket_is_quiet(fd: RawFd) -> bool {
    peek(fd) == Peek::Quiet
}

/// Whether the peer has sent bytes that wait unread (peeked, not consumed; never blocks).
/// False on EOF, on an error and when nothing is queued.
pub fn has_pending_input(fd: RawFd) -> bool {
    peek(fd) == Peek::Pending
}

/// Shuts both directions of a socket down. A write or read waiting on it (an io_uring
/// operation, or an epoll readiness wait) wakes and fails at once, so its owned buffer comes
/// back without a cancellation.
fn shutdown_both(fd: RawFd) {
    // SAFETY: `fd` is an open socket owned by the caller for the duration of the call;
    // shutdown(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// The soft `RLIMIT_MEMLOCK` of this process in bytes; `None` when unlimited or unknown.
pub fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `struct rlimit` into `lim`, which is valid and outlives
    // the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// A client TCP stream whose graceful half-close can be suppressed.
///
/// monoio's write half sends a FIN (`shutdown(SHUT_WR)`) when it is dropped. An aborted
/// response must end with a reset and never a FIN, or a close-delimited body would look
/// complete; after [`AbortHandle::abort`] this stream skips that shutdown, so the close that
/// follows (with SO_LINGER 0) sends only the reset.
///
/// Every write (each `write`/`writev`, so each step of a `write_all`) that makes no progress
/// for `send_timeout` fails with `TimedOut` and aborts the connection the same way: SO_LINGER 0,
/// no FIN, both directions shut so whatever waits on the socket ends (spec §6 `send_timeout`).
/// A write that completes when first polled (epoll, room in the socket buffer) arms no timer.
pub struct ClientStream {
    inner: TcpStream,
    no_fin: Rc<Cell<bool>>,
    send_timeout: Option<Duration>,
}

/// Ends a client connection with a reset (spec §4 "Abort").
#[derive(Clone)]
pub struct AbortHandle {
    fd: RawFd,
    no_fin: Rc<Cell<bool>>,
}

impl AbortHandle {
    /// The socket's descriptor (valid while the connection lives).
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// For a connection that ends cleanly with nothing left to read: skip the separate
    /// half-close, since the close that follows sends the FIN itself (one syscall fewer per
    /// connection).
    pub fn close_plainly(&self) {
        self.no_fin.set(true);
    }

    /// Arms the reset: the connection's close will send RST and no FIN.
    pub fn abort(&self) {
        set_linger_zero(self.fd);
        self.no_fin.set(true);
    }
}

impl ClientStream {
    /// The TCP stream itself (for a protocol that does not use the reset-on-abort).
    pub fn into_inner(self) -> TcpStream {
        self.inner
    }

    /// `send_timeout`: how long one write may make no progress (`None`: forever).
    pub fn new(inner: TcpStream, send_timeout: Option<Duration>) -> (ClientStream, AbortHandle) {
        let no_fin = Rc::new(Cell::new(false));
        let handle = AbortHandle {
            fd: inner.as_raw_fd(),
            no_fin: no_fin.clone(),
        };
        let stream = ClientStream {
            inner,
            no_fin,
            send_timeout,
        };
        (stream, handle)
    }
}

/// Runs one client write; if it is still pending after `limit`, aborts the connection (reset,
/// no FIN), waits for the write to hand its buffer back (the shutdown ends it at once) and
/// reports `TimedOut`.
async fn write_within<T, F>(
    write: F,
    limit: Option<Duration>,
    fd: RawFd,
    no_fin: &Cell<bool>,
) -> BufResult<usize, T>
where
    F: Future<Output = BufResult<usize, T>>,
{
    let Some(limit) = limit else {
        return write.await;
    };
    let mut write = pin!(write);
    // Most writes finish at once on epoll (the socket had room): they arm no timer.
    if let Poll::Ready(done) = poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
        return done;
    }
    match monoio::time::timeout(limit, write.as_mut()).await {
        Ok(done) => done,
        Err(_) => {
            set_linger_zero(fd);
            no_fin.set(true);
            shutdown_both(fd);
            let (_, buf) = write.await;
            (Err(io::ErrorKind::TimedOut.into()), buf)
        }
    }
}

impl AsyncReadRent for ClientStream {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.inner.read(buf)
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.inner.readv(buf)
    }
}

impl AsyncWriteRent for ClientStream {
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        let fd = self.inner.as_raw_fd();
        write_within(self.inner.write(buf), self.send_timeout, fd, &self.no_fin)
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        let fd = self.inner.as_raw_fd();
        write_within(self.inner.writev(buf), self.send_timeout, fd, &self.no_fin)
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        self.inner.flush()
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        // monoio shuts down synchronously when `shutdown` is called, so skipping the call
        // skips the FIN.
        let fin = (!self.no_fin.get()).then(|| self.inner.shutdown());
        async move {
            match fin {
                Some(f) => f.await,
                None => Ok(()),
            }
        }
    }
}

// SAFETY: reads and writes use independent directions of one socket and never touch each
// other's state, exactly as for `monoio::net::TcpStream`, which is `Split` itself.
unsafe impl Split for ClientStream {}
