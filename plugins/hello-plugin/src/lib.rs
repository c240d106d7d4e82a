//! hello-plugin: adds `X-Hello-Plugin: <greeting_message>` to every response of the locations
//! that list it in `middlewares` (spec §8). Its `config.yaml` takes the Go version's keys
//! unchanged: `greeting_message` (default `Hello from Dito plugin!`), `plugin_enabled`
//! (default `true`; `false` adds nothing), and `log_level` and `custom_header_name`, which the
//! Go plugin parsed but never used: they are accepted, have no effect, and get one WARN.

use std::sync::atomic::{AtomicBool, Ordering};

use plugin_abi::sdk::{Action, Host, Plugin, Response};
use plugin_abi::LogLevel;
use serde::Deserialize;

const DEFAULT_GREETING: &str = "Hello from Dito plugin!";
const HEADER: &str = "X-Hello-Plugin";

/// `config.yaml`.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    greeting_message: String,
    plugin_enabled: bool,
    /// Go-version key, parsed and unused there too.
    log_level: Option<String>,
    /// Go-version key, parsed and unused there too (the header stays `X-Hello-Plugin`).
    custom_header_name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            greeting_message: DEFAULT_GREETING.to_string(),
            plugin_enabled: true,
            log_level: None,
            custom_header_name: None,
        }
    }
}

/// The WARN about the Go version's unused keys is written once per process, not once per
/// worker instance.
static WARNED_UNUSED_KEYS: AtomicBool = AtomicBool::new(false);

/// One worker's instance; `None` when `plugin_enabled: false`.
pub struct Hello {
    greeting: Option<String>,
}

impl Plugin for Hello {
    const NAME: &'static str = "hello-plugin";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;

    fn validate(config: &Config) -> Result<(), String> {
        if config.greeting_message.contains(['\r', '\n']) {
            return Err("greeting_message must be one line".to_string());
        }
        Ok(())
    }

    fn create(config: Config, host: &Host) -> Result<Self, String> {
        let unused: Vec<&str> = [
            ("log_level", config.log_level.is_some()),
            ("custom_header_name", config.custom_header_name.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
        if !unused.is_empty() && !WARNED_UNUSED_KEYS.swap(true, Ordering::Relaxed) {
            host.log(
                LogLevel::WARN,
                &format!(
                    "hello-plugin: config key(s) {} have no effect (kept for the Go version's \
                     configs; the header is always {HEADER})",
                    unused.join(", ")
                ),
            );
        }
        if !config.plugin_enabled {
            host.log(
                LogLevel::INFO,
                "hello-plugin ready: disabled (plugin_enabled: false)",
            );
            return Ok(Hello { greeting: None });
        }
        host.log(
            LogLevel::INFO,
            &format!("hello-plugin ready: greeting {:?}", config.greeting_message),
        );
        Ok(Hello {
            greeting: Some(config.greeting_message),
        })
    }

    fn on_response(&mut self, resp: &mut Response<'_>) -> Action {
        let Some(greeting) = &self.greeting else {
            return Action::Continue;
        };
        match resp.set_header(HEADER, greeting) {
            Ok(()) => Action::Continue,
            Err(_) => Action::Error,
        }
    }
}

plugin_abi::export_plugin!(Hello);
