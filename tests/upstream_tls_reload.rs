//! Upstream TLS across reloads (spec §5, §9): SIGHUP re-reads CA bundles and client
//! certificates even when the config file is unchanged; pools are keyed by the content of the
//! TLS settings, so a reload that changes nothing keeps pooled connections and a rotated
//! client certificate never rides an old connection; a reload with a broken CA file is
//! rejected and the running TLS settings serve on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_common;
mod reload_common;
mod support;

use std::path::Path;

use proxy_common::{assert_upstream_error, loc, one_worker, yaml};
use reload_common::{poll, RELOAD_LIMIT};
use support::client::{get, Resp};
use support::https_upstream::{HttpsUpstream, Opts};
use support::tls::{Pki, CLIENT_ONE_CN, CLIENT_TWO_CN};
use support::Dito;

/// A global `transport.http` block with these file keys.
fn global(keys: &[(&str, &Path)]) -> String {
    let mut s = "transport:\n  http:\n".to_owned();
    for (k, p) in keys {
        s.push_str(&format!("    {k}: '{}'\n", p.display()));
    }
    s
}

/// Sends SIGHUP and waits for the next `needle` line (`config reloaded`, `reload rejected`).
fn sighup_and_wait(d: &Dito, needle: &str) {
    let before = d.count_output(needle);
    d.signal(libc::SIGHUP);
    assert!(
        poll(RELOAD_LIMIT, || d.count_output(needle) > before).is_some(),
        "no {needle:?} line after SIGHUP; output:\n{}",
        d.output()
    );
}

/// `GET path` until `ok` holds (bounded by the reload limit: workers switch just after the
/// reload line); the last response.
fn get_until(d: &Dito, path: &str, ok: impl Fn(&Resp) -> bool) -> Resp {
    let mut last = None;
    poll(RELOAD_LIMIT, || {
        let r = get(d.addr, path);
        let done = ok(&r);
        last = Some(r);
        done
    });
    last.unwrap()
}

#[test]
fn ca_file_replaced_on_disk_is_used_after_sighup() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki));
    let ca = pki.file(
        "dito-ca.pem",
        &std::fs::read_to_string(&pki.other_ca).unwrap(),
    );
    let d = Dito::start(&yaml(
        &global(&[("ca_file", &ca)]),
        &[loc("^/", &up.url_ip(), "")],
    ));
    let r = get(d.addr, "/before");
    assert_upstream_error(&r, 502, "Bad Gateway", "tls_unknown_ca");
    std::fs::write(&ca, std::fs::read_to_string(&pki.ca).unwrap()).unwrap();
    // TLS files are read when a generation is built, not per connection.
    let r = get(d.addr, "/not-yet");
    assert_upstream_error(&r, 502, "Bad Gateway", "tls_unknown_ca");
    sighup_and_wait(&d, "config reloaded");
    let r = get_until(&d, "/after", |r| r.status == 200);
    assert_eq!(r.status, 200, "{r:?}\noutput:\n{}", d.output());
    assert_eq!(r.header("x-target"), Some("/after"));
    assert!(
        up.seen().iter().all(|s| s.target == "/after"),
        "{:?}",
        up.seen()
    );
}

#[test]
fn rotated_client_certificate_is_presented_on_a_new_connection_after_sighup() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).mtls());
    let cert = pki.file("client.pem", &pki.client_one.cert_pem());
    let key = pki.file("client.key", &pki.client_one.key_pem());
    let top = global(&[
        ("ca_file", &pki.ca),
        ("cert_file", &cert),
        ("key_file", &key),
    ]);
    let d = Dito::start(&one_worker(yaml(&top, &[loc("^/", &up.url_ip(), "")])));
    let r = get(d.addr, "/one");
    assert_eq!(r.header("x-client-cert-cn"), Some(CLIENT_ONE_CN), "{r:?}");
    let first_conn = r.header("x-conn-id").unwrap().to_owned();
    // Write the key first: between the two writes the pair does not match, and no reload
    // may happen then (hot_reload is off; only the SIGHUP below reloads).
    std::fs::write(&key, pki.client_two.key_pem()).unwrap();
    std::fs::write(&cert, pki.client_two.cert_pem()).unwrap();
    sighup_and_wait(&d, "config reloaded");
    let r = get_until(&d, "/two", |r| {
        r.header("x-client-cert-cn") == Some(CLIENT_TWO_CN)
    });
    assert_eq!(r.status, 200, "{r:?}\noutput:\n{}", d.output());
    assert_eq!(r.header("x-client-cert-cn"), Some(CLIENT_TWO_CN), "{r:?}");
    assert_ne!(
        r.header("x-conn-id"),
        Some(first_conn.as_str()),
        "the new certificate cannot ride the old connection"
    );
    // The new connection is pooled in turn.
    let again = get(d.addr, "/two-again");
    assert_eq!(again.header("x-client-cert-cn"), Some(CLIENT_TWO_CN));
    assert_eq!(again.header("x-conn-id"), r.header("x-conn-id"));
}

#[test]
fn reload_with_unchanged_tls_files_keeps_pooled_connections() {
    let pki = Pki::new();
    let up = HttpsUpstream::start(&pki, Opts::new(&pki).mtls());
    let one = &pki.client_one;
    let top = global(&[
        ("ca_file", &pki.ca),
        ("cert_file", &one.cert),
        ("key_file", &one.key),
    ]);
    let d = Dito::start(&one_worker(yaml(&top, &[loc("^/", &up.url_name(), "")])));
    let r = get(d.addr, "/a");
    assert_eq!(r.status, 200, "{r:?}");
    let conn = r.header("x-conn-id").unwrap().to_owned();
    sighup_and_wait(&d, "config reloaded");
    for path in ["/b", "/c"] {
        let r = get(d.addr, path);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.header("x-conn-id"),
            Some(conn.as_str()),
            "pool not kept: {r:?}"
        );
    }
    assert_eq!(up.accepted(), 1);
}

#[test]
fn reload_with_an_empty_ca_file_is_rejected_and_tls_serves_on() {
    let pki = Pki::new();
    let up_a = HttpsUpstream::start(&pki, Opts::new(&pki));
    let up_b = HttpsUpstream::start(&pki, Opts::new(&pki));
    let ca = pki.file("dito-ca.pem", &std::fs::read_to_string(&pki.ca).unwrap());
    let d = Dito::start(&yaml(
        &global(&[("ca_file", &ca)]),
        &[
            loc("^/a", &up_a.url_ip(), ""),
            loc("^/b", &up_b.url_ip(), ""),
        ],
    ));
    assert_eq!(get(d.addr, "/a").status, 200);
    std::fs::write(&ca, "").unwrap();
    sighup_and_wait(&d, "reload rejected");
    let out = d.output();
    assert!(
        out.lines()
            .any(|l| l.contains("reload rejected") && l.contains("transport.http.ca_file")),
        "the rejection does not name the key:\n{out}"
    );
    assert_eq!(d.count_output("config reloaded"), 0, "{out}");
    // A first connection to `up_b` is verified with the roots loaded before the reload.
    let r = get(d.addr, "/b");
    assert_eq!(r.status, 200, "{r:?}\noutput:\n{}", d.output());
    assert_eq!(up_b.handshakes(), 1);
}
