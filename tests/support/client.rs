//! A raw HTTP/1.1 test client: writes exact bytes, reads exact bytes, and tells a clean close
//! (FIN) from a reset and from a connection that stays open.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Longest any single read waits in tests.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub reason: String,
    /// Header fields in order and case as received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the server ended (or did not end) the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Orderly close (FIN).
    Closed,
    /// Reset (RST).
    Reset,
    /// Still open after the wait.
    Open,
}

pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads more bytes into the buffer; false on EOF.
    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) => panic!(
                "read failed: {e} (have {:?})",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Reads one response; `head_request` = the request was HEAD (no body expected).
    pub fn read_response_for(&mut self, head_request: bool) -> Resp {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut r = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = r.parse(&self.buf) {
                let status = r.code.unwrap();
                let reason = r.reason.unwrap_or("").to_owned();
                let hs: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                self.buf.drain(..n);
                let mut resp = Resp {
                    status,
                    reason,
                    headers: hs,
                    body: Vec::new(),
                };
                if head_request || status < 200 || status == 204 || status == 304 {
                    return resp;
                }
                resp.body = self.read_body(&resp);
                return resp;
            }
            assert!(
                self.fill(),
                "connection closed before a complete response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    pub fn read_response(&mut self) -> Resp {
        self.read_response_for(false)
    }

    fn read_body(&mut self, resp: &Resp) -> Vec<u8> {
        if let Some(cl) = resp.header("content-length") {
            let n: usize = cl.trim().parse().unwrap();
            while self.buf.len() < n {
                assert!(self.fill(), "body truncated");
            }
            return self.buf.drain(..n).collect();
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            return self.read_chunked();
        }
        while self.fill() {}
        std::mem::take(&mut self.buf)
    }

    fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line();
            let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                while !self.read_line().is_empty() {}
                return body;
            }
            while self.buf.len() < size + 2 {
                assert!(self.fill(), "chunk truncated");
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    fn read_line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return line;
            }
            assert!(self.fill(), "line truncated");
        }
    }

    /// Waits up to `wait` for the server to end the connection; unread bytes are an error.
    pub fn ending(&mut self, wait: Duration) -> Ending {
        assert!(
            self.buf.is_empty(),
            "unread bytes: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut tmp = [0u8; 4096];
        let r = self.stream.read(&mut tmp);
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        match r {
            Ok(0) => Ending::Closed,
            Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&tmp[..n])),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ending::Reset,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Ending::Open
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Reads everything until the server closes; returns the bytes and how long it took.
    pub fn read_until_close(&mut self) -> (Vec<u8>, Duration) {
        let start = Instant::now();
        while self.fill() {}
        (std::mem::take(&mut self.buf), start.elapsed())
    }
}

/// One request on a new connection; returns the response.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut c = Client::connect(addr);
    c.send(raw);
    c.read_response()
}

/// `GET path` with a Host header on a new connection.
pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes(),
    )
}
