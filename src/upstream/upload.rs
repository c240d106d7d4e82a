//! The request body on its way upstream (spec §3, §6): read from the client's body source
//! in pieces, re-framed when chunked (trailers kept), cut short when it crosses
//! `max_request_body_size`. Runs beside the response read in `forward`. Worker thread only.

use super::stream::UpstreamWriter;
use crate::downstream::BodySource;
use crate::http::body::BodyError;
use crate::http::chunked::push_chunk_size;

/// Body bytes read and written per step.
const UPLOAD_PIECE: usize = 64 * 1024;

/// How the upload of the request body ended.
pub(super) enum Upload {
    Pending,
    Sent,
    ClientFailed(BodyError),
    UpstreamFailed,
    /// The body crossed `max_request_body_size`: the upstream request was cut short.
    TooLarge,
}

pub(super) fn body_finished(state: &Upload) -> bool {
    matches!(state, Upload::Sent)
}

/// Streams the request body upstream, re-framing chunked bodies.
pub(super) async fn upload_body<B: BodySource>(
    body: &mut B,
    w: &mut UpstreamWriter,
    chunked: bool,
    max: u64,
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
        if body.received() > max {
            // No terminating chunk: the upstream sees an incomplete request.
            return Upload::TooLarge;
        }
        let frame = if chunked {
            let mut framed = Vec::with_capacity(n + 20);
            push_chunk_size(&mut framed, n);
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
