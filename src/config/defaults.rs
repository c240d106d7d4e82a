//! Every default value of the configuration, in one place (spec §2, §5, §6).
//!
//! Validation applies these when a key is absent (or null). Nothing else in the program should
//! repeat a default; refer to these constants instead.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::types::HeadersWithUnderscores;

// ---- top level (spec §2) ----

/// `port`.
pub const DEFAULT_PORT: u16 = 8081;
/// `listen`: all IPv4 interfaces.
pub const DEFAULT_LISTEN: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// `workers`: 0 = decided at startup from the affinity mask and CPU quota.
pub const DEFAULT_WORKERS: usize = 0;
/// `hot_reload`.
pub const DEFAULT_HOT_RELOAD: bool = false;
/// `request_timeout` (`0s` = none).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// `shutdown_delay`.
pub const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::ZERO;
/// `shutdown_timeout`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

// ---- logging, metrics, health, profiler ----

/// `logging.enabled` (access log lines).
pub const DEFAULT_LOGGING_ENABLED: bool = true;
/// `logging.verbose`.
pub const DEFAULT_LOGGING_VERBOSE: bool = false;
/// `metrics.enabled`.
pub const DEFAULT_METRICS_ENABLED: bool = false;
/// `metrics.path`.
pub const DEFAULT_METRICS_PATH: &str = "/metrics";
/// `health.enabled`.
pub const DEFAULT_HEALTH_ENABLED: bool = true;
/// `health.liveness_path`.
pub const DEFAULT_LIVENESS_PATH: &str = "/healthz";
/// `health.readiness_path`.
pub const DEFAULT_READINESS_PATH: &str = "/readyz";
/// `profiler.listen`.
pub const DEFAULT_PROFILER_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6060);

// ---- limits (spec §6) ----

/// `response_limits.max_response_body_size` (also used when the file says 0).
pub const DEFAULT_MAX_RESPONSE_BODY_SIZE: u64 = 104_857_600;
/// `request_limits.max_request_line_bytes`.
pub const DEFAULT_MAX_REQUEST_LINE_BYTES: usize = 8192;
/// `request_limits.max_header_bytes`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 65_536;
/// `request_limits.max_headers`.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// `request_limits.header_read_timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `request_limits.keep_alive_timeout`.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// `request_limits.body_idle_timeout`.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// `request_limits.send_timeout` (nginx's `send_timeout`).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// `request_limits.max_request_body_size`.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: u64 = 10_485_760;
/// `request_limits.headers_with_underscores` (as nginx: such fields are dropped).
pub const DEFAULT_HEADERS_WITH_UNDERSCORES: HeadersWithUnderscores = HeadersWithUnderscores::Drop;

// ---- upstream transport (spec §5) ----

/// `transport.http.dial_timeout`.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// `transport.http.tls_handshake_timeout`.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// `transport.http.response_header_timeout`.
pub const DEFAULT_RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// `transport.http.read_timeout` (between two reads of a response body; as nginx's
/// `proxy_read_timeout`).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// `transport.http.expect_continue_timeout`.
pub const DEFAULT_EXPECT_CONTINUE_TIMEOUT: Duration = Duration::from_secs(1);
/// `transport.http.idle_conn_timeout`.
pub const DEFAULT_IDLE_CONN_TIMEOUT: Duration = Duration::from_secs(90);
/// `transport.http.keep_alive` (TCP keepalive interval).
pub const DEFAULT_TCP_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// `transport.http.max_idle_conns` (per worker).
pub const DEFAULT_MAX_IDLE_CONNS: usize = 1000;
/// `transport.http.max_idle_conns_per_host` (per worker).
pub const DEFAULT_MAX_IDLE_CONNS_PER_HOST: usize = 200;
/// `transport.http.max_conns_per_host` (per worker; 0 = unlimited).
pub const DEFAULT_MAX_CONNS_PER_HOST: usize = 0;
/// `transport.http.disable_compression` (accepted, no effect).
pub const DEFAULT_DISABLE_COMPRESSION: bool = false;
/// `transport.http.force_http2`.
pub const DEFAULT_FORCE_HTTP2: bool = false;

// ---- locations ----

/// `locations[].replace_path`.
pub const DEFAULT_REPLACE_PATH: bool = false;
/// `locations[].enable_websocket`.
pub const DEFAULT_ENABLE_WEBSOCKET: bool = false;
/// `locations[].websocket_idle_timeout`.
pub const DEFAULT_WEBSOCKET_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// `locations[].max_response_body_size` (0 = the global limit).
pub const DEFAULT_LOCATION_MAX_RESPONSE_BODY_SIZE: u64 = 0;
/// `locations[].disable_response_buffering`.
pub const DEFAULT_DISABLE_RESPONSE_BUFFERING: bool = false;

// ---- listener TLS ----

/// `tls.alpn`.
pub const DEFAULT_ALPN: &[&str] = &["h2", "http/1.1"];
