//! Buffered connection I/O. [`Conn`] keeps unconsumed bytes between
//! requests (so pipelined requests work), parses request heads with
//! httparse, reads `Content-Length` and chunked bodies (chunk extensions
//! ignored, trailers collected), coalesces response writes in one buffer,
//! and ends connections either gracefully (lingering close) or abruptly.
//! It is generic over [`Transport`] so unit tests can run it in memory.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::fnv::Fnv64;
use crate::request::{hex_val, is_tchar, trim, Framing, Request};

/// Read buffer size; also the largest accepted request head.
const READ_BUF: usize = 64 * 1024;
/// Output is coalesced up to this many bytes before a write.
const WRITE_BUF: usize = 64 * 1024;
/// Most header fields accepted in one request head.
const MAX_HEADERS: usize = 256;
/// Longest chunk-size line or trailer field line.
const MAX_LINE: usize = 8 * 1024;
/// Most bytes in one trailer section.
const MAX_TRAILERS: usize = 64 * 1024;

/// A byte stream a connection runs on: a `TcpStream`, or a test double.
pub trait Transport: Read + Write {
    /// Half-closes the sending side (sends FIN).
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// Sets the timeout of a blocking read.
    fn read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
    /// Arranges for the coming close to reset the connection (RST).
    fn prepare_reset(&mut self);
}

/// Why no request head was read.
#[derive(Debug)]
pub enum HeadError {
    /// The peer closed (or went idle past the timeout) between requests.
    Closed,
    /// I/O failed or the peer closed mid-head; the connection is dropped.
    Broken,
    /// Not a valid HTTP/1.x request head: 400.
    Malformed,
    /// Head larger than the buffer or too many fields: 431.
    TooLarge,
    /// Not HTTP/1.0 or HTTP/1.1: 505.
    Version,
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// I/O failed or the peer closed mid-body.
    Io(io::Error),
    /// Bad chunked framing: 400.
    Malformed(&'static str),
    /// Larger than the sink accepts: 413.
    TooLarge,
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> Self {
        BodyError::Io(e)
    }
}

/// Where decoded body bytes go: always counted and hashed, optionally kept.
#[derive(Debug)]
pub struct BodySink {
    /// Decoded bytes seen.
    pub len: u64,
    /// FNV-1a 64 of the decoded bytes.
    pub hash: Fnv64,
    /// The bytes themselves, when keeping.
    pub data: Option<Vec<u8>>,
    limit: u64,
}

impl BodySink {
    /// Counts and hashes, keeps nothing, no size limit.
    pub fn hashing() -> Self {
        BodySink {
            len: 0,
            hash: Fnv64::new(),
            data: None,
            limit: u64::MAX,
        }
    }

    /// Also keeps the bytes, failing past `limit` bytes.
    pub fn keeping(limit: u64) -> Self {
        BodySink {
            data: Some(Vec::new()),
            limit,
            ..Self::hashing()
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), BodyError> {
        let len = self.len.saturating_add(bytes.len() as u64);
        if len > self.limit {
            return Err(BodyError::TooLarge);
        }
        self.len = len;
        self.hash.update(bytes);
        if let Some(data) = &mut self.data {
            data.extend_from_slice(bytes);
        }
        Ok(())
    }
}

/// A trailer or header field: name as received, raw value.
pub type Field = (String, Vec<u8>);

/// A connection with its read buffer (`rbuf[rpos..rend]` is unconsumed
/// input) and pending output.
pub struct Conn<S> {
    io: S,
    rbuf: Box<[u8]>,
    rpos: usize,
    rend: usize,
    wbuf: Vec<u8>,
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed mid-message")
}

impl<S: Transport> Conn<S> {
    /// Wraps a transport.
    pub fn new(io: S) -> Self {
        Conn {
            io,
            rbuf: vec![0u8; READ_BUF].into_boxed_slice(),
            rpos: 0,
            rend: 0,
            wbuf: Vec::new(),
        }
    }

    /// Reads more input after the unconsumed bytes; `Ok(0)` at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
        } else if self.rend == self.rbuf.len() {
            if self.rpos == 0 {
                return Err(io::Error::other("read buffer full"));
            }
            self.rbuf.copy_within(self.rpos..self.rend, 0);
            self.rend -= self.rpos;
            self.rpos = 0;
        }
        loop {
            match self.io.read(&mut self.rbuf[self.rend..]) {
                Ok(n) => {
                    self.rend += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the next request head, leaving any following bytes buffered.
    pub fn read_head(&mut self) -> Result<Request, HeadError> {
        loop {
            if self.rpos < self.rend {
                let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut parsed = httparse::Request::new(&mut fields);
                match parsed.parse(&self.rbuf[self.rpos..self.rend]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let req = Request::from_parsed(&parsed).ok_or(HeadError::Malformed)?;
                        self.rpos += n;
                        return Ok(req);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
                    Err(httparse::Error::Version) => return Err(HeadError::Version),
                    Err(_) => return Err(HeadError::Malformed),
                }
                if self.rend - self.rpos >= self.rbuf.len() {
                    return Err(HeadError::TooLarge);
                }
            }
            let idle = self.rpos == self.rend;
            match self.fill() {
                Ok(0) if idle => return Err(HeadError::Closed),
                Ok(0) => return Err(HeadError::Broken),
                Ok(_) => {}
                Err(e) if idle && is_timeout(&e) => return Err(HeadError::Closed),
                Err(_) => return Err(HeadError::Broken),
            }
        }
    }

    /// Reads a whole body into `sink`; returns the trailer fields.
    pub fn read_body(
        &mut self,
        framing: Framing,
        sink: &mut BodySink,
    ) -> Result<Vec<Field>, BodyError> {
        match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(n) => self.read_exact_into(n, sink).map(|()| Vec::new()),
            Framing::Chunked => self.read_chunked(sink),
        }
    }

    fn read_exact_into(&mut self, mut n: u64, sink: &mut BodySink) -> Result<(), BodyError> {
        while n > 0 {
            if self.rpos == self.rend && self.fill()? == 0 {
                return Err(BodyError::Io(eof()));
            }
            let take = n.min((self.rend - self.rpos) as u64) as usize;
            sink.feed(&self.rbuf[self.rpos..self.rpos + take])?;
            self.rpos += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// Reads one CRLF-terminated line (without the CRLF); bare LF or CR
    /// and lines over `MAX_LINE` are malformed.
    fn read_line(&mut self) -> Result<Vec<u8>, BodyError> {
        let mut scanned = 0;
        loop {
            let avail = &self.rbuf[self.rpos..self.rend];
            if let Some(i) = avail[scanned..].iter().position(|&b| b == b'\n') {
                let i = scanned + i;
                if i == 0 || avail[i - 1] != b'\r' {
                    return Err(BodyError::Malformed("bare LF in chunked framing"));
                }
                let line = &avail[..i - 1];
                if line.contains(&b'\r') {
                    return Err(BodyError::Malformed("bare CR in chunked framing"));
                }
                if line.len() > MAX_LINE {
                    return Err(BodyError::Malformed("chunked framing line too long"));
                }
                let line = line.to_vec();
                self.rpos += i + 1;
                return Ok(line);
            }
            if avail.len() > MAX_LINE {
                return Err(BodyError::Malformed("chunked framing line too long"));
            }
            // `scanned` is relative to `rpos`, so it survives `fill`
            // moving the unconsumed bytes to the front.
            scanned = avail.len();
            if self.fill()? == 0 {
                return Err(BodyError::Io(eof()));
            }
        }
    }

    fn expect_crlf(&mut self) -> Result<(), BodyError> {
        while self.rend - self.rpos < 2 {
            if self.fill()? == 0 {
                return Err(BodyError::Io(eof()));
            }
        }
        if &self.rbuf[self.rpos..self.rpos + 2] != b"\r\n" {
            return Err(BodyError::Malformed("chunk data not followed by CRLF"));
        }
        self.rpos += 2;
        Ok(())
    }

    fn read_chunked(&mut self, sink: &mut BodySink) -> Result<Vec<Field>, BodyError> {
        loop {
            let line = self.read_line()?;
            let size = parse_chunk_size(&line).ok_or(BodyError::Malformed("bad chunk size"))?;
            if size == 0 {
                break;
            }
            self.read_exact_into(size, sink)?;
            self.expect_crlf()?;
        }
        let mut trailers = Vec::new();
        let mut total = 0;
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return Ok(trailers);
            }
            total += line.len() + 2;
            if total > MAX_TRAILERS {
                return Err(BodyError::Malformed("trailer section too large"));
            }
            trailers.push(parse_field_line(&line).ok_or(BodyError::Malformed("bad trailer"))?);
        }
    }

    /// Queues output, writing out when the buffer would overflow; large
    /// slices bypass the buffer.
    pub fn put(&mut self, data: &[u8]) -> io::Result<()> {
        if self.wbuf.len() + data.len() > WRITE_BUF {
            self.flush()?;
            if data.len() >= WRITE_BUF {
                return self.io.write_all(data);
            }
        }
        self.wbuf.extend_from_slice(data);
        Ok(())
    }

    /// Writes out all queued output.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.io.write_all(&self.wbuf)?;
            self.wbuf.clear();
        }
        self.io.flush()
    }

    /// Lingering close: flush, send FIN, then discard input for a short
    /// while so unread request bytes do not make the kernel reset the
    /// connection before the peer has read the response.
    pub fn close_gracefully(mut self) {
        if self.flush().is_err() || self.io.shutdown_write().is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut discarded = 0usize;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || discarded > 16 * 1024 * 1024 {
                return;
            }
            if self.io.read_timeout(Some(left)).is_err() {
                return;
            }
            match self.io.read(&mut self.rbuf) {
                Ok(0) => return,
                Ok(n) => discarded += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Flushes and then closes so that the peer sees a reset.
    pub fn abort(mut self) {
        let _ = self.flush();
        self.io.prepare_reset();
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// `chunk-size [ BWS ; chunk-ext ]`: hex digits, then nothing or
/// extensions, which are ignored.
pub fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|&&b| hex_val(b).is_some()).count();
    if digits == 0 {
        return None;
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        size = size.checked_mul(16)?.checked_add(u64::from(hex_val(b)?))?;
    }
    let rest = trim(&line[digits..]);
    (rest.is_empty() || rest[0] == b';').then_some(size)
}

/// `name: value` with a token name and no control characters in the value.
pub fn parse_field_line(line: &[u8]) -> Option<Field> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let value = trim(&line[colon + 1..]);
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return None;
    }
    let name = String::from_utf8(name.to_vec()).ok()?;
    Some((name, value.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::Mock;
    use std::io::Read;

    fn chunked(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<Field>), BodyError> {
        let mut conn = Conn::new(Mock::new(input, step));
        let mut sink = BodySink::keeping(1 << 20);
        let trailers = conn.read_body(Framing::Chunked, &mut sink)?;
        Ok((sink.data.unwrap_or_default(), trailers))
    }

    #[test]
    fn chunked_decoding_any_split() {
        let input = b"5;ext=1\r\nhello\r\n1A \r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-A: 1\r\nx-b:  two \r\n\r\nNEXT";
        let mut want = b"hello".to_vec();
        want.extend_from_slice(b"abcdefghijklmnopqrstuvwxyz");
        for step in [1, 2, 3, 7, 64, 4096] {
            let (body, trailers) = chunked(input, step)
                .map_err(|e| format!("{e:?}"))
                .unwrap_or_default();
            assert_eq!(body, want, "step {step}");
            assert_eq!(trailers.len(), 2);
            assert_eq!(trailers[1], ("x-b".to_string(), b"two".to_vec()));
        }
        let mut conn = Conn::new(Mock::new(input, 5));
        let mut sink = BodySink::hashing();
        assert!(conn.read_body(Framing::Chunked, &mut sink).is_ok());
        let mut h = Fnv64::new();
        h.update(&want);
        assert_eq!(
            (sink.len, sink.hash.finish()),
            (want.len() as u64, h.finish())
        );
        // The bytes after the body stay buffered for the next request.
        let mut rest = Vec::new();
        let _ = conn.io.input.read_to_end(&mut rest);
        let mut left = conn.rbuf[conn.rpos..conn.rend].to_vec();
        left.extend_from_slice(&rest);
        assert_eq!(left, b"NEXT");
    }

    #[test]
    fn chunked_errors() {
        let bad: &[&[u8]] = &[
            b"g\r\n",
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"0\r\nbad trailer\r\n\r\n",
            b"0\r\n folded: x\r\n\r\n",
        ];
        for input in bad {
            assert!(
                matches!(chunked(input, 3), Err(BodyError::Malformed(_))),
                "{input:?}"
            );
        }
        assert!(matches!(chunked(b"5\r\nhel", 3), Err(BodyError::Io(_))));
        let mut conn = Conn::new(Mock::new(b"5\r\nhello\r\n0\r\n\r\n", 64));
        let mut small = BodySink::keeping(4);
        assert!(matches!(
            conn.read_body(Framing::Chunked, &mut small),
            Err(BodyError::TooLarge)
        ));
    }

    #[test]
    fn chunk_size_lines() {
        assert_eq!(parse_chunk_size(b"ff"), Some(255));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b"A ; name=\"v\""), Some(10));
        assert_eq!(parse_chunk_size(b"ffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_chunk_size(b"1ffffffffffffffff"), None);
        assert_eq!(parse_chunk_size(b"-1"), None);
    }

    #[test]
    fn heads_and_pipelining() {
        let input = b"\r\nGET /a HTTP/1.1\r\nHost: x\r\nX-Y: z\r\n\r\nPOST /b HTTP/1.0\r\nContent-Length: 3\r\n\r\nabcGET";
        let mut conn = Conn::new(Mock::new(input, 5));
        let a = conn.read_head().map_err(|e| format!("{e:?}"));
        assert_eq!(a.as_ref().map(|r| r.target.as_str()), Ok("/a"));
        assert_eq!(a.map(|r| r.headers.len()), Ok(2));
        let b = conn.read_head().map_err(|e| format!("{e:?}"));
        assert_eq!(
            b.as_ref().map(|r| (r.method.as_str(), r.minor)),
            Ok(("POST", 0))
        );
        let mut sink = BodySink::keeping(100);
        assert!(conn.read_body(Framing::Length(3), &mut sink).is_ok());
        assert_eq!(sink.data.as_deref(), Some(&b"abc"[..]));
        assert!(matches!(conn.read_head(), Err(HeadError::Broken)));
        let mut idle = Conn::new(Mock::new(b"", 5));
        assert!(matches!(idle.read_head(), Err(HeadError::Closed)));
        let mut bad = Conn::new(Mock::new(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 5));
        assert!(matches!(bad.read_head(), Err(HeadError::Malformed)));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(READ_BUF + 10, b'a');
        let mut big = Conn::new(Mock::new(&big, 1000));
        assert!(matches!(big.read_head(), Err(HeadError::TooLarge)));
    }
}
