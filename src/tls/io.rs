//! A rustls session over the two owned halves of a monoio socket: the handshake, then a read
//! half and a write half used side by side (an upload and the response read run at once,
//! design §5). Shared by both sides: upstream connections (a `ClientConnection` over a
//! `TcpStream`) and the TLS listener (a `ServerConnection` over a [`ClientStream`](crate::sys::ClientStream), whose
//! abort still ends in a reset).
//!
//! Both halves share one `rustls::Connection` through an `Rc<RefCell<…>>` that is borrowed only
//! between awaits, never across one: each half owns its ciphertext buffer and is the only one
//! to touch its direction of the socket. The read half never writes — what rustls queues
//! while reading (an alert, a key-update answer) goes out with the next write — so a failed
//! read during an upload cannot collide with a write in flight. (monoio-rustls's split halves
//! share one write buffer that its read path also writes to on errors; a TLS error while a
//! request body uploads would panic there.) No `unsafe`: plaintext is appended to the reader's
//! `Vec`, and ciphertext moves in owned `Vec`s. Worker thread only.

use std::cell::RefCell;
use std::io::{self, BufRead, Write};
use std::mem;
use std::rc::Rc;

use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Split,
    Splitable,
};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::Connection;

use crate::http::conn::ReadSource;
use crate::http::response::WriteSink;
use crate::upstream::tls::noticing_cert_request;

/// Ciphertext read per socket read at first: one full TLS record (16 KiB plus header and
/// overhead).
const CIPHER_READ: usize = 16 * 1024 + 512;
/// Reads that keep filling the buffer double it up to this (bulk bodies, fewer syscalls).
const CIPHER_MAX: usize = 64 * 1024;

/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// rustls refused the peer (certificate, alert, protocol). `cert_requested`: the server
    /// had asked for a client certificate.
    Tls {
        error: rustls::Error,
        cert_requested: bool,
    },
    /// The socket failed or closed first.
    Io(io::Error),
}

/// The read half of an established session.
pub struct TlsReader<T = TcpStream> {
    tcp: OwnedReadHalf<T>,
    session: Rc<RefCell<Connection>>,
    /// Ciphertext read from the socket; `cipher[pos..]` is not yet handed to rustls.
    cipher: Vec<u8>,
    pos: usize,
    /// The last socket read filled `cipher`: offer a bigger one next time.
    filled_up: bool,
    /// An error met after plaintext was already handed out, for the next read.
    pending: Option<io::Error>,
    /// The server asked for a client certificate during the handshake.
    cert_requested: bool,
}

/// The write half of an established session.
pub struct TlsWriter<T: AsyncWriteRent = TcpStream> {
    tcp: OwnedWriteHalf<T>,
    session: Rc<RefCell<Connection>>,
    /// Ciphertext on its way to the socket (kept to reuse its allocation).
    out: Vec<u8>,
}

/// Runs the handshake of `session` (client or server) on `tcp`; on success the session's two
/// halves.
pub async fn handshake<T>(
    tcp: T,
    session: impl Into<Connection>,
) -> Result<(TlsReader<T>, TlsWriter<T>), HandshakeError>
where
    T: Split + AsyncReadRent + AsyncWriteRent,
{
    let mut session: Connection = session.into();
    let (mut rd, mut wr) = tcp.into_split();
    let mut cipher = Vec::with_capacity(CIPHER_READ);
    let mut pos = 0;
    let mut out = Vec::new();
    let mut cert_requested = false;
    loop {
        if session.wants_write() {
            out.clear();
            while session.wants_write() {
                session.write_tls(&mut out).map_err(HandshakeError::Io)?;
            }
            let (res, back) = wr.write_all(mem::take(&mut out)).await;
            out = back;
            res.map_err(HandshakeError::Io)?;
        }
        if !session.is_handshaking() {
            break;
        }
        if pos == cipher.len() {
            let (res, back) = rd.read(mem::take(&mut cipher)).await;
            cipher = back;
            pos = 0;
            match res {
                Ok(0) => return Err(HandshakeError::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => {}
                Err(e) => return Err(HandshakeError::Io(e)),
            }
        }
        let mut pending = &cipher[pos..];
        let n = session.read_tls(&mut pending).map_err(HandshakeError::Io)?;
        pos += n;
        let (processed, asked) = noticing_cert_request(|| session.process_new_packets());
        cert_requested |= asked;
        if let Err(error) = processed {
            // Tell the server why (the alert rustls queued), as well as we can.
            out.clear();
            while session.wants_write() {
                if session.write_tls(&mut out).is_err() {
                    break;
                }
            }
            let _ = wr.write_all(mem::take(&mut out)).await;
            return Err(HandshakeError::Tls {
                error,
                cert_requested,
            });
        }
    }
    let session = Rc::new(RefCell::new(session));
    let reader = TlsReader {
        tcp: rd,
        session: session.clone(),
        cipher,
        pos,
        filled_up: false,
        pending: None,
        cert_requested,
    };
    let writer = TlsWriter {
        tcp: wr,
        session,
        out,
    };
    Ok((reader, writer))
}

/// A rustls error as an `io::Error` that keeps it (see `tls::classify_io`).
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<T: AsyncReadRent> TlsReader<T> {
    /// Whether the server asked for a client certificate during the handshake.
    pub fn cert_requested(&self) -> bool {
        self.cert_requested
    }

    /// Ciphertext read from the socket and not handed to rustls yet.
    pub fn has_unprocessed(&self) -> bool {
        self.pos < self.cipher.len()
    }

    /// Whether ALPN settled on HTTP/2 during the handshake.
    pub fn negotiated_h2(&self) -> bool {
        self.session.borrow().alpn_protocol() == Some(b"h2".as_slice())
    }

    /// The ciphertext buffer's size (tests check it stays bounded).
    #[cfg(test)]
    pub(crate) fn cipher_capacity(&self) -> usize {
        self.cipher.capacity()
    }

    /// Moves decrypted bytes into `vec` (at most `room`): `Some(n)` when there were any, or
    /// when the stream ended (`Some(0)`), `None` when rustls needs more ciphertext.
    fn take_plaintext(&mut self, vec: &mut Vec<u8>, room: usize) -> io::Result<Option<usize>> {
        let mut session = self.session.borrow_mut();
        let mut reader = session.reader();
        match reader.fill_buf() {
            Ok(chunk) => {
                // An empty chunk is the peer's close_notify: the clean end.
                let n = chunk.len().min(room);
                vec.extend_from_slice(&chunk[..n]);
                reader.consume(n);
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            // TCP closed without close_notify: treated as the end, as nginx and Go do; bodies
            // with a length or chunked framing still detect truncation themselves.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(0)),
            Err(e) => Err(e),
        }
    }

    /// Hands buffered ciphertext to rustls; false when there is none left.
    fn feed(&mut self) -> io::Result<bool> {
        if self.pos == self.cipher.len() {
            return Ok(false);
        }
        let mut session = self.session.borrow_mut();
        let mut pending = &self.cipher[self.pos..];
        self.pos += session.read_tls(&mut pending)?;
        session.process_new_packets().map_err(tls_error)?;
        Ok(true)
    }

    /// Appends up to `room` decrypted bytes to `vec`: as many as are ready without waiting,
    /// reading the socket only when there are none. `Ok(0)` is the end of the stream.
    async fn read_plaintext(&mut self, vec: &mut Vec<u8>, room: usize) -> io::Result<usize> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let mut n = 0;
        while n < room {
            let step = match self.take_plaintext(vec, room - n) {
                // The end (it is reported again on the next call).
                Ok(Some(0)) => return Ok(n),
                Ok(Some(k)) => {
                    n += k;
                    continue;
                }
                Ok(None) => self.feed(),
                Err(e) => Err(e),
            };
            match step {
                Ok(true) => continue,
                Ok(false) if n > 0 => return Ok(n),
                Ok(false) => self.read_socket().await?,
                // Hand out what was decrypted first; the error comes with the next read.
                Err(e) if n > 0 => {
                    self.pending = Some(e);
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// One socket read into `cipher`; at the end of the stream, tells rustls.
    async fn read_socket(&mut self) -> io::Result<()> {
        let mut buf = mem::take(&mut self.cipher);
        // monoio reads into the whole capacity from index 0. A read cancelled by a timeout
        // leaves an empty Vec behind, whose capacity 0 would read as the end of the stream.
        let want = if self.filled_up {
            (buf.capacity() * 2).clamp(CIPHER_READ, CIPHER_MAX)
        } else {
            buf.capacity().max(CIPHER_READ)
        };
        buf.clear();
        buf.reserve_exact(want);
        let (res, back) = self.tcp.read(buf).await;
        self.cipher = back;
        self.pos = 0;
        let n = res?;
        self.filled_up = n == self.cipher.capacity();
        if n == 0 {
            // Let rustls see the end; the next `take_plaintext` reports it.
            let mut session = self.session.borrow_mut();
            session.read_tls(&mut io::empty())?;
            session.process_new_packets().map_err(tls_error)?;
        }
        Ok(())
    }
}

impl<T: AsyncReadRent> ReadSource for TlsReader<T> {
    async fn read_some(&mut self, buf: SliceMut<Vec<u8>>) -> BufResult<usize, SliceMut<Vec<u8>>> {
        let (begin, end) = (buf.begin(), buf.end());
        let mut vec = buf.into_inner();
        // monoio fills a slice from its start; ConnReader always offers `len..capacity`.
        vec.truncate(begin);
        let res = self
            .read_plaintext(&mut vec, end.saturating_sub(begin))
            .await;
        (res, vec.slice_mut(begin..end))
    }
}

impl<T: AsyncWriteRent> TlsWriter<T> {
    /// Encrypts and sends all of `data`; hands the buffer back like monoio's `write_all`.
    pub async fn write_all(&mut self, data: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        let mut sent = 0;
        loop {
            let mut out = mem::take(&mut self.out);
            out.clear();
            {
                let mut session = self.session.borrow_mut();
                if sent < data.len() {
                    // rustls takes what fits its send buffer; the loop sends the rest.
                    match session.writer().write(&data[sent..]) {
                        Ok(n) => sent += n,
                        Err(e) => return (Err(e), data),
                    }
                }
                while session.wants_write() {
                    if let Err(e) = session.write_tls(&mut out) {
                        return (Err(e), data);
                    }
                }
            }
            if out.is_empty() {
                self.out = out;
                if sent < data.len() {
                    return (Err(io::ErrorKind::WriteZero.into()), data);
                }
                return (Ok(sent), data);
            }
            let (res, back) = self.tcp.write_all(out).await;
            self.out = back;
            if let Err(e) = res {
                return (Err(e), data);
            }
        }
    }
}

impl<T: AsyncWriteRent> TlsWriter<T> {
    /// Sends close_notify, then half-closes the socket (which an aborted client connection
    /// skips, so its close stays a pure reset).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        let mut out = mem::take(&mut self.out);
        out.clear();
        {
            let mut session = self.session.borrow_mut();
            session.send_close_notify();
            while session.wants_write() {
                session.write_tls(&mut out)?;
            }
        }
        let (res, back) = self.tcp.write_all(out).await;
        self.out = back;
        res?;
        self.tcp.shutdown().await
    }
}

impl<T: AsyncWriteRent> WriteSink for TlsWriter<T> {
    async fn write_all_owned(&mut self, buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        self.write_all(buf).await
    }

    async fn close_write(&mut self) -> io::Result<()> {
        self.shutdown().await
    }
}
