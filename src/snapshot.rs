//! The immutable snapshot of one configuration generation (design §4).
//!
//! Built on the control thread from a validated [`Config`], shared with every worker through
//! an `Arc`, and never mutated. Workers derive their own `Generation` from it (with their own
//! clones of anything that has interior caches), so reading it costs no shared writes.

use crate::config::Config;
use crate::endpoints::HealthEndpoints;
use crate::http::limits::{HeadLimits, SessionLimits};

#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub session_limits: SessionLimits,
    pub health: HealthEndpoints,
}

impl Snapshot {
    pub fn build(config: Config) -> Snapshot {
        let rl = &config.request_limits;
        let session_limits = SessionLimits {
            head: HeadLimits {
                max_request_line_bytes: rl.max_request_line_bytes,
                max_header_bytes: rl.max_header_bytes,
                max_headers: rl.max_headers,
            },
            header_read_timeout: rl.header_read_timeout,
            keep_alive_timeout: rl.keep_alive_timeout,
            body_idle_timeout: rl.body_idle_timeout,
            max_request_body_size: rl.max_request_body_size,
        };
        let health = HealthEndpoints::from_config(&config.health);
        Snapshot {
            config,
            session_limits,
            health,
        }
    }
}
