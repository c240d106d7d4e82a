//! The validated, typed configuration the rest of the program reads.
//!
//! Every default is applied (see `defaults`), every value checked; nothing here can fail.
//! Built on the control thread, then shared read-only (the regexes are cloned per worker by
//! their users, see design §1). Zero durations mean "no timeout" unless a field says otherwise.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::target::TargetUrl;
use super::tls_files::{CertBundle, ClientIdentity, UpstreamTls};
use super::transport::HttpTransport;

/// The whole config.
#[derive(Debug, Clone)]
pub struct Config {
    /// 0 = an ephemeral port chosen at startup.
    pub port: u16,
    pub listen: IpAddr,
    /// 0 = decided at startup (usable cores).
    pub workers: usize,
    pub pin_workers: PinWorkers,
    pub io_driver: IoDriver,
    pub hot_reload: bool,
    /// `None` when the file says `0s`.
    pub request_timeout: Option<Duration>,
    pub shutdown_delay: Duration,
    pub shutdown_timeout: Duration,
    pub logging: Logging,
    pub metrics: Metrics,
    pub health: Health,
    pub profiler: Profiler,
    pub response_limits: ResponseLimits,
    pub request_limits: RequestLimits,
    /// The global `transport.http` with defaults (each location has its merged copy).
    pub transport: HttpTransport,
    /// Routes in file order.
    pub locations: Vec<Location>,
    /// `None` when there is no `plugins.directory`.
    pub plugins: Option<Plugins>,
    /// `None` = plain HTTP.
    pub tls: Option<ListenerTls>,
}

/// `pin_workers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinWorkers {
    Auto,
    Always,
    Never,
}

/// `io_driver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    Auto,
    Uring,
    Epoll,
}

/// `logging.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// `logging.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `logging`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// Access log lines on/off.
    pub enabled: bool,
    /// Header dumps (secrets redacted).
    pub verbose: bool,
    pub level: LogLevel,
    pub format: LogFormat,
}

/// `metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub enabled: bool,
    /// Starts with `/`.
    pub path: String,
}

/// `health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub enabled: bool,
    /// Starts with `/`.
    pub liveness_path: String,
    /// Starts with `/`.
    pub readiness_path: String,
}

/// `profiler`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profiler {
    pub listen: SocketAddr,
}

/// `response_limits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Bytes; never 0 (0 in the file = the default).
    pub max_response_body_size: u64,
}

/// `request_limits` (spec §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLimits {
    /// 1 to `MAX_REQUEST_LINE_BYTES_CEILING`.
    pub max_request_line_bytes: usize,
    /// 1 to `MAX_HEADER_BYTES_CEILING`.
    pub max_header_bytes: usize,
    /// 1 to `MAX_HEADERS_CEILING`.
    pub max_headers: usize,
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub body_idle_timeout: Duration,
    /// 0 = no request body is accepted.
    pub max_request_body_size: u64,
    /// What happens to request header fields whose names contain `_` (spec §3).
    pub headers_with_underscores: HeadersWithUnderscores,
    /// A write to the client that makes no progress for this long aborts the connection;
    /// zero = no limit.
    pub send_timeout: Duration,
}

/// `request_limits.headers_with_underscores`: request header names with `_` are dropped
/// (nginx's `underscores_in_headers off`), forwarded, or answered with 400. Backends that fold
/// `_` into `-` (CGI, PHP, many frameworks) would otherwise see `X_Forwarded_For` as a spoofed
/// `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersWithUnderscores {
    Drop,
    Allow,
    Reject,
}

/// One route.
#[derive(Debug, Clone)]
pub struct Location {
    /// The regex as written (also the metrics `path` label).
    pub pattern: String,
    pub regex: regex::Regex,
    pub target: TargetUrl,
    pub replace_path: bool,
    pub enable_websocket: bool,
    pub websocket_idle_timeout: Duration,
    /// In file order; names are valid tokens, values have no CR/LF/NUL.
    pub additional_headers: Vec<(String, String)>,
    pub excluded_headers: Vec<String>,
    /// Plugin names.
    pub middlewares: Vec<String>,
    /// 0 = use the global `response_limits.max_response_body_size`.
    pub max_response_body_size: u64,
    pub disable_response_buffering: bool,
    /// The global transport with this location's keys laid over it.
    pub transport: HttpTransport,
    /// The loaded TLS material for `https://` and `wss://` targets; `None` for plain ones.
    pub tls: Option<UpstreamTls>,
}

/// `plugins` (when `directory` is set; both key fields are then present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugins {
    pub directory: PathBuf,
    pub public_key_path: Option<PathBuf>,
    pub public_key_hash: Option<String>,
    /// Every plugin of `directory`, verified and loaded (empty when a check failed).
    pub loaded: Vec<crate::plugin::instance::LoadedPlugin>,
}

/// `tls` on the listener, with its files read and checked (spec §2; re-read on every load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Set = client certificates are required.
    pub client_ca_file: Option<PathBuf>,
    /// Offered by ALPN in this order (default `h2`, `http/1.1`).
    pub alpn: Vec<String>,
    /// The server certificate chain and its key, checked to match.
    pub identity: Arc<ClientIdentity>,
    /// `client_ca_file`'s certificates.
    pub client_ca: Option<Arc<CertBundle>>,
    /// A hash of the content above: workers rebuild their server config when it changes.
    pub settings: u64,
}
