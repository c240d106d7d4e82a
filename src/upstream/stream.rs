//! The two halves of an upstream connection, plain TCP or TLS, behind one type each so the
//! pool and the forwarder need not care which (spec §5: pooled HTTPS connections are reused
//! like plain ones). Worker thread only.

use std::os::fd::{AsRawFd, RawFd};

use monoio::buf::SliceMut;
use monoio::io::{AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use monoio::BufResult;

use crate::http::conn::ReadSource;
use crate::http::response::WriteSink;
use crate::tls::io::{TlsReader, TlsWriter};

/// The read half, with the socket's descriptor (owned by the halves; the pool peeks at an
/// idle connection through it). The descriptor sits in the enum's padding: no extra size.
pub enum UpstreamReader {
    Plain(OwnedReadHalf<TcpStream>, RawFd),
    /// Boxed: pooled connections stay small whichever kind they are.
    Tls(Box<TlsReader>, RawFd),
}

/// The write half.
pub enum UpstreamWriter {
    Plain(OwnedWriteHalf<TcpStream>),
    Tls(Box<TlsWriter>),
}

/// Splits a plain connection.
pub fn plain(stream: TcpStream) -> (UpstreamReader, UpstreamWriter) {
    let fd = stream.as_raw_fd();
    let (rd, wr) = stream.into_split();
    (UpstreamReader::Plain(rd, fd), UpstreamWriter::Plain(wr))
}

impl UpstreamReader {
    /// The socket's descriptor, valid while either half lives.
    pub fn fd(&self) -> RawFd {
        match self {
            UpstreamReader::Plain(_, fd) | UpstreamReader::Tls(_, fd) => *fd,
        }
    }

    /// `None` on a plain connection; on a TLS one, whether the server asked for a client
    /// certificate during the handshake (what a certificate alert on a later read means,
    /// see `tls::classify`).
    pub fn tls_cert_requested(&self) -> Option<bool> {
        match self {
            UpstreamReader::Plain(..) => None,
            UpstreamReader::Tls(rd, _) => Some(rd.cert_requested()),
        }
    }

    /// Input taken from the socket but not yet looked at: ciphertext rustls has not processed
    /// (a plain connection keeps none below its `ConnReader`).
    pub fn has_unread_input(&self) -> bool {
        match self {
            UpstreamReader::Plain(..) => false,
            UpstreamReader::Tls(rd, _) => rd.has_unprocessed(),
        }
    }

    /// `None` on a plain connection; on a TLS one, whether ALPN chose `h2`.
    pub fn negotiated_h2(&self) -> Option<bool> {
        match self {
            UpstreamReader::Plain(..) => None,
            UpstreamReader::Tls(rd, _) => Some(rd.negotiated_h2()),
        }
    }
}

impl ReadSource for UpstreamReader {
    async fn read_some(&mut self, buf: SliceMut<Vec<u8>>) -> BufResult<usize, SliceMut<Vec<u8>>> {
        match self {
            UpstreamReader::Plain(rd, _) => rd.read_some(buf).await,
            UpstreamReader::Tls(rd, _) => rd.read_some(buf).await,
        }
    }
}

impl UpstreamWriter {
    /// Sends all of `data` (encrypted on TLS connections).
    pub async fn write_all(&mut self, data: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        match self {
            UpstreamWriter::Plain(wr) => wr.write_all(data).await,
            UpstreamWriter::Tls(wr) => wr.write_all(data).await,
        }
    }
}

impl WriteSink for UpstreamWriter {
    async fn write_all_owned(&mut self, buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        self.write_all(buf).await
    }

    async fn close_write(&mut self) -> std::io::Result<()> {
        match self {
            UpstreamWriter::Plain(wr) => monoio::io::AsyncWriteRent::shutdown(wr).await,
            UpstreamWriter::Tls(wr) => wr.shutdown().await,
        }
    }
}
