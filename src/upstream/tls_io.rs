//! A rustls client session over the two owned halves of a monoio `TcpStream`: the handshake,
//! then a read half and a write half that the forwarder uses side by side (an upload and the
//! response read run at once, design §5).
//!
//! Both halves share one `ClientConnection` through an `Rc<RefCell<…>>` that is borrowed only
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
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::ClientConnection;

use super::tls::noticing_cert_request;
use crate::http::conn::ReadSource;

/// Ciphertext read per socket read: one full TLS record (16 KiB plus header and overhead).
const CIPHER_READ: usize = 16 * 1024 + 512;

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
pub struct TlsReader {
    tcp: OwnedReadHalf<TcpStream>,
    session: Rc<RefCell<ClientConnection>>,
    /// Ciphertext read from the socket; `cipher[pos..]` is not yet handed to rustls.
    cipher: Vec<u8>,
    pos: usize,
    /// The server asked for a client certificate during the handshake.
    cert_requested: bool,
}

/// The write half of an established session.
pub struct TlsWriter {
    tcp: OwnedWriteHalf<TcpStream>,
    session: Rc<RefCell<ClientConnection>>,
    /// Ciphertext on its way to the socket (kept to reuse its allocation).
    out: Vec<u8>,
}

/// Runs the client handshake on `tcp`; on success the session's two halves.
pub async fn handshake(
    tcp: TcpStream,
    mut session: ClientConnection,
) -> Result<(TlsReader, TlsWriter), HandshakeError> {
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

impl TlsReader {
    /// Whether the server asked for a client certificate during the handshake.
    pub fn cert_requested(&self) -> bool {
        self.cert_requested
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

    async fn read_plaintext(&mut self, vec: &mut Vec<u8>, room: usize) -> io::Result<usize> {
        if room == 0 {
            return Ok(0);
        }
        loop {
            if let Some(n) = self.take_plaintext(vec, room)? {
                return Ok(n);
            }
            if self.feed()? {
                continue;
            }
            let mut buf = mem::take(&mut self.cipher);
            // A read cancelled by a timeout leaves an empty Vec behind: capacity 0 would read
            // as the end of the stream.
            buf.reserve(CIPHER_READ);
            let (res, back) = self.tcp.read(buf).await;
            self.cipher = back;
            self.pos = 0;
            if res? == 0 {
                // Let rustls see the end; the next `take_plaintext` reports it.
                let mut session = self.session.borrow_mut();
                session.read_tls(&mut io::empty())?;
                session.process_new_packets().map_err(tls_error)?;
            }
        }
    }
}

impl ReadSource for TlsReader {
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

impl TlsWriter {
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
