//! Completion-style IO (a [`ReadSource`] and a [`WriteSink`] half, e.g. monoio's owned halves
//! or the TLS listener's rustls halves) as the poll-style tokio traits the h2 crate needs, for
//! streams that have no poll-io form: the TLS listener's connections after ALPN `h2`. Each read and write is an owned-buffer operation moved
//! into a boxed future together with its half, which comes back when the operation ends. A
//! write copies the caller's bytes, starts the operation and reports them written at once;
//! the next write or a flush waits for it (write-behind, one write in flight). Set TCP_NODELAY
//! on the socket: each write is one frame, and Nagle would hold every one back for an ACK.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use monoio::buf::IoBufMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::conn::ReadSource;
use crate::http::response::WriteSink;

type Op<T> = Pin<Box<dyn Future<Output = T>>>;
/// A read in flight: the half, its result and the buffer come back together.
type ReadOp<R> = Op<(R, io::Result<usize>, Vec<u8>)>;
/// A write in flight, likewise.
type WriteOp<W> = Op<(W, io::Result<usize>, Vec<u8>)>;

/// Bytes asked for per read.
const READ_SIZE: usize = 16 * 1024;

/// A read half and a write half as one tokio stream.
pub struct RentIo<R, W> {
    rd: Option<R>,
    wr: Option<W>,
    reading: Option<ReadOp<R>>,
    /// Bytes read but not handed out yet, from `pos`.
    got: Vec<u8>,
    pos: usize,
    writing: Option<WriteOp<W>>,
    /// The buffer of the last finished write, reused by the next.
    spare: Vec<u8>,
    closing: Option<Op<(W, io::Result<()>)>>,
}

// The halves are moved in and out, never pinned in place.
impl<R, W> Unpin for RentIo<R, W> {}

impl<R, W> RentIo<R, W> {
    pub fn new(rd: R, wr: W) -> Self {
        RentIo {
            rd: Some(rd),
            wr: Some(wr),
            reading: None,
            got: Vec::new(),
            pos: 0,
            writing: None,
            spare: Vec::new(),
            closing: None,
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "half lost after a failed operation",
    )
}

impl<R: ReadSource + 'static, W> AsyncRead for RentIo<R, W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos == this.got.len() {
            if this.reading.is_none() {
                let Some(mut rd) = this.rd.take() else {
                    return Poll::Ready(Err(gone()));
                };
                let mut b = std::mem::take(&mut this.got);
                this.pos = 0;
                b.clear();
                b.reserve(READ_SIZE);
                this.reading = Some(Box::pin(async move {
                    let (r, b) = rd.read_some(b.slice_mut(0..READ_SIZE)).await;
                    (rd, r, b.into_inner())
                }));
            }
            let Some(op) = this.reading.as_mut() else {
                return Poll::Ready(Err(gone()));
            };
            let (rd, r, b) = ready!(op.as_mut().poll(cx));
            this.reading = None;
            this.rd = Some(rd);
            this.got = b;
            this.pos = 0;
            if let Err(e) = r {
                this.got.clear();
                return Poll::Ready(Err(e));
            }
        }
        let n = this.got.len().saturating_sub(this.pos).min(buf.remaining());
        buf.put_slice(&this.got[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl<R, W: WriteSink + 'static> RentIo<R, W> {
    /// Waits for the write in flight, if any; its buffer comes back for the next write.
    fn poll_pending_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(op) = self.writing.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let (wr, r, buf) = ready!(op.as_mut().poll(cx));
        self.writing = None;
        self.wr = Some(wr);
        self.spare = buf;
        Poll::Ready(r.map(|_| ()))
    }
}

impl<R, W: WriteSink + 'static> AsyncWrite for RentIo<R, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    /// Copies the slices (h2 hands a frame head and its payload separately) into one owned
    /// buffer, starts writing it and reports them written at once, so h2 goes on framing
    /// while the socket write runs. One write is in flight at a time: the next call waits for
    /// it (and reports its error); a flush waits for it too.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending_write(cx))?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        let Some(mut wr) = this.wr.take() else {
            return Poll::Ready(Err(gone()));
        };
        let mut data = std::mem::take(&mut this.spare);
        data.clear();
        data.reserve(total);
        for b in bufs {
            data.extend_from_slice(b);
        }
        let mut op: WriteOp<W> = Box::pin(async move {
            let (r, buf) = wr.write_all_owned(data).await;
            (wr, r, buf)
        });
        // Most writes finish at once (the socket has room): no second wake-up for them.
        match op.as_mut().poll(cx) {
            Poll::Ready((wr, r, buf)) => {
                this.wr = Some(wr);
                this.spare = buf;
                r?;
            }
            Poll::Pending => this.writing = Some(op),
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Every write goes straight to the socket (a TLS write encrypts and sends), so a flush
    /// is only the end of the write in flight.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_pending_write(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending_write(cx))?;
        if this.closing.is_none() {
            let Some(mut wr) = this.wr.take() else {
                return Poll::Ready(Err(gone()));
            };
            this.closing = Some(Box::pin(async move {
                let r = wr.close_write().await;
                (wr, r)
            }));
        }
        poll_closing(this, cx)
    }
}

fn poll_closing<R, W>(this: &mut RentIo<R, W>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    let Some(op) = this.closing.as_mut() else {
        return Poll::Ready(Ok(()));
    };
    let (wr, r) = ready!(op.as_mut().poll(cx));
    this.closing = None;
    this.wr = Some(wr);
    Poll::Ready(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::future::poll_fn;

    use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
    use monoio::net::{TcpListener, TcpStream};

    use super::*;

    async fn read_some<T: AsyncRead + Unpin>(io: &mut T) -> Vec<u8> {
        let mut space = [0u8; 64];
        let mut buf = ReadBuf::new(&mut space);
        poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut buf))
            .await
            .unwrap();
        buf.filled().to_vec()
    }

    #[test]
    fn bytes_cross_both_ways_and_shutdown_ends_the_stream() {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let mut client = TcpStream::connect_addr(addr).await.unwrap();
                let (server, _) = listener.accept().await.unwrap();
                let (rd, wr) = server.into_split();
                let mut io = RentIo::new(rd, wr);

                let (r, _) = client.write_all(b"hello").await;
                r.unwrap();
                let mut got = Vec::new();
                while got.len() < 5 {
                    got.extend(read_some(&mut io).await);
                }
                assert_eq!(got, b"hello");

                let bufs = [io::IoSlice::new(b"ab"), io::IoSlice::new(b"cd")];
                let n = poll_fn(|cx| Pin::new(&mut io).poll_write_vectored(cx, &bufs))
                    .await
                    .unwrap();
                assert_eq!(n, 4);
                poll_fn(|cx| Pin::new(&mut io).poll_flush(cx))
                    .await
                    .unwrap();
                poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx))
                    .await
                    .unwrap();
                let mut all = Vec::new();
                loop {
                    let (r, buf) = client.read(Vec::with_capacity(64)).await;
                    if r.unwrap() == 0 {
                        break;
                    }
                    all.extend_from_slice(&buf);
                }
                assert_eq!(all, b"abcd");

                drop(client);
                assert!(
                    read_some(&mut io).await.is_empty(),
                    "EOF after the peer left"
                );
            });
    }
}
