//! The seam between a client protocol and the pipeline (design §5 step 4).
//!
//! A protocol (HTTP/1.1 today, HTTP/2 later) implements [`Downstream`] for one exchange: a
//! [`BodySource`] for the request body and a [`ResponseSink`] for the response, borrowable
//! separately so the upload to the upstream and the response relay can run at the same time.
//! Everything that depends on the client's protocol and version (framing, `Connection`, which
//! 1xx may be sent, how an abort looks) lives behind these traits.

use std::future::Future;
use std::io;

use crate::http::body::BodyError;
use crate::http::headers::HeaderList;
use crate::http::response::Response;

/// The request body as decoded bytes.
pub trait BodySource {
    /// Appends up to `max` body bytes to `out`; `Ok(0)` means the body is complete.
    fn read_body(
        &mut self,
        out: &mut Vec<u8>,
        max: usize,
    ) -> impl Future<Output = Result<usize, BodyError>>;

    /// Body bytes handed out so far.
    fn received(&self) -> u64;

    /// Every body byte (and chunked trailer) has been read.
    fn is_complete(&self) -> bool;

    /// Raw trailer fields of a chunked body, once complete.
    fn trailers(&self) -> &[u8];
}

/// How long the body of a streamed response is, as far as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body (HEAD, 204, 304).
    None,
    /// Exactly this many bytes.
    Exact(u64),
    /// Unknown: the protocol chooses chunked, or close-delimited for HTTP/1.0.
    Unknown,
}

/// A response head to stream: status, reason and end-to-end headers (no framing fields).
#[derive(Debug, Clone)]
pub struct OutHead<'a> {
    pub status: u16,
    pub reason: &'a [u8],
    pub headers: &'a HeaderList,
    /// `headers` already carry the body's Content-Length (kept in the upstream's place).
    pub length_in_headers: bool,
}

/// The response side of one exchange.
pub trait ResponseSink {
    /// Forwards an interim (1xx) response when this client may receive it; returns whether it
    /// was sent.
    fn send_interim(&mut self, head: &OutHead<'_>) -> impl Future<Output = io::Result<bool>>;

    /// Starts the final response. `close` asks to end the connection after it.
    fn send_head(
        &mut self,
        head: &OutHead<'_>,
        length: BodyLength,
        close: bool,
    ) -> impl Future<Output = io::Result<()>>;

    /// Sends body bytes as they are (the sink frames them).
    fn send_body(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>>;

    /// The pending output buffer, when body bytes go to the client exactly as they are (no
    /// chunk framing): the relay may read upstream bytes straight into it, then `flush`.
    /// `None` when the sink frames the body itself.
    fn raw_body_buffer(&mut self) -> Option<&mut Vec<u8>>;

    /// Writes out whatever the sink holds (the buffered head, for example).
    fn flush(&mut self) -> impl Future<Output = io::Result<()>>;

    /// Ends the body, with trailer fields (`Name: value\r\n` lines) where they can be carried.
    fn finish(&mut self, trailers: &[u8]) -> impl Future<Output = io::Result<()>>;

    /// Sends a `101 Switching Protocols` head to WebSocket (with Dito's `Connection` and
    /// `Upgrade` fields) and flushes it: after it the connection carries no more HTTP.
    /// Only HTTP/1.1 can switch; other protocols fail with `Unsupported`.
    fn send_switching(&mut self, head: &OutHead<'_>) -> impl Future<Output = io::Result<()>>;

    /// The response cannot be completed: end it so the client can tell (spec §4).
    fn abort(&mut self);

    /// Takes back a final response none of whose bytes has left yet (a head still buffered),
    /// so that an error can be answered in its place. True when no byte of a final response
    /// was sent (`committed` is false afterwards); false when it is too late.
    fn retract(&mut self) -> bool;

    /// Some byte of a final response has been sent.
    fn committed(&self) -> bool;
}

/// What the client was sent, for metrics and the access line (spec §10, §11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Status of the final response started, if any.
    pub status: Option<u16>,
    /// A write to the client failed: it left before its response was complete.
    pub client_gone: bool,
    /// The response was cut short on purpose (upstream failure mid-body, limit crossed).
    pub aborted: bool,
    /// Bytes written to the client for this exchange (interim and final heads included).
    pub bytes_sent: u64,
}

/// One request/response exchange with a client.
pub trait Downstream {
    type Body: BodySource;
    type Sink: ResponseSink;

    /// The body and the sink, borrowed separately.
    fn parts(&mut self) -> (&mut Self::Body, &mut Self::Sink);

    /// Sends a complete response made by Dito. `close` asks to end the connection after it.
    fn respond(&mut self, resp: &Response, close: bool) -> impl Future<Output = io::Result<()>>;

    /// What the client was sent so far.
    fn report(&self) -> SinkReport;
}
