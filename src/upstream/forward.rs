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

use monoio::time::Instant;

use super::connect;
use super::final_response::{note_request_too_large, relay_final};
use super::pool::{Checkout, Permit, UpstreamConn};
use super::request_head::{write_request_head, HeadInputs};
use super::route::WorkerRoute;
use super::stream::{self, UpstreamReader, UpstreamWriter};
use super::tls;
use super::upload::{upload_body, Upload};
use crate::downstream::{BodySource, Downstream, OutHead, ResponseSink};
use crate::error::{ProxyError, UpstreamErrorKind};
use crate::http::body::BodyError;
use crate::http::conn::ReadOutcome;
use crate::http::request::{BodyFraming, RequestHead};
use crate::http::response_head::{parse_response_head_into, ResponseHead};
use crate::plugin::chain::ResponseHooks;
use crate::relay::headers;
use crate::worker::state::WorkerState;

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
    /// What the upstream request head is built from (written into the connection's buffer).
    pub head: &'a HeadInputs<'a>,
    pub request_id: &'a str,
    pub started: Instant,
    pub request_timeout: Option<Duration>,
    /// `request_limits.max_request_body_size`.
    pub max_request_body: u64,
    /// `logging.verbose`: dump the response headers sent.
    pub verbose: bool,
    /// The location's plugin response hooks, run on the response head (spec §8).
    pub hooks: Option<&'a dyn ResponseHooks>,
}

pub(super) enum Attempt {
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
    if f.route.transport.force_http2 {
        // Boxed: the HTTP/1.1 path's future keeps its size.
        return Box::pin(super::http2::forward(f, down)).await;
    }
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
    // An idle connection is taken at once, as the checkout below would on its first poll
    // (a timeout polls its future before its timer).
    if reuse {
        if let Some((conn, permit)) = f.worker.pool.try_reuse(&f.route.key, f.route.pool_limits) {
            return Ok((conn, permit, true));
        }
    }
    // Boxed: waiting at the cap, resolving, connecting and the TLS handshake make a future of
    // several KiB that keep-alive requests never need; inline, every request's future would
    // carry (and move) that space.
    Box::pin(checkout_or_connect(f, reuse, request_deadline)).await
}

/// The checkout (waiting at the cap), or a new connection, under the request deadline.
async fn checkout_or_connect(
    f: &Forward<'_>,
    reuse: bool,
    request_deadline: Option<Instant>,
) -> Result<(UpstreamConn, Permit, bool), ForwardError> {
    let t = &f.route.transport;
    let fail = |k| ForwardError::Respond(ProxyError::Upstream(k));
    let work = async {
        let checkout = f
            .worker
            .pool
            .checkout(&f.route.key, f.route.pool_limits, reuse, t.dial_timeout)
            .await
            .ok_or(fail(UpstreamErrorKind::ConnectionLimit))?;
        match checkout {
            Checkout::Reuse(conn, permit) => Ok((conn, permit, true)),
            Checkout::Connect(permit) => {
                let halves = dial(f.worker, f.route).await.map_err(fail)?;
                Ok((UpstreamConn::new(halves), permit, false))
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

/// A new connection to the route's upstream: resolve, connect within `dial_timeout`, and
/// the TLS handshake for a TLS target.
pub(super) async fn dial(
    worker: &WorkerState,
    route: &WorkerRoute,
) -> Result<(UpstreamReader, UpstreamWriter), UpstreamErrorKind> {
    let t = &route.transport;
    let addrs = worker
        .resolver
        .resolve(&route.key.host, route.key.port)
        .await?;
    let stream = connect::connect(&addrs, t.dial_timeout, t.keep_alive).await?;
    match &route.tls {
        None => Ok(stream::plain(stream)),
        Some(tls) => tls::handshake(stream, tls, t.tls_handshake_timeout).await,
    }
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
        mut scratch,
    } = conn;
    // Plain connections have no TLS errors; a TLS one's depend on the handshake.
    let cert_requested = up.source().tls_cert_requested();
    let tls_failure = |e: &std::io::Error| tls::classify_io(e, cert_requested?);
    head.clear();
    write_request_head(&mut head, f.req, f.head);
    let (res, head) = wr.write_all(head).await;
    if res.is_err() {
        return Attempt::FailedEarly(UpstreamErrorKind::Reset);
    }
    let (body, sink) = down.parts();
    let (keep_upstream, state) = {
        let has_body = f.req.framing != BodyFraming::None;
        let chunked = f.req.framing == BodyFraming::Chunked;
        let mut go = !(f.req.expect_continue && has_body);
        let expect_deadline =
            (!go).then(|| Instant::now() + f.route.transport.expect_continue_timeout);
        let mut upload = pin!(upload_body(body, &mut wr, chunked, f.max_request_body));
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
            match parse_response_head_into(up.buffered(), head_request, &mut scratch.head) {
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
                    if let Err(e) = relay_interim(&head, sink).await {
                        return Attempt::Failed(e);
                    }
                    scratch.head = head.into_storage();
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
                        if let ReadOutcome::Failed(e) = &r {
                            // In TLS 1.3 a refused client certificate arrives as the first
                            // read. On a new connection that is the answer (no retry); a
                            // reused one may be retried like any early failure.
                            if let Some(kind) = tls_failure(e) {
                                tracing::warn!(upstream = %f.route.key.host, kind = kind.as_str(), error = %e, "upstream TLS failure");
                                if got_bytes {
                                    return Attempt::Failed(upstream_failure(kind, sink));
                                }
                                return Attempt::FailedEarly(kind);
                            }
                        }
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
                        if matches!(state, Upload::TooLarge) {
                            note_request_too_large(f);
                            return Attempt::Failed(ForwardError::Respond(ProxyError::RequestTooLarge));
                        }
                    }
                    _ = monoio::time::sleep_until(deadline) => {
                        match on_timeout {
                            Timeout::SendOwnContinue => {
                                go = true;
                                let hs = crate::http::headers::HeaderList::default();
                                let out = OutHead { status: 100, reason: b"Continue", headers: &hs, length_in_headers: false };
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

        if let Err(failed) = relay_final(
            f,
            &final_head,
            &mut up,
            upload.as_mut(),
            go,
            &mut state,
            &mut scratch.out,
            sink,
        )
        .await
        {
            return failed;
        }
        let keep = final_head.keep_alive;
        scratch.head = final_head.into_storage();
        (keep, state)
    };
    if matches!(state, Upload::Sent) && keep_upstream && !up.has_buffered() {
        let conn = UpstreamConn {
            reader: up,
            writer: wr,
            head_buf: head,
            scratch,
        };
        f.worker.pool.check_in(conn, permit, f.route.pool_limits);
    }
    Attempt::Done
}

/// Passes an interim (1xx) response on, less its hop-by-hop fields (the sink decides whether
/// this client may get it); `Err` when the client is gone.
pub(super) async fn relay_interim<S: ResponseSink>(
    head: &ResponseHead,
    sink: &mut S,
) -> Result<(), ForwardError> {
    let hs = headers::interim_headers(head);
    let out = OutHead {
        status: head.status,
        reason: head.reason(),
        headers: &hs,
        length_in_headers: false,
    };
    match sink.send_interim(&out).await {
        Ok(_) => Ok(()),
        Err(_) => Err(ForwardError::Done),
    }
}

pub(super) enum Timeout {
    SendOwnContinue,
    Fail(UpstreamErrorKind),
}

/// The next deadline while waiting for a response head, and what its expiry means.
pub(super) fn head_deadline(
    request_deadline: Option<Instant>,
    sent_at: Option<Instant>,
    rht: Duration,
    go: bool,
    expect_deadline: Option<Instant>,
) -> (Instant, Timeout) {
    let mut best: Option<(Instant, Timeout)> =
        request_deadline.map(|d| (d, Timeout::Fail(UpstreamErrorKind::RequestTimeout)));
    let mut consider = |d: Instant, t: Timeout| {
        if best.as_ref().is_none_or(|(b, _)| d < *b) {
            best = Some((d, t));
        }
    };
    if let Some(at) = sent_at {
        consider(
            at + rht,
            Timeout::Fail(UpstreamErrorKind::ResponseHeaderTimeout),
        );
    }
    if let (false, Some(d)) = (go, expect_deadline) {
        consider(d, Timeout::SendOwnContinue);
    }
    // No deadline applies (request_timeout 0s, body still uploading): a year is forever here.
    best.unwrap_or_else(|| {
        (
            Instant::now() + Duration::from_secs(86_400 * 365),
            Timeout::Fail(UpstreamErrorKind::RequestTimeout),
        )
    })
}

pub(super) fn invalid_response<S: ResponseSink>(sink: &mut S) -> ForwardError {
    upstream_failure(UpstreamErrorKind::InvalidResponse, sink)
}

/// An upstream failure before the final head: answered, unless an interim response already
/// went out (then the client's response is cut).
pub(super) fn upstream_failure<S: ResponseSink>(
    kind: UpstreamErrorKind,
    sink: &mut S,
) -> ForwardError {
    if sink.committed() {
        sink.abort();
        ForwardError::Done
    } else {
        ForwardError::Respond(ProxyError::Upstream(kind))
    }
}

pub(super) fn client_body_error<S: ResponseSink>(e: &BodyError, sink: &mut S) -> ForwardError {
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
