//! The final upstream response on its way to the client (spec §4, §6, §8), shared by the
//! HTTP/1.1 and HTTP/2 exchanges: a declared length over the limit is a clean 413; otherwise
//! the head is rewritten, passed through the location's plugin response hooks, sent, and the
//! body relayed under the limit and buffering policy while any request upload goes on beside
//! it. Worker thread only.

use std::future::Future;
use std::pin::{pin, Pin};

use super::forward::{Attempt, Forward, ForwardError};
use super::upload::{body_finished, Upload};
use crate::downstream::{OutHead, ResponseSink};
use crate::error::ProxyError;
use crate::http::conn::{ConnReader, ReadSource};
use crate::http::headers::HeaderList;
use crate::http::response_head::{ResponseFraming, ResponseHead};
use crate::http::status::reason_phrase;
use crate::observe::metrics::RejectReason;
use crate::plugin::chain::{Failure, ResponseHooks};
use crate::plugin::exchange::Fields;
use crate::relay::{self, headers, RelayError, RelayPlan};

/// Relays the final response: a declared length over the limit is a 413 before any byte;
/// otherwise the head goes out (rewritten per spec §4 into `hs`, the connection's reusable
/// list) and the body is relayed from `up` while any upload still in flight goes on beside it.
/// `Ok` when the response went out whole and the request body was not cut short. Shared by
/// the HTTP/1.1 and HTTP/2 exchanges.
#[allow(clippy::too_many_arguments)]
pub(super) async fn relay_final<R, U, S>(
    f: &Forward<'_>,
    final_head: &ResponseHead,
    up: &mut ConnReader<R>,
    mut upload: Pin<&mut U>,
    go: bool,
    state: &mut Upload,
    hs: &mut HeaderList,
    sink: &mut S,
) -> Result<(), Attempt>
where
    R: ReadSource,
    U: Future<Output = Upload>,
    S: ResponseSink,
{
    // The final head: a declared length over the limit is a 413 before any byte.
    let limit = f.route.response_limit;
    if let ResponseFraming::Length(n) = final_head.framing {
        if n > limit {
            note_response_limit(f, limit, n);
            return Err(Attempt::Failed(ForwardError::Respond(response_too_large(
                f, limit,
            ))));
        }
    }
    let tls = f.head.proto == "https";
    headers::final_headers_into(final_head, f.request_id, f.started.elapsed(), tls, hs);
    let mut status = final_head.status;
    if let Some(hooks) = f.hooks {
        if let Err(failure) = run_response_hooks(hooks, &mut status, hs) {
            if failure.panicked {
                f.worker.metrics.plugin_panic(&failure.plugin);
            }
            return Err(Attempt::Failed(ForwardError::Respond(
                ProxyError::PluginFailed,
            )));
        }
    }
    // A status a plugin changed gets its standard reason phrase.
    let reason = if status == final_head.status {
        final_head.reason()
    } else {
        reason_phrase(status).as_bytes()
    };
    if f.verbose {
        crate::observe::access::log_headers("response", f.request_id, hs.iter());
    }
    let plan = RelayPlan {
        head: OutHead {
            status,
            reason,
            headers: hs,
            length_in_headers: matches!(final_head.framing, ResponseFraming::Length(_)),
        },
        framing: final_head.framing,
        // A request body not complete now leaves the client stream in an unknown state.
        close: !body_finished(state),
        limit,
        buffering: f.route.buffering && !is_event_stream(final_head),
        held: &f.worker.held,
        read_timeout: Some(f.route.transport.read_timeout).filter(|t| !t.is_zero()),
    };

    // Relay the body while any upload still in flight goes on beside it.
    let relayed = {
        let mut relay = pin!(relay::relay(up, &plan, sink));
        loop {
            monoio::select! {
                r = &mut relay => break r,
                r = &mut upload, if go && matches!(*state, Upload::Pending) => {
                    *state = r;
                    if matches!(*state, Upload::TooLarge) {
                        note_request_too_large(f);
                    }
                }
            }
        }
    };
    match relayed {
        Ok(()) => {}
        Err(RelayError::Upstream(kind)) => {
            tracing::debug!(upstream = %f.route.key.host, kind = kind.as_str(), request_id = f.request_id, "upstream failed mid-body");
            if sink.retract() {
                // No byte of the response reached the client: it gets the error instead (502
                // `invalid_response` or `reset`, 504 `read_timeout`; counted when answered).
                return Err(Attempt::Failed(ForwardError::Respond(
                    ProxyError::Upstream(kind),
                )));
            }
            // Too late for that: the client gets a cut response (spec §4), and the access
            // line the upstream's status with `aborted=true`, never the client's 499.
            f.worker.metrics.upstream_error(kind);
            sink.abort();
            return Err(Attempt::Done);
        }
        Err(RelayError::Client(_)) => return Err(Attempt::Failed(ForwardError::Done)),
        Err(RelayError::TooLarge { seen }) => {
            note_response_limit(f, limit, seen);
            return Err(Attempt::Failed(ForwardError::Respond(response_too_large(
                f, limit,
            ))));
        }
        Err(RelayError::LimitCrossed { seen }) => {
            note_response_limit(f, limit, seen);
            sink.abort();
            return Err(Attempt::Done);
        }
    }
    if matches!(*state, Upload::TooLarge) {
        // The response finished, but the request was cut short: end the client stream.
        sink.abort();
        return Err(Attempt::Done);
    }
    Ok(())
}

/// The response hooks on a head about to be sent: `hs` is rebuilt from what they left.
#[cold]
#[inline(never)]
pub(super) fn run_response_hooks(
    hooks: &dyn ResponseHooks,
    status: &mut u16,
    hs: &mut HeaderList,
) -> Result<(), Failure> {
    let mut fields: Fields = hs.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
    hooks.response(status, &mut fields)?;
    hs.clear();
    for (n, v) in &fields {
        hs.push(n, v);
    }
    Ok(())
}

pub(super) fn response_too_large(f: &Forward<'_>, limit: u64) -> ProxyError {
    ProxyError::ResponseTooLarge {
        limit,
        path: f.req.path().to_vec(),
    }
}

fn note_response_limit(f: &Forward<'_>, limit: u64, seen: u64) {
    f.worker.metrics.response_limit_exceeded();
    tracing::warn!(
        path = %String::from_utf8_lossy(f.req.path()),
        limit,
        bytes_seen = seen,
        "response body limit exceeded"
    );
}

pub(super) fn note_request_too_large(f: &Forward<'_>) {
    f.worker.metrics.rejected(RejectReason::RequestTooLarge);
    crate::observe::request::warn_request_too_large(f.req.path(), f.max_request_body, None);
}

/// `text/event-stream` is never held (spec §6).
fn is_event_stream(head: &ResponseHead) -> bool {
    head.header("content-type").is_some_and(|v| {
        let v = v.trim_ascii();
        v.len() >= 17 && v[..17].eq_ignore_ascii_case(b"text/event-stream")
    })
}
