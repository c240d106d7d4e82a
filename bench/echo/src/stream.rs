//! Streaming, slow and deliberately broken endpoints: sized pattern bodies
//! (`/bytes`, `/chunked`, `/close`), `/sse`, `/slow-head`, `/slow-body`,
//! `/early-hints`, `/trailers`, and the invalid or truncated responses
//! `/abort`, `/two-cl` and `/te-gzip` used to test a proxy's error paths.
//! Large bodies are written in ~64 KiB pieces, never held in memory.

use std::thread::sleep;
use std::time::Duration;

use crate::conn::{Conn, Transport};
use crate::response::{send_text, write_pattern, After, Ctx, Head, Stream};
use crate::routes::{bad, Res};

fn octets(ctx: &Ctx) -> Head {
    Head::new(ctx, 200).header("Content-Type", "application/octet-stream")
}

/// `/bytes/N`: N pattern bytes with `Content-Length`.
pub fn bytes<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx, n: u64) -> Res {
    conn.put(&octets(ctx).length(n).finish(ctx))?;
    if !ctx.head_only {
        write_pattern(conn, 0, n)?;
    }
    conn.flush()?;
    Ok(ctx.after())
}

/// `/chunked/N?chunk=K`: N pattern bytes in chunks of K.
pub fn chunked<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx, n: u64, chunk: u64) -> Res {
    if chunk == 0 {
        return Err(bad("chunk=0"));
    }
    let out = Stream::start(conn, ctx, octets(ctx))?;
    let mut pos = 0;
    while pos < n && out.has_body() {
        let len = chunk.min(n - pos);
        out.pattern(conn, pos, len)?;
        pos += len;
    }
    out.finish(conn, b"")?;
    Ok(ctx.after())
}

/// `/close/N`: N pattern bytes delimited by closing the connection.
pub fn close<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx, n: u64) -> Res {
    ctx.keep_alive = false;
    conn.put(&octets(ctx).finish(ctx))?;
    if !ctx.head_only {
        write_pattern(conn, 0, n)?;
    }
    conn.flush()?;
    Ok(After::Close)
}

/// `/sse?events=N&interval_ms=M`: N events, one chunk each, flushed.
pub fn sse<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx, events: u64, interval: u64) -> Res {
    let head = Head::new(ctx, 200)
        .header("Content-Type", "text/event-stream")
        .header("Cache-Control", "no-cache");
    let out = Stream::start(conn, ctx, head)?;
    conn.flush()?;
    if out.has_body() {
        for k in 1..=events {
            if k > 1 {
                sleep(Duration::from_millis(interval));
            }
            out.data(conn, format!("data: event {k}\n\n").as_bytes())?;
            conn.flush()?;
        }
    }
    out.finish(conn, b"")?;
    Ok(ctx.after())
}

/// `/slow-head?ms=M`: nothing for M ms, then `slow\n`.
pub fn slow_head<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx, ms: u64) -> Res {
    sleep(Duration::from_millis(ms));
    send_text(conn, ctx, 200, "slow\n")?;
    Ok(ctx.after())
}

/// `/slow-body?ms=M&chunks=N`: head at once, then N `x\n` chunks M ms apart.
pub fn slow_body<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx, ms: u64, chunks: u64) -> Res {
    let head = Head::new(ctx, 200).header("Content-Type", "text/plain");
    let out = Stream::start(conn, ctx, head)?;
    conn.flush()?;
    if out.has_body() {
        for i in 0..chunks {
            if i > 0 {
                sleep(Duration::from_millis(ms));
            }
            out.data(conn, b"x\n")?;
            conn.flush()?;
        }
    }
    out.finish(conn, b"")?;
    Ok(ctx.after())
}

/// `/early-hints`: a 103 (HTTP/1.1 clients only), then `final\n`.
pub fn early_hints<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx) -> Res {
    if ctx.minor >= 1 {
        conn.put(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")?;
        conn.flush()?;
    }
    send_text(conn, ctx, 200, "final\n")?;
    Ok(ctx.after())
}

/// `/trailers`: chunked `hello\n` with trailer `X-Checksum: abc123`.
pub fn trailers<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx) -> Res {
    let head = Head::new(ctx, 200)
        .header("Content-Type", "text/plain")
        .header("Trailer", "X-Checksum");
    let out = Stream::start(conn, ctx, head)?;
    out.data(conn, b"hello\n")?;
    out.finish(conn, b"X-Checksum: abc123\r\n")?;
    Ok(ctx.after())
}

/// `/abort?bytes=N&mode=M`: announces more than it sends, sends N bytes,
/// then resets (`cl`, `chunked`) or closes (`cl-close`, `chunked-close`).
/// With `cl` the announced length is 2N (at least N+1); with `chunked` the
/// N bytes form one complete chunk and the last chunk never comes.
pub fn abort<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx, n: u64, mode: Option<&str>) -> Res {
    let (chunked, reset) = match mode.unwrap_or("cl") {
        "cl" => (false, true),
        "chunked" => (true, true),
        "cl-close" => (false, false),
        "chunked-close" => (true, false),
        other => return Err(bad(&format!("mode={other}"))),
    };
    let head = octets(ctx);
    let head = if chunked {
        head.header("Transfer-Encoding", "chunked")
    } else {
        head.length(n.saturating_mul(2).max(n.saturating_add(1)))
    };
    conn.put(&head.finish(ctx))?;
    if !ctx.head_only && n > 0 {
        if chunked {
            conn.put(format!("{n:x}\r\n").as_bytes())?;
        }
        write_pattern(conn, 0, n)?;
        if chunked {
            conn.put(b"\r\n")?;
        }
    }
    conn.flush()?;
    ctx.keep_alive = false;
    Ok(if reset { After::Abort } else { After::Close })
}

/// `/two-cl`: conflicting `Content-Length: 5` and `6`, 5 bytes, then close.
pub fn two_cl<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx) -> Res {
    ctx.keep_alive = false;
    let head = Head::new(ctx, 200)
        .header("Content-Type", "text/plain")
        .header("Content-Length", "5")
        .header("Content-Length", "6");
    let mut out = head.finish(ctx);
    if !ctx.head_only {
        out.extend_from_slice(b"hello");
    }
    conn.put(&out)?;
    conn.flush()?;
    Ok(After::Close)
}

/// `/te-gzip`: `Transfer-Encoding: gzip, chunked` over a plain chunked
/// `hello` (not actually gzip), then close.
pub fn te_gzip<S: Transport>(conn: &mut Conn<S>, ctx: &mut Ctx) -> Res {
    ctx.keep_alive = false;
    let head = Head::new(ctx, 200)
        .header("Content-Type", "text/plain")
        .header("Transfer-Encoding", "gzip, chunked");
    let mut out = head.finish(ctx);
    if !ctx.head_only {
        out.extend_from_slice(b"5\r\nhello\r\n0\r\n\r\n");
    }
    conn.put(&out)?;
    conn.flush()?;
    Ok(After::Close)
}
