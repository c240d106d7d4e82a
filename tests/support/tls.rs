//! Test certificates for the upstream TLS tests (spec §5), made with `rcgen` and written as PEM
//! files into a fresh directory: a test CA, server certificates signed by it (good, expired,
//! for the wrong name), a second unrelated CA, and two client certificates with distinct CNs.
//!
//! Every rustls config built by the tests names the `ring` provider explicitly
//! ([`provider`]): with two providers compiled in, rustls' default builder panics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The CN of the first client certificate.
pub const CLIENT_ONE_CN: &str = "client-one";
/// The CN of the second client certificate.
pub const CLIENT_TWO_CN: &str = "client-two";
/// The only name the wrong-name server certificate is valid for.
pub const WRONG_NAME: &str = "wrong.example";

/// The crypto provider every test config uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pair {
    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        certs(&self.cert)
    }

    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_file(&self.key)
            .unwrap_or_else(|e| panic!("{}: {e}", self.key.display()))
    }

    /// The certificate's PEM text.
    pub fn cert_pem(&self) -> String {
        std::fs::read_to_string(&self.cert).unwrap()
    }

    /// The key's PEM text.
    pub fn key_pem(&self) -> String {
        std::fs::read_to_string(&self.key).unwrap()
    }
}

/// One test's certificates; the directory is removed when this drops.
#[derive(Debug)]
pub struct Pki {
    pub dir: PathBuf,
    /// The test CA (PEM certificate).
    pub ca: PathBuf,
    /// A CA that signed nothing the tests serve.
    pub other_ca: PathBuf,
    /// For `localhost` and `127.0.0.1`, signed by the test CA.
    pub server: Pair,
    /// Like `server`, but valid only in 2000.
    pub expired: Pair,
    /// Signed by the test CA, valid only for [`WRONG_NAME`].
    pub wrong_name: Pair,
    /// Client certificates signed by the test CA, CN [`CLIENT_ONE_CN`] / [`CLIENT_TWO_CN`].
    pub client_one: Pair,
    pub client_two: Pair,
    /// An empty file (an empty CA bundle).
    pub empty: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = super::temp_dir();
        let (ca_pem, ca) = make_ca("Dito Test CA");
        let (other_pem, _other) = make_ca("Unrelated Test CA");
        let write = |name: &str, text: &str| super::write_file(&dir, name, text);
        let leaf = |name: &str, params: CertificateParams| -> Pair {
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            Pair {
                cert: write(&format!("{name}.pem"), &cert.pem()),
                key: write(&format!("{name}.key"), &key.serialize_pem()),
            }
        };
        let server_names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let server = leaf(
            "server",
            server_params("dito-test-server", server_names.clone()),
        );
        let mut old = server_params("dito-test-expired", server_names);
        old.not_before = date_time_ymd(2000, 1, 1);
        old.not_after = date_time_ymd(2001, 1, 1);
        let expired = leaf("expired", old);
        let wrong_name = leaf(
            "wrong-name",
            server_params("dito-test-wrong-name", vec![WRONG_NAME.to_owned()]),
        );
        let client_one = leaf("client-one", client_params(CLIENT_ONE_CN));
        let client_two = leaf("client-two", client_params(CLIENT_TWO_CN));
        Pki {
            ca: write("ca.pem", &ca_pem),
            other_ca: write("other-ca.pem", &other_pem),
            empty: write("empty.pem", ""),
            server,
            expired,
            wrong_name,
            client_one,
            client_two,
            dir,
        }
    }

    /// The test CA as a rustls root store.
    pub fn roots(&self) -> rustls::RootCertStore {
        roots_from(&self.ca)
    }

    /// Writes `text` as `name` in this directory (for files a test rewrites).
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        super::write_file(&self.dir, name, text)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// A self-signed CA: its PEM certificate and the issuer that signs with it.
fn make_ca(cn: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn server_params(cn: &str, names: Vec<String>) -> CertificateParams {
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name = dn(cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

fn client_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.distinguished_name = dn(cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// Every certificate in a PEM file.
pub fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|c| c.unwrap())
        .collect()
}

/// A root store with every certificate of a PEM file.
pub fn roots_from(path: &Path) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(path) {
        roots.add(c).unwrap();
    }
    roots
}

/// The subject CN of a DER certificate (a minimal DER walk: Certificate → tbsCertificate →
/// subject → the attribute with OID 2.5.4.3).
pub fn subject_cn(der: &[u8]) -> Option<String> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    // [0] version (optional), serial, signature algorithm, issuer, validity, subject.
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (_, mut rdns, _) = tlv(rest)?;
    while !rdns.is_empty() {
        let (_, set, after) = tlv(rdns)?;
        rdns = after;
        let (_, attr, _) = tlv(set)?;
        let (tag, oid, value) = tlv(attr)?;
        if tag == 0x06 && oid == [0x55, 0x04, 0x03] {
            let (_, text, _) = tlv(value)?;
            return Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    None
}

/// One DER element: (tag, contents, what follows).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, start) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = b
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        (len, 2 + n)
    };
    let end = start.checked_add(len)?;
    Some((tag, b.get(start..end)?, b.get(end..)?))
}
