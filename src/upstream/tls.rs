//! Upstream TLS on a worker: its own rustls client configs, the handshake under
//! `tls_handshake_timeout`, and every failure mapped to the spec §7 vocabulary.
//!
//! Configs are built from the snapshot's loaded material ([`UpstreamTls`]) when a worker
//! prepares a generation, one per content hash and per worker (design §1: a rustls config
//! holds its session cache behind a lock, so it is never shared between cores), and reused
//! across generations while the hash stays the same — a reload with unchanged files keeps the
//! config and its session cache. SNI and certificate verification use the target's host (an
//! IP-literal target is verified against the certificate's IP SAN); ALPN offers only
//! `http/1.1`, or only `h2` for a location with `force_http2` (a second config per content
//! hash). There is never a plaintext fallback. Worker thread only.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpStream;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection, RootCertStore};

use super::stream::{UpstreamReader, UpstreamWriter};
use crate::config::UpstreamTls;
use crate::error::UpstreamErrorKind;
use crate::fxhash::FxBuildHasher;
use crate::tls::io::{self as tls_io, HandshakeError};

/// What a worker needs to open TLS connections for one location.
#[derive(Debug, Clone)]
pub struct WorkerTls {
    pub config: Arc<ClientConfig>,
    /// SNI and the name the certificate must carry: the target's host.
    pub server_name: ServerName<'static>,
}

/// One worker's client configs by content hash and ALPN (`h2` or not), kept across
/// generations.
#[derive(Default)]
pub struct ClientConfigs {
    by_hash: RefCell<HashMap<(u64, bool), Arc<ClientConfig>, FxBuildHasher>>,
}

impl ClientConfigs {
    /// The HTTP/1.1 config for `tls`, built on first use.
    pub fn get_or_build(&self, tls: &UpstreamTls) -> Result<Arc<ClientConfig>, String> {
        self.get_or_build_for(tls, false)
    }

    /// The config for `tls` offering `h2` (`http2`) or `http/1.1` by ALPN.
    pub fn get_or_build_for(
        &self,
        tls: &UpstreamTls,
        http2: bool,
    ) -> Result<Arc<ClientConfig>, String> {
        let key = (tls.settings, http2);
        if let Some(config) = self.by_hash.borrow().get(&key) {
            return Ok(config.clone());
        }
        let mut config =
            build_client_config(tls).map_err(|e| format!("upstream TLS client config: {e}"))?;
        if http2 {
            config.alpn_protocols = vec![b"h2".to_vec()];
        }
        let config = Arc::new(config);
        self.by_hash.borrow_mut().insert(key, config.clone());
        Ok(config)
    }

    /// Forgets configs the running generation no longer uses (older generations' requests
    /// hold their own `Arc`s).
    pub fn retain(&self, used: impl Fn(u64) -> bool) {
        self.by_hash.borrow_mut().retain(|(hash, _), _| used(*hash));
    }

    pub fn len(&self) -> usize {
        self.by_hash.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A client config from loaded material, with the ring provider chosen explicitly (two
/// compiled-in providers make rustls' default builder panic).
pub fn build_client_config(tls: &UpstreamTls) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in &tls.roots.certs {
        roots.add(cert.clone())?;
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match &tls.identity {
        Some(id) => builder.with_client_auth_cert(id.chain.clone(), id.key.clone_key())?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.client_auth_cert_resolver =
        Arc::new(NoticeCertRequest(config.client_auth_cert_resolver));
    Ok(config)
}

thread_local! {
    /// Set when the server asked this thread's current handshake step for a certificate.
    static CERT_REQUESTED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `step` (one `process_new_packets`) and tells whether the server requested a client
/// certificate during it. rustls asks the resolver synchronously inside that call, on this
/// thread, so a thread-local flag belongs to exactly this connection.
pub(crate) fn noticing_cert_request<T>(step: impl FnOnce() -> T) -> (T, bool) {
    CERT_REQUESTED.with(|f| f.set(false));
    let out = step();
    (out, CERT_REQUESTED.with(Cell::take))
}

/// Wraps the configured resolver to notice a CertificateRequest, so an alert that follows can
/// be told apart: a refused (or missing) client certificate, or anything else.
#[derive(Debug)]
struct NoticeCertRequest(Arc<dyn ResolvesClientCert>);

impl ResolvesClientCert for NoticeCertRequest {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        CERT_REQUESTED.with(|f| f.set(true));
        self.0.resolve(root_hint_subjects, sigschemes)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.0.only_raw_public_keys()
    }

    fn has_certs(&self) -> bool {
        self.0.has_certs()
    }
}

/// The TLS handshake on a connected socket, bounded by `timeout` (0 = none). Failures are
/// logged with rustls's detail (never sent to the client) and classified.
pub async fn handshake(
    tcp: TcpStream,
    tls: &WorkerTls,
    timeout: Duration,
) -> Result<(UpstreamReader, UpstreamWriter), UpstreamErrorKind> {
    let session =
        ClientConnection::new(tls.config.clone(), tls.server_name.clone()).map_err(|e| {
            fail_log(
                &tls.server_name,
                &e.to_string(),
                UpstreamErrorKind::TlsOther,
            );
            UpstreamErrorKind::TlsOther
        })?;
    let fd = tcp.as_raw_fd();
    let work = tls_io::handshake(tcp, session);
    let done = if timeout.is_zero() {
        Ok(work.await)
    } else {
        monoio::time::timeout(timeout, work).await
    };
    match done {
        Ok(Ok((rd, wr))) => Ok((
            UpstreamReader::Tls(Box::new(rd), fd),
            UpstreamWriter::Tls(Box::new(wr)),
        )),
        Ok(Err(HandshakeError::Tls {
            error,
            cert_requested,
        })) => {
            let kind = classify(&error, cert_requested);
            fail_log(&tls.server_name, &error.to_string(), kind);
            Err(kind)
        }
        Ok(Err(HandshakeError::Io(e))) => {
            fail_log(
                &tls.server_name,
                &e.to_string(),
                UpstreamErrorKind::TlsOther,
            );
            Err(UpstreamErrorKind::TlsOther)
        }
        Err(_) => {
            fail_log(
                &tls.server_name,
                "handshake timed out",
                UpstreamErrorKind::TlsOther,
            );
            Err(UpstreamErrorKind::TlsOther)
        }
    }
}

fn fail_log(server: &ServerName<'_>, detail: &str, kind: UpstreamErrorKind) {
    tracing::warn!(
        upstream = %server.to_str(),
        kind = kind.as_str(),
        error = detail,
        "upstream TLS handshake failed"
    );
}

/// The vocabulary kind of a rustls error. `cert_requested`: the server sent a
/// CertificateRequest in this handshake, so a certificate alert is about ours (missing or
/// refused).
pub fn classify(e: &rustls::Error, cert_requested: bool) -> UpstreamErrorKind {
    use AlertDescription as A;
    use CertificateError as C;
    use UpstreamErrorKind as K;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => K::TlsUnknownCa,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => K::TlsExpired,
            C::NotValidForName | C::NotValidForNameContext { .. } => K::TlsNameMismatch,
            _ => K::TlsOther,
        },
        rustls::Error::AlertReceived(A::CertificateRequired) => K::TlsClientCertRequired,
        rustls::Error::AlertReceived(
            A::HandshakeFailure
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied,
        ) if cert_requested => K::TlsClientCertRequired,
        _ => K::TlsOther,
    }
}

/// The kind of a failed read or write on an established session, when it is a TLS error
/// (in TLS 1.3 a refused client certificate arrives as an alert on the first read).
pub fn classify_io(e: &io::Error, cert_requested: bool) -> Option<UpstreamErrorKind> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(classify(tls, cert_requested))
}

#[cfg(test)]
mod tests;
