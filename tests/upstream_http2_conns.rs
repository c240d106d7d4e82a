//! HTTP/2 upstreams' connections (`force_http2`, spec §5), black-box: one multiplexed
//! connection per worker, the server's `max_concurrent_streams` (also before its SETTINGS
//! arrive), a new connection after the upstream's GOAWAY, and the idle close after
//! `idle_conn_timeout`. The upstream is `support::h2_upstream`; clients as in `upstream_http2`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_common;
mod support;
mod upstream_http2_common;

use upstream_http2_common::*;

// ---------------------------------------------------------------------------------------------
// 3, 4: multiplexing and the server's stream limit
// ---------------------------------------------------------------------------------------------

#[test]
fn one_worker_multiplexes_concurrent_requests_on_one_connection() {
    let up = H2Upstream::plain();
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))])));
    let rs = concurrent_gets(d.addr, 40, "/hold?ms=200");
    for r in &rs {
        assert_eq!(
            r.status,
            200,
            "{r:?}\nupstream failures: {:?}",
            up.failures()
        );
        assert_eq!(r.body_str(), "ok");
    }
    assert_eq!(up.seen_path("/hold").len(), 40);
    assert_eq!(up.accepted(), 1, "connections to the upstream");
    assert!(
        up.max_open_streams() > 1,
        "never more than {} stream open at once: not multiplexed",
        up.max_open_streams()
    );
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn h2_client_to_h2_upstream_concurrent_streams() {
    use support::h2client::{connect, echo_line, read_reply, req, run};
    let up = H2Upstream::plain();
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))])));
    run(async {
        let (client, _) = connect(d.addr).await;
        let mut pending = Vec::new();
        for i in 0..20usize {
            let mut c = client.clone().ready().await.unwrap();
            let path = if i % 2 == 0 {
                "/hold?ms=200".to_owned()
            } else {
                format!("/bytes/{}", 1000 + i * 977)
            };
            let (resp, _) = c
                .send_request(req("GET", &path).body(()).unwrap(), true)
                .unwrap();
            pending.push((path, tokio::spawn(read_reply(resp))));
        }
        for (path, task) in pending {
            let r = task.await.unwrap().unwrap();
            assert_eq!(r.status, 200, "{path}");
            match path.strip_prefix("/bytes/") {
                Some(n) => assert!(r.body == pattern(n.parse().unwrap()), "{path}"),
                None => assert_eq!(r.text(), "ok"),
            }
        }
        let mut c = client.clone().ready().await.unwrap();
        let request = req("GET", "/echo/h2?x=1")
            .header("x-from-h2", "yes")
            .body(())
            .unwrap();
        let (resp, _) = c.send_request(request, true).unwrap();
        let r = read_reply(resp).await.unwrap();
        assert_eq!(r.status, 200);
        let text = r.text();
        assert_eq!(echo_line(&text, "version: "), ["HTTP/2.0"]);
        assert_eq!(echo_line(&text, "target: "), ["/echo/h2?x=1"]);
        assert_eq!(echo_line(&text, "authority: "), [up.authority().as_str()]);
        let headers = echo_line(&text, "header: ");
        assert!(headers.contains(&"x-from-h2: yes"), "{headers:?}");
        assert!(
            headers.contains(&"x-forwarded-host: front.example"),
            "{headers:?}"
        );
    });
    assert_eq!(up.accepted(), 1, "connections to the upstream");
    assert!(up.max_open_streams() > 1, "not multiplexed");
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn the_servers_max_concurrent_streams_is_respected() {
    let up = H2Upstream::start(None, Opts::plain().max_concurrent_streams(3));
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))])));
    let rs = concurrent_gets(d.addr, 15, "/hold?ms=100");
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert!(
        statuses.iter().all(|&s| s == 200),
        "{statuses:?}\n{:?}\nupstream failures: {:?}",
        rs.iter().find(|r| r.status != 200),
        up.failures()
    );
    assert!(rs.iter().all(|r| r.body_str() == "ok"));
    // The upstream's h2 server refuses streams over its limit itself (REFUSED_STREAM): a Dito
    // that ignored the limit shows up as failed requests above, or as streams opened here.
    assert_eq!(up.seen_path("/hold").len(), 15, "{:?}", up.seen());
    assert!(
        up.max_open_streams_per_connection() <= 3,
        "{} streams open at once on one connection",
        up.max_open_streams_per_connection()
    );
    // With one worker and one pool, the limit queues requests rather than opening a new
    // connection per request.
    assert!(up.accepted() < 15, "{} connections", up.accepted());
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn the_servers_limit_holds_before_its_settings_arrive() {
    // The server's SETTINGS (limit 3) leave 150 ms after the connection: meanwhile the 15
    // requests are queued. Opening all of them at once on the new connection exceeds the
    // limit; the server refuses the excess (REFUSED_STREAM, RFC 9113 §5.1.2), which is never
    // the client's answer: the streams must wait for the SETTINGS (or be retried).
    let opts = Opts::plain()
        .max_concurrent_streams(3)
        .settings_delay(Duration::from_millis(150));
    let up = H2Upstream::start(None, opts);
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))])));
    let rs = concurrent_gets(d.addr, 15, "/hold?ms=50");
    let failed: Vec<String> = rs
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| format!("{} {}", r.status, r.body_str()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 15 failed: {failed:?}\nupstream: {} connections, {} requests seen",
        failed.len(),
        up.accepted(),
        up.seen_path("/hold").len()
    );
    assert_eq!(up.seen_path("/hold").len(), 15);
    assert!(up.max_open_streams_per_connection() <= 3);
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn after_an_upstream_goaway_requests_go_to_a_new_connection() {
    // The upstream sends GOAWAY as the second stream of each connection arrives; a client
    // must not open further streams there (RFC 9113 §6.8).
    let up = H2Upstream::start(None, Opts::plain().goaway_after(2));
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &h2_loc(&[]))])));
    let mut c = Client::connect(d.addr);
    for i in 0..6 {
        let r = get_on(&mut c, &format!("/echo/{i}"));
        assert_eq!(
            r.status,
            200,
            "request {i}: {r:?}\nupstream: {:?}",
            up.seen()
        );
        assert_eq!(Echoed::parse(&r).target, format!("/echo/{i}"));
    }
    let conns: Vec<usize> = up.seen().iter().map(|s| s.conn).collect();
    assert_eq!(conns, [1, 1, 2, 2, 3, 3], "connection of each request");
    assert!(up.failures().is_empty(), "{:?}", up.failures());
}

#[test]
fn an_idle_upstream_connection_closes_after_idle_conn_timeout() {
    let up = H2Upstream::plain();
    let t = h2_loc(&["idle_conn_timeout: 300ms"]);
    let d = Dito::start(&one_worker(yaml("", &[loc("^/", &up.url(), &t)])));
    assert_eq!(get(d.addr, "/bytes/10").status, 200);
    assert_eq!(up.closed(), 0);
    // Checked every second (README): closed within a few seconds, not held forever.
    assert!(
        eventually(Duration::from_secs(5), || up.closed() == 1),
        "the idle upstream connection was not closed"
    );
    let r = get(d.addr, "/bytes/10");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(up.accepted(), 2, "a new connection for the next request");
}
