//! The request lifecycle on one screen, independent of the client protocol.
//!
//! A codec (HTTP/1.1 today, HTTP/2 later) parses a request head and hands it here together
//! with a [`Downstream`]: the request body source and the response sink of that protocol.
//! The phases, in order:
//!
//! 1. **Dito's own endpoints** — `/healthz`, `/readyz` (spec §12), `metrics.path` (spec §10) —
//!    answered before routing.
//! 2. **Method checks** — CONNECT → 405, `OPTIONS *` → 404 (spec §3).
//! 3. **Route** — first matching location in config order; none → 404 (spec §3).
//! 4. **Request limit** — a declared body over `max_request_body_size` → 413 (spec §6).
//! 5. **Forward** — upstream request head, upload, response relay under the limits
//!    (`upstream::forward`, `relay`).
//! 6. **Observe** — metrics and the access line (`observe::request`), except for Dito's own
//!    endpoints.
//!
//! Every exit is visible in [`handle`]. Runs on a worker thread; it never touches another
//! worker's state.

use std::net::SocketAddr;

use monoio::time::Instant;

use crate::downstream::Downstream;
use crate::error::ProxyError;
use crate::http::request::{BodyFraming, RequestHead, TargetForm};
use crate::http::response::Response;
use crate::observe;
use crate::observe::metrics::RejectReason;
use crate::request_id::RequestId;
use crate::upstream::forward::{forward, Forward, ForwardError};
use crate::upstream::request_head::HeadInputs;
use crate::worker::state::{Generation, WorkerState};

/// Per-request facts that every phase may read.
#[derive(Debug)]
pub struct RequestCtx {
    pub request_id: RequestId,
    /// When the head was parsed: the start of `X-Response-Time` and the duration metric.
    pub started: Instant,
    pub peer: SocketAddr,
    /// The client connection is TLS: `X-Forwarded-Proto: https` and HSTS (spec §3, §4).
    pub tls: bool,
}

impl RequestCtx {
    pub fn new(head: &RequestHead, peer: SocketAddr, tls: bool, worker: &WorkerState) -> Self {
        RequestCtx {
            request_id: worker.ids.for_request(head.header("x-request-id")),
            started: Instant::now(),
            peer,
            tls,
        }
    }
}

/// What the connection should do after the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// A response was (at least partly) written.
    pub sent: bool,
    /// The connection must close.
    pub close: bool,
}

/// Runs one request through every phase, answers it, and observes it.
pub async fn handle<D: Downstream>(
    worker: &WorkerState,
    head: &RequestHead,
    ctx: &RequestCtx,
    down: &mut D,
) -> Outcome {
    let generation = worker.generation();
    let mut seen = Seen {
        counted: true,
        location: None,
    };
    let outcome = run_phases(worker, &generation, head, ctx, down, &mut seen).await;

    // 6. Observe: metrics and the access line (spec §10, §11).
    if seen.counted {
        observe::request::finish(
            worker,
            &generation,
            head,
            ctx,
            &down.report(),
            seen.location,
        );
    }
    outcome
}

/// What the phases found out that observing needs.
struct Seen {
    /// False for Dito's own endpoints, which metrics and access lines skip (spec §10).
    counted: bool,
    /// The matched location.
    location: Option<usize>,
}

/// Phases 1–5.
async fn run_phases<D: Downstream>(
    worker: &WorkerState,
    generation: &Generation,
    head: &RequestHead,
    ctx: &RequestCtx,
    down: &mut D,
    seen: &mut Seen,
) -> Outcome {
    // 1. Dito's own endpoints, before routing.
    let ready = worker.lifecycle.is_ready();
    if let Some(resp) = generation.health.answer(head, &ctx.request_id, ready) {
        seen.counted = false;
        return respond(down, &resp, false).await;
    }
    if generation.metrics.matches(head) {
        seen.counted = false;
        let resp = observe::scrape::answer(worker, &ctx.request_id).await;
        return respond(down, &resp, false).await;
    }
    if generation.snapshot.config.logging.verbose {
        observe::access::log_headers("request", &ctx.request_id, head.headers());
    }
    // 2. Methods and target forms that never reach a location.
    if head.form == TargetForm::Authority {
        return respond_error(worker, down, &ProxyError::MethodNotAllowed, ctx, generation).await;
    }
    if head.form == TargetForm::Asterisk {
        return respond_error(worker, down, &ProxyError::NotFound, ctx, generation).await;
    }

    // 3. Route: the first location whose pattern matches the raw path.
    let path = head.path();
    let Some(m) = generation.router.lookup(path) else {
        return respond_error(worker, down, &ProxyError::NotFound, ctx, generation).await;
    };
    seen.location = Some(m.index);
    let (Some(route), Some(upstream)) = (
        generation.router.get(m.index),
        generation.routes.get(m.index),
    ) else {
        return respond_error(worker, down, &ProxyError::NotFound, ctx, generation).await;
    };

    // 4. A declared request body over the limit never reaches the upstream (spec §6).
    if let BodyFraming::Length(n) = head.framing {
        if n > generation.limits.max_request_body_size {
            worker.metrics.rejected(RejectReason::RequestTooLarge);
            tracing::warn!(path = %String::from_utf8_lossy(path), limit = generation.limits.max_request_body_size, declared = n, "request body limit exceeded");
            return respond_error(worker, down, &ProxyError::RequestTooLarge, ctx, generation)
                .await;
        }
    }

    // 5. Forward: the upstream request head (spec §3), then the exchange.
    let inputs = HeadInputs {
        route,
        route_match: &m,
        client_ip: ctx.peer.ip(),
        proto: if ctx.tls { "https" } else { "http" },
        request_id: &ctx.request_id,
        rules: &upstream.rules,
    };
    let fwd = Forward {
        worker,
        route: upstream,
        req: head,
        head: &inputs,
        request_id: &ctx.request_id,
        started: ctx.started,
        request_timeout: generation.snapshot.request_timeout,
        max_request_body: generation.limits.max_request_body_size,
        verbose: generation.snapshot.config.logging.verbose,
    };
    match forward(&fwd, down).await {
        Ok(()) => Outcome {
            sent: true,
            close: false,
        },
        Err(ForwardError::Respond(err)) => respond_error(worker, down, &err, ctx, generation).await,
        Err(ForwardError::Done) => Outcome {
            sent: true,
            close: true,
        },
    }
}

async fn respond_error<D: Downstream>(
    worker: &WorkerState,
    down: &mut D,
    err: &ProxyError,
    ctx: &RequestCtx,
    generation: &Generation,
) -> Outcome {
    // Rejections found while reading the body (the head's are counted by the session, a
    // request over the body limit where it is found).
    match err {
        ProxyError::BadRequest(_) => worker.metrics.rejected(RejectReason::BadRequest),
        ProxyError::RequestTimeout => worker.metrics.rejected(RejectReason::BodyTimeout),
        ProxyError::Upstream(kind) => worker.metrics.upstream_error(*kind),
        _ => {}
    }
    let resp = err.to_response(&ctx.request_id);
    if generation.snapshot.config.logging.verbose {
        let headers = resp
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        observe::access::log_headers("response", &ctx.request_id, headers);
    }
    respond(down, &resp, err.closes_connection()).await
}

async fn respond<D: Downstream>(down: &mut D, resp: &Response, close: bool) -> Outcome {
    match down.respond(resp, close).await {
        Ok(()) => Outcome { sent: true, close },
        Err(_) => Outcome {
            sent: true,
            close: true,
        },
    }
}
