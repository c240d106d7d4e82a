//! HTTP/2 to clients (issue 9): h2c with prior knowledge on the plain port, each stream a
//! request on the pipeline to an HTTP/1.1 upstream (`dito-echo`). The client is the `h2`
//! crate on a current-thread tokio runtime; Dito runs under `DITO_TEST_IO_DRIVER`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::h2client::{
    check_goaway_on_sigterm, connect, echo_line, get, pattern, read_reply, req, run, WAIT,
};
use support::{config, Dito, Echo};

fn dito(echo: &Echo, top: &str) -> Dito {
    Dito::start(&config(&format!(
        "{top}locations:\n  - path: '^/'\n    target_url: 'http://{}'\n",
        echo.addr
    )))
}

#[test]
fn get_reaches_the_http1_upstream_with_host_from_authority_and_cookies_joined() {
    let e = Echo::start();
    let d = dito(&e, "");
    run(async {
        let (client, _) = connect(d.addr).await;
        let r = get(&client, "/bytes/3000").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, pattern(3000));
        assert!(r.headers.get("x-request-id").is_some());

        let mut c = client.clone().ready().await.unwrap();
        let request = req("GET", "/echo/x?q=1")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("user-agent", "h2-test")
            .body(())
            .unwrap();
        let (resp, _) = c.send_request(request, true).unwrap();
        let r = read_reply(resp).await.unwrap();
        assert_eq!(r.status, 200);
        let text = r.text();
        assert_eq!(echo_line(&text, "method: "), ["GET"]);
        assert_eq!(echo_line(&text, "target: "), ["/echo/x?q=1"]);
        assert_eq!(echo_line(&text, "version: "), ["HTTP/1.1"]);
        let headers = echo_line(&text, "header: ");
        assert!(headers.contains(&"cookie: a=1; b=2"), "{headers:?}");
        assert!(headers.contains(&"user-agent: h2-test"), "{headers:?}");
        assert!(
            headers.contains(&"X-Forwarded-Host: front.example"),
            "{headers:?}"
        );

        let r = get(&client, "/status/404").await;
        assert_eq!(r.status, 404);

        let mut c = client.clone().ready().await.unwrap();
        let (resp, _) = c
            .send_request(req("HEAD", "/bytes/100").body(()).unwrap(), true)
            .unwrap();
        let r = read_reply(resp).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.headers.get("content-length").unwrap(), "100");
        assert!(r.body.is_empty());

        // Larger than every flow-control window on both sides.
        let r = get(&client, "/bytes/3000000").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 3_000_000);
        assert!(r.body == pattern(3_000_000));
    });
}

#[test]
fn fifty_concurrent_streams_get_their_own_responses() {
    let e = Echo::start();
    let d = dito(&e, "");
    run(async {
        let (client, _) = connect(d.addr).await;
        let mut pending = Vec::new();
        for i in 0..50usize {
            let mut c = client.clone().ready().await.unwrap();
            let n = 1000 + i * 37;
            let (resp, _) = c
                .send_request(req("GET", &format!("/bytes/{n}")).body(()).unwrap(), true)
                .unwrap();
            pending.push((n, tokio::spawn(read_reply(resp))));
        }
        for (n, task) in pending {
            let r = task.await.unwrap().unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body.len(), n);
            assert_eq!(r.body, pattern(n));
        }
    });
}

#[test]
fn request_trailers_reach_the_upstream_in_its_chunked_body() {
    let e = Echo::start();
    let d = dito(&e, "");
    run(async {
        let (client, _) = connect(d.addr).await;
        let mut c = client.clone().ready().await.unwrap();
        // No content-length: the HTTP/1.1 upstream gets a chunked body, which can carry them.
        let (resp, mut body) = c
            .send_request(req("POST", "/echo").body(()).unwrap(), false)
            .unwrap();
        body.send_data(Bytes::from_static(b"hello"), false).unwrap();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-checksum", "abc123".parse().unwrap());
        body.send_trailers(trailers).unwrap();
        let r = read_reply(resp).await.unwrap();
        assert_eq!(r.status, 200);
        let text = r.text();
        assert_eq!(
            echo_line(&text, "trailer: "),
            ["x-checksum: abc123"],
            "{text}"
        );
        assert_eq!(echo_line(&text, "body-length: "), ["5"], "{text}");
    });
}

#[test]
fn post_body_reaches_the_upstream() {
    let e = Echo::start();
    let d = dito(&e, "");
    run(async {
        let (client, _) = connect(d.addr).await;
        for declared in [true, false] {
            let mut c = client.clone().ready().await.unwrap();
            let mut b = req("POST", "/echo-body");
            if declared {
                b = b.header("content-length", "300000");
            }
            let (resp, mut body) = c.send_request(b.body(()).unwrap(), false).unwrap();
            let data = pattern(300_000);
            for chunk in data.chunks(10_000) {
                body.reserve_capacity(chunk.len());
                let mut sent = Bytes::copy_from_slice(chunk);
                while !sent.is_empty() {
                    let cap = std::future::poll_fn(|cx| body.poll_capacity(cx))
                        .await
                        .unwrap()
                        .unwrap();
                    let part = sent.split_to(cap.min(sent.len()));
                    body.send_data(part, false).unwrap();
                    if !sent.is_empty() {
                        body.reserve_capacity(sent.len());
                    }
                }
            }
            body.send_data(Bytes::new(), true).unwrap();
            let r = read_reply(resp).await.unwrap();
            assert_eq!(r.status, 200, "declared {declared}");
            assert_eq!(r.body, data, "declared {declared}");
        }
    });
}

#[test]
fn a_stream_reset_mid_body_leaves_the_others_working() {
    let e = Echo::start();
    let d = dito(&e, "");
    run(async {
        let (client, done) = connect(d.addr).await;
        let mut c = client.clone().ready().await.unwrap();
        let request = req("POST", "/echo-body")
            .header("content-length", "1000000")
            .body(())
            .unwrap();
        let (resp, mut body) = c.send_request(request, false).unwrap();
        body.send_data(Bytes::from(pattern(10_000)), false).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        body.send_reset(h2::Reason::CANCEL);
        assert!(read_reply(resp).await.is_err());

        for _ in 0..3 {
            let r = get(&client, "/bytes/100").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.body, pattern(100));
        }
        assert!(!done.is_finished());
    });
}

#[test]
fn an_upstream_failure_mid_body_resets_only_that_stream() {
    let e = Echo::start();
    // Streamed as it comes, so the failure is mid-response: a held body that fails before
    // any of it went out is a 502 instead (tests/hardening/response).
    let d = Dito::start(&config(&format!(
        "locations:\n  - path: '^/'\n    target_url: 'http://{}'\n    disable_response_buffering: true\n",
        e.addr
    )));
    run(async {
        let (client, done) = connect(d.addr).await;
        for mode in ["cl", "chunked", "cl-close", "chunked-close"] {
            let mut c = client.clone().ready().await.unwrap();
            let path = format!("/abort?bytes=100000&mode={mode}");
            let (resp, _) = c
                .send_request(req("GET", &path).body(()).unwrap(), true)
                .unwrap();
            // The reset may overtake the queued head and data: then it is all the client sees.
            let err = match resp.await {
                Err(e) => e,
                Ok(resp) => {
                    let (parts, mut body) = resp.into_parts();
                    assert_eq!(parts.status, 200, "{mode}");
                    let mut got = 0;
                    let err = loop {
                        match body.data().await {
                            Some(Ok(chunk)) => {
                                got += chunk.len();
                                body.flow_control().release_capacity(chunk.len()).unwrap();
                            }
                            Some(Err(e)) => break e,
                            None => panic!("{mode}: a cut body ended cleanly after {got} bytes"),
                        }
                    };
                    assert!(got <= 100_000, "{mode}");
                    err
                }
            };
            assert_eq!(
                err.reason(),
                Some(h2::Reason::INTERNAL_ERROR),
                "{mode}: {err:?}"
            );
            let r = get(&client, "/bytes/10").await;
            assert_eq!(r.status, 200, "{mode}");
        }
        assert!(!done.is_finished());
    });
}

#[test]
fn header_limits_answer_431_on_the_stream_only() {
    let e = Echo::start();
    let d = dito(
        &e,
        "request_limits:\n  max_header_bytes: 2048\n  max_headers: 10\nmetrics:\n  enabled: true\n",
    );
    run(async {
        let (client, done) = connect(d.addr).await;
        // Over the header list size (SETTINGS_MAX_HEADER_LIST_SIZE = max_header_bytes).
        let mut c = client.clone().ready().await.unwrap();
        let request = req("GET", "/bytes/10")
            .header("x-big", "v".repeat(4000))
            .body(())
            .unwrap();
        match c.send_request(request, true) {
            Ok((resp, _)) => match read_reply(resp).await {
                Ok(r) => assert_eq!(r.status, 431),
                Err(e) => panic!("want 431, got {e:?}"),
            },
            // The client may refuse to send what the server said it will not take.
            Err(e) => eprintln!("client refused the oversize header list: {e}"),
        }
        // Over the field count.
        let mut c = client.clone().ready().await.unwrap();
        let mut b = req("GET", "/bytes/10");
        for i in 0..12 {
            b = b.header(format!("x-f{i}"), "v");
        }
        let (resp, _) = c.send_request(b.body(()).unwrap(), true).unwrap();
        let r = read_reply(resp).await.unwrap();
        assert_eq!(r.status, 431);

        let r = get(&client, "/bytes/10").await;
        assert_eq!(r.status, 200);
        // Dito's own 431 is counted as a rejection (h2's own 431 never reaches Dito).
        let key = [("reason", "headers_too_large")];
        let mut counted = None;
        for _ in 0..100 {
            let m = get(&client, "/metrics").await;
            let scrape = support::prom::parse(&m.text()).unwrap();
            counted = scrape.value("dito_requests_rejected_total", &key);
            if counted == Some(1.0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(counted, Some(1.0));
        assert!(!done.is_finished());
    });
}

#[test]
fn interim_responses_and_response_trailers_are_forwarded() {
    let e = Echo::start();
    let d = dito(&e, "");
    run(async {
        let (client, _) = connect(d.addr).await;
        let mut c = client.clone().ready().await.unwrap();
        let (mut resp, _) = c
            .send_request(req("GET", "/early-hints").body(()).unwrap(), true)
            .unwrap();
        let interim = std::future::poll_fn(|cx| resp.poll_informational(cx))
            .await
            .expect("a 1xx")
            .unwrap();
        assert_eq!(interim.status().as_u16(), 103);
        assert_eq!(
            interim.headers().get("link").unwrap(),
            "</style.css>; rel=preload"
        );
        let r = read_reply(resp).await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "final\n"));

        let mut c = client.clone().ready().await.unwrap();
        let (resp, _) = c
            .send_request(req("GET", "/trailers").body(()).unwrap(), true)
            .unwrap();
        let (parts, mut body) = resp.await.unwrap().into_parts();
        assert_eq!(parts.status, 200);
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            data.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(data, b"hello\n");
        let trailers = body.trailers().await.unwrap().expect("trailers");
        assert_eq!(trailers.get("x-checksum").unwrap(), "abc123");
    });
}

#[test]
fn an_idle_connection_gets_goaway_after_the_keep_alive_timeout() {
    let e = Echo::start();
    let d = dito(&e, "request_limits:\n  keep_alive_timeout: 1s\n");
    run(async {
        let (client, done) = connect(d.addr).await;
        let r = get(&client, "/slow-head?ms=1500").await;
        assert_eq!(r.status, 200, "a stream longer than the timeout is not cut");
        let started = std::time::Instant::now();
        assert!(done.await.unwrap(), "the connection did not end cleanly");
        let idle = started.elapsed();
        assert!(
            idle > Duration::from_millis(800) && idle < Duration::from_secs(5),
            "closed after {idle:?}"
        );
    });
}

#[test]
fn sigterm_sends_goaway_and_in_flight_streams_finish() {
    let e = Echo::start();
    let d = dito(&e, "logging:\n  format: json\n");
    let mut d = run(async move {
        check_goaway_on_sigterm(connect(d.addr).await, &d).await;
        d
    });
    assert_eq!(d.wait_exit(WAIT), Some(0), "{}", d.output());
    let out = d.output();
    assert!(out.contains("HTTP/2.0"), "no HTTP/2.0 access line: {out}");
}
