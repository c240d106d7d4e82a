//! `header-guard`: the example plugin of Dito's plugin author guide (`plugins/README.md`).
//!
//! Requests that lack the configured header (or, with `value` set, carry another value) are
//! answered with 401 and never reach the upstream; every response of a request it let through
//! gets `X-Guarded: yes`. The test suite builds, signs and loads this crate
//! (`tests/plugin_guide.rs`), so what the guide says about it stays true.

use plugin_abi::sdk::{Action, Host, Plugin, Request, Response};
use plugin_abi::LogLevel;
use serde::Deserialize;

/// `config.yaml`, as the SDK deserializes it from the JSON Dito hands over.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The header every request must carry.
    header: String,
    /// When set, the header's value must be exactly this.
    #[serde(default)]
    value: Option<String>,
}

/// One worker's instance.
struct HeaderGuard {
    header: String,
    value: Option<String>,
    host: Host,
}

impl HeaderGuard {
    fn allows(&self, req: &Request<'_>) -> bool {
        match (req.header(&self.header), &self.value) {
            (None, _) => false,
            (Some(got), Some(want)) => same(got, want.as_bytes()),
            (Some(got), None) => !got.is_empty(),
        }
    }
}

/// `a == b` in a time that does not depend on where they differ (the value may be a secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Plugin for HeaderGuard {
    const NAME: &'static str = "header-guard";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    /// Runs once per (re)load, before any instance exists: an `Err` stops Dito's startup (or
    /// rejects the reload) with this message.
    fn validate(config: &Config) -> Result<(), String> {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if config.header.is_empty() || !config.header.bytes().all(token) {
            return Err(format!("header: {:?} is not a header name", config.header));
        }
        Ok(())
    }

    /// Runs once on every worker thread.
    fn create(config: Config, host: &Host) -> Result<Self, String> {
        host.log(
            LogLevel::INFO,
            &format!("guarding with header {}", config.header),
        );
        Ok(HeaderGuard {
            header: config.header,
            value: config.value,
            host: *host,
        })
    }

    fn on_request(&mut self, req: &mut Request<'_>) -> Action {
        if self.allows(req) {
            return Action::Continue;
        }
        // Exported as dito_plugin_counter_total{plugin="header-guard",name="refused"}.
        let _ = self.host.count("refused", 1);
        let body = format!(
            "{{\"error\":\"missing or wrong {} header\"}}\n",
            self.header
        );
        if req.respond(401, body.as_bytes()).is_err()
            || req
                .set_response_header("Content-Type", "application/json")
                .is_err()
        {
            return Action::Error;
        }
        Action::Respond
    }

    fn on_response(&mut self, resp: &mut Response<'_>) -> Action {
        match resp.set_header("X-Guarded", "yes") {
            Ok(()) => Action::Continue,
            Err(_) => Action::Error,
        }
    }
}

plugin_abi::export_plugin!(HeaderGuard);
