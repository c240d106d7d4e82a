//! The last phase of a request (spec §10, §11): count it and write its access line.
//!
//! Runs on the worker that served the request, after the response ended (or failed). The
//! status recorded is the one the client was sent, except that a client that left before its
//! response was complete counts as 499; the duration runs from the parsed head to now (the
//! last response byte written). Only this worker's own counters are written.

use std::net::SocketAddr;
use std::time::Duration;

use crate::downstream::SinkReport;
use crate::error::ProxyError;
use crate::http::request::{request_line, RequestHead, Version};
use crate::observe::access::{self, AccessRecord};
use crate::observe::log::throttle::Throttle;
use crate::observe::metrics::RejectReason;
use crate::pipeline::RequestCtx;
use crate::worker::state::{Generation, WorkerState};

thread_local! {
    static REQUEST_TOO_LARGE: Throttle = const { Throttle::new(Duration::from_secs(1)) };
}

/// The WARN for a request body over `max_request_body_size` (`declared`: its Content-Length,
/// when the head said it): a client can send such requests at will, so at most one line per
/// second per worker, with the number held back since (the metric counts every one).
pub fn warn_request_too_large(path: &[u8], limit: u64, declared: Option<u64>) {
    let Ok(Some(suppressed)) = REQUEST_TOO_LARGE.try_with(Throttle::allow) else {
        return;
    };
    let path = String::from_utf8_lossy(path);
    match declared {
        Some(declared) => {
            tracing::warn!(path = %path, limit, declared, suppressed, "request body limit exceeded")
        }
        None => tracing::warn!(path = %path, limit, suppressed, "request body limit exceeded"),
    }
}

/// Status recorded for a client that left before its response was complete (nginx's 499).
pub const CLIENT_CLOSED: u16 = 499;

/// The status to record for an exchange that ended with `report`.
pub fn recorded_status(report: &SinkReport) -> u16 {
    match report.status {
        Some(_) if report.client_gone => CLIENT_CLOSED,
        Some(s) => s,
        None => CLIENT_CLOSED,
    }
}

/// Counts the request and logs its access line. `location`: the matched location's index.
pub fn finish(
    worker: &WorkerState,
    generation: &Generation,
    head: &RequestHead,
    ctx: &RequestCtx,
    report: &SinkReport,
    location: Option<usize>,
) {
    let status = recorded_status(report);
    let duration = ctx.started.elapsed();
    let loc = location.and_then(|i| generation.snapshot.config.locations.get(i));
    // The request series cost two map lookups: skipped while nobody can scrape them.
    if generation.snapshot.config.metrics.enabled {
        worker.metrics.record_request(
            head.method(),
            loc.map(|l| l.pattern.as_str()),
            status,
            duration,
        );
    }
    if !generation.snapshot.config.logging.enabled {
        return;
    }
    access::log_access(&AccessRecord {
        client_ip: ctx.peer.ip().to_canonical(),
        method: head.method(),
        url: head.target(),
        protocol: protocol(head.version),
        status_code: status,
        referer: head.header("referer"),
        user_agent: head.header("user-agent"),
        duration,
        request_id: &ctx.request_id,
        upstream: loc.map(|l| l.target.raw.as_str()),
        bytes_sent: report.bytes_sent,
        aborted: report.aborted || report.client_gone,
    });
}

/// The `dito_requests_rejected_total` reason of an error answered while a head was read.
fn head_rejection(err: &ProxyError) -> Option<RejectReason> {
    Some(match err {
        ProxyError::BadRequest(_) => RejectReason::BadRequest,
        ProxyError::RequestTimeout => RejectReason::HeaderTimeout,
        ProxyError::UriTooLong => RejectReason::UriTooLong,
        ProxyError::HeadersTooLarge => RejectReason::HeadersTooLarge,
        _ => return None,
    })
}

/// Counts a refused head that has no request line to log (an HTTP/2 stream's head).
pub fn count_rejected(worker: &WorkerState, err: &ProxyError) {
    if let Some(reason) = head_rejection(err) {
        worker.metrics.rejected(reason);
    }
}

/// Observes a request refused while its head was read (400, 408, 414, 431): always counted as
/// a rejection; counted and logged as a request too when its request line was parsed.
/// `head_bytes`: the unconsumed bytes the head was being read from.
pub fn finish_rejected(
    worker: &WorkerState,
    err: &ProxyError,
    head_bytes: &[u8],
    peer: SocketAddr,
    request_id: &str,
    bytes_sent: u64,
) {
    if let Some(reason) = head_rejection(err) {
        worker.metrics.rejected(reason);
    }
    let Some((method, target, version)) = request_line(head_bytes) else {
        return;
    };
    let generation = worker.generation();
    let status = err.status();
    if generation.snapshot.config.metrics.enabled {
        worker
            .metrics
            .record_request(method, None, status, std::time::Duration::ZERO);
    }
    if !generation.snapshot.config.logging.enabled {
        return;
    }
    access::log_access(&AccessRecord {
        client_ip: peer.ip().to_canonical(),
        method,
        url: target,
        protocol: protocol(version),
        status_code: status,
        referer: None,
        user_agent: None,
        duration: std::time::Duration::ZERO,
        request_id,
        upstream: None,
        bytes_sent,
        aborted: false,
    });
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
        Version::Http2 => "HTTP/2.0",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: Option<u16>, client_gone: bool, aborted: bool) -> SinkReport {
        SinkReport {
            status,
            client_gone,
            aborted,
            bytes_sent: 0,
        }
    }

    #[test]
    fn clients_that_leave_count_as_499() {
        assert_eq!(recorded_status(&report(Some(200), false, false)), 200);
        assert_eq!(recorded_status(&report(Some(200), false, true)), 200);
        assert_eq!(recorded_status(&report(Some(200), true, false)), 499);
        assert_eq!(recorded_status(&report(None, true, false)), 499);
        assert_eq!(recorded_status(&report(None, false, false)), 499);
    }
}
