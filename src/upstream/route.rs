//! What a location needs on the request path to reach its upstream.
//!
//! [`UpstreamTarget`] is built once per generation on the control thread (inside the
//! `Send + Sync` snapshot, with the loaded TLS material); each worker turns it into a
//! [`WorkerRoute`] with its own pool key (`Rc`-based, never shared across threads) and its own
//! TLS client config.

use std::rc::Rc;
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::config::{HttpTransport, Location, Scheme, UpstreamTls};
use crate::upstream::pool::{PoolKey, PoolLimits};
use crate::upstream::request_head::HeaderRules;
use crate::upstream::tls::{ClientConfigs, WorkerTls};

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
    /// `https://` and `wss://` targets only.
    pub tls: Option<TargetTls>,
    /// `enable_websocket`: upgrades are tunnelled, closed after this long without traffic
    /// (`websocket_idle_timeout`; zero = never).
    pub websocket: Option<Duration>,
}

/// A TLS target's material and the name its certificate must carry.
#[derive(Debug, Clone)]
pub struct TargetTls {
    pub material: UpstreamTls,
    pub server_name: ServerName<'static>,
}

impl UpstreamTarget {
    /// `Err` when a TLS target's host is not a valid server name (validation already checked
    /// it, so this is defensive).
    pub fn from_location(loc: &Location, global_response_limit: u64) -> Result<Self, String> {
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
        let tls = match &loc.tls {
            Some(material) => Some(TargetTls {
                material: material.clone(),
                server_name: ServerName::try_from(t.host.clone())
                    .map_err(|e| format!("{}: not a valid TLS server name: {e}", t.host))?,
            }),
            None => None,
        };
        Ok(UpstreamTarget {
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
            tls,
            websocket: loc.enable_websocket.then_some(loc.websocket_idle_timeout),
        })
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
    /// This worker's client config for a TLS target.
    pub tls: Option<WorkerTls>,
    /// Upgrades are tunnelled, with this idle timeout (see [`UpstreamTarget::websocket`]).
    pub websocket: Option<Duration>,
}

impl WorkerRoute {
    /// `configs` is the worker's cache: a config already built for the same material is
    /// reused; `Err` when rustls refuses to build one.
    pub fn prepare(t: &UpstreamTarget, configs: &ClientConfigs) -> Result<Self, String> {
        let tr = &t.transport;
        let tls = match &t.tls {
            Some(target) => Some(WorkerTls {
                config: configs.get_or_build_for(&target.material, tr.force_http2)?,
                server_name: target.server_name.clone(),
            }),
            None => None,
        };
        Ok(WorkerRoute {
            key: PoolKey {
                scheme: t.scheme,
                host: Rc::from(t.host.as_str()),
                port: t.port,
                settings: t.tls.as_ref().map_or(0, |tls| tls.material.settings),
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
            tls,
            websocket: t.websocket,
        })
    }
}
