//! Response writing: the per-exchange context, a head builder that always
//! adds `X-Echo-Conn` / `X-Echo-Seq` and the right `Connection` field,
//! fixed-size responses in one write, streamed bodies (chunked on HTTP/1.1,
//! close-delimited on HTTP/1.0), the deterministic byte pattern, and
//! standard reason phrases.

use std::io;

use crate::conn::{Conn, Transport};

/// What happens to the connection after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Read the next request.
    KeepAlive,
    /// Lingering close.
    Close,
    /// Close with a reset.
    Abort,
}

/// Per-exchange facts a response needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Connection serial number (from 1, per process).
    pub conn_id: u64,
    /// 1-based index of this request on its connection.
    pub seq: u64,
    /// Request minor version.
    pub minor: u8,
    /// Whether the connection stays open; endpoints may clear it.
    pub keep_alive: bool,
    /// HEAD request: send heads only.
    pub head_only: bool,
}

impl Ctx {
    /// Keep-alive or close, from `keep_alive`.
    pub fn after(&self) -> After {
        if self.keep_alive {
            After::KeepAlive
        } else {
            After::Close
        }
    }
}

/// A response head being built.
pub struct Head {
    buf: Vec<u8>,
}

impl Head {
    /// Status line plus the `X-Echo-*` fields.
    pub fn new(ctx: &Ctx, code: u16) -> Head {
        let mut buf = Vec::with_capacity(512);
        let line = format!(
            "HTTP/1.1 {code} {}\r\nX-Echo-Conn: {}\r\nX-Echo-Seq: {}\r\n",
            reason(code),
            ctx.conn_id,
            ctx.seq
        );
        buf.extend_from_slice(line.as_bytes());
        Head { buf }
    }

    /// Adds one field; callers ensure name and value are valid.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Head {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value.as_ref());
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Adds `Content-Length`.
    pub fn length(self, n: u64) -> Head {
        self.header("Content-Length", n.to_string())
    }

    /// Adds `Connection: close` (or `keep-alive` for a persistent HTTP/1.0
    /// exchange) and the blank line.
    pub fn finish(mut self, ctx: &Ctx) -> Vec<u8> {
        if !ctx.keep_alive {
            self = self.header("Connection", "close");
        } else if ctx.minor == 0 {
            self = self.header("Connection", "keep-alive");
        }
        self.buf.extend_from_slice(b"\r\n");
        self.buf
    }
}

/// Sends `head` plus `Content-Length` and `body` (omitted for HEAD) in one
/// write.
pub fn send_full<S: Transport>(
    conn: &mut Conn<S>,
    ctx: &Ctx,
    head: Head,
    body: &[u8],
) -> io::Result<()> {
    let mut out = head.length(body.len() as u64).finish(ctx);
    if !ctx.head_only {
        out.extend_from_slice(body);
    }
    conn.put(&out)?;
    conn.flush()
}

/// Sends a `text/plain` response with `body`.
pub fn send_text<S: Transport>(
    conn: &mut Conn<S>,
    ctx: &Ctx,
    code: u16,
    body: &str,
) -> io::Result<()> {
    let head = Head::new(ctx, code).header("Content-Type", "text/plain");
    send_full(conn, ctx, head, body.as_bytes())
}

/// A body of unknown length: chunked for HTTP/1.1, close-delimited for
/// HTTP/1.0 (which cannot take chunked), nothing at all for HEAD.
pub struct Stream {
    chunked: bool,
    head_only: bool,
}

impl Stream {
    /// Queues `head` (adding `Transfer-Encoding: chunked` or turning
    /// keep-alive off) without flushing.
    pub fn start<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx, head: Head) -> io::Result<Self> {
        let chunked = ctx.minor >= 1;
        let head = if chunked {
            head.header("Transfer-Encoding", "chunked")
        } else {
            ctx.keep_alive = false;
            head
        };
        conn.put(&head.finish(ctx))?;
        Ok(Stream {
            chunked,
            head_only: ctx.head_only,
        })
    }

    /// Whether anything after the head is sent.
    pub fn has_body(&self) -> bool {
        !self.head_only
    }

    /// Queues `data` as one chunk.
    pub fn data<S: Transport>(&self, conn: &mut Conn<S>, data: &[u8]) -> io::Result<()> {
        self.pattern_or(conn, data.len() as u64, |conn| conn.put(data))
    }

    /// Queues `len` pattern bytes starting at pattern offset `start` as
    /// one chunk.
    pub fn pattern<S: Transport>(
        &self,
        conn: &mut Conn<S>,
        start: u64,
        len: u64,
    ) -> io::Result<()> {
        self.pattern_or(conn, len, |conn| write_pattern(conn, start, len))
    }

    fn pattern_or<S: Transport>(
        &self,
        conn: &mut Conn<S>,
        len: u64,
        body: impl FnOnce(&mut Conn<S>) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.head_only || len == 0 {
            return Ok(());
        }
        if self.chunked {
            conn.put(format!("{len:x}\r\n").as_bytes())?;
        }
        body(conn)?;
        if self.chunked {
            conn.put(b"\r\n")?;
        }
        Ok(())
    }

    /// Queues the last chunk with `trailers` (each `Name: value\r\n`) and
    /// flushes.
    pub fn finish<S: Transport>(&self, conn: &mut Conn<S>, trailers: &[u8]) -> io::Result<()> {
        if self.chunked && !self.head_only {
            conn.put(b"0\r\n")?;
            conn.put(trailers)?;
            conn.put(b"\r\n")?;
        }
        conn.flush()
    }
}

/// The pattern repeats every 26 bytes; a buffer of whole periods can be
/// written from any phase.
const PATTERN_LEN: usize = 26 * 2520;
static PATTERN: [u8; PATTERN_LEN] = build_pattern();

const fn build_pattern() -> [u8; PATTERN_LEN] {
    let mut a = [0u8; PATTERN_LEN];
    let mut i = 0;
    while i < PATTERN_LEN {
        a[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    a
}

/// Pattern byte `i`: `b'a' + i % 26`.
#[cfg(test)]
pub fn pattern_byte(i: u64) -> u8 {
    b'a' + (i % 26) as u8
}

/// Queues pattern bytes `start..start + len` in pieces of at most ~64 KiB.
pub fn write_pattern<S: Transport>(conn: &mut Conn<S>, start: u64, len: u64) -> io::Result<()> {
    let mut pos = start;
    let end = start.saturating_add(len);
    while pos < end {
        let phase = (pos % 26) as usize;
        let n = ((end - pos).min((PATTERN_LEN - phase) as u64)) as usize;
        conn.put(&PATTERN[phase..phase + n])?;
        pos += n as u64;
    }
    Ok(())
}

/// Standard reason phrase (RFC 9110 and common registrations).
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::Mock;

    #[test]
    fn pattern_from_any_phase() {
        for (start, len) in [
            (0u64, 0u64),
            (0, 1),
            (5, 100),
            (25, 200_000),
            (3, 26 * 2520 + 7),
        ] {
            let mock = Mock::new(b"", 1);
            let out = mock.output.clone();
            let mut conn = Conn::new(mock);
            assert!(write_pattern(&mut conn, start, len).is_ok());
            assert!(conn.flush().is_ok());
            let got = out.borrow();
            assert_eq!(got.len() as u64, len);
            assert!(got
                .iter()
                .enumerate()
                .all(|(i, &b)| b == pattern_byte(start + i as u64)));
        }
    }

    #[test]
    fn head_connection_field() {
        let mut ctx = Ctx {
            conn_id: 7,
            seq: 2,
            minor: 1,
            keep_alive: true,
            head_only: false,
        };
        let head = Head::new(&ctx, 204).finish(&ctx);
        assert_eq!(
            head,
            b"HTTP/1.1 204 No Content\r\nX-Echo-Conn: 7\r\nX-Echo-Seq: 2\r\n\r\n"
        );
        ctx.minor = 0;
        let head = String::from_utf8_lossy(&Head::new(&ctx, 200).finish(&ctx)).into_owned();
        assert!(head.ends_with("Connection: keep-alive\r\n\r\n"));
        ctx.keep_alive = false;
        let head = String::from_utf8_lossy(&Head::new(&ctx, 200).finish(&ctx)).into_owned();
        assert!(head.ends_with("Connection: close\r\n\r\n"));
    }
}
