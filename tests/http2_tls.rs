//! HTTP/2 over the TLS listener (issue 9): ALPN `h2` hands the connection to the HTTP/2
//! server, whose streams reach an HTTP/1.1 upstream as `https` requests with HSTS on the
//! responses; the configured ALPN list decides what is offered; many streams, resets and
//! GOAWAY on SIGTERM behave as over h2c. The client is the `h2` crate over `tokio-rustls`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::ClientConfig;
use support::h2client::{
    check_goaway_on_sigterm, connect_tls, echo_line, get, handshake, pattern, read_reply, req, run,
    Client, WAIT,
};
use support::tls::{provider, Pair, Pki};
use support::{config, Dito, Echo};

/// Dito with a TLS listener (`alpn` lines appended to the tls block) in front of `echo`.
fn dito(echo: &Echo, pki: &Pki, alpn: &str, top: &str) -> Dito {
    Dito::start(&config(&format!(
        "{top}tls:\n  cert_file: '{}'\n  key_file: '{}'\n{alpn}locations:\n  - path: '^/'\n    target_url: 'http://{}'\n",
        pki.server.cert.display(),
        pki.server.key.display(),
        echo.addr
    )))
}

/// A client config trusting the test CA and offering `alpn`.
fn client_config(pki: &Pki, alpn: &[&str], identity: Option<&Pair>) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots());
    let mut c = match identity {
        Some(p) => b
            .with_client_auth_cert(p.cert_chain(), p.private_key())
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(c)
}

/// An HTTP/2 connection over TLS; asserts ALPN chose `h2`.
async fn connect_h2(d: &Dito, pki: &Pki) -> Client {
    let (tls, alpn) = connect_tls(d.addr, client_config(pki, &["h2", "http/1.1"], None))
        .await
        .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    handshake(tls).await
}

#[test]
fn h2_over_tls_reaches_the_http1_upstream_as_https_with_hsts() {
    let (e, pki) = (Echo::start(), Pki::new());
    let d = dito(&e, &pki, "", "logging:\n  format: json\n");
    run(async {
        let (client, _) = connect_h2(&d, &pki).await;
        let r = get(&client, "/echo/x?q=1").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.headers.get("strict-transport-security").unwrap(),
            "max-age=31536000; includeSubDomains"
        );
        let text = r.text();
        assert_eq!(echo_line(&text, "target: "), ["/echo/x?q=1"]);
        assert_eq!(echo_line(&text, "version: "), ["HTTP/1.1"]);
        let headers = echo_line(&text, "header: ");
        assert!(headers.contains(&"X-Forwarded-Proto: https"), "{headers:?}");
        assert!(
            headers.contains(&"X-Forwarded-Host: front.example"),
            "{headers:?}"
        );

        let mut c = client.clone().ready().await.unwrap();
        let request = req("POST", "/echo-body")
            .header("content-length", "200000")
            .body(())
            .unwrap();
        let (resp, mut body) = c.send_request(request, false).unwrap();
        body.send_data(Bytes::from(pattern(200_000)), true).unwrap();
        let r = read_reply(resp).await.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.body == pattern(200_000), "the body came back changed");
    });
    assert!(
        d.wait_for_output("HTTP/2.0", WAIT),
        "no HTTP/2.0 access line: {}",
        d.output()
    );
}

#[test]
fn many_concurrent_streams_over_tls_get_their_own_responses() {
    let (e, pki) = (Echo::start(), Pki::new());
    let d = dito(&e, &pki, "", "");
    run(async {
        let (client, done) = connect_h2(&d, &pki).await;
        let mut pending = Vec::new();
        for i in 0..100usize {
            let mut c = client.clone().ready().await.unwrap();
            // One stream larger than every flow-control window, the rest small and mixed.
            let n = if i == 50 { 3_000_000 } else { 500 + i * 131 };
            let (resp, _) = c
                .send_request(req("GET", &format!("/bytes/{n}")).body(()).unwrap(), true)
                .unwrap();
            pending.push((n, tokio::spawn(read_reply(resp))));
        }
        for (n, task) in pending {
            let r = task.await.unwrap().unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body.len(), n);
            assert!(r.body == pattern(n), "stream of {n} bytes got other bytes");
        }
        assert!(!done.is_finished(), "the connection ended");
    });
}

#[test]
fn a_stream_reset_over_tls_leaves_the_others_working() {
    let (e, pki) = (Echo::start(), Pki::new());
    let d = dito(&e, &pki, "", "");
    run(async {
        let (client, done) = connect_h2(&d, &pki).await;
        let mut c = client.clone().ready().await.unwrap();
        let request = req("POST", "/echo-body")
            .header("content-length", "1000000")
            .body(())
            .unwrap();
        let (resp, mut body) = c.send_request(request, false).unwrap();
        body.send_data(Bytes::from(pattern(10_000)), false).unwrap();
        let mut c2 = client.clone().ready().await.unwrap();
        let (big, _) = c2
            .send_request(req("GET", "/bytes/2000000").body(()).unwrap(), true)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        body.send_reset(h2::Reason::CANCEL);
        assert!(read_reply(resp).await.is_err());
        let r = read_reply(big).await.unwrap();
        assert_eq!(r.body.len(), 2_000_000);
        for _ in 0..3 {
            let r = get(&client, "/bytes/100").await;
            assert_eq!(r.body, pattern(100));
        }
        assert!(!done.is_finished(), "the connection ended");
    });
}

#[test]
fn the_alpn_list_decides_what_is_offered() {
    let (e, pki) = (Echo::start(), Pki::new());
    // Only HTTP/1.1: an h2-only client is refused, a client offering both gets HTTP/1.1.
    let d = dito(&e, &pki, "  alpn: [http/1.1]\n", "");
    run(async {
        let refused = connect_tls(d.addr, client_config(&pki, &["h2"], None)).await;
        assert!(refused.is_err(), "an h2-only client was accepted");
        let (_, alpn) = connect_tls(d.addr, client_config(&pki, &["h2", "http/1.1"], None))
            .await
            .unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    });
    // The server's order wins: http/1.1 first is chosen over h2.
    let d = dito(&e, &pki, "  alpn: [http/1.1, h2]\n", "");
    run(async {
        let (_, alpn) = connect_tls(d.addr, client_config(&pki, &["h2", "http/1.1"], None))
            .await
            .unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        let (_, alpn) = connect_tls(d.addr, client_config(&pki, &["h2"], None))
            .await
            .unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    });
    // The default offers h2 first; a client without ALPN gets HTTP/1.1.
    let d = dito(&e, &pki, "", "");
    run(async {
        let (_, alpn) = connect_tls(d.addr, client_config(&pki, &["http/1.1", "h2"], None))
            .await
            .unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        let (_, alpn) = connect_tls(d.addr, client_config(&pki, &[], None))
            .await
            .unwrap();
        assert_eq!(alpn, None);
    });
}

#[test]
fn client_certificates_are_required_for_h2_too() {
    let (e, pki) = (Echo::start(), Pki::new());
    let block = format!("  client_ca_file: '{}'\n", pki.ca.display());
    let d = dito(&e, &pki, &block, "");
    run(async {
        // Without a certificate the handshake fails or the first read fails (TLS 1.3 sends
        // the refusal after the client's Finished).
        let refused = match connect_tls(d.addr, client_config(&pki, &["h2"], None)).await {
            Err(_) => true,
            Ok((tls, _)) => refused_over(tls).await,
        };
        assert!(refused, "an h2 client without a certificate was served");
        let config = client_config(&pki, &["h2"], Some(&pki.client_one));
        let (tls, alpn) = connect_tls(d.addr, config).await.unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        let (client, _) = handshake(tls).await;
        assert_eq!(get(&client, "/bytes/10").await.body, pattern(10));
    });
}

/// Whether a request over `io` fails (at the h2 handshake, or its response).
async fn refused_over<T>(io: T) -> bool
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Ok((client, conn)) = h2::client::handshake(io).await else {
        return true;
    };
    tokio::spawn(conn);
    let Ok(mut c) = client.ready().await else {
        return true;
    };
    match c.send_request(req("GET", "/bytes/1").body(()).unwrap(), true) {
        Ok((resp, _)) => read_reply(resp).await.is_err(),
        Err(_) => true,
    }
}

#[test]
fn sigterm_sends_goaway_over_tls_and_in_flight_streams_finish() {
    let (e, pki) = (Echo::start(), Pki::new());
    let d = dito(&e, &pki, "", "");
    let mut d = run(async move {
        check_goaway_on_sigterm(connect_h2(&d, &pki).await, &d).await;
        d
    });
    assert_eq!(d.wait_exit(WAIT), Some(0), "{}", d.output());
}
