//! Dito's own endpoints, answered before routing: `/healthz` and `/readyz` (spec §12), and
//! which requests are metrics scrapes (spec §10; the answer is `observe::scrape`).
//!
//! All answer `GET` and `HEAD` only; other methods on those paths are routed like any other
//! request. Readiness is 503 (JSON envelope) until every worker serves and once shutdown
//! begins.

use crate::config::{Health, Metrics};
use crate::error::ProxyError;
use crate::http::request::RequestHead;
use crate::http::response::Response;

#[derive(Debug, Clone)]
pub struct HealthEndpoints {
    enabled: bool,
    liveness: Vec<u8>,
    readiness: Vec<u8>,
}

impl HealthEndpoints {
    pub fn from_config(h: &Health) -> Self {
        HealthEndpoints {
            enabled: h.enabled,
            liveness: h.liveness_path.as_bytes().to_vec(),
            readiness: h.readiness_path.as_bytes().to_vec(),
        }
    }

    /// The response for a health request, or `None` when `head` is not one. `ready`: every
    /// worker serves and no shutdown has begun.
    pub fn answer(&self, head: &RequestHead, request_id: &str, ready: bool) -> Option<Response> {
        if !self.enabled || !(head.is_method("GET") || head.is_method("HEAD")) {
            return None;
        }
        let path = head.path();
        let body: &'static str = if path == self.liveness.as_slice() {
            "{\"status\":\"ok\"}\n"
        } else if path == self.readiness.as_slice() {
            if !ready {
                return Some(ProxyError::NotReady.to_response(request_id));
            }
            "{\"status\":\"ready\"}\n"
        } else {
            return None;
        };
        Some(
            Response::new(200)
                .header("Content-Type", "application/json")
                .header("Cache-Control", "no-store")
                .header("X-Request-ID", request_id.to_owned())
                .header("X-Content-Type-Options", "nosniff")
                .body(body.as_bytes().to_vec()),
        )
    }
}

/// Where metrics are scraped (`metrics.enabled`, `metrics.path`).
#[derive(Debug, Clone)]
pub struct MetricsEndpoint {
    enabled: bool,
    path: Vec<u8>,
}

impl MetricsEndpoint {
    pub fn from_config(m: &Metrics) -> Self {
        MetricsEndpoint {
            enabled: m.enabled,
            path: m.path.as_bytes().to_vec(),
        }
    }

    /// Whether `head` is a scrape: metrics on, `GET` or `HEAD`, the raw path (query ignored)
    /// equal to `metrics.path`. Scrapes are not counted in `http_requests_total`.
    pub fn matches(&self, head: &RequestHead) -> bool {
        self.enabled
            && (head.is_method("GET") || head.is_method("HEAD"))
            && head.path() == self.path.as_slice()
    }
}
