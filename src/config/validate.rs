//! Schema structs → typed [`Config`]: values checked, defaults applied, all problems reported.
//!
//! Works on what `file` extracted (YAML types already checked) and never stops early: a bad
//! value is reported at its key path and replaced by its default so the rest can still be
//! checked; the caller throws the result away when any error was recorded. Locations are
//! checked in `location`, transport blocks in `transport`.

use crate::plugin::loader::{load_all, PluginSource};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::defaults::*;
use super::duration::parse_go_duration;
use super::file::{FileConfig, PinValue, PluginsFile, PortValue, TlsFile};
use super::location;
use super::raw::quote;
use super::tls_files::{self, IdentityKey};
use super::transport::TransportOverrides;
use super::types::*;
use super::{join, Report};

/// Validates the whole file (the caller sorts the diagnostics into file order afterwards).
pub(crate) fn validate(file: &FileConfig, r: &mut Report) -> Config {
    let port = port(&file.port, r);
    let listen = parse_or(&file.listen, "listen", "an IP address", DEFAULT_LISTEN, r);
    let workers = count(file.workers, "workers", r).unwrap_or(DEFAULT_WORKERS);
    let pin_workers = pin_workers(&file.pin_workers, r);
    let io_driver = io_driver(&file.io_driver, r);
    let request_timeout =
        duration(&file.request_timeout, "request_timeout", r).unwrap_or(DEFAULT_REQUEST_TIMEOUT);
    let shutdown_delay =
        duration(&file.shutdown_delay, "shutdown_delay", r).unwrap_or(DEFAULT_SHUTDOWN_DELAY);
    let shutdown_timeout =
        duration(&file.shutdown_timeout, "shutdown_timeout", r).unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
    let logging = logging(file, r);
    let metrics = metrics(file, r);
    let health = health(file, r);
    check_endpoint_collisions(&health, &metrics, r);
    let profiler = Profiler {
        listen: parse_or::<SocketAddr>(
            &file.profiler.listen,
            "profiler.listen",
            "an IP address and port such as 127.0.0.1:6060",
            DEFAULT_PROFILER_LISTEN,
            r,
        ),
    };
    let response_limits = ResponseLimits {
        max_response_body_size: match file.response_limits.max_response_body_size {
            None | Some(0) => DEFAULT_MAX_RESPONSE_BODY_SIZE,
            Some(n) => n,
        },
    };
    let request_limits = request_limits(file, r);
    let tls = file.tls.as_ref().and_then(|t| tls(t, r));
    let plugins = file.plugins.as_ref().and_then(|p| plugins(p, r));
    let global_transport = TransportOverrides::validate(&file.transport.http, "transport.http", r);
    let endpoints = endpoints(&health, &metrics);
    let locations = location::validate_all(&file.locations, &global_transport, &endpoints, r);
    check_middlewares(&locations, plugins.as_ref(), r);
    let hot_reload = file.hot_reload.unwrap_or(DEFAULT_HOT_RELOAD);
    Config {
        port,
        listen,
        workers,
        pin_workers,
        io_driver,
        hot_reload,
        request_timeout: Some(request_timeout).filter(|d| !d.is_zero()),
        shutdown_delay,
        shutdown_timeout,
        logging,
        metrics,
        health,
        profiler,
        response_limits,
        request_limits,
        transport: global_transport.resolve(),
        locations,
        plugins,
        tls,
    }
}

// ---- helpers shared with `location` and `transport` ----

/// Parses an optional Go duration at `path`; errors are recorded and give `None`.
pub(crate) fn duration(text: &Option<String>, path: &str, r: &mut Report) -> Option<Duration> {
    let text = text.as_deref()?;
    parse_go_duration(text)
        .map_err(|message| r.error(path, message))
        .ok()
}

/// A count that must fit `usize`.
pub(crate) fn count(value: Option<u64>, path: &str, r: &mut Report) -> Option<usize> {
    let value = value?;
    usize::try_from(value)
        .map_err(|_| r.error(path, format!("{value} is too large")))
        .ok()
}

/// Reports `path: required` unless the key already has an error (a wrong type, say).
pub(crate) fn require<T>(value: Option<T>, path: &str, why: &str, r: &mut Report) -> Option<T> {
    if value.is_none() && !r.errors.iter().any(|d| d.path == path) {
        r.error(path, why);
    }
    value
}

/// A non-empty string as a path on disk.
pub(crate) fn file_path(value: &Option<String>, path: &str, r: &mut Report) -> Option<PathBuf> {
    match value.as_deref() {
        Some("") => {
            r.error(path, "must not be empty");
            None
        }
        other => other.map(PathBuf::from),
    }
}

/// `FromStr` a value, or report `invalid X: expected WHAT` and use `default`.
fn parse_or<T: std::str::FromStr>(
    value: &Option<String>,
    path: &str,
    what: &str,
    default: T,
    r: &mut Report,
) -> T {
    let Some(text) = value.as_deref() else {
        return default;
    };
    text.parse().unwrap_or_else(|_| {
        r.error(
            path,
            format!("invalid value {}: expected {what}", quote(text)),
        );
        default
    })
}

// ---- sections ----

fn port(value: &Option<PortValue>, r: &mut Report) -> u16 {
    let number = match value {
        None => return DEFAULT_PORT,
        Some(PortValue::Number(n)) => *n,
        Some(PortValue::Text(text)) => match text.parse::<u64>() {
            Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                r.error(
                    "port",
                    format!("invalid port {}: expected 0-65535", quote(text)),
                );
                return DEFAULT_PORT;
            }
        },
    };
    u16::try_from(number).unwrap_or_else(|_| {
        r.error("port", format!("port {number} is out of range (0-65535)"));
        DEFAULT_PORT
    })
}

fn pin_workers(value: &Option<PinValue>, r: &mut Report) -> PinWorkers {
    match value {
        None => PinWorkers::Auto,
        Some(PinValue::Bool(true)) => PinWorkers::Always,
        Some(PinValue::Bool(false)) => PinWorkers::Never,
        Some(PinValue::Text(text)) if text == "auto" => PinWorkers::Auto,
        Some(PinValue::Text(text)) => {
            r.error(
                "pin_workers",
                format!(
                    "invalid value {}: expected auto, true or false",
                    quote(text)
                ),
            );
            PinWorkers::Auto
        }
    }
}

fn io_driver(value: &Option<String>, r: &mut Report) -> IoDriver {
    match value.as_deref() {
        None | Some("auto") => IoDriver::Auto,
        Some("uring") => IoDriver::Uring,
        Some("epoll") => IoDriver::Epoll,
        Some(other) => {
            r.error(
                "io_driver",
                format!(
                    "invalid value {}: expected auto, uring or epoll",
                    quote(other)
                ),
            );
            IoDriver::Auto
        }
    }
}

fn logging(file: &FileConfig, r: &mut Report) -> Logging {
    let f = &file.logging;
    let level = match f.level.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("info") => LogLevel::Info,
        Some("debug") => LogLevel::Debug,
        Some("warn") => LogLevel::Warn,
        Some("error") => LogLevel::Error,
        Some(_) => {
            r.warn(
                "logging.level",
                format!(
                    "unknown level {}; using info (expected debug, info, warn or error)",
                    quote(f.level.as_deref().unwrap_or_default())
                ),
            );
            LogLevel::Info
        }
    };
    let format = match f.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            r.error(
                "logging.format",
                format!("invalid value {}: expected text or json", quote(other)),
            );
            LogFormat::Text
        }
    };
    Logging {
        enabled: f.enabled.unwrap_or(DEFAULT_LOGGING_ENABLED),
        verbose: f.verbose.unwrap_or(DEFAULT_LOGGING_VERBOSE),
        level,
        format,
    }
}

/// A path Dito answers itself: starts with `/`, visible ASCII, no query or fragment.
fn endpoint_path(value: &Option<String>, default: &str, path: &str, r: &mut Report) -> String {
    let Some(text) = value.as_deref() else {
        return default.to_string();
    };
    let problem = if !text.starts_with('/') {
        Some("must start with /")
    } else if !text.chars().all(|c| c.is_ascii_graphic()) {
        Some("must contain only visible ASCII characters")
    } else if text.contains(['?', '#']) {
        Some("must not contain ? or #")
    } else {
        None
    };
    match problem {
        Some(problem) => {
            r.error(path, format!("{problem}, found {}", quote(text)));
            default.to_string()
        }
        None => text.to_string(),
    }
}

fn metrics(file: &FileConfig, r: &mut Report) -> Metrics {
    let f = &file.metrics;
    Metrics {
        enabled: f.enabled.unwrap_or(DEFAULT_METRICS_ENABLED),
        path: endpoint_path(&f.path, DEFAULT_METRICS_PATH, "metrics.path", r),
    }
}

fn health(file: &FileConfig, r: &mut Report) -> Health {
    let f = &file.health;
    Health {
        enabled: f.enabled.unwrap_or(DEFAULT_HEALTH_ENABLED),
        liveness_path: endpoint_path(
            &f.liveness_path,
            DEFAULT_LIVENESS_PATH,
            "health.liveness_path",
            r,
        ),
        readiness_path: endpoint_path(
            &f.readiness_path,
            DEFAULT_READINESS_PATH,
            "health.readiness_path",
            r,
        ),
    }
}

/// The paths Dito answers itself (enabled ones only), with their keys.
pub(crate) fn endpoints<'c>(
    health: &'c Health,
    metrics: &'c Metrics,
) -> Vec<(&'static str, &'c str)> {
    let mut out = Vec::new();
    if health.enabled {
        out.push(("health.liveness_path", health.liveness_path.as_str()));
        out.push(("health.readiness_path", health.readiness_path.as_str()));
    }
    if metrics.enabled {
        out.push(("metrics.path", metrics.path.as_str()));
    }
    out
}

/// Two enabled endpoints on one path would make one of them unreachable.
fn check_endpoint_collisions(health: &Health, metrics: &Metrics, r: &mut Report) {
    let list = endpoints(health, metrics);
    for (i, (key, value)) in list.iter().enumerate() {
        if let Some((first, _)) = list[..i].iter().find(|(_, v)| v == value) {
            r.error(key, format!("same path as {first} ({})", quote(value)));
        }
    }
}

fn request_limits(file: &FileConfig, r: &mut Report) -> RequestLimits {
    let f = &file.request_limits;
    let at_least_one = |value: Option<u64>, key: &str, default: usize, r: &mut Report| {
        let path = join("request_limits", key);
        match count(value, &path, r) {
            Some(0) => {
                r.error(&path, "must be at least 1");
                default
            }
            Some(n) => n,
            None => default,
        }
    };
    let timeout = |text: &Option<String>, key: &str, default: Duration, r: &mut Report| {
        duration(text, &join("request_limits", key), r).unwrap_or(default)
    };
    RequestLimits {
        max_request_line_bytes: at_least_one(
            f.max_request_line_bytes,
            "max_request_line_bytes",
            DEFAULT_MAX_REQUEST_LINE_BYTES,
            r,
        ),
        max_header_bytes: at_least_one(
            f.max_header_bytes,
            "max_header_bytes",
            DEFAULT_MAX_HEADER_BYTES,
            r,
        ),
        max_headers: at_least_one(f.max_headers, "max_headers", DEFAULT_MAX_HEADERS, r),
        header_read_timeout: timeout(
            &f.header_read_timeout,
            "header_read_timeout",
            DEFAULT_HEADER_READ_TIMEOUT,
            r,
        ),
        keep_alive_timeout: timeout(
            &f.keep_alive_timeout,
            "keep_alive_timeout",
            DEFAULT_KEEP_ALIVE_TIMEOUT,
            r,
        ),
        body_idle_timeout: timeout(
            &f.body_idle_timeout,
            "body_idle_timeout",
            DEFAULT_BODY_IDLE_TIMEOUT,
            r,
        ),
        max_request_body_size: f
            .max_request_body_size
            .unwrap_or(DEFAULT_MAX_REQUEST_BODY_SIZE),
        send_timeout: timeout(&f.send_timeout, "send_timeout", DEFAULT_SEND_TIMEOUT, r),
    }
}

fn plugins(f: &PluginsFile, r: &mut Report) -> Option<Plugins> {
    let directory = file_path(&f.directory, "plugins.directory", r);
    let public_key_path = file_path(&f.public_key_path, "plugins.public_key_path", r);
    let public_key_hash = f.public_key_hash.clone();
    if let Some(hash) = &public_key_hash {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            r.error(
                "plugins.public_key_hash",
                "must be 64 hexadecimal characters (the SHA-256 of the public key file)",
            );
        }
    }
    let directory = directory?;
    const WHY: &str = "required when plugins.directory is set";
    let public_key_path = require(public_key_path, "plugins.public_key_path", WHY, r);
    let public_key_hash = require(public_key_hash, "plugins.public_key_hash", WHY, r);
    // Verified and loaded here, so `dito check`, startup and reloads all refuse a config
    // whose plugins do not verify (spec §8: fail closed).
    let loaded = match (&public_key_path, &public_key_hash) {
        (Some(key), Some(hash)) if hash.len() == 64 => {
            let source = PluginSource {
                directory: &directory,
                public_key_path: key,
                public_key_hash: hash,
            };
            match load_all(&source) {
                Ok(loaded) => loaded,
                Err(problems) => {
                    for (at, problem) in problems {
                        r.error(at, problem);
                    }
                    Vec::new()
                }
            }
        }
        _ => Vec::new(),
    };
    Some(Plugins {
        directory,
        public_key_path,
        public_key_hash,
        loaded,
    })
}

/// Every name in a location's `middlewares` must be a loaded plugin.
fn check_middlewares(locations: &[Location], plugins: Option<&Plugins>, r: &mut Report) {
    for (i, loc) in locations.iter().enumerate() {
        for (j, name) in loc.middlewares.iter().enumerate() {
            let known = plugins.is_some_and(|p| p.loaded.iter().any(|l| &l.name == name));
            if known {
                continue;
            }
            let why = match plugins {
                None => "plugins.directory is not set".to_string(),
                Some(p) => format!(
                    "no such plugin in {} (expected {}/{name}/{name}.so)",
                    p.directory.display(),
                    p.directory.display()
                ),
            };
            r.error(
                &format!("locations[{i}].middlewares[{j}]"),
                format!("unknown middleware {}: {why}", quote(name)),
            );
        }
    }
}

fn tls(f: &TlsFile, r: &mut Report) -> Option<ListenerTls> {
    const WHY: &str = "required in a tls block";
    let cert_file = file_path(&f.cert_file, "tls.cert_file", r);
    let cert_file = require(cert_file, "tls.cert_file", WHY, r);
    let key_file = file_path(&f.key_file, "tls.key_file", r);
    let key_file = require(key_file, "tls.key_file", WHY, r);
    let client_ca_file = file_path(&f.client_ca_file, "tls.client_ca_file", r);
    let alpn: Vec<String> = match &f.alpn {
        None => DEFAULT_ALPN.iter().map(|s| s.to_string()).collect(),
        Some(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let item = item.as_ref()?;
                if DEFAULT_ALPN.contains(&item.as_str()) {
                    Some(item.clone())
                } else {
                    r.error(
                        &format!("tls.alpn[{i}]"),
                        format!(
                            "unsupported protocol {}: expected h2 or http/1.1",
                            quote(item)
                        ),
                    );
                    None
                }
            })
            .collect(),
    };
    // `Err` = reported; the block is then dropped after the identity is checked too.
    let client_ca = client_ca_file
        .as_ref()
        .map(|path| {
            tls_files::load_ca_file(path)
                .map(Arc::new)
                .map_err(|message| r.error("tls.client_ca_file", message))
        })
        .transpose();
    let (cert_file, key_file) = (cert_file?, key_file?);
    let identity = match tls_files::load_identity(&cert_file, &key_file) {
        Ok(identity) => Arc::new(identity),
        Err((which, message)) => {
            let key = match which {
                IdentityKey::CertFile => "tls.cert_file",
                IdentityKey::KeyFile => "tls.key_file",
            };
            r.error(key, message);
            return None;
        }
    };
    let client_ca = client_ca.ok()?;
    let settings = tls_files::listener_hash(&identity, client_ca.as_deref(), &alpn);
    Some(ListenerTls {
        cert_file,
        key_file,
        client_ca_file,
        alpn,
        identity,
        client_ca,
        settings,
    })
}
