//! The YAML schema, one struct per mapping, one field per key, as the file writes it.
//!
//! These are the "serde structs" of the config: every field is optional (absent or null =
//! `None`) and holds the YAML-level value — durations stay text, enums stay strings — so that
//! `validate` can judge values and apply defaults. They are filled from the [`Raw`] tree
//! rather than by `#[derive(Deserialize)]`, because derived deserialisation stops at the first
//! type error and cannot warn about unknown keys; here each `from_raw` lists the keys of its
//! mapping, reports wrong YAML types with key paths, and warns about every other key.

use super::extract::{list, Fields};
use super::raw::Raw;
use super::Report;

/// `port`: the Go version took a string; an integer is accepted too.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PortValue {
    Number(u64),
    Text(String),
}

/// `pin_workers`: `auto` or a boolean.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PinValue {
    Bool(bool),
    Text(String),
}

/// The whole file.
#[derive(Debug, Default)]
pub(crate) struct FileConfig {
    pub port: Option<PortValue>,
    pub listen: Option<String>,
    pub workers: Option<u64>,
    pub pin_workers: Option<PinValue>,
    pub io_driver: Option<String>,
    pub hot_reload: Option<bool>,
    pub request_timeout: Option<String>,
    pub shutdown_delay: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub logging: LoggingFile,
    pub metrics: MetricsFile,
    pub health: HealthFile,
    pub profiler: ProfilerFile,
    pub response_limits: ResponseLimitsFile,
    pub request_limits: RequestLimitsFile,
    pub tls: Option<TlsFile>,
    pub plugins: Option<PluginsFile>,
    pub transport: TransportFile,
    /// `None` items were not mappings (already reported); kept so indices stay 0-based.
    pub locations: Vec<Option<LocationFile>>,
    // `redis`: dead key (warned, ignored).
}

#[derive(Debug, Default)]
pub(crate) struct LoggingFile {
    pub enabled: Option<bool>,
    pub verbose: Option<bool>,
    pub level: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct MetricsFile {
    pub enabled: Option<bool>,
    pub path: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct HealthFile {
    pub enabled: Option<bool>,
    pub liveness_path: Option<String>,
    pub readiness_path: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct ProfilerFile {
    pub listen: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct ResponseLimitsFile {
    pub max_response_body_size: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct RequestLimitsFile {
    pub max_request_line_bytes: Option<u64>,
    pub max_header_bytes: Option<u64>,
    pub max_headers: Option<u64>,
    pub header_read_timeout: Option<String>,
    pub keep_alive_timeout: Option<String>,
    pub body_idle_timeout: Option<String>,
    pub max_request_body_size: Option<u64>,
    pub headers_with_underscores: Option<String>,
    pub send_timeout: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct TlsFile {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_ca_file: Option<String>,
    pub alpn: Option<Vec<Option<String>>>,
}

#[derive(Debug, Default)]
pub(crate) struct PluginsFile {
    pub directory: Option<String>,
    pub public_key_path: Option<String>,
    pub public_key_hash: Option<String>,
}

/// `transport:` (global or per location); only `http` exists.
#[derive(Debug, Default)]
pub(crate) struct TransportFile {
    pub http: HttpTransportFile,
}

/// `transport.http:`.
#[derive(Debug, Default, Clone)]
pub(crate) struct HttpTransportFile {
    pub dial_timeout: Option<String>,
    pub tls_handshake_timeout: Option<String>,
    pub response_header_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub expect_continue_timeout: Option<String>,
    pub idle_conn_timeout: Option<String>,
    pub keep_alive: Option<String>,
    pub max_idle_conns: Option<u64>,
    pub max_idle_conns_per_host: Option<u64>,
    pub max_conns_per_host: Option<u64>,
    pub disable_compression: Option<bool>,
    pub force_http2: Option<bool>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub ca_file: Option<String>,
}

/// One `locations[]` item.
#[derive(Debug, Default)]
pub(crate) struct LocationFile {
    pub path: Option<String>,
    pub target_url: Option<String>,
    pub replace_path: Option<bool>,
    pub enable_websocket: Option<bool>,
    pub websocket_idle_timeout: Option<String>,
    /// File order; `None` values had the wrong type (already reported).
    pub additional_headers: Vec<(String, Option<String>)>,
    pub excluded_headers: Vec<Option<String>>,
    pub middlewares: Vec<Option<String>>,
    pub max_response_body_size: Option<u64>,
    pub disable_response_buffering: Option<bool>,
    pub transport: TransportFile,
    // `rate_limiting`, `cache`, `enable_compression`: dead keys (warned, ignored).
}

impl FileConfig {
    /// Reads the document root. A root that is not a mapping is an error (all defaults are
    /// returned so validation can still run); an empty document is all defaults.
    pub(crate) fn from_raw(raw: &Raw, r: &mut Report) -> Self {
        if !matches!(raw, Raw::Map(_) | Raw::Null) {
            r.error(
                "",
                format!(
                    "the top level must be a mapping of keys, found {}",
                    raw.describe()
                ),
            );
            return FileConfig::default();
        }
        let Some(mut f) = Fields::open(raw, "", r) else {
            return FileConfig::default();
        };
        let config = FileConfig {
            port: f.section("port", r, |v, p, r| match v {
                Raw::Str(s) => Some(PortValue::Text(s.clone())),
                _ => super::extract::uint(v, p, r).map(PortValue::Number),
            }),
            listen: f.string("listen", r),
            workers: f.uint("workers", r),
            pin_workers: f.section("pin_workers", r, |v, p, r| match v {
                Raw::Bool(b) => Some(PinValue::Bool(*b)),
                Raw::Str(s) => Some(PinValue::Text(s.clone())),
                other => {
                    r.error(
                        p,
                        format!("expected auto, true or false, found {}", other.describe()),
                    );
                    None
                }
            }),
            io_driver: f.string("io_driver", r),
            hot_reload: f.boolean("hot_reload", r),
            request_timeout: f.duration("request_timeout", r),
            shutdown_delay: f.duration("shutdown_delay", r),
            shutdown_timeout: f.duration("shutdown_timeout", r),
            logging: f
                .section("logging", r, LoggingFile::from_raw)
                .unwrap_or_default(),
            metrics: f
                .section("metrics", r, MetricsFile::from_raw)
                .unwrap_or_default(),
            health: f
                .section("health", r, HealthFile::from_raw)
                .unwrap_or_default(),
            profiler: f
                .section("profiler", r, ProfilerFile::from_raw)
                .unwrap_or_default(),
            response_limits: f
                .section("response_limits", r, ResponseLimitsFile::from_raw)
                .unwrap_or_default(),
            request_limits: f
                .section("request_limits", r, RequestLimitsFile::from_raw)
                .unwrap_or_default(),
            tls: f.section("tls", r, TlsFile::from_raw),
            plugins: f.section("plugins", r, PluginsFile::from_raw),
            transport: f
                .section("transport", r, TransportFile::from_raw)
                .unwrap_or_default(),
            locations: f
                .section("locations", r, |v, p, r| {
                    list(v, p, r, LocationFile::from_raw)
                })
                .unwrap_or_default(),
        };
        f.dead("redis", r);
        f.finish(r);
        config
    }
}

impl LoggingFile {
    fn from_raw(raw: &Raw, path: &str, r: &mut Report) -> Option<Self> {
        let mut f = Fields::open(raw, path, r)?;
        let out = LoggingFile {
            enabled: f.boolean("enabled", r),
            verbose: f.boolean("verbose", r),
            level: f.string("level", r),
            format: f.string("format", r),
        };
        f.finish(r);
        Some(out)
    }
}

impl MetricsFile {
    fn from_raw(raw: &Raw, path: &str, r: &mut Report) -> Option<Self> {
        let mut f = Fields::open(raw, path, r)?;
        let out = MetricsFile {
            enabled: f.boolean("enabled", r),
            path: f.string("path", r),
        };
        f.finish(r);
        Some(out)
    }
}

impl HealthFile {
    fn from_raw(raw: &Raw, path: &str, r: &mut Report) -> Option<Self> {
        let mut f = Fields::open(raw, path, r)?;
        let out = HealthFile {
            enabled: f.boolean("enabled", r),
            liveness_path: f.string("liveness_path", r),
            readiness_path: f.string("readiness_path", r),
        };
        f.finish(r);
        Some(out)
    }
}

impl ProfilerFile {
    fn from_raw(raw: &Raw, path: &str, r: &mut Report) -> Option<Self> {
        let mut f = Fields::open(raw, path, r)?;
        let out = ProfilerFile {
            listen: f.string("listen", r),
        };
        f.finish(r);
        Some(out)
    }
}

impl ResponseLimitsFile {
    fn from_raw(raw: &Raw, path: &str, r: &mut Report) -> Option<Self> {
        let mut f = Fields::open(raw, path, r)?;
        let out = ResponseLimitsFile {
            max_response_body_size: f.uint("max_response_body_size", r),
        };
        f.finish(r);
        Some(out)
    }
}

impl RequestLimitsFile {
    fn from_raw(raw: &Raw, path: &str, r: &mut Report) -> Option<Self> {
        let mut f = Fields::open(raw, path, r)?;
        let out = RequestLimitsFile {
            max_request_line_bytes: f.uint("max_request_line_bytes", r),
            max_header_bytes: f.uint("max_header_bytes", r),
            max_headers: f.uint("max_headers", r),
            header_read_timeout: f.duration("header_read_timeout", r),
            keep_alive_timeout: f.duration("keep_alive_timeout", r),
            body_idle_timeout: f.duration("body_idle_timeout", r),
            max_request_body_size: f.uint("max_request_body_size", r),
            headers_with_underscores: f.string("headers_with_underscores", r),
            send_timeout: f.duration("send_timeout", r),
        };
        f.finish(r);
        Some(out)
    }
}

impl TlsFile {
    fn from_raw(raw: &Raw, path: &str, r: &mut Report) -> Option<Self> {
        let mut f = Fields::open(raw, path, r)?;
        let out = TlsFile {
            cert_file: f.string("cert_file", r),
            key_file: f.string("key_file", r),
            client_ca_file: f.string("client_ca_file", r),
            alpn: f.strings("alpn", r),
        };
        f.finish(r);
        Some(out)
    }
}

impl PluginsFile {
    fn from_raw(raw: &Raw, path: &str, r: &mut Report) -> Option<Self> {
        let mut f = Fields::open(raw, path, r)?;
        let out = PluginsFile {
            directory: f.string("directory", r),
            public_key_path: f.string("public_key_path", r),
            public_key_hash: f.string("public_key_hash", r),
        };
        f.finish(r);
        Some(out)
    }
}

impl TransportFile {
    fn from_raw(raw: &Raw, path: &str, r: &mut Report) -> Option<Self> {
        let mut f = Fields::open(raw, path, r)?;
        let out = TransportFile {
            http: f
                .section("http", r, HttpTransportFile::from_raw)
                .unwrap_or_default(),
        };
        f.finish(r);
        Some(out)
    }
}

impl HttpTransportFile {
    fn from_raw(raw: &Raw, path: &str, r: &mut Report) -> Option<Self> {
        let mut f = Fields::open(raw, path, r)?;
        let out = HttpTransportFile {
            dial_timeout: f.duration("dial_timeout", r),
            tls_handshake_timeout: f.duration("tls_handshake_timeout", r),
            response_header_timeout: f.duration("response_header_timeout", r),
            read_timeout: f.duration("read_timeout", r),
            expect_continue_timeout: f.duration("expect_continue_timeout", r),
            idle_conn_timeout: f.duration("idle_conn_timeout", r),
            keep_alive: f.duration("keep_alive", r),
            max_idle_conns: f.uint("max_idle_conns", r),
            max_idle_conns_per_host: f.uint("max_idle_conns_per_host", r),
            max_conns_per_host: f.uint("max_conns_per_host", r),
            disable_compression: f.boolean("disable_compression", r),
            force_http2: f.boolean("force_http2", r),
            cert_file: f.string("cert_file", r),
            key_file: f.string("key_file", r),
            ca_file: f.string("ca_file", r),
        };
        f.finish(r);
        Some(out)
    }
}

impl LocationFile {
    fn from_raw(raw: &Raw, path: &str, r: &mut Report) -> Option<Self> {
        let mut f = Fields::open(raw, path, r)?;
        let out = LocationFile {
            path: f.string("path", r),
            target_url: f.string("target_url", r),
            replace_path: f.boolean("replace_path", r),
            enable_websocket: f.boolean("enable_websocket", r),
            websocket_idle_timeout: f.duration("websocket_idle_timeout", r),
            additional_headers: f.string_map("additional_headers", r).unwrap_or_default(),
            excluded_headers: f.strings("excluded_headers", r).unwrap_or_default(),
            middlewares: f.strings("middlewares", r).unwrap_or_default(),
            max_response_body_size: f.uint("max_response_body_size", r),
            disable_response_buffering: f.boolean("disable_response_buffering", r),
            transport: f
                .section("transport", r, TransportFile::from_raw)
                .unwrap_or_default(),
        };
        f.dead("rate_limiting", r);
        f.dead("cache", r);
        f.dead("enable_compression", r);
        f.finish(r);
        Some(out)
    }
}
