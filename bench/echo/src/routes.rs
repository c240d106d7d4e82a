//! Endpoint dispatch and the fixed-size endpoints: `/echo`, `/echo-body`,
//! `/status/CODE`, `/redirect`, `/no-reuse`, `/expect-reject`,
//! `/headers-out` and the 404 fallback. Streaming and deliberately broken
//! endpoints live in `stream.rs`. Endpoints validate their parameters
//! before writing anything, so a bad parameter still gets a clean 400.

use std::io;

use crate::conn::{BodySink, Conn, Field, Transport};
use crate::request::{is_tchar, parse_query, Request};
use crate::response::{reason, send_full, send_text, After, Ctx, Head};
use crate::stream;

/// Largest body `/echo-body` buffers (413 beyond).
pub const ECHO_BODY_LIMIT: u64 = 64 * 1024 * 1024;

/// An endpoint's failure: I/O (the connection is dropped) or a bad
/// parameter (answered with 400 and the message).
#[derive(Debug)]
pub enum Fail {
    /// Writing failed.
    Io(io::Error),
    /// Bad parameter; nothing was written yet.
    Bad(String),
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Io(e)
    }
}

/// Endpoint result.
pub type Res = Result<After, Fail>;

/// Decoded query parameters.
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `name` as a number, `default` when absent.
    pub fn num(&self, name: &str, default: u64) -> Result<u64, Fail> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| bad(&format!("{name}={v}"))),
        }
    }
}

/// A 400 for a bad parameter or path segment.
pub fn bad(what: &str) -> Fail {
    Fail::Bad(format!("bad parameter: {what}\n"))
}

/// Parses the number at the end of `/bytes/N`-style paths.
fn path_num(what: &str) -> Result<u64, Fail> {
    what.parse().map_err(|_| bad(what))
}

/// Answers one request whose body has been read.
pub fn dispatch<S: Transport>(
    conn: &mut Conn<S>,
    ctx: &mut Ctx,
    req: &Request,
    body: &BodySink,
    trailers: &[Field],
) -> io::Result<After> {
    let (path, query) = req.path_query();
    let params = Params(parse_query(query));
    match route(conn, ctx, req, path, &params, body, trailers) {
        Ok(after) => Ok(after),
        Err(Fail::Io(e)) => Err(e),
        Err(Fail::Bad(msg)) => {
            send_text(conn, ctx, 400, &msg)?;
            Ok(ctx.after())
        }
    }
}

fn route<S: Transport>(
    conn: &mut Conn<S>,
    ctx: &mut Ctx,
    req: &Request,
    path: &str,
    q: &Params,
    body: &BodySink,
    trailers: &[Field],
) -> Res {
    match path {
        "/echo-body" => echo_body(conn, ctx, req, body),
        "/redirect" => redirect(conn, ctx),
        "/no-reuse" => no_reuse(conn, ctx),
        "/expect-reject" => expect_reject(conn, ctx).map_err(Fail::Io),
        "/headers-out" => headers_out(conn, ctx, q),
        "/early-hints" => stream::early_hints(conn, ctx),
        "/sse" => stream::sse(conn, ctx, q.num("events", 3)?, q.num("interval_ms", 100)?),
        "/slow-head" => stream::slow_head(conn, ctx, q.num("ms", 1000)?),
        "/slow-body" => stream::slow_body(conn, ctx, q.num("ms", 100)?, q.num("chunks", 5)?),
        "/abort" => stream::abort(conn, ctx, q.num("bytes", 1024)?, q.get("mode")),
        "/trailers" => stream::trailers(conn, ctx),
        "/two-cl" => stream::two_cl(conn, ctx),
        "/te-gzip" => stream::te_gzip(conn, ctx),
        p if p == "/echo" || p.starts_with("/echo/") => echo(conn, ctx, req, body, trailers),
        p => {
            if let Some(n) = p.strip_prefix("/bytes/") {
                stream::bytes(conn, ctx, path_num(n)?)
            } else if let Some(n) = p.strip_prefix("/chunked/") {
                stream::chunked(conn, ctx, path_num(n)?, q.num("chunk", 8192)?)
            } else if let Some(n) = p.strip_prefix("/close/") {
                stream::close(conn, ctx, path_num(n)?)
            } else if let Some(code) = p.strip_prefix("/status/") {
                status(conn, ctx, code)
            } else {
                send_text(conn, ctx, 404, &format!("no such endpoint: {p}\n"))?;
                Ok(ctx.after())
            }
        }
    }
}

/// The `/echo` body: one `key: value` line per fact, see the crate docs.
pub fn echo_text(req: &Request, body: &BodySink, trailers: &[Field]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut line = |parts: &[&[u8]]| {
        for p in parts {
            out.extend_from_slice(p);
        }
        out.push(b'\n');
    };
    line(&[b"method: ", req.method.as_bytes()]);
    line(&[b"target: ", req.target.as_bytes()]);
    line(&[
        b"version: HTTP/1.",
        if req.minor == 0 { b"0" } else { b"1" },
    ]);
    for (name, value) in &req.headers {
        line(&[b"header: ", name.as_bytes(), b": ", value]);
    }
    line(&[b"body-length: ", body.len.to_string().as_bytes()]);
    let hash = format!("{:016x}", body.hash.finish());
    line(&[b"body-fnv64: ", hash.as_bytes()]);
    for (name, value) in trailers {
        line(&[b"trailer: ", name.as_bytes(), b": ", value]);
    }
    out
}

fn echo<S: Transport>(
    conn: &mut Conn<S>,
    ctx: &mut Ctx,
    req: &Request,
    body: &BodySink,
    trailers: &[Field],
) -> Res {
    let text = echo_text(req, body, trailers);
    let head = Head::new(ctx, 200).header("Content-Type", "text/plain");
    send_full(conn, ctx, head, &text)?;
    Ok(ctx.after())
}

fn echo_body<S: Transport>(
    conn: &mut Conn<S>,
    ctx: &mut Ctx,
    req: &Request,
    body: &BodySink,
) -> Res {
    let mut head = Head::new(ctx, 200);
    if let Some(ct) = req.header("content-type") {
        head = head.header("Content-Type", ct);
    }
    let data = body.data.as_deref().unwrap_or_default();
    send_full(conn, ctx, head, data)?;
    Ok(ctx.after())
}

fn status<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx, code: &str) -> Res {
    let code: u16 = code.parse().map_err(|_| bad(code))?;
    if !(200..=999).contains(&code) {
        return Err(bad(&format!("status {code} (must be 200..=999)")));
    }
    match code {
        204 | 304 => {
            conn.put(&Head::new(ctx, code).finish(ctx))?;
            conn.flush()?;
        }
        205 => send_full(conn, ctx, Head::new(ctx, code), b"")?,
        _ => send_text(conn, ctx, code, &format!("{code} {}\n", reason(code)))?,
    }
    Ok(ctx.after())
}

fn redirect<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx) -> Res {
    let head = Head::new(ctx, 302)
        .header("Location", "/echo/redirected")
        .header("Content-Type", "text/plain");
    send_full(conn, ctx, head, b"redirecting to /echo/redirected\n")?;
    Ok(ctx.after())
}

fn no_reuse<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx) -> Res {
    ctx.keep_alive = false;
    send_text(conn, ctx, 200, "bye\n")?;
    Ok(After::Close)
}

/// `401` with `Connection: close`, sent before (and instead of) reading the
/// request body.
pub fn expect_reject<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx) -> io::Result<After> {
    ctx.keep_alive = false;
    let head = Head::new(ctx, 401)
        .header("WWW-Authenticate", "Basic realm=\"dito-echo\"")
        .header("Content-Type", "text/plain");
    send_full(conn, ctx, head, b"unauthorized\n")?;
    Ok(After::Close)
}

fn headers_out<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx, q: &Params) -> Res {
    for (name, value) in &q.0 {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(bad(&format!("header name {name:?}")));
        }
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            return Err(bad(&format!("{name} would break framing")));
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(bad(&format!("header value {value:?}")));
        }
    }
    let mut head = Head::new(ctx, 200);
    let mut typed = false;
    for (name, value) in &q.0 {
        typed |= name.eq_ignore_ascii_case("content-type");
        if name.eq_ignore_ascii_case("connection")
            && value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
        {
            ctx.keep_alive = false;
        }
        head = head.header(name, value);
    }
    if !typed {
        head = head.header("Content-Type", "text/plain");
    }
    send_full(conn, ctx, head, b"ok\n")?;
    Ok(ctx.after())
}
