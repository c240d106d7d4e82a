//! One HTTP/2 stream as a pipeline exchange: [`H2Body`] (`super::body`) reads DATA frames and
//! releases flow-control capacity as the pipeline consumes the bytes; [`H2Sink`] sends the response
//! with `SendResponse`/`SendStream`, waiting for send capacity so a slow client holds back
//! the relay instead of growing a buffer (at most `send_timeout` per wait). An abort resets
//! only this stream (RST_STREAM INTERNAL_ERROR); the connection and its other streams carry
//! on.
//!
//! A zero-length request whose HEADERS did not end the stream is held here until END_STREAM
//! (RFC 9113 §8.1.1; the body module holds the rest of a declared length).

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::body::H2Body;
use super::head::{self, is_connection_specific, H2HeadError};
use crate::downstream::{BodyLength, Downstream, OutHead, ResponseSink, SinkReport};
use crate::error::ProxyError;
use crate::http::body::BodyError;
use crate::http::limits::SessionLimits;
use crate::http::request::{BodyFraming, HeadError};
use crate::http::response::Response;
use crate::observe;
use crate::pipeline::{self, RequestCtx};
use crate::worker::state::WorkerState;

/// Serves one accepted stream through the pipeline; `tls`: the connection came through the
/// TLS listener (ALPN `h2`).
pub async fn serve_stream(
    req: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    peer: SocketAddr,
    tls: bool,
    worker: Rc<WorkerState>,
) {
    let limits = worker.session_limits();
    let (parts, recv) = req.into_parts();
    let end_of_stream = recv.is_end_stream();
    let head_only = parts.method == http::Method::HEAD;
    let mut exchange = H2Exchange::new(recv, respond, &limits, head_only);
    let head = match head::build(&parts, end_of_stream, &limits.head) {
        Ok(h) => h,
        Err(H2HeadError::Malformed(reason)) => {
            tracing::debug!(client = %peer, reason, "malformed HTTP/2 request");
            observe::request::count_rejected(&worker, &ProxyError::BadRequest(reason));
            exchange.sink.reset(Reason::PROTOCOL_ERROR);
            return;
        }
        Err(H2HeadError::Refused(e)) => {
            let err = match e {
                HeadError::BadRequest(r) => ProxyError::BadRequest(r),
                HeadError::UriTooLong => ProxyError::UriTooLong,
                HeadError::HeadersTooLarge | HeadError::Http2Preface => ProxyError::HeadersTooLarge,
            };
            tracing::debug!(client = %peer, status = err.status(), "HTTP/2 request rejected");
            observe::request::count_rejected(&worker, &err);
            let request_id = worker.ids.generate();
            let _ = exchange.respond(&err.to_response(&request_id), true).await;
            return;
        }
    };
    exchange.body.declared = match head.framing {
        BodyFraming::Length(n) => Some(n),
        // `content-length: 0` on HEADERS without END_STREAM (no length and DATA to come is
        // chunked framing instead).
        BodyFraming::None if !end_of_stream => Some(0),
        _ => None,
    };
    if exchange.body.declared == Some(0) && !end_of_stream {
        match exchange.body.confirm_end().await {
            Ok(()) => {}
            Err(BodyError::IdleTimeout) => {
                let err = ProxyError::RequestTimeout;
                observe::request::count_rejected(&worker, &err);
                let request_id = worker.ids.generate();
                let _ = exchange.respond(&err.to_response(&request_id), true).await;
                return;
            }
            Err(e) => {
                // h2 has reset the stream (DATA beyond the length, or the client's reset).
                tracing::debug!(client = %peer, error = ?e, "HTTP/2 request with a zero content-length not ended");
                exchange.sink.reset(Reason::PROTOCOL_ERROR);
                return;
            }
        }
    }
    let ctx = RequestCtx::new(&head, peer, tls, &worker);
    pipeline::handle(&worker, &head, &ctx, &mut exchange).await;
    exchange.sink.end_unfinished();
}

/// The response side of one stream.
pub struct H2Sink {
    respond: SendResponse<Bytes>,
    send: Option<SendStream<Bytes>>,
    /// How long the stream may wait for send capacity (the client's flow-control window, or
    /// room in the connection's send buffer) before it is reset (`send_timeout`).
    send_timeout: Option<Duration>,
    head_only: bool,
    status: u16,
    committed: bool,
    /// END_STREAM has been sent.
    ended: bool,
    aborted: bool,
    client_gone: bool,
    bytes_sent: u64,
}

fn gone(e: h2::Error) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, e)
}

/// An `http` response head from Dito's fields, without connection-specific ones.
fn response_head<'a>(
    status: u16,
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    content_length: Option<u64>,
) -> io::Result<(http::Response<()>, u64)> {
    let mut resp = http::Response::new(());
    *resp.status_mut() = http::StatusCode::from_u16(status).map_err(io::Error::other)?;
    let headers = resp.headers_mut();
    let mut size = 9u64;
    for (n, v) in fields {
        if is_connection_specific(n) || n.eq_ignore_ascii_case(b"te") {
            continue;
        }
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) else {
            continue;
        };
        size += (n.len() + v.len() + 4) as u64;
        headers.append(name, value);
    }
    if let Some(len) = content_length {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok((resp, size))
}

impl H2Sink {
    fn reset(&mut self, reason: Reason) {
        match self.send.as_mut() {
            Some(s) => s.send_reset(reason),
            None => self.respond.send_reset(reason),
        }
    }

    /// After the pipeline: a response that was started but never ended is reset so the
    /// client cannot mistake it for complete.
    fn end_unfinished(&mut self) {
        if self.committed && !self.ended && !self.aborted {
            self.reset(Reason::INTERNAL_ERROR);
        }
    }

    async fn send_data(&mut self, mut data: Bytes) -> io::Result<()> {
        let Some(s) = self.send.as_mut() else {
            return Ok(());
        };
        while !data.is_empty() {
            s.reserve_capacity(data.len());
            let mut cap = s.capacity();
            while cap == 0 {
                // The timer is armed only when the stream has to wait.
                let wait = poll_fn(|cx| s.poll_capacity(cx));
                let got = match self.send_timeout {
                    None => wait.await,
                    Some(limit) => match monoio::time::timeout(limit, wait).await {
                        Ok(got) => got,
                        Err(_) => {
                            // The client stopped reading or opening its window: the stream
                            // is reset (its response cannot complete) and the pipeline
                            // drops the upstream request behind it.
                            self.client_gone = true;
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "send_timeout: no send capacity",
                            ));
                        }
                    },
                };
                match got {
                    Some(Ok(n)) => cap = n,
                    Some(Err(e)) => {
                        self.client_gone = true;
                        return Err(gone(e));
                    }
                    None => {
                        self.client_gone = true;
                        return Err(io::ErrorKind::BrokenPipe.into());
                    }
                }
            }
            let chunk = data.split_to(cap.min(data.len()));
            let n = chunk.len() as u64;
            if let Err(e) = s.send_data(chunk, false) {
                self.client_gone = true;
                return Err(gone(e));
            }
            self.bytes_sent += n;
        }
        Ok(())
    }

    fn start(&mut self, resp: http::Response<()>, size: u64, end: bool) -> io::Result<()> {
        self.status = resp.status().as_u16();
        self.committed = true;
        self.bytes_sent += size;
        match self.respond.send_response(resp, end) {
            Ok(s) => {
                self.send = Some(s);
                self.ended = end;
                Ok(())
            }
            Err(e) => {
                self.client_gone = true;
                Err(gone(e))
            }
        }
    }
}

impl ResponseSink for H2Sink {
    async fn send_interim(&mut self, head: &OutHead<'_>) -> io::Result<bool> {
        if self.committed || !(100..200).contains(&head.status) || head.status == 101 {
            return Ok(false);
        }
        let (resp, size) = response_head(head.status, head.headers.iter(), None)?;
        match self.respond.send_informational(resp) {
            Ok(()) => {
                self.bytes_sent += size;
                Ok(true)
            }
            Err(e) => {
                self.client_gone = true;
                Err(gone(e))
            }
        }
    }

    async fn send_head(
        &mut self,
        head: &OutHead<'_>,
        length: BodyLength,
        _close: bool,
    ) -> io::Result<()> {
        let declared = match length {
            BodyLength::Exact(n) if !head.length_in_headers => Some(n),
            _ => None,
        };
        let (resp, size) = response_head(head.status, head.headers.iter(), declared)?;
        let end = self.head_only || matches!(length, BodyLength::None | BodyLength::Exact(0));
        self.start(resp, size, end)
    }

    async fn send_body(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() || self.head_only || self.ended {
            return Ok(());
        }
        self.send_data(Bytes::copy_from_slice(data)).await
    }

    fn raw_body_buffer(&mut self) -> Option<&mut Vec<u8>> {
        None
    }

    async fn send_switching(&mut self, _head: &OutHead<'_>) -> io::Result<()> {
        // No upgrades over HTTP/2 (spec §13: RFC 8441 is not offered).
        Err(io::ErrorKind::Unsupported.into())
    }

    async fn flush(&mut self) -> io::Result<()> {
        // The connection task writes frames as soon as they are queued.
        Ok(())
    }

    async fn finish(&mut self, trailers: &[u8]) -> io::Result<()> {
        if self.ended {
            return Ok(());
        }
        let Some(s) = self.send.as_mut() else {
            return Ok(());
        };
        self.ended = true;
        let fields = parse_trailers(trailers);
        let r = if fields.is_empty() {
            s.send_data(Bytes::new(), true)
        } else {
            s.send_trailers(fields)
        };
        r.map_err(|e| {
            self.client_gone = true;
            gone(e)
        })
    }

    fn abort(&mut self) {
        self.reset(Reason::INTERNAL_ERROR);
        self.aborted = true;
    }

    fn retract(&mut self) -> bool {
        // HEADERS are queued at once: a started response cannot be taken back.
        !self.committed
    }

    fn committed(&self) -> bool {
        self.committed
    }
}

/// `Name: value\r\n` lines as a trailer field map (invalid lines are skipped).
fn parse_trailers(raw: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (n, v) = (&line[..colon], line[colon + 1..].trim_ascii());
        if is_connection_specific(n) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            map.append(name, value);
        }
    }
    map
}

/// One request/response exchange on an HTTP/2 stream.
pub struct H2Exchange {
    body: H2Body,
    sink: H2Sink,
}

impl H2Exchange {
    fn new(
        recv: RecvStream,
        respond: SendResponse<Bytes>,
        limits: &SessionLimits,
        head_only: bool,
    ) -> Self {
        H2Exchange {
            body: H2Body::new(recv, limits.body_idle_timeout),
            sink: H2Sink {
                respond,
                send: None,
                send_timeout: limits.send_timeout,
                head_only,
                status: 0,
                committed: false,
                ended: false,
                aborted: false,
                client_gone: false,
                bytes_sent: 0,
            },
        }
    }
}

impl Downstream for H2Exchange {
    type Body = H2Body;
    type Sink = H2Sink;

    fn parts(&mut self) -> (&mut Self::Body, &mut Self::Sink) {
        (&mut self.body, &mut self.sink)
    }

    async fn respond(&mut self, resp: &Response, _close: bool) -> io::Result<()> {
        let fields = resp
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .filter(|(n, _)| !n.eq_ignore_ascii_case(b"content-length"));
        let (head, size) = response_head(resp.status, fields, Some(resp.body.len() as u64))?;
        let end = resp.body.is_empty() || self.sink.head_only;
        self.sink.start(head, size, end)?;
        if !end {
            let body = Bytes::copy_from_slice(&resp.body);
            self.sink.send_data(body).await?;
            self.sink.finish(&[]).await?;
        }
        Ok(())
    }

    fn report(&self) -> SinkReport {
        SinkReport {
            status: (self.sink.status != 0).then_some(self.sink.status),
            client_gone: self.sink.client_gone,
            aborted: self.sink.aborted,
            bytes_sent: self.sink.bytes_sent,
        }
    }
}
