//! `transport.http` (spec §5): the typed upstream transport and the per-location merge.
//!
//! Each block — the global one and every location's — is first validated on its own into
//! [`TransportOverrides`] (only the keys it sets, errors at its own key paths). A location's
//! effective transport is its overrides laid over the global ones, then the defaults: a
//! location that sets `dial_timeout` keeps the global `response_header_timeout`. (The Go
//! version replaced the whole block and silently lost timeouts; this is a deliberate fix.)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::defaults::*;
use super::file::HttpTransportFile;
use super::tls_files::{self, CertBundle, ClientIdentity, IdentityKey};
use super::validate::{count, duration, file_path};
use super::{join, Report};

/// Settings for connections to upstreams (one location's effective view).
///
/// Zero durations are kept as `Duration::ZERO` and mean "no timeout" (as in Go).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpTransport {
    pub dial_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub response_header_timeout: Duration,
    /// Longest wait for the next bytes of a response body (spec §6).
    pub read_timeout: Duration,
    pub expect_continue_timeout: Duration,
    pub idle_conn_timeout: Duration,
    /// TCP keepalive interval.
    pub keep_alive: Duration,
    pub max_idle_conns: usize,
    pub max_idle_conns_per_host: usize,
    /// 0 = unlimited.
    pub max_conns_per_host: usize,
    /// Accepted for compatibility; no effect.
    pub disable_compression: bool,
    pub force_http2: bool,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

impl Default for HttpTransport {
    fn default() -> Self {
        TransportOverrides::default().resolve()
    }
}

/// The keys one `transport.http` block sets, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TransportOverrides {
    dial_timeout: Option<Duration>,
    tls_handshake_timeout: Option<Duration>,
    response_header_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    expect_continue_timeout: Option<Duration>,
    idle_conn_timeout: Option<Duration>,
    keep_alive: Option<Duration>,
    max_idle_conns: Option<usize>,
    max_idle_conns_per_host: Option<usize>,
    max_conns_per_host: Option<usize>,
    disable_compression: Option<bool>,
    force_http2: Option<bool>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    /// What `ca_file` holds (read when the block is validated).
    ca: Option<Material<CertBundle>>,
    /// What `cert_file` + `key_file` hold: they are set, loaded and overridden together.
    identity: Option<Material<ClientIdentity>>,
}

/// A TLS file read while validating: its content, or a failure already reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Material<T> {
    Loaded(Arc<T>),
    Failed,
}

impl TransportOverrides {
    /// Validates one block; `path` is the block's own path (`transport.http`,
    /// `locations[0].transport.http`).
    pub(crate) fn validate(file: &HttpTransportFile, path: &str, r: &mut Report) -> Self {
        let at = |key: &str| join(path, key);
        let tls_file =
            |value: &Option<String>, key: &str, r: &mut Report| file_path(value, &at(key), r);
        let mut out = TransportOverrides {
            dial_timeout: duration(&file.dial_timeout, &at("dial_timeout"), r),
            tls_handshake_timeout: duration(
                &file.tls_handshake_timeout,
                &at("tls_handshake_timeout"),
                r,
            ),
            response_header_timeout: duration(
                &file.response_header_timeout,
                &at("response_header_timeout"),
                r,
            ),
            read_timeout: duration(&file.read_timeout, &at("read_timeout"), r),
            expect_continue_timeout: duration(
                &file.expect_continue_timeout,
                &at("expect_continue_timeout"),
                r,
            ),
            idle_conn_timeout: duration(&file.idle_conn_timeout, &at("idle_conn_timeout"), r),
            keep_alive: duration(&file.keep_alive, &at("keep_alive"), r),
            max_idle_conns: count(file.max_idle_conns, &at("max_idle_conns"), r),
            max_idle_conns_per_host: count(
                file.max_idle_conns_per_host,
                &at("max_idle_conns_per_host"),
                r,
            ),
            max_conns_per_host: count(file.max_conns_per_host, &at("max_conns_per_host"), r),
            disable_compression: file.disable_compression,
            force_http2: file.force_http2,
            cert_file: tls_file(&file.cert_file, "cert_file", r),
            key_file: tls_file(&file.key_file, "key_file", r),
            ca_file: tls_file(&file.ca_file, "ca_file", r),
            ca: None,
            identity: None,
        };
        if out.disable_compression == Some(true) {
            r.warn(
                &at("disable_compression"),
                "has no effect: Dito never changes Accept-Encoding or decodes bodies",
            );
        }
        match (&file.cert_file, &file.key_file) {
            (Some(_), None) => r.error(&at("key_file"), "required when cert_file is set"),
            (None, Some(_)) => r.error(&at("cert_file"), "required when key_file is set"),
            _ => {}
        }
        out.load_tls_files(path, r);
        out
    }

    /// Reads and checks the TLS files this block names; problems go to their keys.
    fn load_tls_files(&mut self, path: &str, r: &mut Report) {
        if let Some(ca_file) = &self.ca_file {
            self.ca = Some(match tls_files::load_ca_file(ca_file) {
                Ok(bundle) => Material::Loaded(Arc::new(bundle)),
                Err(message) => {
                    r.error(&join(path, "ca_file"), message);
                    Material::Failed
                }
            });
        }
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            self.identity = Some(match tls_files::load_identity(cert, key) {
                Ok(identity) => Material::Loaded(Arc::new(identity)),
                Err((which, message)) => {
                    let key = match which {
                        IdentityKey::CertFile => "cert_file",
                        IdentityKey::KeyFile => "key_file",
                    };
                    r.error(&join(path, key), message);
                    Material::Failed
                }
            });
        }
    }

    /// The loaded `ca_file` (`Some(Failed)` after a reported error; `None` = not set).
    pub(crate) fn ca(&self) -> Option<&Material<CertBundle>> {
        self.ca.as_ref()
    }

    /// The loaded client identity (`Some(Failed)` after a reported error; `None` = not set).
    pub(crate) fn identity(&self) -> Option<&Material<ClientIdentity>> {
        self.identity.as_ref()
    }

    /// `self`'s keys where set, `base`'s otherwise.
    pub(crate) fn over(&self, base: &TransportOverrides) -> TransportOverrides {
        fn pick<T: Clone>(top: &Option<T>, base: &Option<T>) -> Option<T> {
            top.clone().or_else(|| base.clone())
        }
        TransportOverrides {
            dial_timeout: pick(&self.dial_timeout, &base.dial_timeout),
            tls_handshake_timeout: pick(&self.tls_handshake_timeout, &base.tls_handshake_timeout),
            response_header_timeout: pick(
                &self.response_header_timeout,
                &base.response_header_timeout,
            ),
            read_timeout: pick(&self.read_timeout, &base.read_timeout),
            expect_continue_timeout: pick(
                &self.expect_continue_timeout,
                &base.expect_continue_timeout,
            ),
            idle_conn_timeout: pick(&self.idle_conn_timeout, &base.idle_conn_timeout),
            keep_alive: pick(&self.keep_alive, &base.keep_alive),
            max_idle_conns: pick(&self.max_idle_conns, &base.max_idle_conns),
            max_idle_conns_per_host: pick(
                &self.max_idle_conns_per_host,
                &base.max_idle_conns_per_host,
            ),
            max_conns_per_host: pick(&self.max_conns_per_host, &base.max_conns_per_host),
            disable_compression: pick(&self.disable_compression, &base.disable_compression),
            force_http2: pick(&self.force_http2, &base.force_http2),
            cert_file: pick(&self.cert_file, &base.cert_file),
            key_file: pick(&self.key_file, &base.key_file),
            ca_file: pick(&self.ca_file, &base.ca_file),
            ca: pick(&self.ca, &base.ca),
            identity: pick(&self.identity, &base.identity),
        }
    }

    /// Fills every unset key with its default.
    pub(crate) fn resolve(&self) -> HttpTransport {
        HttpTransport {
            dial_timeout: self.dial_timeout.unwrap_or(DEFAULT_DIAL_TIMEOUT),
            tls_handshake_timeout: self
                .tls_handshake_timeout
                .unwrap_or(DEFAULT_TLS_HANDSHAKE_TIMEOUT),
            response_header_timeout: self
                .response_header_timeout
                .unwrap_or(DEFAULT_RESPONSE_HEADER_TIMEOUT),
            read_timeout: self.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT),
            expect_continue_timeout: self
                .expect_continue_timeout
                .unwrap_or(DEFAULT_EXPECT_CONTINUE_TIMEOUT),
            idle_conn_timeout: self.idle_conn_timeout.unwrap_or(DEFAULT_IDLE_CONN_TIMEOUT),
            keep_alive: self.keep_alive.unwrap_or(DEFAULT_TCP_KEEP_ALIVE),
            max_idle_conns: self.max_idle_conns.unwrap_or(DEFAULT_MAX_IDLE_CONNS),
            max_idle_conns_per_host: self
                .max_idle_conns_per_host
                .unwrap_or(DEFAULT_MAX_IDLE_CONNS_PER_HOST),
            max_conns_per_host: self
                .max_conns_per_host
                .unwrap_or(DEFAULT_MAX_CONNS_PER_HOST),
            disable_compression: self
                .disable_compression
                .unwrap_or(DEFAULT_DISABLE_COMPRESSION),
            force_http2: self.force_http2.unwrap_or(DEFAULT_FORCE_HTTP2),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            ca_file: self.ca_file.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn block(f: impl FnOnce(&mut HttpTransportFile)) -> HttpTransportFile {
        let mut file = HttpTransportFile::default();
        f(&mut file);
        file
    }

    #[test]
    fn defaults() {
        let t = HttpTransport::default();
        assert_eq!(t.dial_timeout, Duration::from_secs(5));
        assert_eq!(t.tls_handshake_timeout, Duration::from_secs(5));
        assert_eq!(t.response_header_timeout, Duration::from_secs(60));
        assert_eq!(t.read_timeout, Duration::from_secs(60));
        assert_eq!(t.expect_continue_timeout, Duration::from_secs(1));
        assert_eq!(t.idle_conn_timeout, Duration::from_secs(90));
        assert_eq!(t.keep_alive, Duration::from_secs(30));
        assert_eq!(t.max_idle_conns, 1000);
        assert_eq!(t.max_idle_conns_per_host, 200);
        assert_eq!(t.max_conns_per_host, 0);
        assert!(!t.disable_compression);
        assert!(!t.force_http2);
        assert_eq!((t.cert_file, t.key_file, t.ca_file), (None, None, None));
    }

    #[test]
    fn a_location_overrides_only_the_keys_it_sets() {
        let mut r = Report::default();
        let global = TransportOverrides::validate(
            &block(|f| {
                f.dial_timeout = Some("2s".into());
                f.response_header_timeout = Some("7s".into());
                f.read_timeout = Some("3s".into());
                f.max_idle_conns = Some(10);
            }),
            "transport.http",
            &mut r,
        );
        let local = TransportOverrides::validate(
            &block(|f| {
                f.dial_timeout = Some("1s".into());
                f.max_conns_per_host = Some(4);
                f.read_timeout = Some("500ms".into());
            }),
            "locations[0].transport.http",
            &mut r,
        );
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let merged = local.over(&global).resolve();
        assert_eq!(merged.dial_timeout, Duration::from_secs(1));
        assert_eq!(merged.response_header_timeout, Duration::from_secs(7));
        assert_eq!(merged.read_timeout, Duration::from_millis(500));
        assert_eq!(global.resolve().read_timeout, Duration::from_secs(3));
        assert_eq!(merged.max_idle_conns, 10);
        assert_eq!(merged.max_conns_per_host, 4);
        assert_eq!(merged.idle_conn_timeout, DEFAULT_IDLE_CONN_TIMEOUT);
        assert_eq!(global.resolve().max_conns_per_host, 0);
    }

    #[test]
    fn read_timeout_is_validated_like_the_other_durations() {
        let mut r = Report::default();
        TransportOverrides::validate(
            &block(|f| f.read_timeout = Some("5".into())),
            "locations[1].transport.http",
            &mut r,
        );
        TransportOverrides::validate(
            &block(|f| f.read_timeout = Some("-1s".into())),
            "transport.http",
            &mut r,
        );
        let errors: Vec<_> = r.errors.iter().map(|d| d.render("f")).collect();
        assert_eq!(
            errors,
            [
                "f: locations[1].transport.http.read_timeout: missing unit in duration \"5\"; write it with a unit such as \"5s\"",
                "f: transport.http.read_timeout: negative duration \"-1s\" is not allowed",
            ]
        );
        let mut r = Report::default();
        let zero = TransportOverrides::validate(
            &block(|f| f.read_timeout = Some("0s".into())),
            "transport.http",
            &mut r,
        );
        assert!(r.errors.is_empty());
        assert_eq!(zero.resolve().read_timeout, Duration::ZERO);
    }

    #[test]
    fn cert_and_key_go_together() {
        let mut r = Report::default();
        TransportOverrides::validate(
            &block(|f| f.cert_file = Some("c.pem".into())),
            "transport.http",
            &mut r,
        );
        let errors: Vec<_> = r.errors.iter().map(|d| d.render("f")).collect();
        // The lone file is not read: the pair is loaded only when both keys are set.
        assert_eq!(
            errors,
            ["f: transport.http.key_file: required when cert_file is set"]
        );
    }
}
