//! The TLS listener (spec §2 `tls`, issue 9) with HTTP/1.1 clients: HTTP/1.1 over TLS to a plain
//! upstream with `X-Forwarded-Proto: https` and HSTS, keep-alive, required and verified client
//! certificates, certificate rotation on SIGHUP, garbage instead of a ClientHello, and
//! `dito check` naming the key of a bad TLS file. Clients are rustls over std `TcpStream`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_common;
mod reload_common;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proxy_common::{echoed, find, loc, yaml, NO_BUFFERING};
use reload_common::{poll, RELOAD_LIMIT};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use support::client::Resp;
use support::tls::{provider, roots_from, Pair, Pki};
use support::{run_dito, Dito, Echo};

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A `tls` block with these keys.
fn tls_block(cert: &Path, key: &Path, client_ca: Option<&Path>, alpn: &str) -> String {
    let mut s = format!(
        "tls:\n  cert_file: '{}'\n  key_file: '{}'\n",
        cert.display(),
        key.display()
    );
    if let Some(ca) = client_ca {
        s.push_str(&format!("  client_ca_file: '{}'\n", ca.display()));
    }
    s.push_str(alpn);
    s
}

/// Echo plus a Dito whose listener is TLS with `tls`.
fn start(tls: &str) -> (Echo, Dito) {
    let e = Echo::start();
    let u = format!("http://{}", e.addr);
    let d = Dito::start(&yaml(tls, &[loc("^/", &u, NO_BUFFERING)]));
    (e, d)
}

fn client_config(roots: RootCertStore, identity: Option<&Pair>) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut c = match identity {
        Some(p) => b
            .with_client_auth_cert(p.cert_chain(), p.private_key())
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    StreamOwned::new(ClientConnection::new(config, name).unwrap(), tcp)
}

/// Sends `GET path` and reads one Content-Length response.
fn get(s: &mut Tls, path: &str) -> std::io::Result<Resp> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: front.example\r\n\r\n").as_bytes())?;
    s.flush()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_owned(), v.trim().to_owned())
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Resp {
        status,
        reason: status_line[13..].to_owned(),
        headers,
        body,
    })
}

#[test]
fn https_to_plain_upstream_sets_proto_and_hsts_and_keeps_alive() {
    let pki = Pki::new();
    let (_e, d) = start(&tls_block(&pki.server.cert, &pki.server.key, None, ""));
    let mut s = connect(d.addr, client_config(pki.roots(), None));
    for _ in 0..3 {
        let r = get(&mut s, "/echo").unwrap();
        let ec = echoed(&r);
        assert_eq!(ec.one("x-forwarded-proto"), "https");
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=31536000; includeSubDomains")
        );
    }
    // This client offers only http/1.1 (HTTP/2 over TLS is tests/http2_tls.rs).
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[test]
fn client_certificates_are_required_and_verified() {
    let pki = Pki::new();
    let block = tls_block(&pki.server.cert, &pki.server.key, Some(&pki.ca), "");
    let (_e, d) = start(&block);
    let mut without = connect(d.addr, client_config(pki.roots(), None));
    assert!(
        get(&mut without, "/echo").is_err(),
        "served without a client certificate"
    );
    let mut with = connect(d.addr, client_config(pki.roots(), Some(&pki.client_one)));
    assert_eq!(get(&mut with, "/echo").unwrap().status, 200);
    // A certificate from another CA is refused too.
    let other = Pki::new();
    let mut foreign = connect(d.addr, client_config(pki.roots(), Some(&other.client_one)));
    assert!(
        get(&mut foreign, "/echo").is_err(),
        "served a foreign client certificate"
    );
}

#[test]
fn sighup_serves_a_swapped_certificate_to_new_connections_only() {
    let (old, new) = (Pki::new(), Pki::new());
    let dir = support::temp_dir();
    let cert = support::write_file(&dir, "server.pem", &old.server.cert_pem());
    let key = support::write_file(&dir, "server.key", &old.server.key_pem());
    let (_e, d) = start(&tls_block(&cert, &key, None, ""));
    let mut open = connect(d.addr, client_config(old.roots(), None));
    assert_eq!(get(&mut open, "/echo").unwrap().status, 200);

    std::fs::write(&cert, new.server.cert_pem()).unwrap();
    std::fs::write(&key, new.server.key_pem()).unwrap();
    let before = d.count_output("config reloaded");
    d.signal(libc::SIGHUP);
    assert!(
        poll(RELOAD_LIMIT, || d.count_output("config reloaded") > before).is_some(),
        "{}",
        d.output()
    );
    let mut fresh = connect(d.addr, client_config(roots_from(&new.ca), None));
    assert_eq!(get(&mut fresh, "/echo").unwrap().status, 200);
    let mut stale = connect(d.addr, client_config(old.roots(), None));
    assert!(
        get(&mut stale, "/echo").is_err(),
        "old certificate after SIGHUP"
    );
    // The connection opened before the reload keeps its session.
    assert_eq!(get(&mut open, "/echo").unwrap().status, 200);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn garbage_instead_of_a_client_hello_disturbs_no_one() {
    let pki = Pki::new();
    let (_e, d) = start(&tls_block(&pki.server.cert, &pki.server.key, None, ""));
    let config = client_config(pki.roots(), None);
    let mut before = connect(d.addr, config.clone());
    assert_eq!(get(&mut before, "/echo").unwrap().status, 200);
    for _ in 0..8 {
        let mut raw = TcpStream::connect(d.addr).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut sink = Vec::new();
        // The server answers with an alert at most, then closes.
        let _ = raw.read_to_end(&mut sink);
        assert!(!String::from_utf8_lossy(&sink).contains("HTTP/1.1"));
    }
    assert_eq!(get(&mut before, "/echo").unwrap().status, 200);
    let mut after = connect(d.addr, config);
    assert_eq!(get(&mut after, "/echo").unwrap().status, 200);
}

#[test]
fn an_aborted_response_still_ends_with_a_reset() {
    let pki = Pki::new();
    let (_e, d) = start(&tls_block(&pki.server.cert, &pki.server.key, None, ""));
    let mut s = connect(d.addr, client_config(pki.roots(), None));
    s.write_all(b"GET /abort?bytes=1000&mode=cl-close HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let err = loop {
        match s.read(&mut chunk) {
            Ok(0) => panic!("a clean end after {} bytes", got.len()),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) => break e,
        }
    };
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(got.len() < find(&got, b"\r\n\r\n").unwrap() + 4 + 2000);
    // A reset, not a TCP FIN (UnexpectedEof) nor a close_notify (Ok(0)).
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

#[test]
fn a_stalled_handshake_ends_at_the_header_read_timeout() {
    let pki = Pki::new();
    let mut top = tls_block(&pki.server.cert, &pki.server.key, None, "");
    top.push_str("request_limits:\n  header_read_timeout: 1s\n");
    let (_e, d) = start(&top);
    let mut raw = TcpStream::connect(d.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The first bytes of a handshake record, then silence.
    raw.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let started = std::time::Instant::now();
    let mut sink = Vec::new();
    let _ = raw.read_to_end(&mut sink);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The worker serves on.
    let mut s = connect(d.addr, client_config(pki.roots(), None));
    assert_eq!(get(&mut s, "/echo").unwrap().status, 200);
}

#[test]
fn a_reload_with_a_broken_key_keeps_the_running_certificate() {
    let pki = Pki::new();
    let dir = support::temp_dir();
    let cert = support::write_file(&dir, "server.pem", &pki.server.cert_pem());
    let key = support::write_file(&dir, "server.key", &pki.server.key_pem());
    let (_e, d) = start(&tls_block(&cert, &key, None, ""));
    std::fs::write(&key, "not a key\n").unwrap();
    let before = d.count_output("reload rejected");
    d.signal(libc::SIGHUP);
    assert!(
        poll(RELOAD_LIMIT, || d.count_output("reload rejected") > before).is_some(),
        "{}",
        d.output()
    );
    assert!(d.output().contains("tls.key_file"), "{}", d.output());
    let mut s = connect(d.addr, client_config(pki.roots(), None));
    assert_eq!(get(&mut s, "/echo").unwrap().status, 200);
    let _ = std::fs::remove_dir_all(dir);
}

/// `dito check` on `tls` exits 1 with an error line naming `key`.
#[track_caller]
fn assert_check_names(tls: &str, key: &str) {
    let dir = support::temp_dir();
    let file = support::write_file(
        &dir,
        "c.yaml",
        &yaml(tls, &[loc("^/", "http://127.0.0.1:9", "")]),
    );
    let out = run_dito(&["check", "-f", file.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines().any(|l| l.contains(&format!("{key}:"))),
        "no line for {key}: {text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_names_the_key_of_a_bad_tls_file() {
    let pki = Pki::new();
    let missing = pki.dir.join("missing.pem");
    let s = &pki.server;
    assert_check_names(&tls_block(&missing, &s.key, None, ""), "tls.cert_file");
    assert_check_names(&tls_block(&s.cert, &missing, None, ""), "tls.key_file");
    let wrong_key = &pki.client_two.key;
    assert_check_names(&tls_block(&s.cert, wrong_key, None, ""), "tls.key_file");
    assert_check_names(
        &tls_block(&s.cert, &s.key, Some(&pki.empty), ""),
        "tls.client_ca_file",
    );
    assert_check_names(
        &tls_block(&s.cert, &s.key, None, "  alpn: [h3]\n"),
        "tls.alpn[0]",
    );
}
