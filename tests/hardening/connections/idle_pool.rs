//! Spec §4: a pooled upstream connection that the upstream closed while it sat idle is
//! noticed and discarded before reuse, so a POST after an idle period (which is not retried
//! on a new connection) never meets a dead connection. Issue 17: behind an origin that closes
//! idle connections after 2 s, `GET /warm`, 3 s, `POST` → 5/5 `502 reset`.

use std::time::Duration;

use super::peers::IdleClosing;
use crate::proxy_common::{get_on, loc, one_worker, yaml};
use crate::support::client::Client;
use crate::support::tls::Pki;
use crate::support::Dito;

/// How long the upstream keeps an idle connection.
const UPSTREAM_IDLE: Duration = Duration::from_secs(1);

/// GET (the connection goes to the pool), the upstream closes it as idle, then POST with a
/// body: a 200 over a new connection.
fn post_after_the_upstream_closed_the_pooled_connection(up: &IdleClosing, d: &Dito) {
    let mut c = Client::connect(d.addr);
    let r = get_on(&mut c, "/warm");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "conn=1 body=");
    assert_eq!(
        up.next_idle_close(Duration::from_secs(10)),
        Some(1),
        "the upstream did not close its idle connection"
    );
    c.send(b"POST /submit HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5\r\n\r\nhello");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), "conn=2 body=hello");
    assert_eq!(up.accepted(), 2);
}

#[test]
fn a_connection_the_upstream_closed_while_idle_is_not_reused() {
    let up = IdleClosing::plain(UPSTREAM_IDLE);
    let d = Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://{}", up.addr), "")],
    )));
    post_after_the_upstream_closed_the_pooled_connection(&up, &d);
}

#[test]
fn a_tls_connection_the_upstream_closed_while_idle_is_not_reused() {
    let pki = Pki::new();
    let up = IdleClosing::tls(UPSTREAM_IDLE, &pki);
    let top = format!("transport:\n  http:\n    ca_file: '{}'\n", pki.ca.display());
    let d = Dito::start(&one_worker(yaml(
        &top,
        &[loc(
            "^/",
            &format!("https://127.0.0.1:{}", up.addr.port()),
            "",
        )],
    )));
    post_after_the_upstream_closed_the_pooled_connection(&up, &d);
}

/// The check does not cost the pool its connections: requests in a row reuse one.
#[test]
fn a_connection_the_upstream_keeps_is_reused() {
    let up = IdleClosing::plain(Duration::from_secs(20));
    let d = Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://{}", up.addr), "")],
    )));
    let mut c = Client::connect(d.addr);
    for _ in 0..5 {
        let r = get_on(&mut c, "/again");
        assert_eq!(r.body_str(), "conn=1 body=");
    }
    assert_eq!(up.accepted(), 1);
}
