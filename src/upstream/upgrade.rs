//! A WebSocket upgrade on its way to the upstream (spec §13, issue 11).
//!
//! Each upgrade gets a dedicated connection (never taken from the pool, never given back),
//! dialled under `dial_timeout` and the request deadline; a dial failure is an ordinary 502
//! before any 101. The request head carries Dito's `Connection: upgrade` and
//! `Upgrade: websocket` (`request_head`). Interim answers are relayed; a final non-101 answer
//! is relayed like any response, and the client connection stays HTTP (never a tunnel on a
//! non-101: that is how WebSocket smuggling works). A 101 must switch to `websocket`; its head
//! is rewritten like any response head (spec §4), passes the plugins' response hooks, and is
//! sent — then the connection is handed back as [`Upgraded`] for the tunnel, which the
//! connection runs after the request was observed (`relay::websocket`). Worker thread only.

use std::pin::pin;
use std::time::Duration;

use monoio::time::Instant;

use super::final_response::{relay_final, run_response_hooks};
use super::forward::{
    dial, invalid_response, relay_interim, upstream_failure, Attempt, Forward, ForwardError,
};
use super::request_head::write_request_head;
use super::stream::{UpstreamReader, UpstreamWriter};
use super::tls;
use super::upload::Upload;
use crate::downstream::{BodyLength, Downstream, OutHead, ResponseSink};
use crate::error::{ProxyError, UpstreamErrorKind};
use crate::http::conn::{ConnReader, ReadOutcome};
use crate::http::headers::HeaderList;
use crate::http::response::WriteSink;
use crate::http::response_head::{parse_response_head_into, ResponseHead, ResponseStorage};
use crate::http::status::reason_phrase;
use crate::http::upgrade::any_field_has;
use crate::relay::headers;

/// An upstream connection that switched to WebSocket, ready for the tunnel.
pub struct Upgraded {
    pub reader: UpstreamReader,
    pub writer: UpstreamWriter,
    /// Bytes the upstream sent right after its 101 head: the tunnel forwards them first.
    pub early: Vec<u8>,
    /// The location's `websocket_idle_timeout` (zero: never).
    pub idle: Duration,
    /// The upgrade request's ID, for the tunnel's log line.
    pub request_id: String,
}

/// Sends the upgrade request upstream and passes the answer on. `Ok(Some)` after a 101 went
/// to the client; `Ok(None)` after an ordinary response (or a cut one) went out.
pub async fn forward_upgrade<D: Downstream>(
    f: &Forward<'_>,
    down: &mut D,
) -> Result<Option<Upgraded>, ForwardError> {
    let fail = |k| ForwardError::Respond(ProxyError::Upstream(k));
    let request_deadline = f.request_timeout.map(|t| f.started + t);
    let dialing = dial(f.worker, f.route);
    let (rd, mut wr) = match request_deadline {
        None => dialing.await,
        Some(d) => monoio::time::timeout_at(d, dialing)
            .await
            .unwrap_or(Err(UpstreamErrorKind::RequestTimeout)),
    }
    .map_err(fail)?;
    let cert_requested = rd.tls_cert_requested();
    let mut up = ConnReader::new(rd);

    let mut head = Vec::with_capacity(1024);
    write_request_head(&mut head, f.req, f.head);
    let (res, _) = wr.write_all_owned(head).await;
    if res.is_err() {
        return Err(fail(UpstreamErrorKind::Reset));
    }
    // The response head is due within `response_header_timeout` of the request, and within
    // the request deadline.
    let header_deadline = Instant::now() + f.route.transport.response_header_timeout;
    let (deadline, late) = match request_deadline {
        Some(d) if d < header_deadline => (d, UpstreamErrorKind::RequestTimeout),
        _ => (header_deadline, UpstreamErrorKind::ResponseHeaderTimeout),
    };

    let (_, sink) = down.parts();
    let mut storage = ResponseStorage::default();
    let answer = loop {
        match parse_response_head_into(up.buffered(), false, &mut storage) {
            Err(_) => return Err(invalid_response(sink)),
            Ok(Some((head, n))) => {
                up.consume(n);
                if head.status == 101 || !head.is_informational() {
                    break head;
                }
                relay_interim(&head, sink).await?;
                storage = head.into_storage();
                continue;
            }
            Ok(None) => {}
        }
        let got_bytes = up.has_buffered();
        match up.fill(Some(deadline)).await {
            ReadOutcome::Data => {}
            ReadOutcome::TimedOut => return Err(upstream_failure(late, sink)),
            ReadOutcome::Failed(e) => {
                let kind = cert_requested
                    .and_then(|requested| tls::classify_io(&e, requested))
                    .unwrap_or(UpstreamErrorKind::Reset);
                return Err(upstream_failure(kind, sink));
            }
            ReadOutcome::Eof if got_bytes => return Err(invalid_response(sink)),
            ReadOutcome::Eof => return Err(upstream_failure(UpstreamErrorKind::Reset, sink)),
        }
    };

    if answer.status != 101 {
        // An ordinary answer (403, 200, …): relayed; the connection is dropped afterwards.
        let mut state = Upload::Sent;
        let no_upload = pin!(std::future::pending::<Upload>());
        let mut hs = HeaderList::default();
        let relayed = relay_final(
            f, &answer, &mut up, no_upload, false, &mut state, &mut hs, sink,
        );
        return match relayed.await {
            Ok(()) | Err(Attempt::Done) => Ok(None),
            Err(Attempt::Failed(e)) => Err(e),
            Err(Attempt::FailedEarly(kind)) => Err(fail(kind)),
        };
    }
    if !any_field_has(answer.headers(), b"upgrade", "websocket") {
        tracing::warn!(upstream = %f.route.key.host, "upstream answered 101 without Upgrade: websocket");
        return Err(invalid_response(sink));
    }
    if !switch(f, &answer, sink).await? {
        return Ok(None);
    }
    let (reader, early) = up.into_parts();
    Ok(Some(Upgraded {
        reader,
        writer: wr,
        // Exactly what arrived, not the head buffer's capacity: an idle tunnel stays small.
        early: early.as_slice().to_vec(),
        idle: f.route.websocket.unwrap_or_default(),
        request_id: f.request_id.to_owned(),
    }))
}

/// The handshake fields of a 101 (RFC 6455 §4.2.2), dropped when a hook refuses the switch.
const SWITCH_FIELDS: [&str; 3] = [
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// Sends the 101 to the client, rewritten (spec §4) and through the response hooks. `false`
/// when a hook turned it into another status, which was sent instead (no body).
async fn switch<S: ResponseSink>(
    f: &Forward<'_>,
    answer: &ResponseHead,
    sink: &mut S,
) -> Result<bool, ForwardError> {
    let tls = f.head.proto == "https";
    let mut hs = HeaderList::default();
    headers::final_headers_into(answer, f.request_id, f.started.elapsed(), tls, &mut hs);
    let mut status = answer.status;
    if let Some(hooks) = f.hooks {
        if let Err(failure) = run_response_hooks(hooks, &mut status, &mut hs) {
            if failure.panicked {
                f.worker.metrics.plugin_panic(&failure.plugin);
            }
            return Err(ForwardError::Respond(ProxyError::PluginFailed));
        }
    }
    let switched = status == 101;
    if !switched {
        // A plugin refused the switch on its way back: its answer goes out instead, without
        // the upstream's handshake fields (they only mean something on a 101).
        for name in SWITCH_FIELDS {
            hs.remove(name);
        }
    }
    if f.verbose {
        crate::observe::access::log_headers("response", f.request_id, hs.iter());
    }
    let out = OutHead {
        status,
        reason: if switched {
            answer.reason()
        } else {
            reason_phrase(status).as_bytes()
        },
        headers: &hs,
        length_in_headers: false,
    };
    let sent = if switched {
        sink.send_switching(&out).await
    } else {
        match sink.send_head(&out, BodyLength::Exact(0), false).await {
            Ok(()) => sink.finish(b"").await,
            Err(e) => Err(e),
        }
    };
    match sent {
        Ok(()) => Ok(switched),
        Err(_) => Err(ForwardError::Done),
    }
}
