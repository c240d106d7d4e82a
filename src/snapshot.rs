//! The immutable snapshot of one configuration generation (design §4).
//!
//! Built on the control thread from a validated [`Config`] (which carries the upstream TLS
//! material read at validation), shared with every worker through an `Arc`, and never mutated.
//! Workers derive their own `Generation` from it (with their own clones of anything that has
//! interior caches, and their own TLS client configs), so reading it costs no shared writes.

use std::time::Duration;

use crate::config::Config;
use crate::endpoints::HealthEndpoints;
use crate::http::limits::{HeadLimits, SessionLimits};
use crate::route::{RouteSpec, Router};
use crate::upstream::route::UpstreamTarget;

#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub session_limits: SessionLimits,
    pub health: HealthEndpoints,
    /// Locations in config order; workers clone it (own regex caches).
    pub router: Router,
    /// The upstream of each location, same order as `router`.
    pub targets: Vec<UpstreamTarget>,
    pub request_timeout: Option<Duration>,
}

impl Snapshot {
    /// Builds the snapshot of a validated config; `Err` names a location whose pattern does
    /// not compile as a byte regex (validation already compiled it, so this is defensive).
    pub fn build(config: Config) -> Result<Snapshot, String> {
        let rl = &config.request_limits;
        let session_limits = SessionLimits {
            head: HeadLimits {
                max_request_line_bytes: rl.max_request_line_bytes,
                max_header_bytes: rl.max_header_bytes,
                max_headers: rl.max_headers,
                headers_with_underscores: rl.headers_with_underscores,
            },
            header_read_timeout: rl.header_read_timeout,
            keep_alive_timeout: rl.keep_alive_timeout,
            body_idle_timeout: rl.body_idle_timeout,
            max_request_body_size: rl.max_request_body_size,
            send_timeout: Some(rl.send_timeout).filter(|t| !t.is_zero()),
        };
        let health = HealthEndpoints::from_config(&config.health);
        let specs: Vec<RouteSpec> = config
            .locations
            .iter()
            .map(|l| RouteSpec {
                pattern: l.pattern.clone(),
                target_path: l.target.path.clone(),
                target_query: l.target.query.clone(),
                replace_path: l.replace_path,
            })
            .collect();
        let router = Router::build(&specs)
            .map_err(|(i, e)| format!("locations[{i}].path: invalid regex: {e}"))?;
        let targets = config
            .locations
            .iter()
            .enumerate()
            .map(|(i, l)| {
                UpstreamTarget::from_location(l, config.response_limits.max_response_body_size)
                    .map_err(|e| format!("locations[{i}].target_url: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Snapshot {
            request_timeout: config.request_timeout,
            config,
            session_limits,
            health,
            router,
            targets,
        })
    }
}
