//! What a location needs on the request path to reach its upstream.
//!
//! [`UpstreamTarget`] is built once per generation on the control thread (inside the
//! `Send + Sync` snapshot); each worker turns it into a [`WorkerRoute`] with its own pool key
//! (`Rc`-based, never shared across threads).

use std::rc::Rc;

use crate::config::{HttpTransport, Location, Scheme};
use crate::upstream::pool::{PoolKey, PoolLimits};
use crate::upstream::request_head::HeaderRules;

/// A location's upstream, as the snapshot holds it.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub pattern: String,
    pub scheme: &'static str,
    pub host: String,
    pub port: u16,
    pub rules: HeaderRules,
    pub transport: HttpTransport,
    /// The location's `max_response_body_size`, or the global one when it is 0.
    pub response_limit: u64,
    /// Unknown-length bodies are held first (not `disable_response_buffering`).
    pub buffering: bool,
}

impl UpstreamTarget {
    pub fn from_location(loc: &Location, global_response_limit: u64) -> Self {
        let t = &loc.target;
        let mut excluded: Vec<String> = loc
            .excluded_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        excluded.sort();
        excluded.dedup();
        let host_override = loc
            .additional_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.clone());
        let additional = loc
            .additional_headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
            .cloned()
            .collect();
        UpstreamTarget {
            pattern: loc.pattern.clone(),
            scheme: match t.scheme {
                Scheme::Http | Scheme::Ws => "http",
                Scheme::Https | Scheme::Wss => "https",
            },
            host: t.host.clone(),
            port: t.effective_port(),
            rules: HeaderRules {
                host: t.host_header().into_bytes(),
                excluded,
                additional,
                host_override,
            },
            transport: loc.transport.clone(),
            response_limit: if loc.max_response_body_size > 0 {
                loc.max_response_body_size
            } else {
                global_response_limit
            },
            buffering: !loc.disable_response_buffering,
        }
    }
}

/// A location's upstream as one worker uses it.
#[derive(Debug)]
pub struct WorkerRoute {
    pub key: PoolKey,
    pub pool_limits: PoolLimits,
    pub transport: HttpTransport,
    pub rules: HeaderRules,
    pub response_limit: u64,
    pub buffering: bool,
}

impl WorkerRoute {
    pub fn prepare(t: &UpstreamTarget) -> Self {
        let tr = &t.transport;
        WorkerRoute {
            key: PoolKey {
                scheme: t.scheme,
                host: Rc::from(t.host.as_str()),
                port: t.port,
                settings: 0,
            },
            pool_limits: PoolLimits {
                max_idle: tr.max_idle_conns,
                max_idle_per_host: tr.max_idle_conns_per_host,
                max_conns_per_host: tr.max_conns_per_host,
                idle_timeout: tr.idle_conn_timeout,
            },
            transport: tr.clone(),
            rules: t.rules.clone(),
            response_limit: t.response_limit,
            buffering: t.buffering,
        }
    }
}
