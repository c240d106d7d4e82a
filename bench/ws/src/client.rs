//! The client side: connect and handshake, then round trips of one masked
//! binary message each (send, wait for the whole echo, compare). A `Conn`
//! keeps one read buffer and one write buffer for its lifetime.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::frame::{self, OP_BINARY};
use crate::handshake::{self, MAX_HEAD};
use crate::Rng;

/// Where to connect: `ws://HOST:PORT/PATH` split up.
#[derive(Debug, Clone)]
pub struct Target {
    /// Resolved address.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Request target (path and query).
    pub path: String,
}

impl Target {
    /// Parses `ws://HOST:PORT[/PATH]` (no `wss://`: the bench measures plain tunnels).
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("{url:?}: only ws:// URLs"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("{host:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host:?}: no address"))?;
        Ok(Target {
            addr,
            host: host.to_string(),
            path: path.to_string(),
        })
    }
}

/// Why a connection stopped.
#[derive(Debug)]
pub enum Failure {
    /// TCP connect failed.
    Connect(io::Error),
    /// The upgrade was refused or malformed.
    Handshake(String),
    /// Read or write failed, or the peer closed.
    Io(io::Error),
    /// The echo was not the message sent (or not a single binary frame).
    Mismatch,
    /// No echo by the run's hard deadline.
    Timeout,
}

impl Failure {
    /// A short name for counting failures by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Connect(_) => "connect",
            Failure::Handshake(_) => "handshake",
            Failure::Io(_) => "io",
            Failure::Mismatch => "mismatch",
            Failure::Timeout => "timeout",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connect: {e}"),
            Failure::Handshake(e) => write!(f, "handshake: {e}"),
            Failure::Io(e) => write!(f, "io: {e}"),
            Failure::Mismatch => write!(f, "echo differs from the message sent"),
            Failure::Timeout => write!(f, "no echo in time"),
        }
    }
}

/// One open WebSocket connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
    out: Vec<u8>,
    rng: Rng,
}

impl Conn {
    /// Connects to `t` and completes the handshake.
    pub async fn open(t: &Target, seed: u64) -> Result<Conn, Failure> {
        let mut stream = TcpStream::connect(t.addr).await.map_err(Failure::Connect)?;
        stream.set_nodelay(true).map_err(Failure::Connect)?;
        let mut rng = Rng::new(seed);
        let key = handshake::client_key(&mut rng);
        let req = handshake::client_request(&t.host, &t.path, &key);
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(Failure::Io)?;
        let mut buf = vec![0u8; 4096];
        let mut filled = 0;
        let head_len = loop {
            if filled == buf.len() {
                if buf.len() >= MAX_HEAD {
                    return Err(Failure::Handshake("response head too large".into()));
                }
                buf.resize(buf.len() * 2, 0);
            }
            let n = stream.read(&mut buf[filled..]).await.map_err(Failure::Io)?;
            if n == 0 {
                return Err(Failure::Handshake("closed before the 101".into()));
            }
            filled += n;
            if let Some(len) =
                handshake::parse_response(&buf[..filled], &key).map_err(Failure::Handshake)?
            {
                break len;
            }
        };
        buf.copy_within(head_len..filled, 0);
        Ok(Conn {
            stream,
            buf,
            filled: filled - head_len,
            out: Vec::with_capacity(256),
            rng,
        })
    }

    /// Sends `payload` as one masked binary frame and waits for its echo.
    pub async fn round_trip(&mut self, payload: &[u8]) -> Result<(), Failure> {
        self.out.clear();
        let mask = self.rng.mask();
        frame::encode(&mut self.out, true, OP_BINARY, payload, Some(mask));
        self.stream
            .write_all(&self.out)
            .await
            .map_err(Failure::Io)?;
        loop {
            let head = frame::parse_header(&self.buf[..self.filled]).map_err(|e| {
                Failure::Io(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
            })?;
            if let Some(h) = head {
                let total = h.frame_len();
                if self.filled >= total {
                    let ok = h.fin
                        && h.opcode == OP_BINARY
                        && h.mask.is_none()
                        && self.buf[h.header_len..total] == *payload;
                    self.buf.copy_within(total..self.filled, 0);
                    self.filled -= total;
                    return if ok { Ok(()) } else { Err(Failure::Mismatch) };
                }
                if total > self.buf.len() {
                    self.buf.resize(total, 0);
                }
            }
            let n = self
                .stream
                .read(&mut self.buf[self.filled..])
                .await
                .map_err(Failure::Io)?;
            if n == 0 {
                return Err(Failure::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            self.filled += n;
        }
    }
}
