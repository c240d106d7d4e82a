//! Failure classification with constructed rustls errors, the per-worker config cache, and
//! real handshakes on loopback against a rustls server thread: verification outcomes, client
//! certificates in TLS 1.2 and 1.3, a handshake timeout, bulk data both ways at once, and an
//! unclean close.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::*;
use crate::config::{CertBundle, ClientIdentity};
use crate::http::conn::{ConnReader, ReadOutcome};
use crate::test_certs::{TestCa, TestLeaf};

// ---- classification ----

#[test]
fn certificate_errors_map_to_the_vocabulary() {
    use CertificateError as C;
    use UpstreamErrorKind as K;
    let t = UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000));
    let cases = [
        (C::UnknownIssuer, K::TlsUnknownCa),
        (C::Expired, K::TlsExpired),
        (
            C::ExpiredContext {
                time: t,
                not_after: t,
            },
            K::TlsExpired,
        ),
        (C::NotValidYet, K::TlsExpired),
        (
            C::NotValidYetContext {
                time: t,
                not_before: t,
            },
            K::TlsExpired,
        ),
        (C::NotValidForName, K::TlsNameMismatch),
        (C::BadSignature, K::TlsOther),
        (C::Revoked, K::TlsOther),
    ];
    for (error, kind) in cases {
        let e = rustls::Error::InvalidCertificate(error.clone());
        assert_eq!(classify(&e, false), kind, "{error:?}");
        assert_eq!(classify(&e, true), kind, "{error:?}");
    }
}

#[test]
fn certificate_alerts_mean_a_client_certificate_only_when_one_was_asked_for() {
    use AlertDescription as A;
    use UpstreamErrorKind as K;
    let alert = |a| rustls::Error::AlertReceived(a);
    assert_eq!(
        classify(&alert(A::CertificateRequired), false),
        K::TlsClientCertRequired
    );
    assert_eq!(
        classify(&alert(A::CertificateRequired), true),
        K::TlsClientCertRequired
    );
    for a in [
        A::HandshakeFailure,
        A::BadCertificate,
        A::UnknownCA,
        A::CertificateUnknown,
        A::CertificateExpired,
        A::AccessDenied,
    ] {
        assert_eq!(classify(&alert(a), true), K::TlsClientCertRequired, "{a:?}");
        // Without a CertificateRequest the same alert is about something else (ciphers…).
        assert_eq!(classify(&alert(a), false), K::TlsOther, "{a:?}");
    }
    assert_eq!(classify(&alert(A::ProtocolVersion), true), K::TlsOther);
    assert_eq!(classify(&alert(A::DecryptError), true), K::TlsOther);
    assert_eq!(classify(&rustls::Error::DecryptError, true), K::TlsOther);
}

#[test]
fn only_io_errors_that_carry_a_tls_error_are_classified() {
    let tls = io::Error::new(
        io::ErrorKind::InvalidData,
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
    );
    assert_eq!(
        classify_io(&tls, true),
        Some(UpstreamErrorKind::TlsClientCertRequired)
    );
    assert_eq!(
        classify_io(&io::ErrorKind::ConnectionReset.into(), true),
        None
    );
    assert_eq!(classify_io(&io::Error::other("text"), true), None);
}

// ---- configs ----

fn material(roots: Vec<CertificateDer<'static>>, identity: Option<&TestLeaf>) -> UpstreamTls {
    UpstreamTls::new(
        Arc::new(CertBundle { certs: roots }),
        identity.map(|leaf| {
            Arc::new(ClientIdentity {
                chain: vec![leaf.cert_der.clone()],
                key: leaf.key(),
            })
        }),
    )
}

#[test]
fn configs_offer_http1_only_and_are_cached_by_content() {
    let ca = TestCa::new("ca");
    let client = ca.leaf(&["client"]);
    let configs = ClientConfigs::default();
    let plain = material(vec![ca.der()], None);
    let with_cert = material(vec![ca.der()], Some(&client));
    let a = configs.get_or_build(&plain).unwrap();
    assert_eq!(a.alpn_protocols, [b"http/1.1".to_vec()]);
    assert!(!a.client_auth_cert_resolver.has_certs());
    let b = configs.get_or_build(&with_cert).unwrap();
    assert!(b.client_auth_cert_resolver.has_certs());
    assert!(Arc::ptr_eq(
        &a,
        &configs.get_or_build(&plain.clone()).unwrap()
    ));
    assert_eq!(configs.len(), 2);
    configs.retain(|h| h == with_cert.settings);
    assert_eq!(configs.len(), 1);
    assert!(Arc::ptr_eq(&b, &configs.get_or_build(&with_cert).unwrap()));
}

// ---- live handshakes ----

/// A rustls server on loopback that serves one connection with `serve`.
fn server(
    config: ServerConfig,
    serve: impl FnOnce(StreamOwned<ServerConnection, std::net::TcpStream>) + Send + 'static,
) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Arc::new(config);
    let handle = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let conn = ServerConnection::new(config).unwrap();
        serve(StreamOwned::new(conn, sock));
    });
    (addr, handle)
}

fn server_config(
    leaf: &TestLeaf,
    versions: &[&'static rustls::SupportedProtocolVersion],
    client_ca: Option<&TestCa>,
) -> ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(vec![leaf.cert_der.clone()], leaf.key())
        .unwrap()
}

/// Echoes one line back with a prefix; then closes with close_notify.
fn echo_line(mut s: StreamOwned<ServerConnection, std::net::TcpStream>) {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\n") {
        match s.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => return,
        }
    }
    let mut reply = b"echo: ".to_vec();
    reply.extend_from_slice(&got);
    let _ = s.write_all(&reply);
    s.conn.send_close_notify();
    let _ = s.flush();
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap()
        .block_on(f)
}

/// Connects to `addr` as `name` with `tls`, sends `line`, and reads the whole answer.
fn exchange(
    addr: SocketAddr,
    name: &str,
    tls: &UpstreamTls,
    line: &[u8],
) -> Result<Vec<u8>, UpstreamErrorKind> {
    let worker = WorkerTls {
        config: Arc::new(build_client_config(tls).unwrap()),
        server_name: ServerName::try_from(name.to_string()).unwrap(),
    };
    let line = line.to_vec();
    block_on(async move {
        let tcp = TcpStream::connect_addr(addr).await.unwrap();
        let (rd, mut wr) = handshake(tcp, &worker, Duration::from_secs(5)).await?;
        let cert_requested = rd.tls_cert_requested().unwrap();
        let (res, _) = wr.write_all(line).await;
        res.unwrap();
        let mut reader = ConnReader::new(rd);
        loop {
            match reader.fill(None).await {
                ReadOutcome::Data => {}
                ReadOutcome::Eof => return Ok(reader.buffered().to_vec()),
                ReadOutcome::Failed(e) => {
                    return Err(classify_io(&e, cert_requested).unwrap_or(UpstreamErrorKind::Reset))
                }
                ReadOutcome::TimedOut => unreachable!(),
            }
        }
    })
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

#[test]
fn a_trusted_server_answers_and_the_names_are_checked() {
    let ca = TestCa::new("ca");
    let trusted = material(vec![ca.der()], None);
    for versions in [TLS12, TLS13] {
        let (addr, h) = server(
            server_config(&ca.leaf(&["upstream.test"]), versions, None),
            echo_line,
        );
        assert_eq!(
            exchange(addr, "upstream.test", &trusted, b"hi\n").unwrap(),
            b"echo: hi\n"
        );
        h.join().unwrap();
    }
    // An IP-literal target is verified against the IP SAN.
    let (addr, h) = server(
        server_config(&ca.leaf(&["127.0.0.1"]), BOTH, None),
        echo_line,
    );
    assert_eq!(
        exchange(addr, "127.0.0.1", &trusted, b"ip\n").unwrap(),
        b"echo: ip\n"
    );
    h.join().unwrap();
}

#[test]
fn verification_failures_are_classified() {
    let ca = TestCa::new("ca");
    let trusted = material(vec![ca.der()], None);
    let cases = [
        (
            ca.leaf(&["upstream.test"]),
            material(vec![TestCa::new("other").der()], None),
            UpstreamErrorKind::TlsUnknownCa,
        ),
        (
            ca.expired_leaf(&["upstream.test"]),
            trusted.clone(),
            UpstreamErrorKind::TlsExpired,
        ),
        (
            ca.leaf(&["elsewhere.test"]),
            trusted.clone(),
            UpstreamErrorKind::TlsNameMismatch,
        ),
    ];
    for (leaf, tls, kind) in cases {
        let (addr, h) = server(server_config(&leaf, BOTH, None), echo_line);
        assert_eq!(exchange(addr, "upstream.test", &tls, b"x\n"), Err(kind));
        h.join().unwrap();
    }
}

#[test]
fn a_missing_client_certificate_is_named_in_both_tls_versions() {
    let ca = TestCa::new("ca");
    let client_ca = TestCa::new("client ca");
    let leaf = ca.leaf(&["upstream.test"]);
    let no_cert = material(vec![ca.der()], None);
    // TLS 1.2: the alert ends the handshake. TLS 1.3: it arrives on the first read.
    for versions in [TLS12, TLS13] {
        let (addr, h) = server(server_config(&leaf, versions, Some(&client_ca)), echo_line);
        assert_eq!(
            exchange(addr, "upstream.test", &no_cert, b"x\n"),
            Err(UpstreamErrorKind::TlsClientCertRequired)
        );
        h.join().unwrap();
    }
    // A certificate the server does not trust is refused the same way.
    let stranger = TestCa::new("stranger").leaf(&["client"]);
    let refused = material(vec![ca.der()], Some(&stranger));
    for versions in [TLS12, TLS13] {
        let (addr, h) = server(server_config(&leaf, versions, Some(&client_ca)), echo_line);
        assert_eq!(
            exchange(addr, "upstream.test", &refused, b"x\n"),
            Err(UpstreamErrorKind::TlsClientCertRequired)
        );
        h.join().unwrap();
    }
    // With the right certificate the exchange completes.
    let good = material(vec![ca.der()], Some(&client_ca.leaf(&["client"])));
    for versions in [TLS12, TLS13] {
        let (addr, h) = server(server_config(&leaf, versions, Some(&client_ca)), echo_line);
        assert_eq!(
            exchange(addr, "upstream.test", &good, b"m\n").unwrap(),
            b"echo: m\n"
        );
        h.join().unwrap();
    }
}

#[test]
fn a_silent_server_times_the_handshake_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ca = TestCa::new("ca");
    let worker = WorkerTls {
        config: Arc::new(build_client_config(&material(vec![ca.der()], None)).unwrap()),
        server_name: ServerName::try_from("upstream.test").unwrap(),
    };
    let started = std::time::Instant::now();
    let got = block_on(async move {
        let tcp = TcpStream::connect_addr(addr).await.unwrap();
        handshake(tcp, &worker, Duration::from_millis(150))
            .await
            .err()
    });
    assert_eq!(got, Some(UpstreamErrorKind::TlsOther));
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(listener);
}

#[test]
fn a_plain_http_server_is_a_tls_failure_never_a_fallback() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    let ca = TestCa::new("ca");
    assert_eq!(
        exchange(
            addr,
            "upstream.test",
            &material(vec![ca.der()], None),
            b"x\n"
        ),
        Err(UpstreamErrorKind::TlsOther)
    );
    h.join().unwrap();
}

#[test]
fn bulk_data_both_ways_at_once_and_an_unclean_close_ends_the_stream() {
    const SIZE: usize = 3 * 1024 * 1024 + 17;
    let ca = TestCa::new("ca");
    let leaf = ca.leaf(&["upstream.test"]);
    // The server streams SIZE bytes while it reads SIZE bytes, then closes without
    // close_notify.
    let (addr, h) = server(server_config(&leaf, BOTH, None), |mut s| {
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).unwrap();
        }
        let payload: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
        let mut received = 0;
        let mut sent = 0;
        let mut buf = vec![0u8; 64 * 1024];
        s.sock.set_nonblocking(true).unwrap();
        while received < SIZE || sent < SIZE {
            if sent < SIZE && !s.conn.wants_write() {
                sent += s
                    .conn
                    .writer()
                    .write(&payload[sent..(sent + 16 * 1024).min(SIZE)])
                    .unwrap();
            }
            match s.conn.complete_io(&mut s.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                Err(e) => panic!("server io: {e}"),
            }
            loop {
                match s.conn.reader().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => received += n,
                    Err(_) => break,
                }
            }
        }
        s.sock.set_nonblocking(false).unwrap();
        while s.conn.wants_write() {
            s.conn.write_tls(&mut s.sock).unwrap();
        }
        assert_eq!(received, SIZE);
        // Dropped without close_notify: a bare FIN.
    });
    let worker = WorkerTls {
        config: Arc::new(build_client_config(&material(vec![ca.der()], None)).unwrap()),
        server_name: ServerName::try_from("upstream.test").unwrap(),
    };
    let got = block_on(async move {
        let tcp = TcpStream::connect_addr(addr).await.unwrap();
        let (rd, mut wr) = handshake(tcp, &worker, Duration::from_secs(5))
            .await
            .unwrap();
        let upload = async move {
            let body: Vec<u8> = vec![7u8; SIZE];
            for piece in body.chunks(64 * 1024) {
                let (res, _) = wr.write_all(piece.to_vec()).await;
                res.unwrap();
            }
            wr
        };
        let download = async move {
            let mut reader = ConnReader::new(rd);
            let mut total = Vec::with_capacity(SIZE);
            loop {
                match reader.fill(None).await {
                    ReadOutcome::Data => {
                        total.extend_from_slice(reader.buffered());
                        let n = reader.buffered().len();
                        reader.consume(n);
                    }
                    ReadOutcome::Eof => {
                        // Bulk reads grew the ciphertext buffer, but only up to its cap.
                        let UpstreamReader::Tls(tls, _) = reader.source() else {
                            panic!("a TLS reader")
                        };
                        let cap = tls.cipher_capacity();
                        assert!(cap > 17 * 1024 && cap <= 64 * 1024, "{cap}");
                        return total;
                    }
                    other => panic!("read: {other:?}"),
                }
            }
        };
        let (_wr, total) = monoio::join!(upload, download);
        total
    });
    h.join().unwrap();
    assert_eq!(got.len(), SIZE);
    assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

#[test]
fn a_corrupt_record_while_an_upload_is_stalled_is_an_error_not_a_panic() {
    // monoio-rustls panics here ("buffer mut expected"): its read path writes an alert
    // through the buffer its stalled write half holds.
    let ca = TestCa::new("ca");
    let leaf = ca.leaf(&["upstream.test"]);
    let (addr, h) = server(server_config(&leaf, BOTH, None), |mut s| {
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).unwrap();
        }
        // Never read, so the client's upload stalls; then send a record that cannot decrypt.
        std::thread::sleep(Duration::from_millis(200));
        s.sock.write_all(&[23, 3, 3, 0, 40]).unwrap();
        s.sock.write_all(&[0u8; 40]).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    });
    let worker = WorkerTls {
        config: Arc::new(build_client_config(&material(vec![ca.der()], None)).unwrap()),
        server_name: ServerName::try_from("upstream.test").unwrap(),
    };
    let kind = block_on(async move {
        let tcp = TcpStream::connect_addr(addr).await.unwrap();
        let (rd, mut wr) = handshake(tcp, &worker, Duration::from_secs(5))
            .await
            .unwrap();
        let cert_requested = rd.tls_cert_requested().unwrap();
        let mut reader = ConnReader::new(rd);
        let upload = async {
            loop {
                let (res, _) = wr.write_all(vec![1u8; 256 * 1024]).await;
                if res.is_err() {
                    return;
                }
            }
        };
        let download = reader.fill(None);
        monoio::select! {
            got = download => match got {
                ReadOutcome::Failed(e) => classify_io(&e, cert_requested),
                other => panic!("expected a TLS error, got {other:?}"),
            },
            _ = upload => panic!("the upload ended first"),
        }
    });
    assert_eq!(kind, Some(UpstreamErrorKind::TlsOther));
    h.join().unwrap();
}
