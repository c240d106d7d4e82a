//! One request as one stream on the route's HTTP/2 upstream connection (spec §3–§7 kept):
//! the head of spec §3, the body uploaded while the response is awaited (within the upstream's
//! flow-control window), `response_header_timeout` and `request_timeout` as for HTTP/1.1, and
//! the response relayed by the shared [`relay_final`]. A stream that fails before its response
//! head is retried once on a new connection under the same rule as HTTP/1.1 (a reused
//! connection, an idempotent method, no request-body byte consumed). An upload that ends early
//! resets the stream, so the exchange ends at once (with the head the upstream sent before, or
//! 502 `reset`) instead of waiting for a head that cannot come. Worker thread only.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;

use bytes::Bytes;
use h2::client::ResponseFuture;
use h2::{Reason, RecvStream, SendStream};
use http::Response;
use monoio::time::Instant;

use super::body::H2ResponseBody;
use super::conns::{Found, H2Conn};
use super::{open, request};
use crate::downstream::{BodySource, Downstream, OutHead, ResponseSink};
use crate::error::{ProxyError, UpstreamErrorKind};
use crate::http::conn::ConnReader;
use crate::http::headers::HeaderList;
use crate::http::request::BodyFraming;
use crate::http::response_head::{parse_response_head_into, ResponseStorage};
use crate::upstream::final_response::{note_request_too_large, relay_final};
use crate::upstream::forward::{
    client_body_error, head_deadline, invalid_response, upstream_failure, Attempt, Forward,
    ForwardError, Timeout,
};
use crate::upstream::request_head::write_request_head;
use crate::upstream::upload::Upload;

/// Body bytes read from the client per step.
const UPLOAD_PIECE: usize = 64 * 1024;

/// Sends the request upstream over HTTP/2 and relays the answer.
pub async fn forward<D: Downstream>(f: &Forward<'_>, down: &mut D) -> Result<(), ForwardError> {
    let idempotent = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]
        .iter()
        .any(|m| f.req.is_method(m));
    let request_deadline = f.request_timeout.map(|t| f.started + t);
    for attempt in 0..2 {
        let (conn, reused) = acquire(f, request_deadline).await?;
        let mut refused = false;
        match exchange(f, &conn, request_deadline, down, &mut refused).await {
            Attempt::Done => return Ok(()),
            Attempt::FailedEarly(kind) => {
                if !refused {
                    f.worker.h2_conns.forget(&f.route.key, &conn);
                }
                let (body, sink) = down.parts();
                // A refused stream was not processed (RFC 9113 §8.7): safe for any method.
                let safe =
                    (refused || reused && idempotent) && body.received() == 0 && !sink.committed();
                if safe && attempt == 0 {
                    continue;
                }
                return Err(ForwardError::Respond(ProxyError::Upstream(kind)));
            }
            Attempt::Failed(e) => return Err(e),
        }
    }
    Err(ForwardError::Respond(ProxyError::Upstream(
        UpstreamErrorKind::Reset,
    )))
}

/// The route's connection, opened (or waited for) within the request deadline.
async fn acquire(
    f: &Forward<'_>,
    request_deadline: Option<Instant>,
) -> Result<(H2Conn, bool), ForwardError> {
    let work = async {
        match f.worker.h2_conns.get(&f.route.key).await? {
            Found::Conn { conn, reused } => Ok((conn, reused)),
            Found::Open(ticket) => match open::open(f).await {
                Ok(conn) => {
                    ticket.finish(Ok(conn.clone()));
                    Ok((conn, false))
                }
                Err(kind) => {
                    ticket.finish(Err(kind));
                    Err(kind)
                }
            },
        }
    };
    let done = match request_deadline {
        None => work.await,
        Some(d) => monoio::time::timeout_at(d, work)
            .await
            .unwrap_or(Err(UpstreamErrorKind::RequestTimeout)),
    };
    done.map_err(|k| ForwardError::Respond(ProxyError::Upstream(k)))
}

async fn exchange<D: Downstream>(
    f: &Forward<'_>,
    conn: &H2Conn,
    request_deadline: Option<Instant>,
    down: &mut D,
    refused: &mut bool,
) -> Attempt {
    let mut head = Vec::with_capacity(512);
    write_request_head(&mut head, f.req, f.head);
    let scheme = if f.route.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let request = match request::from_http1_head(&head, scheme) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(upstream = %f.route.key.host, part = e.0, "request not expressible in HTTP/2");
            return Attempt::Failed(ForwardError::Respond(ProxyError::Upstream(
                UpstreamErrorKind::InvalidResponse,
            )));
        }
    };
    let has_body = f.req.framing != BodyFraming::None;
    let mut send = match conn.send.clone().ready().await {
        Ok(s) => s,
        Err(e) => return Attempt::FailedEarly(classify(&e)),
    };
    let (response, out) = match send.send_request(request, !has_body) {
        Ok(pair) => pair,
        Err(e) => return Attempt::FailedEarly(classify(&e)),
    };
    let _stream = conn.state.activity.stream();
    let (body, sink) = down.parts();
    if f.req.expect_continue && has_body {
        // The h2 client does not surface an upstream's 100: Dito sends its own at once.
        let hs = HeaderList::default();
        let cont = OutHead {
            status: 100,
            reason: b"Continue",
            headers: &hs,
            length_in_headers: false,
        };
        if sink.send_interim(&cont).await.is_err() {
            return Attempt::Failed(ForwardError::Done);
        }
    }
    let mut upload = pin!(upload_body(body, out, f.max_request_body));
    let mut state = if has_body {
        Upload::Pending
    } else {
        Upload::Sent
    };
    let mut sent_at = (!has_body).then(Instant::now);
    let rht = f.route.transport.response_header_timeout;
    let mut response = pin!(response);
    let got = loop {
        let (deadline, on_timeout) = head_deadline(request_deadline, sent_at, rht, true, None);
        monoio::select! {
            r = &mut response => break r,
            r = &mut upload, if matches!(state, Upload::Pending) => {
                state = r;
                sent_at = Some(Instant::now());
                if let Upload::ClientFailed(e) = &state {
                    return Attempt::Failed(client_body_error(e, sink));
                }
                if matches!(state, Upload::TooLarge) {
                    note_request_too_large(f);
                    return Attempt::Failed(ForwardError::Respond(ProxyError::RequestTooLarge));
                }
                if matches!(state, Upload::UpstreamFailed) {
                    // The request never reached the upstream whole and its stream is reset
                    // (by `upload_body` if no one else did): a head the upstream sent before
                    // that (an early 413 or 401) is buffered in h2, and no other can come.
                    break settled(response.as_mut()).await;
                }
            }
            _ = monoio::time::sleep_until(deadline) => {
                let kind = match on_timeout {
                    Timeout::Fail(kind) => kind,
                    Timeout::SendOwnContinue => UpstreamErrorKind::ResponseHeaderTimeout,
                };
                return Attempt::Failed(ForwardError::Respond(ProxyError::Upstream(kind)));
            }
        }
    };
    let (parts, recv) = match got {
        Ok(resp) => resp.into_parts(),
        Err(e) => {
            let kind = classify(&e);
            *refused = e.reason() == Some(Reason::REFUSED_STREAM) && e.is_remote();
            tracing::warn!(upstream = %f.route.key.host, kind = kind.as_str(), error = %e, "HTTP/2 upstream stream failed");
            // The forward loop retries only when no request-body byte was consumed.
            return if !sink.committed() {
                Attempt::FailedEarly(kind)
            } else {
                Attempt::Failed(upstream_failure(kind, sink))
            };
        }
    };
    // The response head, re-read as HTTP/1.1 so framing and the rewrite of spec §4 are the
    // same code for both versions.
    head.clear();
    head_as_http1(&parts, &mut head);
    let mut storage = ResponseStorage::default();
    let final_head = match parse_response_head_into(&head, f.req.is_method("HEAD"), &mut storage) {
        Ok(Some((h, _))) if !h.is_informational() => h,
        _ => return Attempt::Failed(invalid_response(sink)),
    };
    let mut up = ConnReader::new(H2ResponseBody::new(recv));
    let mut hs = HeaderList::default();
    let relayed = relay_final(
        f,
        &final_head,
        &mut up,
        upload.as_mut(),
        true,
        &mut state,
        &mut hs,
        sink,
    )
    .await;
    match relayed {
        Ok(()) => Attempt::Done,
        Err(attempt) => attempt,
    }
}

/// The response once the stream is reset: the head h2 buffered, or the stream's error. It is
/// ready at once; were it not, no head could come any more, and the answer is `CANCEL`.
async fn settled(
    mut response: Pin<&mut ResponseFuture>,
) -> Result<Response<RecvStream>, h2::Error> {
    let now = poll_fn(|cx| Poll::Ready(response.as_mut().poll(cx))).await;
    match now {
        Poll::Ready(r) => r,
        Poll::Pending => Err(h2::Error::from(Reason::CANCEL)),
    }
}

/// What an h2 error before the response head means in the spec §7 vocabulary: the upstream
/// breaking the protocol (including a server that does not speak HTTP/2 at all) is
/// `invalid_response`; a refused or reset stream, GOAWAY, or a lost socket is `reset`.
fn classify(e: &h2::Error) -> UpstreamErrorKind {
    // The upstream's own RST_STREAM or GOAWAY, or the socket: `reset`. What is left are
    // errors h2 detected in what the upstream sent.
    if e.is_io() || e.is_remote() {
        return UpstreamErrorKind::Reset;
    }
    match e.reason() {
        Some(Reason::PROTOCOL_ERROR | Reason::FRAME_SIZE_ERROR | Reason::COMPRESSION_ERROR) => {
            UpstreamErrorKind::InvalidResponse
        }
        _ => UpstreamErrorKind::Reset,
    }
}

/// `HTTP/1.1 <status> <canonical reason>` and the fields, as an HTTP/1.1 head.
fn head_as_http1(parts: &http::response::Parts, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Streams the request body into the stream's DATA frames, waiting for the upstream's
/// window; trailers of a chunked body go as a trailing HEADERS frame. An upload that ends
/// early resets the stream (`CANCEL`; a no-op on a stream the upstream or h2 reset already):
/// the upstream must not wait for the rest of a request that is not coming, and the response
/// future must settle now rather than at `response_header_timeout`.
async fn upload_body<B: BodySource>(body: &mut B, mut out: SendStream<Bytes>, max: u64) -> Upload {
    let mut data = Vec::with_capacity(UPLOAD_PIECE);
    loop {
        data.clear();
        let n = match body.read_body(&mut data, UPLOAD_PIECE).await {
            Ok(n) => n,
            Err(e) => {
                out.send_reset(Reason::CANCEL);
                return Upload::ClientFailed(e);
            }
        };
        if n == 0 {
            break;
        }
        if body.received() > max {
            out.send_reset(Reason::CANCEL);
            return Upload::TooLarge;
        }
        let mut chunk = Bytes::from(std::mem::replace(
            &mut data,
            Vec::with_capacity(UPLOAD_PIECE),
        ));
        while !chunk.is_empty() {
            out.reserve_capacity(chunk.len());
            let granted = match poll_fn(|cx| out.poll_capacity(cx)).await {
                Some(Ok(n)) => n,
                _ => return upstream_failed(&mut out),
            };
            if granted == 0 {
                continue;
            }
            let piece = chunk.split_to(granted.min(chunk.len()));
            if out.send_data(piece, false).is_err() {
                return upstream_failed(&mut out);
            }
        }
    }
    let trailers = request::trailers(body.trailers());
    let ended = if trailers.is_empty() {
        out.send_data(Bytes::new(), true)
    } else {
        out.send_trailers(trailers)
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "HTTP/2 upstream refused the end of the request");
        return upstream_failed(&mut out);
    }
    Upload::Sent
}

/// The stream could not take the rest of the request: reset it.
fn upstream_failed(out: &mut SendStream<Bytes>) -> Upload {
    out.send_reset(Reason::CANCEL);
    Upload::UpstreamFailed
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
