//! End-to-end tests of the config loader: YAML text in, `Config` or rendered messages out.
//! `values` checks what loads (defaults, explicit values, merges); `diagnostics` checks the
//! errors and warnings, their key paths and wording.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::*;

mod diagnostics;
mod tls;
mod values;

/// Loads a config that must be valid: these tests are about how values parse.
fn load(yaml: &str) -> Loaded {
    parse_str("c.yaml", yaml).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

fn errors(yaml: &str) -> Vec<String> {
    let err = parse_str("c.yaml", yaml).expect_err("expected errors");
    err.errors.iter().map(|d| d.render("c.yaml")).collect()
}

fn warnings(loaded: &Loaded) -> Vec<String> {
    loaded.warnings.iter().map(|d| d.render("c.yaml")).collect()
}

const MINIMAL_LOCATION: &str =
    "locations:\n  - path: ^/app\n    target_url: http://127.0.0.1:9000\n";

const GO_EXAMPLE: &str = r#"
port: 8081
hot_reload: true
logging:
  enabled: true
  verbose: false
  level: "info"
metrics:
  enabled: true
  path: "/metrics"
response_limits:
  max_response_body_size: 10485760
transport:
  http:
    idle_conn_timeout: 90s
    max_idle_conns: 1000
    max_idle_conns_per_host: 200
    max_conns_per_host: 0
    tls_handshake_timeout: 2s
    response_header_timeout: 2s
    expect_continue_timeout: 500ms
    disable_compression: false
    dial_timeout: 2s
    keep_alive: 30s
    force_http2: false
locations:
  - path: "^/dito$"
    target_url: "https://httpbin.org/get"
    replace_path: true
    additional_headers:
      X-Custom-Header: "CustomValue"
    excluded_headers:
      - "Cookie"
    transport:
      http:
        dial_timeout: 1s
  - path: "^/api"
    target_url: "http://127.0.0.1:8080/base"
    rate_limiting:
      enabled: true
"#;

const GO_EXAMPLE_PLAIN: &str = r#"
transport:
  http:
    tls_handshake_timeout: 2s
    response_header_timeout: 2s
    expect_continue_timeout: 500ms
    dial_timeout: 2s
locations:
  - path: "^/dito$"
    target_url: "http://httpbin.org/get"
    transport:
      http:
        dial_timeout: 1s
  - path: "^/api"
    target_url: "http://127.0.0.1:8080/base"
"#;
