//! One proxied exchange with an upstream over HTTP/1.1 (spec §3–§5, design §5 steps 4–5).
//!
//! Checkout or connect, write the head, then upload the request body *while* reading the
//! response: the upload and the response read run side by side (an upstream may answer
//! before it has read the body). `Expect: 100-continue` holds the upload until the upstream's
//! 100 (relayed) or `expect_continue_timeout` (Dito's own 100). Interim responses are relayed,
//! the final head is rewritten (spec §4) and the body relayed as it arrives. The connection
//! goes back to the pool only after a fully sent request and a fully read, reusable response;
//! a reused connection that fails before any response byte is retried once on a new one when
//! that is safe. Worker thread only.

use std::pin::pin;
use std::time::Duration;

use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::time::Instant;

use super::connect;
use super::pool::{Checkout, Permit, UpstreamConn};
use super::route::WorkerRoute;
use crate::downstream::{BodyLength, BodySource, Downstream, OutHead, ResponseSink};
use crate::error::{ProxyError, UpstreamErrorKind};
use crate::http::body::BodyError;
use crate::http::conn::ReadOutcome;
use crate::http::request::{BodyFraming, RequestHead};
use crate::http::response_head::{parse_response_head, ResponseFraming, ResponseHead};
use crate::relay::{self, headers, RelayError};
use crate::worker::state::WorkerState;

/// Largest piece of request body read from the client per upstream write.
const UPLOAD_PIECE: usize = 64 * 1024;

/// What the pipeline needs to know about an exchange that did not produce an answer.
pub enum ForwardError {
    /// Answer this error (nothing was sent yet).
    Respond(ProxyError),
    /// The client is gone, or the response was aborted: nothing more to send.
    Done,
}

/// The request as the forwarder sees it.
pub struct Forward<'a> {
    pub worker: &'a WorkerState,
    pub route: &'a WorkerRoute,
    pub req: &'a RequestHead,
    /// The upstream request head, complete.
    pub head: &'a [u8],
    pub request_id: &'a str,
    pub started: Instant,
    pub request_timeout: Option<Duration>,
}

enum Attempt {
    Done,
    /// Failed before any response byte: may be retried on a new connection.
    FailedEarly(UpstreamErrorKind),
    Failed(ForwardError),
}

/// Sends the request upstream and relays the answer; `Ok` once a response was relayed.
pub async fn forward<D: Downstream>(f: &Forward<'_>, down: &mut D) -> Result<(), ForwardError> {
    let idempotent = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]
        .iter()
        .any(|m| f.req.is_method(m));
    let request_deadline = f.request_timeout.map(|t| f.started + t);
    let mut reuse = true;
    loop {
        let (stream, permit, reused) = acquire(f, reuse, request_deadline).await?;
        match exchange(f, stream, permit, request_deadline, down).await {
            Attempt::Done => return Ok(()),
            Attempt::FailedEarly(kind) => {
                let (body, sink) = down.parts();
                let safe = reused && idempotent && body.received() == 0 && !sink.committed();
                if safe && reuse {
                    reuse = false;
                    continue;
                }
                return Err(ForwardError::Respond(ProxyError::Upstream(kind)));
            }
            Attempt::Failed(e) => return Err(e),
        }
    }
}

/// A pooled connection, or a new one within `dial_timeout` (and the request deadline).
async fn acquire(
    f: &Forward<'_>,
    reuse: bool,
    request_deadline: Option<Instant>,
) -> Result<(UpstreamConn, Permit, bool), ForwardError> {
    let t = &f.route.transport;
    let fail = |k| ForwardError::Respond(ProxyError::Upstream(k));
    let dial_deadline = Instant::now() + t.dial_timeout;
    let work = async {
        let checkout = f
            .worker
            .pool
            .checkout(&f.route.key, f.route.pool_limits, reuse, dial_deadline)
            .await
            .ok_or(fail(UpstreamErrorKind::ConnectionLimit))?;
        match checkout {
            Checkout::Reuse(conn, permit) => Ok((conn, permit, true)),
            Checkout::Connect(permit) => {
                let addrs = f
                    .worker
                    .resolver
                    .resolve(&f.route.key.host, f.route.key.port)
                    .await
                    .map_err(fail)?;
                let stream = connect::connect(&addrs, t.dial_timeout, t.keep_alive)
                    .await
                    .map_err(fail)?;
                Ok((UpstreamConn::new(stream), permit, false))
            }
        }
    };
    match request_deadline {
        None => work.await,
        Some(d) => monoio::time::timeout_at(d, work)
            .await
            .unwrap_or(Err(fail(UpstreamErrorKind::RequestTimeout))),
    }
}

/// How the upload of the request body ended.
enum Upload {
    Pending,
    Sent,
    ClientFailed(BodyError),
    UpstreamFailed,
}

async fn exchange<D: Downstream>(
    f: &Forward<'_>,
    conn: UpstreamConn,
    permit: Permit,
    request_deadline: Option<Instant>,
    down: &mut D,
) -> Attempt {
    let UpstreamConn {
        reader: mut up,
        writer: mut wr,
        head_buf: mut head,
    } = conn;
    head.clear();
    head.extend_from_slice(f.head);
    let (res, head) = wr.write_all(head).await;
    if res.is_err() {
        return Attempt::FailedEarly(UpstreamErrorKind::Reset);
    }
    let (body, sink) = down.parts();
    let (keep_upstream, state) = {
        let has_body = f.req.framing != BodyFraming::None;
        let chunked = f.req.framing == BodyFraming::Chunked;
        let mut go = !(f.req.expect_continue && has_body);
        let expect_deadline = Instant::now() + f.route.transport.expect_continue_timeout;
        let mut upload = pin!(upload_body(body, &mut wr, chunked));
        let mut state = if has_body {
            Upload::Pending
        } else {
            Upload::Sent
        };
        let mut sent_at = (!has_body).then(Instant::now);
        let head_request = f.req.is_method("HEAD");
        let rht = f.route.transport.response_header_timeout;

        // Interim responses, then the final head.
        let final_head = loop {
            match parse_response_head(up.buffered(), head_request) {
                Err(_) => return Attempt::Failed(invalid_response(sink)),
                Ok(Some((head, n))) => {
                    up.consume(n);
                    if !head.is_informational() {
                        break head;
                    }
                    if head.status == 101 {
                        return Attempt::Failed(invalid_response(sink));
                    }
                    if head.status == 100 && !go {
                        go = true;
                    }
                    let hs = headers::interim_headers(&head);
                    let out = OutHead {
                        status: head.status,
                        reason: head.reason(),
                        headers: &hs,
                        trailers: false,
                    };
                    if sink.send_interim(&out).await.is_err() {
                        return Attempt::Failed(ForwardError::Done);
                    }
                    continue;
                }
                Ok(None) => {}
            }
            let got_bytes = up.has_buffered();
            let mut fill = pin!(up.fill(None));
            loop {
                let (deadline, on_timeout) =
                    head_deadline(request_deadline, sent_at, rht, go, expect_deadline);
                monoio::select! {
                    r = &mut fill => {
                        match r {
                            ReadOutcome::Data => break,
                            _ if got_bytes => return Attempt::Failed(invalid_response(sink)),
                            _ => return Attempt::FailedEarly(UpstreamErrorKind::Reset),
                        }
                    }
                    r = &mut upload, if go && matches!(state, Upload::Pending) => {
                        state = r;
                        sent_at = Some(Instant::now());
                        if let Upload::ClientFailed(e) = &state {
                            return Attempt::Failed(client_body_error(e, sink));
                        }
                    }
                    _ = monoio::time::sleep_until(deadline) => {
                        match on_timeout {
                            Timeout::SendOwnContinue => {
                                go = true;
                                let hs = crate::http::headers::HeaderList::default();
                                let out = OutHead { status: 100, reason: b"Continue", headers: &hs, trailers: false };
                                if sink.send_interim(&out).await.is_err() {
                                    return Attempt::Failed(ForwardError::Done);
                                }
                            }
                            Timeout::Fail(kind) => {
                                return Attempt::Failed(ForwardError::Respond(ProxyError::Upstream(kind)));
                            }
                        }
                    }
                }
            }
        };

        // The final head: rewrite it and start the client's response.
        let reframed = final_head.framing != ResponseFraming::None;
        let length = match final_head.framing {
            ResponseFraming::None => BodyLength::None,
            ResponseFraming::Length(n) => BodyLength::Exact(n),
            ResponseFraming::Chunked | ResponseFraming::Close => BodyLength::Unknown,
        };
        let hs = headers::final_headers(&final_head, reframed, f.request_id, f.started.elapsed());
        let out = OutHead {
            status: final_head.status,
            reason: final_head.reason(),
            headers: &hs,
            trailers: final_head.framing == ResponseFraming::Chunked,
        };
        // A request body that is not complete now leaves the client stream in an unknown state.
        let close_client = !body_finished(&state);
        if sink.send_head(&out, length, close_client).await.is_err() {
            return Attempt::Failed(ForwardError::Done);
        }

        // Relay the body while any upload still in flight goes on beside it.
        let relayed = {
            let mut relay = pin!(relay::relay_body(&mut up, final_head.framing, sink));
            loop {
                monoio::select! {
                    r = &mut relay => break r,
                    r = &mut upload, if go && matches!(state, Upload::Pending) => { state = r; }
                }
            }
        };
        match relayed {
            Ok(()) => {}
            Err(RelayError::Upstream) => {
                sink.abort();
                return Attempt::Done;
            }
            Err(RelayError::Client(_)) => return Attempt::Failed(ForwardError::Done),
        }
        (final_head.keep_alive && reusable(&final_head), state)
    };
    if matches!(state, Upload::Sent) && keep_upstream && !up.has_buffered() {
        let conn = UpstreamConn {
            reader: up,
            writer: wr,
            head_buf: head,
        };
        f.worker.pool.check_in(conn, permit, f.route.pool_limits);
    }
    Attempt::Done
}

fn reusable(head: &ResponseHead) -> bool {
    head.framing != ResponseFraming::Close
}

fn body_finished(state: &Upload) -> bool {
    matches!(state, Upload::Sent)
}

enum Timeout {
    SendOwnContinue,
    Fail(UpstreamErrorKind),
}

/// The next deadline while waiting for a response head, and what its expiry means.
fn head_deadline(
    request_deadline: Option<Instant>,
    sent_at: Option<Instant>,
    rht: Duration,
    go: bool,
    expect_deadline: Instant,
) -> (Instant, Timeout) {
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut best = (
        request_deadline.unwrap_or(far),
        Timeout::Fail(UpstreamErrorKind::RequestTimeout),
    );
    if let Some(at) = sent_at {
        let d = at + rht;
        if d < best.0 {
            best = (d, Timeout::Fail(UpstreamErrorKind::ResponseHeaderTimeout));
        }
    }
    if !go && expect_deadline < best.0 {
        best = (expect_deadline, Timeout::SendOwnContinue);
    }
    best
}

fn invalid_response<S: ResponseSink>(sink: &mut S) -> ForwardError {
    if sink.committed() {
        sink.abort();
        ForwardError::Done
    } else {
        ForwardError::Respond(ProxyError::Upstream(UpstreamErrorKind::InvalidResponse))
    }
}

fn client_body_error<S: ResponseSink>(e: &BodyError, sink: &mut S) -> ForwardError {
    if sink.committed() {
        sink.abort();
        return ForwardError::Done;
    }
    match e {
        BodyError::Malformed(c) => ForwardError::Respond(ProxyError::BadRequest(c.reason())),
        BodyError::IdleTimeout => ForwardError::Respond(ProxyError::RequestTimeout),
        BodyError::Truncated | BodyError::Io(_) => ForwardError::Done,
    }
}

/// Streams the request body upstream, re-framing chunked bodies.
async fn upload_body<B: BodySource, W: AsyncWriteRent>(
    body: &mut B,
    w: &mut W,
    chunked: bool,
) -> Upload {
    let mut data = Vec::with_capacity(UPLOAD_PIECE);
    loop {
        data.clear();
        let n = match body.read_body(&mut data, UPLOAD_PIECE).await {
            Ok(n) => n,
            Err(e) => return Upload::ClientFailed(e),
        };
        if n == 0 {
            break;
        }
        let frame = if chunked {
            let mut framed = Vec::with_capacity(n + 20);
            framed.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            framed.extend_from_slice(&data);
            framed.extend_from_slice(b"\r\n");
            framed
        } else {
            std::mem::take(&mut data)
        };
        let (res, back) = w.write_all(frame).await;
        if res.is_err() {
            return Upload::UpstreamFailed;
        }
        if !chunked {
            data = back;
        }
    }
    if chunked {
        let mut end = b"0\r\n".to_vec();
        end.extend_from_slice(body.trailers());
        end.extend_from_slice(b"\r\n");
        if w.write_all(end).await.0.is_err() {
            return Upload::UpstreamFailed;
        }
    }
    Upload::Sent
}
