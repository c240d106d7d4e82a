//! A raw HTTP/2 client (prior knowledge, RFC 9113): frames written byte for byte, header
//! blocks as HPACK literals without indexing or Huffman coding, so a test can send what a
//! well-behaved library refuses to (a `content-length` its DATA contradicts, unsolicited
//! PING ACKs) and see exactly which frames come back. Every read is bounded. Not every test
//! uses every frame kind, hence `dead_code` is allowed.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

pub const PROTOCOL_ERROR: u32 = 0x1;
pub const INTERNAL_ERROR: u32 = 0x2;

/// One frame as received.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

pub struct RawH2 {
    pub stream: TcpStream,
}

/// Appends a literal header field without indexing, new name (RFC 7541 §6.2.2), no Huffman.
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    assert!(name.len() < 127 && value.len() < 127);
    block.push(0x00);
    block.push(name.len() as u8);
    block.extend_from_slice(name.as_bytes());
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

impl RawH2 {
    /// Connects, lets `adjust` set socket options, then sends the preface and SETTINGS.
    pub fn connect_with(
        addr: SocketAddr,
        settings: &[(u16, u32)],
        adjust: impl FnOnce(&TcpStream),
    ) -> RawH2 {
        let stream = TcpStream::connect(addr).unwrap();
        adjust(&stream);
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let mut c = RawH2 { stream };
        c.stream.write_all(PREFACE).unwrap();
        let mut payload = Vec::new();
        for (id, value) in settings {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&value.to_be_bytes());
        }
        c.frame(SETTINGS, 0, 0, &payload);
        c
    }

    pub fn connect(addr: SocketAddr) -> RawH2 {
        RawH2::connect_with(addr, &[], |_| {})
    }

    /// Writes one frame.
    pub fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len();
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        f.extend_from_slice(payload);
        self.stream.write_all(&f).unwrap();
    }

    /// A request's HEADERS: the pseudo-headers for `method path`, then `fields`.
    pub fn headers(
        &mut self,
        stream: u32,
        method: &str,
        path: &str,
        fields: &[(&str, &str)],
        end_stream: bool,
    ) {
        let mut block = Vec::new();
        literal(&mut block, ":method", method);
        literal(&mut block, ":scheme", "http");
        literal(&mut block, ":authority", "test.local");
        literal(&mut block, ":path", path);
        for (n, v) in fields {
            literal(&mut block, n, v);
        }
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        self.frame(HEADERS, flags, stream, &block);
    }

    pub fn get(&mut self, stream: u32, path: &str) {
        self.headers(stream, "GET", path, &[], true);
    }

    pub fn data(&mut self, stream: u32, bytes: &[u8], end_stream: bool) {
        self.frame(DATA, if end_stream { END_STREAM } else { 0 }, stream, bytes);
    }

    pub fn window_update(&mut self, stream: u32, increment: u32) {
        self.frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes());
    }

    /// The next frame, answering the server's SETTINGS with an ACK on the way; `None` on
    /// EOF, error or `wait` of silence.
    pub fn next_frame(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = Instant::now() + wait;
        let mut head = [0u8; 9];
        self.read_exact_by(&mut head, deadline)?;
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        self.read_exact_by(&mut payload, deadline)?;
        let f = Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        };
        if f.kind == SETTINGS && f.flags & ACK == 0 {
            self.frame(SETTINGS, ACK, 0, &[]);
        }
        Some(f)
    }

    fn read_exact_by(&mut self, buf: &mut [u8], deadline: Instant) -> Option<()> {
        let mut at = 0;
        while at < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf[at..]) {
                Ok(0) => return None,
                Ok(n) => at += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        Some(())
    }

    /// Reads frames until `stream` is reset (its error code) or ends (`None`), or the
    /// connection ends or `wait` passes (`None`).
    pub fn wait_rst_stream(&mut self, stream: u32, wait: Duration) -> Option<u32> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self.next_frame(left)?;
            if f.stream != stream {
                continue;
            }
            if f.kind == RST_STREAM {
                return Some(u32::from_be_bytes(f.payload[..4].try_into().unwrap()));
            }
            if matches!(f.kind, HEADERS | DATA) && f.flags & END_STREAM != 0 {
                return None;
            }
        }
    }

    /// Reads frames until the response on `stream` ends; false when it was reset instead or
    /// nothing ended within `wait`.
    pub fn wait_response_end(&mut self, stream: u32, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(f) = self.next_frame(left) else {
                return false;
            };
            if f.stream != stream {
                continue;
            }
            if f.kind == RST_STREAM {
                return false;
            }
            if matches!(f.kind, HEADERS | DATA) && f.flags & END_STREAM != 0 {
                return true;
            }
        }
    }

    /// Sends a PING and waits for its ACK: every frame sent before it has been processed.
    pub fn ping_roundtrip(&mut self) {
        let payload = *b"roundtrp";
        self.frame(PING, 0, 0, &payload);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let f = self.next_frame(left).expect("PING ACK");
            if f.kind == PING && f.flags & ACK != 0 && f.payload == payload {
                return;
            }
            assert_ne!(f.kind, GOAWAY, "GOAWAY instead of a PING ACK: {f:?}");
        }
    }
}
