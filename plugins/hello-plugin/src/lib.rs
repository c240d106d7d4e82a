//! hello-plugin: adds `X-Hello-Plugin: <greeting_message>` to every response of the locations
//! that list it in `middlewares` (spec §8). Its `config.yaml` sets `greeting_message`
//! (default `Hello from Dito plugin!`).

use plugin_abi::sdk::{Action, Host, Plugin, Response};
use plugin_abi::LogLevel;
use serde::Deserialize;

const DEFAULT_GREETING: &str = "Hello from Dito plugin!";

/// `config.yaml`.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    greeting_message: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            greeting_message: DEFAULT_GREETING.to_string(),
        }
    }
}

/// One worker's instance.
pub struct Hello {
    greeting: String,
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
        host.log(
            LogLevel::INFO,
            &format!("hello-plugin ready: greeting {:?}", config.greeting_message),
        );
        Ok(Hello {
            greeting: config.greeting_message,
        })
    }

    fn on_response(&mut self, resp: &mut Response<'_>) -> Action {
        match resp.set_header("X-Hello-Plugin", &self.greeting) {
            Ok(()) => Action::Continue,
            Err(_) => Action::Error,
        }
    }
}

plugin_abi::export_plugin!(Hello);
