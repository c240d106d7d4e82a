//! TLS material: upstream `ca_file`, `cert_file` + `key_file` and the system roots (spec §5),
//! and the listener's `tls` files (spec §2), which reuse the same readers.
//!
//! Runs on the control thread at every load and reload (SIGHUP re-reads every file, spec §9):
//! each file is read once, parsed from PEM into DER, and checked — a CA bundle must hold at
//! least one usable certificate, a client chain must be non-empty and match its private key.
//! Problems are one-line messages; the callers record them at the key path that named the
//! file. The result is plain bytes ([`UpstreamTls`]) shared read-only through the snapshot;
//! each worker builds its own rustls `ClientConfig` from it (design §1), keyed by
//! [`UpstreamTls::settings`], a hash of all the content, which also keys the pools.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// Bumped whenever the way a `ClientConfig` is built from the material changes (server-name
/// policy, ALPN), so equal files never map to a differently-built config under one hash.
const SETTINGS_POLICY: &str =
    "dito-upstream-tls/1 verify=target-host sni=target-host alpn=http/1.1";

/// Trust anchors: the certificates of one `ca_file`, or of the system store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertBundle {
    /// Each one accepted by rustls as a trust anchor; never empty.
    pub certs: Vec<CertificateDer<'static>>,
}

/// A client certificate chain (leaf first) and its private key, checked to match.
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl PartialEq for ClientIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain && self.key.secret_der() == other.key.secret_der()
    }
}

impl Eq for ClientIdentity {}

impl fmt::Debug for ClientIdentity {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A TLS location's upstream TLS settings, as loaded: what a worker builds its client config
/// from. Only `https://` and `wss://` targets have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// `ca_file`'s certificates, or the system roots.
    pub roots: Arc<CertBundle>,
    /// `cert_file` + `key_file`, when set.
    pub identity: Option<Arc<ClientIdentity>>,
    /// A hash of everything above plus the build policy: equal content, equal value. Pools and
    /// the per-worker client configs are keyed by it, so a reload with unchanged files keeps
    /// both, and two locations with different client certificates never share a connection.
    pub settings: u64,
}

impl UpstreamTls {
    pub fn new(roots: Arc<CertBundle>, identity: Option<Arc<ClientIdentity>>) -> Self {
        let settings = content_hash(&roots, identity.as_deref());
        UpstreamTls {
            roots,
            identity,
            settings,
        }
    }
}

/// The 64-bit content hash behind [`UpstreamTls::settings`]; never 0 (0 = plain HTTP).
fn content_hash(roots: &CertBundle, identity: Option<&ClientIdentity>) -> u64 {
    let mut h = DefaultHasher::new();
    SETTINGS_POLICY.hash(&mut h);
    roots.certs.len().hash(&mut h);
    for cert in &roots.certs {
        cert.as_ref().hash(&mut h);
    }
    match identity {
        None => 0u8.hash(&mut h),
        Some(id) => {
            1u8.hash(&mut h);
            id.chain.len().hash(&mut h);
            for cert in &id.chain {
                cert.as_ref().hash(&mut h);
            }
            id.key.secret_der().hash(&mut h);
        }
    }
    h.finish().max(1)
}

/// The content hash of a listener's `tls` material (server identity, client CAs) and its ALPN
/// list; never 0.
pub(crate) fn listener_hash(
    identity: &ClientIdentity,
    client_ca: Option<&CertBundle>,
    alpn: &[String],
) -> u64 {
    let mut h = DefaultHasher::new();
    "dito-listener-tls/2".hash(&mut h);
    alpn.hash(&mut h);
    identity.chain.hash(&mut h);
    identity.key.secret_der().hash(&mut h);
    client_ca.map(|b| &b.certs).hash(&mut h);
    h.finish().max(1)
}

/// Reads a `ca_file`: a PEM bundle with at least one certificate rustls accepts as a root.
pub(crate) fn load_ca_file(path: &Path) -> Result<CertBundle, String> {
    let bytes = read(path)?;
    let certs = certificates(&bytes, path)?;
    if certs.is_empty() {
        return Err(format!(
            "no certificates found in {} (an empty CA bundle is an error)",
            path.display()
        ));
    }
    let mut store = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        if let Err(e) = store.add(cert.clone()) {
            return Err(format!(
                "certificate {} in {} is not a usable CA certificate: {e}",
                i + 1,
                path.display()
            ));
        }
    }
    Ok(CertBundle { certs })
}

/// Which key of a `cert_file` + `key_file` pair a problem belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdentityKey {
    CertFile,
    KeyFile,
}

/// Reads a client certificate chain and its key and checks that they belong together.
pub(crate) fn load_identity(
    cert_path: &Path,
    key_path: &Path,
) -> Result<ClientIdentity, (IdentityKey, String)> {
    let cert_err = |m: String| (IdentityKey::CertFile, m);
    let key_err = |m: String| (IdentityKey::KeyFile, m);
    let cert_bytes = read(cert_path).map_err(cert_err)?;
    let chain = certificates(&cert_bytes, cert_path).map_err(cert_err)?;
    if chain.is_empty() {
        return Err(cert_err(format!(
            "no certificates found in {}",
            cert_path.display()
        )));
    }
    let key_bytes = read(key_path).map_err(key_err)?;
    let key = match PrivateKeyDer::from_pem_slice(&key_bytes) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(key_err(format!(
                "no private key found in {} (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY section)",
                key_path.display()
            )))
        }
        Err(e) => {
            return Err(key_err(format!(
                "{} is not a valid PEM file: {}",
                key_path.display(),
                pem_error(&e)
            )))
        }
    };
    let provider = rustls::crypto::ring::default_provider();
    match CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider) {
        Ok(_) => Ok(ClientIdentity { chain, key }),
        Err(rustls::Error::InconsistentKeys(_)) => Err(key_err(format!(
            "the private key in {} does not match the certificate in {}",
            key_path.display(),
            cert_path.display()
        ))),
        Err(e) => Err(key_err(format!(
            "unusable private key in {}: {e}",
            key_path.display()
        ))),
    }
}

/// The system trust store, loaded at most once per config load and only when a TLS location
/// has no `ca_file`.
pub(crate) struct SystemRoots {
    loader: fn() -> Vec<CertificateDer<'static>>,
    loaded: Option<Option<Arc<CertBundle>>>,
}

impl Default for SystemRoots {
    fn default() -> Self {
        SystemRoots::with_loader(native_roots)
    }
}

impl fmt::Debug for SystemRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemRoots")
            .field("loaded", &self.loaded.as_ref().map(Option::is_some))
            .finish()
    }
}

impl SystemRoots {
    /// With another source of certificates (tests).
    pub(crate) fn with_loader(loader: fn() -> Vec<CertificateDer<'static>>) -> Self {
        SystemRoots {
            loader,
            loaded: None,
        }
    }

    /// The usable system roots, or `None` when there are none.
    pub(crate) fn get(&mut self) -> Option<Arc<CertBundle>> {
        let loader = self.loader;
        self.loaded
            .get_or_insert_with(|| {
                let mut store = RootCertStore::empty();
                let certs: Vec<_> = loader()
                    .into_iter()
                    .filter(|c| store.add(c.clone()).is_ok())
                    .collect();
                (!certs.is_empty()).then(|| Arc::new(CertBundle { certs }))
            })
            .clone()
    }
}

/// The platform store (honours `SSL_CERT_FILE` / `SSL_CERT_DIR`); unreadable entries are
/// skipped, as every TLS client does.
fn native_roots() -> Vec<CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for e in found.errors.iter().take(3) {
        tracing::debug!(error = %e, "skipped part of the system CA store");
    }
    found.certs
}

/// Largest PEM file read: a system CA bundle is ~0.2 MiB; anything far larger is a mistake
/// (`ca_file: /dev/zero`, a log file) that must not fill the control thread's memory.
const MAX_PEM_FILE_BYTES: u64 = 16 * 1024 * 1024;

fn read(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_PEM_FILE_BYTES {
        return Err(format!(
            "{} is larger than {} MiB: not a PEM file",
            path.display(),
            MAX_PEM_FILE_BYTES >> 20
        ));
    }
    Ok(bytes)
}

/// Every CERTIFICATE section of a PEM file (other sections are skipped).
fn certificates(bytes: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "{} is not a valid PEM file: {}",
                path.display(),
                pem_error(&e)
            )
        })
}

/// PEM errors without raw file bytes in the message.
fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".to_string(),
        pem::Error::IllegalSectionStart { .. } => "malformed BEGIN line".to_string(),
        pem::Error::Base64Decode(_) => "invalid base64 inside a section".to_string(),
        pem::Error::Io(e) => e.to_string(),
        pem::Error::NoItemsFound => "no items found".to_string(),
        other => format!("{other:?}"),
    }
}
