//! Relaying an upstream response body to the client, as it arrives (spec §4 "Streaming").
//!
//! Content-Length bodies are copied byte-exact, chunked bodies are decoded and re-chunked by
//! the sink (trailers forwarded), close-delimited bodies run until the upstream closes. Every
//! piece is handed on as soon as it is read; the response head is flushed before the first
//! wait. The response-limit and buffering policy of spec §6 plugs in here. Worker thread.

pub mod headers;

use std::io;

use monoio::io::AsyncReadRent;

use crate::downstream::ResponseSink;
use crate::http::chunked::ChunkedDecoder;
use crate::http::conn::{ConnReader, ReadOutcome};
use crate::http::response_head::ResponseFraming;

/// Largest trailer section accepted from an upstream.
const MAX_UPSTREAM_TRAILERS: usize = 64 * 1024;

/// Why a body relay stopped early.
#[derive(Debug)]
pub enum RelayError {
    /// The upstream closed, reset, or sent bad framing mid-body: abort the client response.
    Upstream,
    /// Writing to the client failed: the client is gone.
    Client(io::Error),
}

/// Relays the body that follows a response head with `framing`.
pub async fn relay_body<R: AsyncReadRent, S: ResponseSink>(
    up: &mut ConnReader<R>,
    framing: ResponseFraming,
    sink: &mut S,
) -> Result<(), RelayError> {
    match framing {
        ResponseFraming::None => {}
        ResponseFraming::Length(n) => relay_length(up, n, sink).await?,
        ResponseFraming::Chunked => {
            let trailers = relay_chunked(up, sink).await?;
            return sink.finish(&trailers).await.map_err(RelayError::Client);
        }
        ResponseFraming::Close => relay_until_close(up, sink).await?,
    }
    sink.finish(b"").await.map_err(RelayError::Client)
}

/// Waits for more upstream bytes, flushing what the client is owed first.
async fn fill<R: AsyncReadRent, S: ResponseSink>(
    up: &mut ConnReader<R>,
    sink: &mut S,
) -> Result<bool, RelayError> {
    sink.flush().await.map_err(RelayError::Client)?;
    match up.fill(None).await {
        ReadOutcome::Data => Ok(true),
        ReadOutcome::Eof => Ok(false),
        ReadOutcome::TimedOut | ReadOutcome::Failed(_) => Err(RelayError::Upstream),
    }
}

async fn relay_length<R: AsyncReadRent, S: ResponseSink>(
    up: &mut ConnReader<R>,
    mut remaining: u64,
    sink: &mut S,
) -> Result<(), RelayError> {
    while remaining > 0 {
        if !up.has_buffered() && !fill(up, sink).await? {
            return Err(RelayError::Upstream);
        }
        let avail = up.buffered();
        let take = remaining.min(avail.len() as u64) as usize;
        sink.send_body(&avail[..take])
            .await
            .map_err(RelayError::Client)?;
        up.consume(take);
        remaining -= take as u64;
    }
    Ok(())
}

async fn relay_chunked<R: AsyncReadRent, S: ResponseSink>(
    up: &mut ConnReader<R>,
    sink: &mut S,
) -> Result<Vec<u8>, RelayError> {
    let mut dec = ChunkedDecoder::new(MAX_UPSTREAM_TRAILERS);
    while !dec.is_done() {
        if !up.has_buffered() && !fill(up, sink).await? {
            return Err(RelayError::Upstream);
        }
        let avail = up.buffered();
        let step = dec
            .decode(avail, usize::MAX)
            .map_err(|_| RelayError::Upstream)?;
        if let Some(r) = step.data {
            sink.send_body(&avail[r])
                .await
                .map_err(RelayError::Client)?;
        }
        up.consume(step.consumed);
    }
    Ok(dec.trailers().to_vec())
}

async fn relay_until_close<R: AsyncReadRent, S: ResponseSink>(
    up: &mut ConnReader<R>,
    sink: &mut S,
) -> Result<(), RelayError> {
    loop {
        if up.has_buffered() {
            let n = up.buffered().len();
            sink.send_body(up.buffered())
                .await
                .map_err(RelayError::Client)?;
            up.consume(n);
        }
        if !fill(up, sink).await? {
            return Ok(());
        }
    }
}
