//! Access lines and header dumps (spec §11), black-box: the real binary behind a real
//! upstream, its stdout read after it exits (so every queued line was written).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::client::{get, request, Client};
use support::{config, dito_bin, temp_dir, write_file, Dito, Echo};

const ACCESS: &str = "HTTP request processed";
const EXIT_WAIT: Duration = Duration::from_secs(20);

fn proxy_config(echo: &Echo, logging: &str) -> String {
    config(&format!(
        "logging:\n{logging}metrics:\n  enabled: true\nlocations:\n  - path: '^/'\n    target_url: 'http://{}'\n",
        echo.addr
    ))
}

/// Stops Dito with SIGTERM and returns everything it printed.
fn stop(mut d: Dito) -> String {
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait_exit(EXIT_WAIT), Some(0), "{}", d.output());
    d.output()
}

/// The JSON objects of the lines that parse; panics on a line that does not.
fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn access_records(out: &str) -> Vec<Value> {
    json_lines(out)
        .into_iter()
        .filter(|v| v["message"] == ACCESS)
        .collect()
}

#[test]
fn access_line_carries_the_request_id_and_spec_fields() {
    let e = Echo::start();
    let d = Dito::start(&proxy_config(&e, "  format: json\n"));
    let raw = b"GET /echo?x=1 HTTP/1.1\r\nHost: a\r\nReferer: http://ref.example/\r\nUser-Agent: probe/1.0\r\nConnection: close\r\n\r\n";
    let resp = request(d.addr, raw);
    assert_eq!(resp.status, 200);
    let id = resp.header("x-request-id").unwrap().to_owned();
    let out = stop(d);
    let records = access_records(&out);
    assert_eq!(records.len(), 1, "{out}");
    let r = &records[0];
    assert_eq!(r["request_id"], id.as_str());
    assert_eq!(r["level"], "INFO");
    assert_eq!(r["client_ip"], "127.0.0.1");
    assert_eq!(r["method"], "GET");
    assert_eq!(r["url"], "/echo?x=1");
    assert_eq!(r["protocol"], "HTTP/1.1");
    assert_eq!(r["status_code"], 200);
    assert_eq!(r["referer"], "http://ref.example/");
    assert_eq!(r["user_agent"], "probe/1.0");
    assert_eq!(r["upstream"], format!("http://{}", e.addr).as_str());
    assert_eq!(r["aborted"], false);
    assert!(r["duration_seconds"].as_f64().unwrap() >= 0.0);
    let sent = r["bytes_sent"].as_u64().unwrap();
    assert!(
        sent > resp.body.len() as u64,
        "head bytes count too: {sent}"
    );
}

#[test]
fn text_access_line_names_the_request_id() {
    let e = Echo::start();
    let d = Dito::start(&proxy_config(&e, "  format: text\n"));
    let resp = get(d.addr, "/bytes/5");
    let id = resp.header("x-request-id").unwrap().to_owned();
    let out = stop(d);
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(ACCESS)).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains(&id), "{}", lines[0]);
    assert!(lines[0].contains("INFO"), "{}", lines[0]);
    assert!(
        !lines[0].contains('\u{1b}'),
        "no ANSI on a pipe: {}",
        lines[0]
    );
}

#[test]
fn disabled_access_log_writes_no_access_line() {
    let e = Echo::start();
    let d = Dito::start(&proxy_config(&e, "  enabled: false\n"));
    for _ in 0..5 {
        assert_eq!(get(d.addr, "/bytes/5").status, 200);
    }
    assert_eq!(get(d.addr, "/nothing-here-but-echo/404").status, 404);
    let out = stop(d);
    assert!(!out.contains(ACCESS), "{out}");
    // Other lines still follow the level: the startup and shutdown lines are there.
    assert!(out.contains("Dito is ready on"), "{out}");
}

#[test]
fn verbose_dumps_headers_with_secrets_redacted() {
    let e = Echo::start();
    let d = Dito::start(&proxy_config(&e, "  format: json\n  verbose: true\n"));
    let raw = b"GET /headers-out?Set-Cookie=s%3Dresp-secret&X-Plain=visible HTTP/1.1\r\nHost: a\r\n\
        Authorization: Bearer auth-secret\r\nCookie: c=cookie-secret\r\n\
        Proxy-Authorization: Basic proxy-secret\r\nX-Shown: shown-value\r\nConnection: close\r\n\r\n";
    let resp = request(d.addr, raw);
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    let out = stop(d);
    // The response secret is also in the request's query (and so in the access line's `url`);
    // it is checked in the response dump below.
    for secret in ["auth-secret", "cookie-secret", "proxy-secret"] {
        assert!(!out.contains(secret), "{secret} leaked: {out}");
    }
    let lines = json_lines(&out);
    let dump = |kind: &str| {
        lines
            .iter()
            .find(|v| {
                v["message"].as_str().is_some_and(|m| m.contains(kind))
                    && v.get("headers").is_some()
            })
            .unwrap_or_else(|| panic!("no {kind} header dump: {out}"))
            .clone()
    };
    let req = dump("request");
    let req_headers = req["headers"].to_string();
    assert!(req_headers.contains("shown-value"), "{req_headers}");
    assert!(req_headers.contains("REDACTED"), "{req_headers}");
    assert_eq!(req["request_id"], resp.header("x-request-id").unwrap());
    let res = dump("response");
    let res_headers = res["headers"].to_string();
    assert!(res_headers.contains("visible"), "{res_headers}");
    assert!(!res_headers.contains("resp-secret"), "{res_headers}");
    assert!(!res_headers.contains("resp-secret"), "{res_headers}");
    assert!(res_headers.contains("REDACTED"), "{res_headers}");
}

#[test]
fn client_leaving_mid_response_is_logged_as_499() {
    let e = Echo::start();
    let d = Dito::start(&proxy_config(&e, "  format: json\n"));
    {
        let mut c = TcpStream::connect(d.addr).unwrap();
        c.write_all(b"GET /bytes/67108864 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut first = [0u8; 1024];
        let n = c.read(&mut first).unwrap();
        assert!(first[..n].starts_with(b"HTTP/1.1 200"));
        // Dropping the socket with unread data makes the kernel reset it.
    }
    // Another request on a new connection proves the worker went on.
    assert_eq!(get(d.addr, "/bytes/3").status, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    let scrape = loop {
        let s = get(d.addr, "/metrics").body_str();
        if s.contains("status_code=\"499\"") || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(scrape.contains("status_code=\"499\""), "{scrape}");
    let out = stop(d);
    let records = access_records(&out);
    let left: Vec<_> = records.iter().filter(|r| r["status_code"] == 499).collect();
    assert_eq!(left.len(), 1, "{out}");
    assert_eq!(left[0]["aborted"], true);
    assert_eq!(left[0]["url"], "/bytes/67108864");
}

/// A Dito whose stdout and stderr go to a file; killed and reaped on drop.
struct FileDito {
    child: std::process::Child,
    log: std::path::PathBuf,
    addr: SocketAddr,
}

impl Drop for FileDito {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Dito with stdout and stderr going to a file and waits for its ready line.
fn start_to_file(yaml: &str) -> FileDito {
    let dir = temp_dir();
    let cfg = write_file(&dir, "dito.yaml", yaml);
    let log = dir.join("stdout.log");
    let out = File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let mut d = FileDito {
        child: Command::new(dito_bin())
            .arg("-config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap(),
        log,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&d.log).unwrap_or_default();
        if let Some(addr) = text.split("Dito is ready on ").nth(1) {
            let addr = addr
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('"');
            d.addr = addr.parse().unwrap();
            return d;
        }
        assert!(Instant::now() < deadline, "no ready line: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ten_thousand_requests_to_a_file_lose_no_access_line() {
    const CONNS: usize = 8;
    const PER_CONN: usize = 1250;
    let e = Echo::start();
    let mut d = start_to_file(&proxy_config(&e, ""));
    let addr = d.addr;
    let workers: Vec<_> = (0..CONNS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for _ in 0..PER_CONN {
                    c.send(b"GET /bytes/13 HTTP/1.1\r\nHost: a\r\n\r\n");
                    assert_eq!(c.read_response().status, 200);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let scrape = get(addr, "/metrics").body_str();
    let dropped: f64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("dito_log_lines_dropped_total "))
        .unwrap_or_else(|| panic!("no dito_log_lines_dropped_total: {scrape}"))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(dropped, 0.0);
    let pid = libc::pid_t::try_from(d.child.id()).unwrap();
    // SAFETY: kill(2) on our own unreaped child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + EXIT_WAIT;
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "dito did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let text = std::fs::read_to_string(&d.log).unwrap();
    let lines = text.lines().filter(|l| l.contains(ACCESS)).count();
    assert_eq!(lines, CONNS * PER_CONN);
}
