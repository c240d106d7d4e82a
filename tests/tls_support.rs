//! Checks of the upstream TLS test fixtures themselves (`support::tls`,
//! `support::https_upstream`) with a plain rustls client, so that a failing `upstream_tls`
//! test points at Dito, not at a certificate or server the tests got wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection, StreamOwned};

use support::client::Resp;
use support::https_upstream::{HttpsUpstream, Opts, Versions};
use support::tls::{
    provider, roots_from, subject_cn, Pair, Pki, CLIENT_ONE_CN, CLIENT_TWO_CN, WRONG_NAME,
};

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn client_config(roots: rustls::RootCertStore, cert: Option<&Pair>, tls12: bool) -> ClientConfig {
    let versions: &[&'static rustls::SupportedProtocolVersion] = if tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let b = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    match cert {
        Some(p) => b
            .with_client_auth_cert(p.cert_chain(), p.private_key())
            .unwrap(),
        None => b.with_no_client_auth(),
    }
}

fn connect(up: &HttpsUpstream, name: &str, config: ClientConfig) -> Tls {
    let tcp = TcpStream::connect(up.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    StreamOwned::new(conn, tcp)
}

/// Completes the handshake; the rustls error if it fails.
fn handshake(s: &mut Tls) -> Result<(), rustls::Error> {
    while s.conn.is_handshaking() {
        if let Err(e) = s.conn.complete_io(&mut s.sock) {
            let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
            return Err(inner
                .cloned()
                .unwrap_or_else(|| panic!("io error in the handshake: {e}")));
        }
    }
    Ok(())
}

/// `GET path` on the TLS stream; the response, or the rustls error of the exchange.
fn get(s: &mut Tls, path: &str) -> Result<Resp, rustls::Error> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    let rustls_err = |e: std::io::Error| {
        e.get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .cloned()
            .unwrap_or_else(|| panic!("io error: {e}"))
    };
    s.write_all(req.as_bytes()).map_err(rustls_err)?;
    s.flush().map_err(rustls_err)?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no complete response");
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = r.parse(&buf) {
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|h| {
                    let v = String::from_utf8_lossy(h.value).into_owned();
                    (h.name.to_owned(), v)
                })
                .collect();
            let mut resp = Resp {
                status: r.code.unwrap(),
                reason: r.reason.unwrap_or("").to_owned(),
                headers,
                body: Vec::new(),
            };
            let len: usize = resp.header("content-length").unwrap().parse().unwrap();
            while buf.len() < n + len {
                let k = s.read(&mut tmp).map_err(rustls_err)?;
                assert!(k > 0, "body truncated");
                buf.extend_from_slice(&tmp[..k]);
            }
            resp.body = buf[n..n + len].to_vec();
            return Ok(resp);
        }
        let k = s.read(&mut tmp).map_err(rustls_err)?;
        assert!(
            k > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&tmp[..k]);
    }
}

#[test]
fn certificates_carry_the_expected_names() {
    let pki = Pki::new();
    assert_eq!(
        subject_cn(&pki.client_one.cert_chain()[0]).as_deref(),
        Some(CLIENT_ONE_CN)
    );
    assert_eq!(
        subject_cn(&pki.client_two.cert_chain()[0]).as_deref(),
        Some(CLIENT_TWO_CN)
    );
    assert_eq!(
        subject_cn(&pki.server.cert_chain()[0]).as_deref(),
        Some("dito-test-server")
    );
    assert_eq!(std::fs::read(&pki.empty).unwrap(), b"");
    assert_ne!(pki.client_one.cert_pem(), pki.client_two.cert_pem());
    assert_ne!(pki.client_one.key_pem(), pki.client_two.key_pem());
}

#[test]
fn keep_alive_reports_connection_version_sni_and_no_client_cert() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki));
    let mut s = connect(&up, "localhost", client_config(pki.roots(), None, false));
    for path in ["/a", "/b", "/c"] {
        let r = get(&mut s, path).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-conn-id"), Some("1"));
        assert_eq!(r.header("x-client-cert-cn"), Some("none"));
        assert_eq!(r.header("x-tls-version"), Some("TLSv1.3"));
        assert_eq!(r.header("x-sni"), Some("localhost"));
        assert_eq!(r.header("x-target"), Some(path));
        assert_eq!(r.body_str(), format!("hello over tls: {path}\n"));
    }
    // An IP address is verified against the certificate's IP SAN and sends no SNI.
    let mut s2 = connect(&up, "127.0.0.1", client_config(pki.roots(), None, false));
    let r = get(&mut s2, "/d").unwrap();
    assert_eq!(r.header("x-conn-id"), Some("2"));
    assert_eq!(r.header("x-sni"), Some("none"));
    assert_eq!((up.accepted(), up.handshakes(), up.seen().len()), (2, 2, 4));
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn tls12_only_server_negotiates_tls12() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).versions(Versions::Tls12Only));
    let mut s = connect(&up, "localhost", client_config(pki.roots(), None, false));
    let r = get(&mut s, "/").unwrap();
    assert_eq!(r.header("x-tls-version"), Some("TLSv1.2"));
}

#[test]
fn bad_server_certificates_fail_verification_as_intended() {
    let pki = Pki::new();
    let cases = [
        (&pki.server, roots_from(&pki.other_ca), "127.0.0.1"),
        (&pki.expired, pki.roots(), "127.0.0.1"),
        (&pki.wrong_name, pki.roots(), "localhost"),
    ];
    let mut errors = Vec::new();
    for (cert, roots, name) in cases {
        let up = HttpsUpstream::start(&pki, Opts::new(&pki).cert(cert));
        let mut s = connect(&up, name, client_config(roots, None, false));
        errors.push(handshake(&mut s).expect_err("the handshake must fail"));
    }
    let cert_error = |e: &rustls::Error| match e {
        rustls::Error::InvalidCertificate(c) => c.clone(),
        other => panic!("not a certificate error: {other:?}"),
    };
    assert_eq!(cert_error(&errors[0]), CertificateError::UnknownIssuer);
    assert!(
        matches!(
            cert_error(&errors[1]),
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        ),
        "{:?}",
        errors[1]
    );
    assert!(
        matches!(
            cert_error(&errors[2]),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        ),
        "{:?}",
        errors[2]
    );
    // The wrong-name certificate is good for its own name.
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).cert(&pki.wrong_name));
    let mut s = connect(&up, WRONG_NAME, client_config(pki.roots(), None, false));
    assert_eq!(get(&mut s, "/").unwrap().status, 200);
}

#[test]
fn mtls_reports_the_client_cn() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).mtls());
    for (pair, cn) in [
        (&pki.client_one, CLIENT_ONE_CN),
        (&pki.client_two, CLIENT_TWO_CN),
    ] {
        let mut s = connect(
            &up,
            "localhost",
            client_config(pki.roots(), Some(pair), false),
        );
        let r = get(&mut s, "/").unwrap();
        assert_eq!(r.header("x-client-cert-cn"), Some(cn));
    }
}

#[test]
fn mtls_without_a_client_cert_tls13_fails_after_the_handshake() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).mtls().versions(Versions::Tls13Only));
    let mut s = connect(&up, "localhost", client_config(pki.roots(), None, false));
    // The client's side of a TLS 1.3 handshake completes; the refusal is the first read.
    handshake(&mut s).expect("client handshake completes in TLS 1.3");
    let e = get(&mut s, "/").expect_err("the server refuses");
    assert_eq!(
        e,
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired)
    );
    assert_eq!((up.handshakes(), up.seen().len()), (0, 0));
    let f = up.wait_failures(1, Duration::from_secs(5));
    assert_eq!(f.len(), 1, "{f:?}");
}

#[test]
fn mtls_without_a_client_cert_tls12_fails_in_the_handshake() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).mtls().versions(Versions::Tls12Only));
    let mut s = connect(&up, "localhost", client_config(pki.roots(), None, true));
    let e = handshake(&mut s).expect_err("the handshake fails in TLS 1.2");
    assert_eq!(
        e,
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired)
    );
    assert_eq!((up.handshakes(), up.seen().len()), (0, 0));
}

#[test]
fn dropping_the_upstream_ends_its_connections_and_listener() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki));
    let addr = up.addr;
    let mut s = connect(&up, "localhost", client_config(pki.roots(), None, false));
    assert_eq!(get(&mut s, "/").unwrap().status, 200);
    let start = Instant::now();
    drop(up);
    // Joined every thread well before the 20 s idle timeout would have ended them.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let mut tmp = [0u8; 16];
    let r = s.sock.read(&mut tmp);
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert!(TcpStream::connect(addr).is_err(), "still listening");
}
