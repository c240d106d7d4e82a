//! Helpers shared by the HTTP/2-upstream test files (`upstream_http2`: what reaches the
//! upstream, bodies, failures; `upstream_http2_conns`: multiplexing, stream limits, GOAWAY,
//! idle close): configs with `force_http2`, Dito in front of a target, raw GETs and polling.
//!
//! A directory module so cargo does not build it as a test of its own; not every file uses
//! every helper, hence `dead_code` is allowed.

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub use std::sync::{Arc, Barrier};
pub use std::time::{Duration, Instant};

pub use crate::proxy_common::{
    assert_upstream_error, get_on, head_field, is_hex32, loc, one_worker, pattern, yaml, Raw,
};
pub use crate::support::client::{get, request, Client, Ending, Resp};
pub use crate::support::h2_upstream::{H2Upstream, Opts};
pub use crate::support::https_upstream::{self, HttpsUpstream};
pub use crate::support::tls::Pki;
pub use crate::support::{Dito, Echo};

/// The per-location `transport.http` block turning HTTP/2 on, plus further `extra` keys
/// (each `key: value`).
pub fn h2_loc(extra: &[&str]) -> String {
    let mut s = "    transport:\n      http:\n        force_http2: true\n".to_owned();
    for kv in extra {
        s.push_str(&format!("        {kv}\n"));
    }
    s
}

/// Dito with one location `^/` → `target` with `force_http2` on it.
pub fn dito_h2(target: &str) -> Dito {
    Dito::start(&yaml("", &[loc("^/", target, &h2_loc(&[]))]))
}

/// What the h2 upstream's `/echo` reported.
#[derive(Debug)]
pub struct Echoed {
    pub method: String,
    pub target: String,
    pub version: String,
    pub authority: String,
    pub scheme: String,
    pub headers: Vec<(String, String)>,
    pub body_length: usize,
    pub trailers: Vec<String>,
}

impl Echoed {
    pub fn parse(r: &Resp) -> Echoed {
        assert_eq!(r.status, 200, "not an echo answer: {r:?}");
        let mut e = Echoed {
            method: String::new(),
            target: String::new(),
            version: String::new(),
            authority: String::new(),
            scheme: String::new(),
            headers: Vec::new(),
            body_length: usize::MAX,
            trailers: Vec::new(),
        };
        for line in r.body_str().lines() {
            let (k, v) = line.split_once(": ").unwrap_or((line, ""));
            match k {
                "method" => e.method = v.to_owned(),
                "target" => e.target = v.to_owned(),
                "version" => e.version = v.to_owned(),
                "authority" => e.authority = v.to_owned(),
                "scheme" => e.scheme = v.to_owned(),
                "header" => {
                    let (n, v) = v.split_once(": ").unwrap_or((v, ""));
                    e.headers.push((n.to_owned(), v.to_owned()));
                }
                "body-length" => e.body_length = v.parse().unwrap(),
                "trailer" => e.trailers.push(v.to_owned()),
                _ => panic!("unexpected echo line {line:?} in {r:?}"),
            }
        }
        e
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of a header that must occur exactly once.
    pub fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "{name} upstream: {:?}", self.headers);
        all[0]
    }
}

/// `GET path` on a new connection with `Connection: close` (so a response without a length
/// still ends).
pub fn get_close(addr: std::net::SocketAddr, path: &str) -> Resp {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Runs `n` client connections at once, each sending `GET path` after all are connected;
/// every response.
pub fn concurrent_gets(addr: std::net::SocketAddr, n: usize, path: &str) -> Vec<Resp> {
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let barrier = barrier.clone();
            let path = path.to_owned();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                barrier.wait();
                c.send(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes());
                c.read_response()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Polls `cond` every 10 ms for up to `wait`; whether it came true.
pub fn eventually(wait: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
