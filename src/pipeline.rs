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
//!    3b. **Plugins** — the location's `middlewares`: request hooks in order (a plugin may
//!    change the request or answer it); every answer from here on, the upstream's or Dito's
//!    own, passes their response hooks in reverse (spec §8, `plugin::chain`).
//! 4. **Request limit** — a declared body over `max_request_body_size` → 413 (spec §6).
//! 5. **Forward** — upstream request head, upload, response relay under the limits
//!    (`upstream::forward`, `relay`); a WebSocket upgrade on a location with
//!    `enable_websocket` goes on a dedicated connection (`upstream::upgrade`, spec §13).
//! 6. **Observe** — metrics and the access line (`observe::request`), except for Dito's own
//!    endpoints; an upgrade is observed at its 101.
//! 7. **Tunnel** — after a 101, bytes both ways until the tunnel ends: the outcome hands the
//!    upstream connection to the client connection, which runs `relay::websocket` once its
//!    HTTP state is freed.
//!
//! Every exit is visible in [`handle`]. Runs on a worker thread; it never touches another
//! worker's state.

use std::net::SocketAddr;
use std::rc::Rc;

use monoio::time::Instant;

use crate::downstream::{BodySource, Downstream};
use crate::error::{ProxyError, UpstreamErrorKind};
use crate::http::request::{BodyFraming, RequestHead, TargetForm};
use crate::http::response::Response;
use crate::http::upgrade::is_websocket_upgrade;
use crate::observe;
use crate::observe::metrics::RejectReason;
use crate::plugin::chain::{Failure, PluginRun, RequestOutcome, ResponseHooks};
use crate::plugin::exchange::Fields;
use crate::plugin::instance::PluginInstance;
use crate::request_id::RequestId;
use crate::route::{Route, RouteMatch};
use crate::upstream::forward::{forward, Forward, ForwardError};
use crate::upstream::request_head::HeadInputs;
use crate::upstream::route::WorkerRoute;
use crate::upstream::upgrade::{forward_upgrade, Upgraded};
use crate::worker::contain;
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
        let request_id = worker.ids.for_request(head.header("x-request-id"));
        // A panic from here on is logged with this id (`worker::contain`).
        contain::note_request_id(&request_id);
        RequestCtx {
            request_id,
            started: Instant::now(),
            peer,
            tls,
        }
    }
}

/// What the connection should do after the exchange.
pub struct Outcome {
    /// A response was (at least partly) written.
    pub sent: bool,
    /// The connection must close.
    pub close: bool,
    /// `request_timeout` fired while the request body was still arriving: the answer went
    /// out at once and the connection closes after only a short lingering close (spec §6).
    pub past_deadline: bool,
    /// The upstream switched to WebSocket and the 101 went out: phase 7.
    tunnel: Option<Box<Upgraded>>,
}

impl Outcome {
    const fn new(sent: bool, close: bool) -> Self {
        Outcome {
            sent,
            close,
            past_deadline: false,
            tunnel: None,
        }
    }

    /// Phase 7, for the connection: the upstream connection of a tunnel to run once the
    /// exchange's state is gone (`relay::websocket`). The connection carries no more HTTP.
    pub fn take_tunnel(&mut self) -> Option<Upgraded> {
        self.tunnel.take().map(|t| *t)
    }
}

/// Runs one request through every phase, answers it, and observes it.
pub async fn handle<D: Downstream>(
    worker: &WorkerState,
    head: &RequestHead,
    ctx: &RequestCtx,
    down: &mut D,
) -> Outcome {
    #[cfg(feature = "fault-injection")]
    crate::fault::on_request(head);
    let generation = worker.generation();
    let mut seen = Seen {
        counted: true,
        location: None,
    };
    let outcome = run_phases(worker, &generation, head, ctx, down, &mut seen).await;

    // 6. Observe: metrics and the access line (spec §10, §11); an upgrade at its 101.
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
    // 7. Tunnel: after a 101 the outcome carries the upstream connection; the client
    //    connection runs the tunnel once this exchange's state is freed (`take_tunnel`).
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
        return respond_error(
            worker,
            down,
            &ProxyError::MethodNotAllowed,
            ctx,
            generation,
            None,
        )
        .await;
    }
    if head.form == TargetForm::Asterisk {
        return respond_error(worker, down, &ProxyError::NotFound, ctx, generation, None).await;
    }

    // 3. Route: the first location whose pattern matches the raw path.
    let path = head.path();
    let Some(m) = generation.router.lookup(path) else {
        return respond_error(worker, down, &ProxyError::NotFound, ctx, generation, None).await;
    };
    seen.location = Some(m.index);
    let (Some(route), Some(upstream)) = (
        generation.router.get(m.index),
        generation.routes.get(m.index),
    ) else {
        return respond_error(worker, down, &ProxyError::NotFound, ctx, generation, None).await;
    };

    // 3b. The location's plugins (spec §8), on a path of their own (boxed: the common path's
    // future keeps its size).
    let chain = generation
        .chains
        .get(m.index)
        .map_or(&[][..], Vec::as_slice);
    if !chain.is_empty() {
        let place = Place { route, upstream, m };
        return Box::pin(with_plugins(
            worker, generation, head, ctx, down, place, chain,
        ))
        .await;
    }
    let place = Place { route, upstream, m };
    limit_then_forward(worker, generation, head, ctx, down, &place, None).await
}

/// Where the router sent a request.
struct Place<'g> {
    route: &'g Route,
    upstream: &'g WorkerRoute,
    m: RouteMatch,
}

/// Phase 3b: the request hooks, then phases 4–5 with the response hooks on every answer.
async fn with_plugins<D: Downstream>(
    worker: &WorkerState,
    generation: &Generation,
    head: &RequestHead,
    ctx: &RequestCtx,
    down: &mut D,
    place: Place<'_>,
    chain: &[Rc<PluginInstance>],
) -> Outcome {
    let run = PluginRun::new(chain, head);
    match run.request() {
        RequestOutcome::Continue => {}
        RequestOutcome::Answered {
            mut status,
            mut fields,
            body,
        } => {
            if let Err(failure) = run.response(&mut status, &mut fields) {
                plugin_failed(worker, &failure);
                return respond_error(
                    worker,
                    down,
                    &ProxyError::PluginFailed,
                    ctx,
                    generation,
                    None,
                )
                .await;
            }
            let resp = plugin_answer(status, fields, body, &ctx.request_id);
            return respond(down, &resp, false).await;
        }
        RequestOutcome::Failed(failure) => {
            plugin_failed(worker, &failure);
            let err = ProxyError::PluginFailed;
            return respond_error(worker, down, &err, ctx, generation, Some(&run)).await;
        }
    }
    // The request as the plugins left it: a changed path is rewritten by the same location.
    let edited = match run.edited_head() {
        Ok(edited) => edited,
        Err(e) => {
            tracing::warn!(error = ?e, "a plugin left the request invalid; the request gets 500");
            let err = ProxyError::PluginFailed;
            return respond_error(worker, down, &err, ctx, generation, Some(&run)).await;
        }
    };
    let (head, place) = match &edited {
        Some(h) => (
            h,
            Place {
                m: place.route.rematch(place.m.index, h.path()),
                ..place
            },
        ),
        None => (head, place),
    };
    limit_then_forward(worker, generation, head, ctx, down, &place, Some(&run)).await
}

/// Phases 4–5; `hooks`: the response hooks every answer passes through.
async fn limit_then_forward<D: Downstream>(
    worker: &WorkerState,
    generation: &Generation,
    head: &RequestHead,
    ctx: &RequestCtx,
    down: &mut D,
    place: &Place<'_>,
    hooks: Option<&dyn ResponseHooks>,
) -> Outcome {
    // 4. A declared request body over the limit never reaches the upstream (spec §6).
    if let BodyFraming::Length(n) = head.framing {
        if n > generation.limits.max_request_body_size {
            worker.metrics.rejected(RejectReason::RequestTooLarge);
            let limit = generation.limits.max_request_body_size;
            observe::request::warn_request_too_large(head.path(), limit, Some(n));
            let err = ProxyError::RequestTooLarge;
            return respond_error(worker, down, &err, ctx, generation, hooks).await;
        }
    }

    // 5. Forward: the upstream request head (spec §3), then the exchange; a WebSocket
    //    upgrade on a location that allows it gets a dedicated connection (spec §13).
    let upgrade = place.upstream.websocket.is_some() && is_websocket_upgrade(head);
    let inputs = HeadInputs {
        route: place.route,
        route_match: &place.m,
        client_ip: ctx.peer.ip(),
        proto: if ctx.tls { "https" } else { "http" },
        request_id: &ctx.request_id,
        rules: &place.upstream.rules,
        upgrade,
    };
    let fwd = Forward {
        worker,
        route: place.upstream,
        req: head,
        head: &inputs,
        request_id: &ctx.request_id,
        started: ctx.started,
        request_timeout: generation.snapshot.request_timeout,
        max_request_body: generation.limits.max_request_body_size,
        verbose: generation.snapshot.config.logging.verbose,
        hooks,
    };
    let forwarded = if upgrade {
        match Box::pin(forward_upgrade(&fwd, down)).await {
            Ok(Some(upstream)) => {
                return Outcome {
                    tunnel: Some(Box::new(upstream)),
                    ..Outcome::new(true, true)
                }
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        }
    } else {
        forward(&fwd, down).await
    };
    match forwarded {
        Ok(()) => Outcome::new(true, false),
        Err(ForwardError::Respond(err)) => {
            // A response hook that failed on the upstream's head is not run again on the 500.
            let hooks = hooks.filter(|_| !matches!(err, ProxyError::PluginFailed));
            respond_error(worker, down, &err, ctx, generation, hooks).await
        }
        Err(ForwardError::Done) => Outcome::new(true, true),
    }
}

/// Logs and counts a failed plugin hook (panics in `dito_plugin_panics_total`).
fn plugin_failed(worker: &WorkerState, failure: &Failure) {
    if failure.panicked {
        worker.metrics.plugin_panic(&failure.plugin);
    }
}

/// A plugin's own answer as a response Dito sends, with the request's `X-Request-ID`.
fn plugin_answer(status: u16, fields: Fields, body: Vec<u8>, request_id: &str) -> Response {
    let mut resp = Response::new(status);
    for (n, v) in fields {
        resp = resp.header(
            String::from_utf8_lossy(&n).into_owned(),
            String::from_utf8_lossy(&v).into_owned(),
        );
    }
    if !resp
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("x-request-id"))
    {
        resp = resp.header("X-Request-ID", request_id.to_owned());
    }
    resp.body(body)
}

async fn respond_error<D: Downstream>(
    worker: &WorkerState,
    down: &mut D,
    err: &ProxyError,
    ctx: &RequestCtx,
    generation: &Generation,
    hooks: Option<&dyn ResponseHooks>,
) -> Outcome {
    // Rejections found while reading the body (the head's are counted by the session, a
    // request over the body limit where it is found).
    match err {
        ProxyError::BadRequest(_) => worker.metrics.rejected(RejectReason::BadRequest),
        ProxyError::RequestTimeout => worker.metrics.rejected(RejectReason::BodyTimeout),
        ProxyError::Upstream(kind) => worker.metrics.upstream_error(*kind),
        _ => {}
    }
    let mut resp = err.to_response(&ctx.request_id);
    if let Some(hooks) = hooks {
        // Dito's own errors pass through the response hooks too (spec §8).
        match through_hooks(hooks, resp) {
            Ok(r) => resp = r,
            Err(failure) => {
                plugin_failed(worker, &failure);
                resp = ProxyError::PluginFailed.to_response(&ctx.request_id);
            }
        }
    }
    if generation.snapshot.config.logging.verbose {
        let headers = resp
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        observe::access::log_headers("response", &ctx.request_id, headers);
    }
    // `request_timeout` is a hard deadline (spec §6): a body still arriving is neither read
    // nor waited for; the answer goes out now and ends the connection.
    let past_deadline = matches!(err, ProxyError::Upstream(UpstreamErrorKind::RequestTimeout))
        && !down.parts().0.is_complete();
    let mut outcome = respond(down, &resp, err.closes_connection() || past_deadline).await;
    outcome.past_deadline = past_deadline;
    outcome
}

/// `resp` after the response hooks (its body is kept).
fn through_hooks(hooks: &dyn ResponseHooks, resp: Response) -> Result<Response, Failure> {
    let mut status = resp.status;
    let mut fields: Fields = resp
        .headers
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    hooks.response(&mut status, &mut fields)?;
    let mut out = Response::new(status);
    for (n, v) in fields {
        out = out.header(
            String::from_utf8_lossy(&n).into_owned(),
            String::from_utf8_lossy(&v).into_owned(),
        );
    }
    Ok(out.body(resp.body))
}

async fn respond<D: Downstream>(down: &mut D, resp: &Response, close: bool) -> Outcome {
    match down.respond(resp, close).await {
        Ok(()) => Outcome::new(true, close),
        Err(_) => Outcome::new(true, true),
    }
}
