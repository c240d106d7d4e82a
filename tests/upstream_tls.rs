//! HTTPS upstreams (spec §5, §7), black-box: the real binary in front of the rustls test
//! upstream of `support::https_upstream`, with certificates made per test by `support::tls`.
//! Verification against `ca_file` (global and per location), the failure vocabulary
//! (`tls_unknown_ca`, `tls_expired`, `tls_name_mismatch`, `tls_client_cert_required`) in the
//! 502 envelope and in `dito_upstream_errors_total`, client certificates (mTLS) per location,
//! and pooled reuse of HTTPS connections. Reloads are in `upstream_tls_reload`, config
//! errors in `upstream_tls_config`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_common;
mod support;

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use proxy_common::{assert_upstream_error, get_on, loc, one_worker, yaml};
use support::client::{get, request, Client, Resp};
use support::https_upstream::{HttpsUpstream, Opts, Versions};
use support::prom::{parse, Scrape};
use support::tls::{Pki, CLIENT_ONE_CN, CLIENT_TWO_CN};
use support::Dito;

/// A `transport.http` block with file keys, each line prefixed by `indent`.
fn tls_keys(indent: &str, keys: &[(&str, &Path)]) -> String {
    let mut s = format!("{indent}transport:\n{indent}  http:\n");
    for (k, p) in keys {
        s.push_str(&format!("{indent}    {k}: '{}'\n", p.display()));
    }
    s
}

/// The same block for a location (four spaces in).
fn loc_tls(keys: &[(&str, &Path)]) -> String {
    tls_keys("    ", keys)
}

fn ca(pki: &Pki) -> String {
    tls_keys("", &[("ca_file", &pki.ca)])
}

fn assert_502(r: &Resp, kind: &str) {
    assert_upstream_error(r, 502, "Bad Gateway", kind);
}

/// A 200 from the test upstream, which received `path` (spec §3: the matched prefix is cut).
fn assert_from_upstream(r: &Resp, path: &str) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-target"), Some(path), "{r:?}");
    assert_eq!(r.body_str(), format!("hello over tls: {path}\n"));
}

#[test]
fn global_ca_file_verifies_an_https_upstream_by_ip_and_by_name() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki));
    let d = Dito::start(&yaml(
        &ca(&pki),
        &[
            loc("^/ip/", &up.url_ip(), ""),
            loc("^/name/", &up.url_name(), ""),
        ],
    ));
    let r = get(d.addr, "/ip/hello");
    assert_from_upstream(&r, "/hello");
    assert_eq!(r.header("x-client-cert-cn"), Some("none"));
    assert_eq!(r.header("x-tls-version"), Some("TLSv1.3"));
    // No SNI for an IP address (RFC 6066); the host name otherwise.
    assert_eq!(r.header("x-sni"), Some("none"));
    let r = get(d.addr, "/name/x?q=1");
    assert_from_upstream(&r, "/x?q=1");
    assert_eq!(r.header("x-sni"), Some("localhost"));
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn tls12_only_upstream_is_reached() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).versions(Versions::Tls12Only));
    let d = Dito::start(&yaml(&ca(&pki), &[loc("^/", &up.url_ip(), "")]));
    let r = get(d.addr, "/v12");
    assert_from_upstream(&r, "/v12");
    assert_eq!(r.header("x-tls-version"), Some("TLSv1.2"));
}

#[test]
fn per_location_ca_file_replaces_the_default_roots_only_there() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki));
    let d = Dito::start(&yaml(
        "",
        &[
            loc("^/mine", &up.url_ip(), &loc_tls(&[("ca_file", &pki.ca)])),
            loc("^/default", &up.url_ip(), ""),
        ],
    ));
    assert_from_upstream(&get(d.addr, "/mine/a"), "/a");
    // The default roots do not know the test CA.
    assert_502(&get(d.addr, "/default"), "tls_unknown_ca");
    assert_from_upstream(&get(d.addr, "/mine/a"), "/a");
}

#[test]
fn wrong_ca_is_tls_unknown_ca_with_no_plaintext_fallback() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki));
    let top = tls_keys("", &[("ca_file", &pki.other_ca)]);
    let d = Dito::start(&yaml(&top, &[loc("^/", &up.url_ip(), "")]));
    assert_502(&get(d.addr, "/a"), "tls_unknown_ca");
    assert_502(&get(d.addr, "/b"), "tls_unknown_ca");
    // One TLS attempt per request; nothing reached the upstream as a request.
    assert_eq!(up.accepted(), 2, "failures: {:?}", up.failures());
    assert!(up.seen().is_empty(), "{:?}", up.seen());
}

#[test]
fn expired_certificate_is_tls_expired() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).cert(&pki.expired));
    let d = Dito::start(&yaml(&ca(&pki), &[loc("^/", &up.url_ip(), "")]));
    assert_502(&get(d.addr, "/"), "tls_expired");
    assert!(up.seen().is_empty(), "{:?}", up.seen());
}

#[test]
fn certificate_for_another_name_is_tls_name_mismatch() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).cert(&pki.wrong_name));
    let d = Dito::start(&yaml(
        &ca(&pki),
        &[
            loc("^/name", &up.url_name(), ""),
            loc("^/ip", &up.url_ip(), ""),
        ],
    ));
    assert_502(&get(d.addr, "/name"), "tls_name_mismatch");
    assert_502(&get(d.addr, "/ip"), "tls_name_mismatch");
    assert!(up.seen().is_empty(), "{:?}", up.seen());
}

#[test]
fn mtls_upstream_sees_the_client_certificate() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).mtls());
    let keys = [
        ("ca_file", pki.ca.as_path()),
        ("cert_file", &pki.client_one.cert),
        ("key_file", &pki.client_one.key),
    ];
    let d = Dito::start(&yaml(
        &tls_keys("", &keys),
        &[loc("^/", &up.url_name(), "")],
    ));
    let r = get(d.addr, "/who");
    assert_from_upstream(&r, "/who");
    assert_eq!(r.header("x-client-cert-cn"), Some(CLIENT_ONE_CN));
}

/// Without a client certificate an mTLS upstream refuses: 502 `tls_client_cert_required`,
/// one connection per request (not retried), nothing pooled from the failure.
fn client_cert_required(versions: Versions) {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).mtls().versions(versions));
    let d = Dito::start(&one_worker(yaml(&ca(&pki), &[loc("^/", &up.url_ip(), "")])));
    let mut c = Client::connect(d.addr);
    assert_502(&get_on(&mut c, "/first"), "tls_client_cert_required");
    assert_eq!(up.accepted(), 1, "retried? failures: {:?}", up.failures());
    assert_502(&get_on(&mut c, "/second"), "tls_client_cert_required");
    assert_eq!(up.accepted(), 2, "failures: {:?}", up.failures());
    assert!(up.seen().is_empty(), "{:?}", up.seen());
}

#[test]
fn mtls_upstream_without_client_certificate_tls13() {
    // In TLS 1.3 the refusal is an alert on the first read after the client's handshake.
    client_cert_required(Versions::Tls13Only);
}

#[test]
fn mtls_upstream_without_client_certificate_tls12() {
    client_cert_required(Versions::Tls12Only);
}

#[test]
fn locations_present_their_own_client_certificates_on_separate_connections() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).mtls());
    let one = loc_tls(&[
        ("cert_file", &pki.client_one.cert),
        ("key_file", &pki.client_one.key),
    ]);
    let two = loc_tls(&[
        ("cert_file", &pki.client_two.cert),
        ("key_file", &pki.client_two.key),
    ]);
    // One worker: both locations share its pools, so only the pool key keeps them apart.
    // `ca_file` is global: a location's block overrides only the keys it sets.
    let d = Dito::start(&one_worker(yaml(
        &ca(&pki),
        &[
            loc("^/one", &up.url_ip(), &one),
            loc("^/two", &up.url_ip(), &two),
        ],
    )));
    let mut c = Client::connect(d.addr);
    let mut conns = [Vec::new(), Vec::new()];
    for i in 0..6 {
        let (path, cn) = if i % 2 == 0 {
            ("/one", CLIENT_ONE_CN)
        } else {
            ("/two", CLIENT_TWO_CN)
        };
        let r = get_on(&mut c, path);
        assert_from_upstream(&r, "/");
        assert_eq!(r.header("x-client-cert-cn"), Some(cn), "{path}: {r:?}");
        conns[i % 2].push(r.header("x-conn-id").unwrap().to_owned());
    }
    assert!(
        conns[0].iter().all(|c| !conns[1].contains(c)),
        "a connection was shared: {conns:?}"
    );
    // And each location reused its own connection.
    assert!(
        conns.iter().all(|v| v.iter().all(|c| c == &v[0])),
        "{conns:?}"
    );
    assert_eq!(up.accepted(), 2);
}

#[test]
fn pooled_https_connections_are_reused() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki));
    let d = Dito::start(&one_worker(yaml(
        &ca(&pki),
        &[loc("^/", &up.url_name(), "")],
    )));
    let mut ids = Vec::new();
    let mut c = Client::connect(d.addr);
    for i in 0..5 {
        let r = get_on(&mut c, &format!("/k{i}"));
        assert_from_upstream(&r, &format!("/k{i}"));
        ids.push(r.header("x-conn-id").unwrap().to_owned());
    }
    // A second client connection lands on the same (only) worker and its pool.
    let r = get(d.addr, "/other");
    ids.push(r.header("x-conn-id").unwrap().to_owned());
    assert!(ids.iter().all(|i| i == &ids[0]), "{ids:?}");
    assert_eq!((up.accepted(), up.handshakes()), (1, 1));
}

#[test]
fn handshake_timeout_is_a_502_not_a_hang() {
    // A listener that never accepts: TCP connects (the backlog), the ClientHello is never
    // answered.
    let pki = Pki::new();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let t = "    transport:\n      http:\n        tls_handshake_timeout: 300ms\n";
    let d = Dito::start(&yaml(
        &format!("{}request_timeout: 20s\n", ca(&pki)),
        &[loc("^/", &url, t)],
    ));
    let start = Instant::now();
    let r = get(d.addr, "/");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(r.status, 502, "{r:?}");
    let kind = upstream_error(&r);
    // Spec §7 has no kind of its own for a handshake timeout: it is a TLS failure
    // (docs/decisions.md, issue 8), not a TCP connect timeout.
    assert_eq!(kind, "tls_other");
    assert_502(&r, &kind);
}

#[test]
fn plain_http_server_behind_an_https_target_is_tls_other_never_plaintext() {
    // A server that answers HTTP to whatever arrives, then closes.
    let pki = Pki::new();
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}", plain.local_addr().unwrap().port());
    plain.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut s = loop {
            match plain.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("no connection: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut first = [0u8; 5];
        std::io::Read::read_exact(&mut s, &mut first).unwrap();
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let _ = std::io::Write::write_all(&mut s, reply);
        first
    });
    let d = Dito::start(&yaml(&ca(&pki), &[loc("^/", &url, "")]));
    let r = get(d.addr, "/");
    assert_502(&r, "tls_other");
    let first = server.join().unwrap();
    // A TLS handshake record (ClientHello), not an HTTP request line.
    assert_eq!(first[0], 0x16, "{:?}", String::from_utf8_lossy(&first));
}

fn upstream_error(r: &Resp) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON body");
    v["error"]["details"]["upstream_error"]
        .as_str()
        .unwrap_or_else(|| panic!("no upstream_error: {}", r.body_str()))
        .to_owned()
}

fn scrape(addr: std::net::SocketAddr) -> Scrape {
    let r = request(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    parse(&r.body_str()).unwrap_or_else(|e| panic!("{e}\n{}", r.body_str()))
}

#[test]
fn tls_failures_are_counted_by_kind() {
    let pki = Pki::new();
    let good = HttpsUpstream::start(&pki, Opts::new(&pki));
    let expired = HttpsUpstream::start(&pki, Opts::new(&pki).cert(&pki.expired));
    let wrong = HttpsUpstream::start(&pki, Opts::new(&pki).cert(&pki.wrong_name));
    let mtls = HttpsUpstream::start(&pki, Opts::new(&pki).mtls());
    let other = loc_tls(&[("ca_file", &pki.other_ca)]);
    let d = Dito::start(&yaml(
        &format!("{}metrics:\n  enabled: true\n", ca(&pki)),
        &[
            loc("^/good", &good.url_ip(), ""),
            loc("^/unknown", &good.url_ip(), &other),
            loc("^/expired", &expired.url_ip(), ""),
            loc("^/mismatch", &wrong.url_name(), ""),
            loc("^/nocert", &mtls.url_ip(), ""),
        ],
    ));
    let cases = [
        ("/unknown", "tls_unknown_ca", 1),
        ("/expired", "tls_expired", 2),
        ("/mismatch", "tls_name_mismatch", 1),
        ("/nocert", "tls_client_cert_required", 3),
    ];
    for (path, kind, n) in cases {
        for _ in 0..n {
            assert_502(&get(d.addr, path), kind);
        }
    }
    assert_from_upstream(&get(d.addr, "/good"), "/");
    let kinds = |s: &Scrape| -> Vec<(String, f64)> {
        s.samples("dito_upstream_errors_total")
            .filter(|x| x.value > 0.0)
            .map(|x| (x.labels.get("kind").cloned().unwrap_or_default(), x.value))
            .collect()
    };
    let want: Vec<(String, f64)> = {
        let mut w: Vec<_> = cases
            .iter()
            .map(|(_, k, n)| ((*k).to_owned(), f64::from(*n)))
            .collect();
        w.sort_by(|a, b| a.0.cmp(&b.0));
        w
    };
    // The 502s were answered before this scrape; poll briefly in case counting lags a write.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = scrape(d.addr);
        let mut got = kinds(&s);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        if got == want {
            assert_eq!(s.kind("dito_upstream_errors_total"), Some("counter"));
            break;
        }
        assert!(Instant::now() < deadline, "got {got:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
