//! Issue 17: no client-controlled input may produce unbounded WARN/ERROR lines. A client sent
//! 100 unsolicited PING ACK frames and Dito wrote 100 WARN lines ("recv PING ack that we
//! never sent", from the h2 crate). Other crates' warnings are DEBUG lines now, and Dito's own
//! warning a client can repeat at will (a request body over the limit) is written at most once
//! a second per worker.

use std::time::Duration;

use super::raw_h2::{RawH2, ACK, PING};
use crate::proxy_common::{loc, one_worker, yaml};
use crate::support::client::request;
use crate::support::{Dito, Echo};

const WAIT: Duration = Duration::from_secs(10);

/// WARN and ERROR lines since Dito got ready (config warnings come before).
fn warn_lines(d: &Dito) -> Vec<String> {
    d.output()
        .lines()
        .skip_while(|l| !l.contains("Dito is ready on"))
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn unsolicited_ping_acks_write_no_warning() {
    let e = Echo::start();
    let d = Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://{}", e.addr), "")],
    )));
    let mut h2 = RawH2::connect(d.addr);
    for i in 0..100u64 {
        h2.frame(PING, ACK, 0, &i.to_be_bytes());
    }
    // Once the PING sent after them is answered, every ACK has been processed.
    h2.ping_roundtrip();
    h2.get(1, "/after-pings");
    assert!(h2.wait_response_end(1, WAIT), "no response after the PINGs");
    // The access line of that request comes after anything the ACKs logged on this worker.
    assert!(d.wait_for_output("/after-pings", WAIT), "{}", d.output());
    let warns = warn_lines(&d);
    assert!(warns.is_empty(), "{} WARN lines: {warns:#?}", warns.len());
}

#[test]
fn requests_over_the_body_limit_warn_at_most_once_a_second() {
    let e = Echo::start();
    let d = Dito::start(&one_worker(yaml(
        "request_limits:\n  max_request_body_size: 10\n",
        &[loc("^/", &format!("http://{}", e.addr), "")],
    )));
    let started = std::time::Instant::now();
    for i in 0..30 {
        let r = request(
            d.addr,
            format!("POST /big/{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 413);
    }
    assert!(d.wait_for_output("/big/29", WAIT), "{}", d.output());
    let seconds = started.elapsed().as_secs() + 1;
    let warns: Vec<_> = warn_lines(&d)
        .into_iter()
        .filter(|l| l.contains("request body limit exceeded"))
        .collect();
    assert!(!warns.is_empty(), "{}", d.output());
    assert!(
        warns.len() as u64 <= seconds,
        "{} lines in {seconds} s: {warns:#?}",
        warns.len()
    );
}
