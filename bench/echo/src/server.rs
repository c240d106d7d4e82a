//! The per-connection request loop: read a head, validate `Host` and body
//! framing, send `100 Continue` when asked, read the body, dispatch, and
//! then keep the connection, close it gracefully or reset it. Protocol
//! errors get a 400/413/431/501 with `Connection: close`; nothing a peer
//! sends can panic the loop.

use std::io;

use crate::conn::{BodyError, BodySink, Conn, HeadError, Transport};
use crate::request::{Framing, FramingError, Request};
use crate::response::{send_text, After, Ctx};
use crate::routes::{self, ECHO_BODY_LIMIT};

/// Serves requests on `io` until either side closes it.
pub fn serve<S: Transport>(io: S, conn_id: u64) {
    let mut conn = Conn::new(io);
    let mut seq = 0u64;
    loop {
        seq += 1;
        let result = match conn.read_head() {
            Ok(req) => exchange(&mut conn, &req, conn_id, seq),
            Err(HeadError::Closed | HeadError::Broken) => return,
            Err(HeadError::Malformed) => {
                reject(&mut conn, conn_id, seq, 400, "malformed request\n")
            }
            Err(HeadError::TooLarge) => {
                reject(&mut conn, conn_id, seq, 431, "request head too large\n")
            }
            Err(HeadError::Version) => {
                reject(&mut conn, conn_id, seq, 505, "only HTTP/1.0 and HTTP/1.1\n")
            }
        };
        match result {
            Ok(After::KeepAlive) => {}
            Ok(After::Close) => return conn.close_gracefully(),
            Ok(After::Abort) => return conn.abort(),
            Err(_) => return,
        }
    }
}

/// Answers a request that cannot be processed with `code` and closes.
fn reject<S: Transport>(
    conn: &mut Conn<S>,
    conn_id: u64,
    seq: u64,
    code: u16,
    msg: &str,
) -> io::Result<After> {
    let ctx = Ctx {
        conn_id,
        seq,
        minor: 1,
        keep_alive: false,
        head_only: false,
    };
    send_text(conn, &ctx, code, msg)?;
    Ok(After::Close)
}

fn fail<S: Transport>(
    conn: &mut Conn<S>,
    ctx: &mut Ctx,
    code: u16,
    msg: &str,
) -> io::Result<After> {
    ctx.keep_alive = false;
    send_text(conn, ctx, code, msg)?;
    Ok(After::Close)
}

/// One request/response exchange.
fn exchange<S: Transport>(
    conn: &mut Conn<S>,
    req: &Request,
    conn_id: u64,
    seq: u64,
) -> io::Result<After> {
    let mut ctx = Ctx {
        conn_id,
        seq,
        minor: req.minor,
        keep_alive: req.keep_alive(),
        head_only: req.is_head(),
    };
    let ctx = &mut ctx;
    if !req.host_ok() {
        return fail(conn, ctx, 400, "HTTP/1.1 needs exactly one Host field\n");
    }
    let framing = match req.framing() {
        Ok(f) => f,
        Err(FramingError::Bad) => return fail(conn, ctx, 400, "bad message framing\n"),
        Err(FramingError::NotImplemented) => {
            return fail(conn, ctx, 501, "unsupported transfer coding\n")
        }
    };
    let (path, _) = req.path_query();
    if path == "/expect-reject" {
        return routes::expect_reject(conn, ctx);
    }
    let mut sink = if path == "/echo-body" {
        if matches!(framing, Framing::Length(n) if n > ECHO_BODY_LIMIT) {
            return fail(conn, ctx, 413, "body too large for /echo-body\n");
        }
        BodySink::keeping(ECHO_BODY_LIMIT)
    } else {
        BodySink::hashing()
    };
    let has_body = match framing {
        Framing::None => false,
        Framing::Length(n) => n > 0,
        Framing::Chunked => true,
    };
    if has_body && req.expects_continue() {
        conn.put(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        conn.flush()?;
    }
    let trailers = match conn.read_body(framing, &mut sink) {
        Ok(t) => t,
        Err(BodyError::Io(e)) => return Err(e),
        Err(BodyError::Malformed(why)) => return fail(conn, ctx, 400, &format!("{why}\n")),
        Err(BodyError::TooLarge) => return fail(conn, ctx, 413, "body too large\n"),
    };
    routes::dispatch(conn, ctx, req, &sink, &trailers)
}

#[cfg(test)]
mod tests {
    use super::serve;
    use crate::mock::Mock;

    /// Runs `input` through a connection and returns everything written.
    fn run(input: &[u8]) -> String {
        let mock = Mock::new(input, 3);
        let out = mock.output.clone();
        serve(mock, 9);
        let text = String::from_utf8_lossy(&out.borrow()).into_owned();
        text
    }

    #[test]
    fn echo_format() {
        let out = run(b"POST /echo/x?a=1 HTTP/1.1\r\nHost: h\r\nX-Mixed-Case: v 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: t\r\n\r\n");
        let want_body = "method: POST\ntarget: /echo/x?a=1\nversion: HTTP/1.1\nheader: Host: h\nheader: X-Mixed-Case: v 1\nheader: Transfer-Encoding: chunked\nbody-length: 3\nbody-fnv64: e71fa2190541574b\ntrailer: X-T: t\n";
        let want = format!(
            "HTTP/1.1 200 OK\r\nX-Echo-Conn: 9\r\nX-Echo-Seq: 1\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{want_body}",
            want_body.len()
        );
        assert_eq!(out, want);
    }

    #[test]
    fn pipelining_sequence_and_close() {
        let out = run(b"GET /status/204 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /bytes/10 HTTP/1.1\r\nHost: h\r\n\r\nGET /no-reuse HTTP/1.1\r\nHost: h\r\n\r\nGET /echo HTTP/1.1\r\nHost: h\r\n\r\n");
        let want = "HTTP/1.1 204 No Content\r\nX-Echo-Conn: 9\r\nX-Echo-Seq: 1\r\n\r\n\
            HTTP/1.1 200 OK\r\nX-Echo-Conn: 9\r\nX-Echo-Seq: 2\r\nContent-Type: application/octet-stream\r\nContent-Length: 10\r\n\r\n\
            HTTP/1.1 200 OK\r\nX-Echo-Conn: 9\r\nX-Echo-Seq: 3\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbye\n";
        assert_eq!(out, want);
    }

    #[test]
    fn http10_and_continue() {
        let out = run(b"GET /chunked/5?chunk=2 HTTP/1.0\r\n\r\n");
        assert!(out.ends_with("Connection: close\r\n\r\nabcde"), "{out}");
        let out = run(b"PUT /echo-body HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Type: x/y\r\nContent-Length: 2\r\n\r\nhi");
        assert!(
            out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
            "{out}"
        );
        assert!(
            out.ends_with("Content-Type: x/y\r\nContent-Length: 2\r\n\r\nhi"),
            "{out}"
        );
        let out = run(b"POST /expect-reject HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{out}");
        assert!(!out.contains("100 Continue"));
    }

    #[test]
    fn streamed_endpoints() {
        let out = run(b"GET /chunked/30?chunk=26 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(out.ends_with("\r\n\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n4\r\nabcd\r\n0\r\n\r\n"));
        let out = run(b"GET /sse?events=2&interval_ms=0 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(out.ends_with("f\r\ndata: event 1\n\n\r\nf\r\ndata: event 2\n\n\r\n0\r\n\r\n"));
        let out = run(b"GET /trailers HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(out.ends_with("6\r\nhello\n\r\n0\r\nX-Checksum: abc123\r\n\r\n"));
        let out = run(b"GET /early-hints HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n"));
        let out = run(b"GET /abort?bytes=3 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(out.ends_with("Content-Length: 6\r\n\r\nabc"), "{out}");
        let out = run(b"GET /close/3 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(out.ends_with("Connection: close\r\n\r\nabc"), "{out}");
    }

    #[test]
    fn errors_close_or_not() {
        for (input, status) in [
            (&b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"[..], "404"),
            (b"GET /echo HTTP/1.1\r\n\r\n", "400"),
            (
                b"GET /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "400",
            ),
            (
                b"GET /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "501",
            ),
            (
                b"GET /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "400",
            ),
            (b"GET /echo HTTP/1.1\r\nHost : h\r\n\r\n", "400"),
            (b"GET /echo HTTP/1.2\r\nHost: h\r\n\r\n", "505"),
            (b"\x00\x01\x02 garbage\r\n\r\n", "400"),
            (b"GET /status/101 HTTP/1.1\r\nHost: h\r\n\r\n", "400"),
            (b"GET /status/abc HTTP/1.1\r\nHost: h\r\n\r\n", "400"),
            (b"GET /chunked/3?chunk=0 HTTP/1.1\r\nHost: h\r\n\r\n", "400"),
            (
                b"GET /headers-out?a%0d%0ab=c HTTP/1.1\r\nHost: h\r\n\r\n",
                "400",
            ),
        ] {
            let out = run(input);
            assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{out}");
        }
        // Parameter errors keep the connection; protocol errors close it.
        let out = run(
            b"GET /bytes/x HTTP/1.1\r\nHost: h\r\n\r\nGET /bytes/1 HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert!(out.ends_with("X-Echo-Seq: 2\r\nContent-Type: application/octet-stream\r\nContent-Length: 1\r\n\r\na"), "{out}");
        let out = run(b"GET /echo HTTP/1.1\r\n\r\nGET /echo HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(!out.contains("X-Echo-Seq: 2"), "{out}");
    }

    #[test]
    fn headers_out_and_status() {
        let out =
            run(b"GET /headers-out?X-A=1&X-A=2&Cache-Control=no-store HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(out.contains("\r\nX-A: 1\r\nX-A: 2\r\nCache-Control: no-store\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"), "{out}");
        let out = run(b"GET /status/418 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.1 418 I'm a teapot\r\n")
                && out.ends_with("\r\n\r\n418 I'm a teapot\n"),
            "{out}"
        );
        let out = run(b"HEAD /status/500 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(out.ends_with("Content-Length: 26\r\n\r\n"), "{out}");
    }
}
