//! Relaying an upstream response body to the client under the limit and buffering policy of
//! spec §6.
//!
//! Known-length bodies stream as they arrive (their length was checked against the limit
//! before the head went out). Unknown-length bodies (chunked or close-delimited), with
//! buffering on and not `text/event-stream`, are first *held* up to min(limit, 1 MiB) while
//! bytes keep coming: a body that ends inside is sent with an exact Content-Length (chunked when
//! it has trailers); one that crosses the limit inside becomes a clean 413; one that passes
//! 1 MiB, pauses for 50 ms, or finds the worker already holding 64 MiB is sent as held and the
//! rest streams. Crossing the limit while streaming aborts. Each read of the body waits at
//! most `transport.http.read_timeout`. Worker thread.
//!
//! The read timeout costs nothing for a body that arrived with its head (no read, no timer);
//! a read that waits carries one timer-wheel entry (inserted when the read first waits, removed
//! when it ends: no allocation, no syscall) and a clock read to set its deadline.

pub mod decode;
pub mod headers;
pub mod tunnel;
pub mod websocket;

use std::cell::Cell;
use std::io;
use std::pin::pin;
use std::time::Duration;

use monoio::time::Instant;

use crate::downstream::{BodyLength, OutHead, ResponseSink};
use crate::error::UpstreamErrorKind;
use crate::http::conn::{ConnReader, ReadOutcome, ReadSource};
use crate::http::response_head::ResponseFraming;
use decode::{BodyDecoder, FramingError};

/// Most bytes of one unknown-length body held before it streams.
pub const HOLD_WINDOW: u64 = 1024 * 1024;
/// A held body that receives nothing for this long is sent as held.
pub const HOLD_IDLE: Duration = Duration::from_millis(50);
/// Largest single read on the bulk path.
const DIRECT_READ: usize = 64 * 1024;

/// Most bytes one worker holds across all bodies before new ones stream at once.
pub const WORKER_HOLD_BUDGET: usize = 64 * 1024 * 1024;

/// Why a body relay stopped early.
#[derive(Debug)]
pub enum RelayError {
    /// The upstream failed mid-body: it closed or reset (`Reset`), broke its framing
    /// (`InvalidResponse`), or sent nothing for `read_timeout` (`ReadTimeout`). The client's
    /// response is aborted, or answered with this error if none of it was sent yet.
    Upstream(UpstreamErrorKind),
    /// Writing to the client failed: the client is gone.
    Client(io::Error),
    /// The body crossed the limit while held: nothing was sent, answer 413.
    TooLarge { seen: u64 },
    /// The body crossed the limit while streaming: abort the client response.
    LimitCrossed { seen: u64 },
}

/// Bytes one worker currently holds in response bodies.
#[derive(Debug, Default)]
pub struct HeldBytes(Cell<usize>);

impl HeldBytes {
    pub fn get(&self) -> usize {
        self.0.get()
    }
}

/// Counts a held body against the worker's budget until dropped.
struct HeldGuard<'a> {
    held: &'a HeldBytes,
    mine: usize,
}

impl HeldGuard<'_> {
    fn set(&mut self, n: usize) {
        let total = self.held.0.get() - self.mine + n;
        self.held.0.set(total);
        self.mine = n;
    }
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.held.0.set(self.held.0.get() - self.mine);
    }
}

/// What to relay and under which policy.
pub struct RelayPlan<'a> {
    pub head: OutHead<'a>,
    pub framing: ResponseFraming,
    /// End the client connection after this response.
    pub close: bool,
    /// Effective response body limit in bytes.
    pub limit: u64,
    /// Hold unknown-length bodies first (off for SSE and `disable_response_buffering`).
    pub buffering: bool,
    pub held: &'a HeldBytes,
    /// `transport.http.read_timeout`: the longest wait for body bytes (None = no limit).
    pub read_timeout: Option<Duration>,
}

/// The deadline of a read starting now.
fn read_deadline(read_timeout: Option<Duration>) -> Option<Instant> {
    read_timeout.map(|t| Instant::now() + t)
}

/// A chunk the upstream framed wrongly.
fn malformed(_: FramingError) -> RelayError {
    RelayError::Upstream(UpstreamErrorKind::InvalidResponse)
}

/// What a finished read means for the body: more bytes, its end (close-delimited), or the
/// upstream failing it.
fn after_read(outcome: ReadOutcome, dec: &mut BodyDecoder) -> Result<(), RelayError> {
    match outcome {
        ReadOutcome::Data => Ok(()),
        ReadOutcome::Eof => dec.on_eof().map_err(|_| failed_read(&outcome)),
        _ => Err(failed_read(&outcome)),
    }
}

/// A read that ended the body early: silence for `read_timeout`, or a close or reset.
fn failed_read(outcome: &ReadOutcome) -> RelayError {
    RelayError::Upstream(match outcome {
        ReadOutcome::TimedOut => UpstreamErrorKind::ReadTimeout,
        _ => UpstreamErrorKind::Reset,
    })
}

/// Sends the response head and relays the body that follows it.
pub async fn relay<R: ReadSource, S: ResponseSink>(
    up: &mut ConnReader<R>,
    plan: &RelayPlan<'_>,
    sink: &mut S,
) -> Result<(), RelayError> {
    let mut dec = BodyDecoder::new(plan.framing);
    let length = match plan.framing {
        ResponseFraming::None => BodyLength::None,
        ResponseFraming::Length(n) => BodyLength::Exact(n),
        ResponseFraming::Chunked | ResponseFraming::Close => BodyLength::Unknown,
    };
    if !plan.buffering || length != BodyLength::Unknown {
        send_head(sink, plan, length).await?;
        return stream(up, &mut dec, sink, plan, 0).await;
    }
    hold_then_stream(up, &mut dec, plan, sink).await
}

async fn send_head<S: ResponseSink>(
    sink: &mut S,
    plan: &RelayPlan<'_>,
    length: BodyLength,
) -> Result<(), RelayError> {
    sink.send_head(&plan.head, length, plan.close)
        .await
        .map_err(RelayError::Client)
}

/// The holding phase of an unknown-length body, then streaming if it did not end inside.
async fn hold_then_stream<R: ReadSource, S: ResponseSink>(
    up: &mut ConnReader<R>,
    dec: &mut BodyDecoder,
    plan: &RelayPlan<'_>,
    sink: &mut S,
) -> Result<(), RelayError> {
    let window = plan.limit.min(HOLD_WINDOW) as usize;
    let mut held: Vec<u8> = Vec::new();
    let mut guard = HeldGuard {
        held: plan.held,
        mine: 0,
    };
    loop {
        while up.has_buffered() && !dec.is_done() {
            let piece = dec.step(up.buffered()).map_err(malformed)?;
            if let Some(r) = piece.data {
                let data = &up.buffered()[r];
                let room = if (window as u64) < plan.limit {
                    window - held.len()
                } else {
                    usize::MAX
                };
                if data.len() > room {
                    // The body passes the window: what fits is held and sent, the rest streams.
                    held.extend_from_slice(&data[..room]);
                    flush_held(sink, plan, &held).await?;
                    let rest = &data[room..];
                    let seen = (held.len() + rest.len()) as u64;
                    if seen > plan.limit {
                        return Err(RelayError::LimitCrossed { seen });
                    }
                    sink.send_body(rest).await.map_err(RelayError::Client)?;
                    up.consume(piece.consumed);
                    drop(guard);
                    return stream(up, dec, sink, plan, seen).await;
                }
                held.extend_from_slice(data);
                guard.set(held.len());
                if held.len() as u64 > plan.limit {
                    return Err(RelayError::TooLarge {
                        seen: held.len() as u64,
                    });
                }
            }
            up.consume(piece.consumed);
            if piece.consumed == 0 {
                break;
            }
        }
        if dec.is_done() {
            return send_whole(sink, plan, &held, dec.trailers()).await;
        }
        if plan.held.get() > WORKER_HOLD_BUDGET {
            flush_held(sink, plan, &held).await?;
            drop(guard);
            return stream(up, dec, sink, plan, held.len() as u64).await;
        }
        // Wait for more; after HOLD_IDLE of silence, send what is held and keep waiting.
        let (outcome, flushed) = {
            let mut fill = pin!(up.fill(read_deadline(plan.read_timeout)));
            let first = monoio::select! {
                r = &mut fill => Some(r),
                _ = monoio::time::sleep(HOLD_IDLE) => None,
            };
            match first {
                Some(r) => (r, false),
                None => {
                    flush_held(sink, plan, &held).await?;
                    (fill.await, true)
                }
            }
        };
        after_read(outcome, dec)?;
        if flushed {
            drop(guard);
            return stream(up, dec, sink, plan, held.len() as u64).await;
        }
    }
}

/// A held body that ended inside the window: exact length, or chunked to keep trailers.
async fn send_whole<S: ResponseSink>(
    sink: &mut S,
    plan: &RelayPlan<'_>,
    held: &[u8],
    trailers: &[u8],
) -> Result<(), RelayError> {
    let length = if trailers.is_empty() {
        BodyLength::Exact(held.len() as u64)
    } else {
        BodyLength::Unknown
    };
    send_head(sink, plan, length).await?;
    sink.send_body(held).await.map_err(RelayError::Client)?;
    sink.finish(trailers).await.map_err(RelayError::Client)
}

async fn flush_held<S: ResponseSink>(
    sink: &mut S,
    plan: &RelayPlan<'_>,
    held: &[u8],
) -> Result<(), RelayError> {
    send_head(sink, plan, BodyLength::Unknown).await?;
    sink.send_body(held).await.map_err(RelayError::Client)?;
    sink.flush().await.map_err(RelayError::Client)
}

/// Streams the rest of the body as it arrives; `seen` bytes were already sent.
async fn stream<R: ReadSource, S: ResponseSink>(
    up: &mut ConnReader<R>,
    dec: &mut BodyDecoder,
    sink: &mut S,
    plan: &RelayPlan<'_>,
    mut seen: u64,
) -> Result<(), RelayError> {
    let limit = plan.limit;
    loop {
        while up.has_buffered() && !dec.is_done() {
            let piece = dec.step(up.buffered()).map_err(malformed)?;
            if let Some(r) = piece.data {
                seen += r.len() as u64;
                if seen > limit {
                    return Err(RelayError::LimitCrossed { seen });
                }
                sink.send_body(&up.buffered()[r])
                    .await
                    .map_err(RelayError::Client)?;
            }
            up.consume(piece.consumed);
            if piece.consumed == 0 {
                break;
            }
        }
        if dec.is_done() {
            return sink
                .finish(dec.trailers())
                .await
                .map_err(RelayError::Client);
        }
        if let BodyDecoder::Length { remaining } = dec {
            if let Some(out) = sink.raw_body_buffer() {
                // Bulk path: upstream bytes land in the client's output buffer directly, one
                // copy fewer per byte.
                let max = (*remaining).min(DIRECT_READ as u64) as usize;
                let pending = out.len();
                let deadline = read_deadline(plan.read_timeout);
                let (outcome, filled) = up.read_into_vec(std::mem::take(out), max, deadline).await;
                let got = filled.len().saturating_sub(pending);
                if let Some(b) = sink.raw_body_buffer() {
                    *b = filled;
                }
                if !matches!(outcome, ReadOutcome::Data) {
                    // A length-delimited body never ends with the connection.
                    return Err(failed_read(&outcome));
                }
                *remaining -= got as u64;
                seen += got as u64;
                sink.flush().await.map_err(RelayError::Client)?;
                continue;
            }
        }
        sink.flush().await.map_err(RelayError::Client)?;
        let outcome = up.fill(read_deadline(plan.read_timeout)).await;
        after_read(outcome, dec)?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::http::headers::HeaderList;

    /// Records what the relay asked of the client side.
    #[derive(Default)]
    struct Recorder {
        length: Option<BodyLength>,
        body: Vec<u8>,
        trailers: Vec<u8>,
    }

    impl ResponseSink for Recorder {
        async fn send_interim(&mut self, _: &OutHead<'_>) -> io::Result<bool> {
            Ok(false)
        }
        async fn send_head(&mut self, _: &OutHead<'_>, l: BodyLength, _: bool) -> io::Result<()> {
            self.length = Some(l);
            Ok(())
        }
        async fn send_body(&mut self, data: &[u8]) -> io::Result<()> {
            self.body.extend_from_slice(data);
            Ok(())
        }
        fn raw_body_buffer(&mut self) -> Option<&mut Vec<u8>> {
            None
        }
        async fn send_switching(&mut self, _: &OutHead<'_>) -> io::Result<()> {
            Ok(())
        }
        async fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        async fn finish(&mut self, trailers: &[u8]) -> io::Result<()> {
            self.trailers = trailers.to_vec();
            Ok(())
        }
        fn abort(&mut self) {}
        fn retract(&mut self) -> bool {
            self.length.is_none()
        }
        fn committed(&self) -> bool {
            self.length.is_some()
        }
    }

    /// Relays a small chunked body (already complete in the upstream's bytes) with the worker
    /// holding `already_held` bytes; returns the length the client was told.
    fn relay_small_chunked(already_held: usize) -> (BodyLength, Vec<u8>) {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let wire: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";
            let mut up = ConnReader::new(wire);
            let headers = HeaderList::default();
            let held = HeldBytes(Cell::new(already_held));
            let plan = RelayPlan {
                head: OutHead {
                    status: 200,
                    reason: b"OK",
                    headers: &headers,
                    length_in_headers: false,
                },
                framing: ResponseFraming::Chunked,
                close: false,
                limit: 1 << 20,
                buffering: true,
                held: &held,
                read_timeout: None,
            };
            let mut sink = Recorder::default();
            relay(&mut up, &plan, &mut sink).await.unwrap();
            assert_eq!(held.get(), already_held, "the held bytes are given back");
            (sink.length.unwrap(), sink.body)
        })
    }

    #[test]
    fn a_small_body_is_held_and_sent_with_its_length() {
        assert_eq!(
            relay_small_chunked(0),
            (BodyLength::Exact(5), b"hello".to_vec())
        );
    }

    #[test]
    fn a_worker_over_its_hold_budget_streams_at_once() {
        let (length, body) = relay_small_chunked(WORKER_HOLD_BUDGET + 1);
        assert_eq!(length, BodyLength::Unknown);
        assert_eq!(body, b"hello");
    }
}
