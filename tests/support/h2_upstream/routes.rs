//! What the HTTP/2 test upstream answers, per path (`/echo`, `/bytes/N`, `/nolength/N`,
//! `/echo-body`, `/slow-head`, `/hold`, `/reset-mid-body`, `/stall/N`, `/drip/N`,
//! `/status/N`), and the helpers that send bodies within the stream's flow-control window.

use super::*;

/// The `ms` query parameter (0 when absent or not a number).
pub(super) fn ms(query: &str) -> Duration {
    let ms = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_millis(ms)
}

/// The pattern bytes `[from, from + len)`.
pub(super) fn pattern_at(from: usize, len: usize) -> Bytes {
    (from..from + len)
        .map(|i| b'a' + (i % 26) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// What follows a response head.
pub(super) enum Body {
    Empty,
    Data(Bytes),
    /// N pattern bytes.
    Pattern(usize),
    /// 10000 pattern bytes, then RST_STREAM INTERNAL_ERROR.
    CutByReset,
    /// N pattern bytes of the 2N announced, then silence with the stream open (30 s at most).
    Stall(usize),
    /// N pattern bytes, one at a time, this long apart.
    Drip(usize, Duration),
}

pub(super) async fn handle(
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let (parts, mut body) = req.into_parts();
    // Every route reads the request body to its end first.
    let mut received = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?;
    let (head, body) = route(&parts, received, trailers.as_ref()).await;
    // A HEAD request gets the head alone (with the length a GET would have).
    if parts.method == http::Method::HEAD || matches!(body, Body::Empty) {
        respond.send_response(head, true)?;
        return Ok(());
    }
    let mut out = respond.send_response(head, false)?;
    match body {
        Body::Empty => Ok(()),
        Body::Data(data) => send_all(&mut out, data, true).await,
        Body::Pattern(n) => send_pattern(&mut out, n).await,
        Body::CutByReset => {
            send_all(&mut out, pattern_at(0, 10_000), false).await?;
            // A reset discards DATA still queued in h2: give the connection task time to
            // write the 10000 bytes (they fit the peer's initial window) before resetting.
            tokio::time::sleep(Duration::from_millis(200)).await;
            out.send_reset(h2::Reason::INTERNAL_ERROR);
            Ok(())
        }
        Body::Stall(n) => {
            send_all(&mut out, pattern_at(0, n), false).await?;
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        }
        Body::Drip(n, gap) => {
            for i in 0..n {
                tokio::time::sleep(gap).await;
                send_all(&mut out, pattern_at(i, 1), i + 1 == n).await?;
            }
            Ok(())
        }
    }
}

/// The response for a request whose body was `received`.
pub(super) async fn route(
    parts: &http::request::Parts,
    received: Vec<u8>,
    trailers: Option<&http::HeaderMap>,
) -> (Response<()>, Body) {
    let path = parts.uri.path();
    let status = |code: u16| Response::builder().status(code);
    let text = |code: u16, text: String| {
        let head = status(code)
            .header("content-type", "text/plain")
            .header("content-length", text.len())
            .body(())
            .unwrap();
        (head, Body::Data(Bytes::from(text)))
    };
    let octets = |len: Option<usize>| {
        let b = status(200).header("content-type", "application/octet-stream");
        match len {
            Some(n) => b.header("content-length", n),
            None => b,
        }
        .body(())
        .unwrap()
    };
    if path == "/echo-body" {
        let n = received.len();
        let body = if n == 0 {
            Body::Empty
        } else {
            Body::Data(Bytes::from(received))
        };
        return (octets(Some(n)), body);
    }
    if path.starts_with("/echo") {
        let target = parts
            .uri
            .path_and_query()
            .map_or(path, |p| p.as_str())
            .to_owned();
        let mut out = format!(
            "method: {}\ntarget: {target}\nversion: HTTP/2.0\nauthority: {}\nscheme: {}\n",
            parts.method,
            parts.uri.authority().map_or("", |a| a.as_str()),
            parts.uri.scheme_str().unwrap_or(""),
        );
        for (n, v) in &parts.headers {
            out.push_str(&format!(
                "header: {}: {}\n",
                n.as_str(),
                String::from_utf8_lossy(v.as_bytes())
            ));
        }
        out.push_str(&format!("body-length: {}\n", received.len()));
        for (n, v) in trailers.into_iter().flatten() {
            out.push_str(&format!(
                "trailer: {}: {}\n",
                n.as_str(),
                String::from_utf8_lossy(v.as_bytes())
            ));
        }
        return text(200, out);
    }
    if let Some(Ok(n)) = path.strip_prefix("/bytes/").map(str::parse::<usize>) {
        return (octets(Some(n)), Body::Pattern(n));
    }
    if let Some(Ok(n)) = path.strip_prefix("/nolength/").map(str::parse::<usize>) {
        return (octets(None), Body::Pattern(n));
    }
    if path == "/slow-head" || path == "/hold" {
        tokio::time::sleep(ms(parts.uri.query().unwrap_or(""))).await;
        let body = if path == "/hold" { "ok" } else { "slow\n" };
        return text(200, body.to_owned());
    }
    if path == "/reset-mid-body" {
        return (octets(Some(1_000_000)), Body::CutByReset);
    }
    if let Some(Ok(n)) = path.strip_prefix("/stall/").map(str::parse::<usize>) {
        return (octets(Some(2 * n)), Body::Stall(n));
    }
    if let Some(Ok(n)) = path.strip_prefix("/drip/").map(str::parse::<usize>) {
        let gap = ms(parts.uri.query().unwrap_or(""));
        return (octets(Some(n)), Body::Drip(n, gap));
    }
    if let Some(Ok(code)) = path.strip_prefix("/status/").map(str::parse::<u16>) {
        if (200..=999).contains(&code) {
            return (status(code).body(()).unwrap(), Body::Empty);
        }
    }
    text(404, format!("no such endpoint: {path}\n"))
}

/// Sends `n` pattern bytes and ends the stream.
pub(super) async fn send_pattern(out: &mut SendStream<Bytes>, n: usize) -> Result<(), h2::Error> {
    if n == 0 {
        return send_all(out, Bytes::new(), true).await;
    }
    let mut pos = 0;
    while pos < n {
        let len = CHUNK.min(n - pos);
        send_all(out, pattern_at(pos, len), pos + len == n).await?;
        pos += len;
    }
    Ok(())
}

/// Sends `data` within the flow-control capacity the peer grants; `end` ends the stream.
pub(super) async fn send_all(
    out: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    if data.is_empty() {
        if end {
            out.send_data(data, true)?;
        }
        return Ok(());
    }
    while !data.is_empty() {
        out.reserve_capacity(data.len().min(CHUNK));
        let cap = match std::future::poll_fn(|cx| out.poll_capacity(cx)).await {
            Some(cap) => cap?,
            None => return Err(h2::Error::from(h2::Reason::CANCEL)),
        };
        if cap == 0 {
            continue;
        }
        let piece = data.split_to(cap.min(data.len()));
        out.send_data(piece, end && data.is_empty())?;
    }
    Ok(())
}
