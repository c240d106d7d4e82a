//! The control plane as a client sees it (spec §9, §12): hot reload on every kind of file
//! change (in-place write, atomic rename, Kubernetes ConfigMap symlink swap), SIGHUP, reverts,
//! rejected configs, a prepare failure in one worker, a port change, reload under load with
//! zero failed requests, and graceful shutdown (SIGTERM, `shutdown_delay`, a second signal).
//!
//! Every wait is a bounded poll for the observable change; the only fixed waits are the ones
//! that check that something does *not* happen within a stated time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::client::{get, Client, Ending};
use support::upstream::{ok, Upstream};
use support::{config, run_dito, temp_dir, Dito, Echo};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Pause between two polls of an observable change.
const POLL: Duration = Duration::from_millis(20);
/// How long a reload may take to become visible, unless a test states a tighter bound.
const RELOAD_LIMIT: Duration = Duration::from_secs(3);

/// One `locations[]` item.
fn loc(pattern: &str, target: &str) -> String {
    format!("  - path: '{pattern}'\n    target_url: '{target}'\n")
}

/// A config (ephemeral port, the driver under test) with `top` keys and the locations.
fn yaml(top: &str, locs: &[String]) -> String {
    config(&format!("{top}locations:\n{}", locs.concat()))
}

/// Polls `ok` every [`POLL`] until it holds, at most `limit`; how long it took.
fn poll(limit: Duration, mut ok: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if ok() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// Replaces `path` by atomic rename of a temporary file written in the same directory.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_file_name(".config.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A response as the non-panicking client reads it.
#[derive(Debug)]
struct Small {
    status: u16,
    body: String,
    /// The response said `Connection: close`.
    close: bool,
}

impl Small {
    /// The `target:` line of a `dito-echo` `/echo` body: the path the upstream received.
    fn target(&self) -> Option<&str> {
        self.body.lines().find_map(|l| l.strip_prefix("target: "))
    }
}

/// A keep-alive HTTP/1.1 client that reports every failure instead of panicking, so the
/// load test can count them.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn connect(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    fn get(&mut self, path: &str) -> Result<Small, String> {
        self.stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: reload.test\r\n\r\n").as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        self.read_response()
    }

    fn fill(&mut self) -> Result<(), String> {
        let mut tmp = [0u8; 16384];
        match self.stream.read(&mut tmp) {
            Ok(0) => Err(format!(
                "connection closed by the server (have {:?})",
                String::from_utf8_lossy(&self.buf)
            )),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    fn read_response(&mut self) -> Result<Small, String> {
        let (status, len, chunked, close, head_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut headers);
            match r.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let value = |name: &str| {
                        r.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
                    };
                    let len = value("content-length").and_then(|v| v.parse::<usize>().ok());
                    let chunked = value("transfer-encoding").is_some_and(|v| v == "chunked");
                    let close = value("connection").is_some_and(|v| v == "close");
                    break (r.code.unwrap_or(0), len, chunked, close, n);
                }
                Ok(httparse::Status::Partial) => self.fill()?,
                Err(e) => {
                    return Err(format!(
                        "invalid response ({e}): {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
            }
        };
        self.buf.drain(..head_len);
        let body = if chunked {
            self.read_chunked()?
        } else if let Some(n) = len {
            while self.buf.len() < n {
                self.fill()?;
            }
            self.buf.drain(..n).collect()
        } else if status == 204 || status == 304 {
            Vec::new()
        } else {
            return Err(format!("response {status} without a length"));
        };
        Ok(Small {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            close,
        })
    }

    fn read_line(&mut self) -> Result<String, String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            self.fill()?;
        }
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| format!("bad chunk size line {line:?}"))?;
            if size == 0 {
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            while self.buf.len() < size + 2 {
                self.fill()?;
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }
}

/// `GET path` on a new connection; `None` when the connection or the exchange failed.
fn try_get(addr: SocketAddr, path: &str) -> Option<Small> {
    Conn::connect(addr).ok()?.get(path).ok()
}

fn status(addr: SocketAddr, path: &str) -> Option<u16> {
    try_get(addr, path).map(|r| r.status)
}

/// The upstream path `dito-echo` saw for `GET path` through Dito, when it answered 200.
fn target(addr: SocketAddr, path: &str) -> Option<String> {
    try_get(addr, path)
        .filter(|r| r.status == 200)
        .and_then(|r| r.target().map(str::to_owned))
}

/// Whether a new connection to `addr` is refused.
fn refused(addr: SocketAddr) -> bool {
    matches!(TcpStream::connect(addr), Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

/// Echo plus a Dito with `top` keys and, per `(pattern, echo path)`, a location to echo.
fn echo_and_dito(top: &str, routes: &[(&str, &str)]) -> (Echo, Dito) {
    let e = Echo::start();
    let d = Dito::start(&echo_yaml(&e, top, routes));
    (e, d)
}

fn echo_yaml(e: &Echo, top: &str, routes: &[(&str, &str)]) -> String {
    let locs: Vec<String> = routes
        .iter()
        .map(|(p, t)| loc(p, &format!("http://{}{t}", e.addr)))
        .collect();
    yaml(top, &locs)
}

fn cfg_path(d: &Dito) -> std::path::PathBuf {
    d.dir.join("config.yaml")
}

// ---------------------------------------------------------------------------------------------
// Triggers (spec §9)
// ---------------------------------------------------------------------------------------------

#[test]
fn in_place_write_serves_a_new_location_within_a_second() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    assert_eq!(status(d.addr, "/old"), Some(200));
    assert_eq!(status(d.addr, "/new"), Some(404));

    let next = echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    // std::fs::write truncates and rewrites the same inode: an in-place write.
    std::fs::write(cfg_path(&d), next).unwrap();
    let took = poll(Duration::from_secs(1), || {
        status(d.addr, "/new") == Some(200)
    });
    assert!(
        took.is_some(),
        "/new not served within 1 s of the write; output:\n{}",
        d.output()
    );
    assert_eq!(target(d.addr, "/new").as_deref(), Some("/echo/new"));
    assert_eq!(target(d.addr, "/old").as_deref(), Some("/echo/old"));
}

#[test]
fn atomic_rename_over_the_file_applies() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    assert_eq!(status(d.addr, "/new"), Some(404));

    let next = echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    write_atomic(&cfg_path(&d), &next);
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/new") == Some(200)).is_some(),
        "/new not served after an atomic rename; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/old"), Some(200));

    // A second rename-over: the watch survives the first (the watched inode was replaced).
    let third = echo_yaml(&e, top, &[("^/third$", "/echo/third")]);
    write_atomic(&cfg_path(&d), &third);
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/third") == Some(200)).is_some(),
        "second rename not applied; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/old"), Some(404));
}

#[test]
fn configmap_symlink_swap_applies() {
    use std::os::unix::fs::symlink;

    let e = Echo::start();
    let top = "hot_reload: true\n";
    // The kubelet's layout: config.yaml -> ..data/config.yaml, ..data -> ..v1.
    let dir = temp_dir();
    std::fs::create_dir(dir.join("..v1")).unwrap();
    std::fs::write(
        dir.join("..v1/config.yaml"),
        echo_yaml(&e, top, &[("^/old$", "/echo/old")]),
    )
    .unwrap();
    symlink("..v1", dir.join("..data")).unwrap();
    symlink("..data/config.yaml", dir.join("config.yaml")).unwrap();
    let d = Dito::start_file(dir.clone(), &dir.join("config.yaml"));
    assert_eq!(status(d.addr, "/old"), Some(200));
    assert_eq!(status(d.addr, "/new"), Some(404));

    // The kubelet's update: write ..v2, point ..data_tmp at it, rename it over ..data, then
    // remove the old version.
    let swap = |from: &str, to: &str, text: String| {
        std::fs::create_dir(dir.join(to)).unwrap();
        std::fs::write(dir.join(to).join("config.yaml"), text).unwrap();
        symlink(to, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        std::fs::remove_dir_all(dir.join(from)).unwrap();
    };
    swap(
        "..v1",
        "..v2",
        echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]),
    );
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/new") == Some(200)).is_some(),
        "/new not served after the ..data swap; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/old"), Some(200));

    // A second update works too.
    swap(
        "..v2",
        "..v3",
        echo_yaml(&e, top, &[("^/new$", "/echo/new")]),
    );
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/old") == Some(404)).is_some(),
        "second swap not applied; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/new"), Some(200));
}

#[test]
fn without_hot_reload_only_sighup_applies_a_change() {
    let top = "hot_reload: false\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    let next = echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    std::fs::write(cfg_path(&d), next).unwrap();

    // Not watched: still the old config a second later (checked throughout).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        assert_eq!(
            status(d.addr, "/new"),
            Some(404),
            "a file change was applied with hot_reload: false"
        );
        thread::sleep(Duration::from_millis(100));
    }

    d.signal(libc::SIGHUP);
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/new") == Some(200)).is_some(),
        "SIGHUP did not apply the new file; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/old"), Some(200));
}

#[test]
fn same_bytes_do_not_reload_but_sighup_always_does() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    let same = echo_yaml(&e, top, &[("^/old$", "/echo/old")]);
    std::fs::write(cfg_path(&d), &same).unwrap();
    write_atomic(&cfg_path(&d), &same);
    thread::sleep(Duration::from_secs(1));
    assert_eq!(
        d.count_output("config reloaded"),
        0,
        "a watch event with unchanged bytes reloaded; output:\n{}",
        d.output()
    );

    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output("config reloaded", RELOAD_LIMIT),
        "SIGHUP with an unchanged file did not reload; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/old"), Some(200));
}

#[test]
fn reverting_a_b_a_applies() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/p$", "/echo/a")]);
    let a = echo_yaml(&e, top, &[("^/p$", "/echo/a")]);
    let b = echo_yaml(&e, top, &[("^/p$", "/echo/b")]);
    assert_eq!(target(d.addr, "/p").as_deref(), Some("/echo/a"));
    for (text, want) in [
        (&b, "/echo/b"),
        (&a, "/echo/a"),
        (&b, "/echo/b"),
        (&a, "/echo/a"),
    ] {
        std::fs::write(cfg_path(&d), text).unwrap();
        assert!(
            poll(RELOAD_LIMIT, || target(d.addr, "/p").as_deref()
                == Some(want))
            .is_some(),
            "config routing /p to {want} not applied; output:\n{}",
            d.output()
        );
    }
}

#[test]
fn invalid_config_keeps_the_old_one_and_logs_every_reason() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    let path = cfg_path(&d);
    let bad = yaml(
        top,
        &[
            loc("(", &format!("http://{}/echo/x", e.addr)),
            loc("^/b$", "ftp://example.com/"),
            loc("^/old$", "http://"),
        ],
    );
    std::fs::write(&path, &bad).unwrap();

    // The reasons, as `dito check` words them.
    let check = run_dito(&["check", "-f", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&check.stderr).into_owned();
    let reasons: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(path.to_str().unwrap()))
        .collect();
    assert_eq!(reasons.len(), 3, "dito check said:\n{stderr}");

    for r in &reasons {
        assert!(
            d.wait_for_output(r, RELOAD_LIMIT),
            "the reload log lacks {r:?}; output:\n{}",
            d.output()
        );
    }
    assert_eq!(target(d.addr, "/old").as_deref(), Some("/echo/old"));
    assert_eq!(status(d.addr, "/b"), Some(404));

    // The watch keeps working after a rejection.
    let good = echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    std::fs::write(&path, good).unwrap();
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/new") == Some(200)).is_some(),
        "a valid config after a rejected one was not applied; output:\n{}",
        d.output()
    );
}

#[test]
fn invalid_config_on_sighup_keeps_the_old_one() {
    let (e, d) = echo_and_dito("", &[("^/old$", "/echo/old")]);
    let path = cfg_path(&d);
    std::fs::write(&path, "port: [\n").unwrap();
    let check = run_dito(&["check", "-f", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&check.stderr).into_owned();
    let reason = stderr
        .lines()
        .find(|l| l.starts_with(path.to_str().unwrap()))
        .unwrap_or_else(|| panic!("dito check said:\n{stderr}"))
        .to_owned();

    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output(&reason, RELOAD_LIMIT),
        "the reload log lacks {reason:?}; output:\n{}",
        d.output()
    );
    assert_eq!(target(d.addr, "/old").as_deref(), Some("/echo/old"));
    drop(e);
}

#[test]
fn a_removed_location_answers_404_afterwards() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/a$", "/echo/a"), ("^/b$", "/echo/b")]);
    assert_eq!(status(d.addr, "/b"), Some(200));
    std::fs::write(cfg_path(&d), echo_yaml(&e, top, &[("^/a$", "/echo/a")])).unwrap();
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/b") == Some(404)).is_some(),
        "/b still served after its removal; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/a"), Some(200));
}

#[test]
fn a_restart_only_key_change_warns_and_the_rest_applies() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    let next = echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")])
        .replace("workers: 2\n", "workers: 1\n");
    std::fs::write(cfg_path(&d), next).unwrap();
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/new") == Some(200)).is_some(),
        "the reload with a changed `workers` was not applied; output:\n{}",
        d.output()
    );
    let out = d.output();
    assert!(
        out.lines()
            .any(|l| l.contains("WARN") && l.contains("workers")),
        "no WARN naming `workers`; output:\n{out}"
    );
}

#[test]
fn a_port_change_serves_the_new_port_and_closes_the_old() {
    let e = Echo::start();
    let routes = [("^/old$", "/echo/old")];
    let p1 = free_port();
    let first =
        echo_yaml(&e, "hot_reload: true\n", &routes).replace("port: 0\n", &format!("port: {p1}\n"));
    let d = Dito::start(&first);
    assert_eq!(d.addr.port(), p1);
    assert_eq!(status(d.addr, "/old"), Some(200));

    let p2 = free_port();
    let new_addr = SocketAddr::from(([127, 0, 0, 1], p2));
    let second = first.replace(&format!("port: {p1}\n"), &format!("port: {p2}\n"));
    std::fs::write(cfg_path(&d), second).unwrap();
    assert!(
        poll(RELOAD_LIMIT, || status(new_addr, "/old") == Some(200)).is_some(),
        "the new port {p2} does not serve; output:\n{}",
        d.output()
    );
    assert!(
        poll(Duration::from_secs(2), || refused(d.addr)).is_some(),
        "the old port {p1} still accepts after the change; output:\n{}",
        d.output()
    );
    // Many new connections: every worker serves the new port.
    for i in 0..50 {
        assert_eq!(status(new_addr, "/old"), Some(200), "request {i}");
    }
}

#[test]
fn a_port_change_to_a_held_port_is_rejected_and_the_old_port_keeps_serving() {
    let e = Echo::start();
    let d = Dito::start(&echo_yaml(
        &e,
        "hot_reload: true\n",
        &[("^/old$", "/echo/old")],
    ));
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let p2 = held.local_addr().unwrap().port();
    let next = echo_yaml(
        &e,
        "hot_reload: true\n",
        &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")],
    )
    .replace("port: 0\n", &format!("port: {p2}\n"));
    std::fs::write(cfg_path(&d), next).unwrap();
    assert!(
        d.wait_for_output("rejected", RELOAD_LIMIT),
        "a reload onto a held port was not rejected; output:\n{}",
        d.output()
    );
    let out = d.output();
    assert!(
        out.lines()
            .any(|l| l.contains("rejected") && l.contains(&p2.to_string())),
        "the rejection does not name the port; output:\n{out}"
    );
    assert_eq!(status(d.addr, "/old"), Some(200));
    assert_eq!(
        status(d.addr, "/new"),
        Some(404),
        "part of a rejected reload applied"
    );
}

#[test]
fn hot_reload_turned_on_by_sighup_starts_watching() {
    let (e, d) = echo_and_dito("hot_reload: false\n", &[("^/old$", "/echo/old")]);
    let on = "hot_reload: true\n";
    std::fs::write(cfg_path(&d), echo_yaml(&e, on, &[("^/old$", "/echo/old")])).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output("config reloaded", RELOAD_LIMIT),
        "SIGHUP did not reload; output:\n{}",
        d.output()
    );
    // Spec §2: every key but the restart-only ones applies on reload, hot_reload included.
    let next = echo_yaml(&e, on, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    std::fs::write(cfg_path(&d), next).unwrap();
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/new") == Some(200)).is_some(),
        "a file write after a reload turned hot_reload on was not applied; output:\n{}",
        d.output()
    );
}

#[test]
fn hot_reload_turned_off_by_a_reload_stops_watching() {
    let on = "hot_reload: true\n";
    let off = "hot_reload: false\n";
    let (e, d) = echo_and_dito(on, &[("^/old$", "/echo/old")]);
    std::fs::write(
        cfg_path(&d),
        echo_yaml(&e, off, &[("^/old$", "/echo/old"), ("^/b$", "/echo/b")]),
    )
    .unwrap();
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/b") == Some(200)).is_some(),
        "the write that turns hot_reload off was not applied; output:\n{}",
        d.output()
    );
    std::fs::write(
        cfg_path(&d),
        echo_yaml(&e, off, &[("^/old$", "/echo/old"), ("^/c$", "/echo/c")]),
    )
    .unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        assert_eq!(
            status(d.addr, "/c"),
            Some(404),
            "a file change was applied after a reload set hot_reload: false; output:\n{}",
            d.output()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Two-phase reload
// ---------------------------------------------------------------------------------------------

#[test]
fn a_prepare_failure_in_one_worker_leaves_every_worker_on_the_old_generation() {
    let e = Echo::start();
    let routes = [("^/old$", "/echo/old")];
    let first = echo_yaml(&e, "", &routes);
    assert!(first.contains("workers: 2\n"));
    let d = Dito::try_start_with(&first, |cmd| {
        cmd.env("DITO_TEST_FAIL_PREPARE_WORKER", "1");
    })
    .unwrap_or_else(|f| panic!("dito did not start: {f:?}"));

    let next = echo_yaml(&e, "", &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    std::fs::write(cfg_path(&d), next).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output("rejected", RELOAD_LIMIT),
        "no log line says the reload was rejected; output:\n{}",
        d.output()
    );
    let out = d.output();
    assert!(
        out.lines()
            .any(|l| l.contains("rejected") && l.contains("worker 1")),
        "the rejection does not name worker 1; output:\n{out}"
    );
    // Many new connections, so SO_REUSEPORT spreads them over both workers.
    for i in 0..200 {
        assert_eq!(status(d.addr, "/new"), Some(404), "request {i} to /new");
        assert_eq!(
            target(d.addr, "/old").as_deref(),
            Some("/echo/old"),
            "request {i} to /old"
        );
    }
}

#[test]
fn a_prepare_failure_with_a_port_change_binds_nothing() {
    let e = Echo::start();
    let first = echo_yaml(&e, "", &[("^/old$", "/echo/old")]);
    let d = Dito::try_start_with(&first, |cmd| {
        cmd.env("DITO_TEST_FAIL_PREPARE_WORKER", "1");
    })
    .unwrap_or_else(|f| panic!("dito did not start: {f:?}"));
    let p2 = free_port();
    let new_addr = SocketAddr::from(([127, 0, 0, 1], p2));
    std::fs::write(
        cfg_path(&d),
        first.replace("port: 0\n", &format!("port: {p2}\n")),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output("rejected", RELOAD_LIMIT),
        "no log line says the reload was rejected; output:\n{}",
        d.output()
    );
    assert!(
        poll(Duration::from_secs(1), || refused(new_addr)).is_some(),
        "the new port {p2} of a rejected reload accepts connections; output:\n{}",
        d.output()
    );
    for i in 0..50 {
        assert_eq!(
            status(d.addr, "/old"),
            Some(200),
            "request {i} on the old port"
        );
    }
}

#[test]
fn a_running_request_finishes_on_the_generation_it_started_with() {
    let up = slow_upstream();
    let e = Echo::start();
    let u = format!("http://{}", up.addr);
    let first = yaml(
        "",
        &[
            loc("^/slow$", &format!("{u}/slow")),
            loc("^/p$", &format!("http://{}/echo/a", e.addr)),
        ],
    );
    let d = Dito::start(&first);
    let slow = start_slow_request(&d, &up);
    // The new generation has no /slow at all.
    std::fs::write(cfg_path(&d), echo_yaml(&e, "", &[("^/p$", "/echo/b")])).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/slow") == Some(404)).is_some(),
        "the reload was not applied; output:\n{}",
        d.output()
    );
    assert!(
        matches!(slow.try_recv(), Err(mpsc::TryRecvError::Empty)),
        "the slow request ended before the reload applied"
    );
    let (resp, _, _) = slow
        .recv_timeout(Duration::from_secs(10))
        .expect("no answer to the slow request")
        .unwrap_or_else(|p| panic!("slow request failed: {p}; output:\n{}", d.output()));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body_str(), "slow\n");
}

#[test]
fn a_keep_alive_connection_uses_the_new_config_for_its_next_request() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/p$", "/echo/a")]);
    let mut kept = Conn::connect(d.addr).unwrap();
    assert_eq!(kept.get("/p").unwrap().target(), Some("/echo/a"));
    std::fs::write(cfg_path(&d), echo_yaml(&e, top, &[("^/p$", "/echo/b")])).unwrap();
    assert!(
        poll(RELOAD_LIMIT, || target(d.addr, "/p").as_deref()
            == Some("/echo/b"))
        .is_some(),
        "the reload was not applied; output:\n{}",
        d.output()
    );
    let r = kept.get("/p").expect("the kept connection");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.target(),
        Some("/echo/b"),
        "the kept connection stayed on the old config"
    );
}

// ---------------------------------------------------------------------------------------------
// Reload under load
// ---------------------------------------------------------------------------------------------

/// Keep-alive client threads.
const LOAD_CLIENTS: usize = 4;
/// Requests each keep-alive client sends at least, and at most.
const LOAD_MIN_PER_CLIENT: usize = 1250;
const LOAD_MAX_PER_CLIENT: usize = 1_000_000;
/// One more client opens a new connection per request (so a gap in accepting shows), at
/// least this many times.
const LOAD_MIN_FRESH: usize = 200;
/// Config rewrites during the load.
const LOAD_REWRITES: usize = 10;

#[test]
fn reload_under_load_fails_no_request() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/load$", "/echo/a")]);
    let a = echo_yaml(&e, top, &[("^/load$", "/echo/a")]);
    let b = echo_yaml(&e, top, &[("^/load$", "/echo/b")]);
    let addr = d.addr;

    let stop = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    let non_200 = AtomicUsize::new(0);
    let conn_errors = AtomicUsize::new(0);
    let server_closes = AtomicUsize::new(0);
    let seen_a = AtomicUsize::new(0);
    let seen_b = AtomicUsize::new(0);
    let (problems_tx, problems) = mpsc::channel::<String>();
    let (started_tx, started) = mpsc::channel::<()>();

    thread::scope(|s| {
        // Clients 0..LOAD_CLIENTS keep their connection; the last one opens one per request.
        for c in 0..=LOAD_CLIENTS {
            let fresh = c == LOAD_CLIENTS;
            let min = if fresh {
                LOAD_MIN_FRESH
            } else {
                LOAD_MIN_PER_CLIENT
            };
            let problems_tx = problems_tx.clone();
            let started_tx = started_tx.clone();
            let (stop, sent, non_200, conn_errors, server_closes, seen_a, seen_b) = (
                &stop,
                &sent,
                &non_200,
                &conn_errors,
                &server_closes,
                &seen_a,
                &seen_b,
            );
            s.spawn(move || {
                let mut conn: Option<Conn> = None;
                for i in 0..LOAD_MAX_PER_CLIENT {
                    if i == 1 {
                        let _ = started_tx.send(());
                    }
                    if i >= min && stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if conn.is_none() {
                        match Conn::connect(addr) {
                            Ok(c) => conn = Some(c),
                            Err(err) => {
                                conn_errors.fetch_add(1, Ordering::Relaxed);
                                let _ = problems_tx.send(format!("client {c}: {err}"));
                                continue;
                            }
                        }
                    }
                    let Some(k) = conn.as_mut() else { continue };
                    sent.fetch_add(1, Ordering::Relaxed);
                    match k.get("/load") {
                        Ok(r) => {
                            if r.status != 200 {
                                non_200.fetch_add(1, Ordering::Relaxed);
                                let _ = problems_tx.send(format!(
                                    "client {c} request {i}: {} {}",
                                    r.status, r.body
                                ));
                            }
                            match r.target() {
                                Some("/echo/a") => seen_a.fetch_add(1, Ordering::Relaxed),
                                Some("/echo/b") => seen_b.fetch_add(1, Ordering::Relaxed),
                                _ => 0,
                            };
                            if r.close {
                                server_closes.fetch_add(1, Ordering::Relaxed);
                                conn = None;
                            }
                            if fresh {
                                conn = None;
                            }
                        }
                        Err(err) => {
                            conn_errors.fetch_add(1, Ordering::Relaxed);
                            let _ = problems_tx.send(format!("client {c} request {i}: {err}"));
                            conn = None;
                        }
                    }
                }
            });
        }
        drop(problems_tx);
        drop(started_tx);

        // Every client is under way before the first rewrite.
        for _ in 0..=LOAD_CLIENTS {
            started
                .recv_timeout(Duration::from_secs(10))
                .expect("a load client did not start");
        }
        let path = cfg_path(&d);
        let mut rewrite_problem = None;
        for i in 0..LOAD_REWRITES {
            let (text, want) = if i % 2 == 0 {
                (&b, "/echo/b")
            } else {
                (&a, "/echo/a")
            };
            if i % 4 < 2 {
                std::fs::write(&path, text).unwrap();
            } else {
                write_atomic(&path, text);
            }
            // Each rewrite is applied before the next, so there are 10 generations.
            if poll(RELOAD_LIMIT, || {
                target(addr, "/load").as_deref() == Some(want)
            })
            .is_none()
            {
                rewrite_problem = Some(format!("rewrite {i} (to {want}) was not applied"));
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(p) = rewrite_problem {
            panic!("{p}; output:\n{}", d.output());
        }
    });

    let problems: Vec<String> = problems.try_iter().take(20).collect();
    let (sent, non_200, conn_errors) = (
        sent.into_inner(),
        non_200.into_inner(),
        conn_errors.into_inner(),
    );
    let (seen_a, seen_b) = (seen_a.into_inner(), seen_b.into_inner());
    let summary = format!(
        "{sent} requests, {non_200} not 200, {conn_errors} connection errors, \
         {} server closes, {seen_a} to /echo/a, {seen_b} to /echo/b; first problems: {problems:#?}",
        server_closes.into_inner()
    );
    assert!(
        sent >= LOAD_CLIENTS * LOAD_MIN_PER_CLIENT + LOAD_MIN_FRESH,
        "{summary}"
    );
    assert_eq!(non_200, 0, "{summary}");
    assert_eq!(conn_errors, 0, "{summary}");
    // The load crossed generations: both configs answered some of it.
    assert!(seen_a > 0 && seen_b > 0, "{summary}");
    assert_eq!(seen_a + seen_b, sent, "{summary}");
    assert!(
        !d.output().contains("rejected"),
        "a rewrite was rejected; output:\n{}",
        d.output()
    );
    eprintln!("reload under load: {summary}");
}

// ---------------------------------------------------------------------------------------------
// Shutdown (spec §12)
// ---------------------------------------------------------------------------------------------

/// A scripted upstream that answers `/slow` after `SLOW`, anything else at once.
const SLOW: Duration = Duration::from_secs(2);

fn slow_upstream() -> Upstream {
    Upstream::start(|req| {
        if req.target().starts_with("/slow") {
            thread::sleep(SLOW);
            ok("slow\n")
        } else {
            ok("fast\n")
        }
    })
}

/// Starts `GET /slow` through `d` on its own thread; returns once the upstream has it. The
/// thread sends the response (or the failure) and the connection's ending.
fn start_slow_request(
    d: &Dito,
    up: &Upstream,
) -> mpsc::Receiver<Result<(support::client::Resp, Ending, Instant), String>> {
    let (tx, rx) = mpsc::channel();
    let addr = d.addr;
    thread::spawn(move || {
        let result = std::panic::catch_unwind(move || {
            let mut c = Client::connect(addr);
            c.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
            let r = c.read_response();
            let at = Instant::now();
            (r, c.ending(Duration::from_secs(2)), at)
        });
        let _ = tx.send(result.map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        }));
    });
    let req = up.next_request(Duration::from_secs(5));
    assert!(
        req.as_ref().is_some_and(|r| r.target() == "/slow"),
        "the slow request did not reach the upstream: {req:?}"
    );
    rx
}

fn dito_to(up: &Upstream, top: &str) -> Dito {
    let u = format!("http://{}", up.addr);
    Dito::start(&yaml(
        top,
        &[
            loc("^/slow$", &format!("{u}/slow")),
            loc("^/fast$", &format!("{u}/fast")),
        ],
    ))
}

#[test]
fn sigterm_lets_a_running_request_finish_then_exits_0() {
    let up = slow_upstream();
    let mut d = dito_to(&up, "");
    let slow = start_slow_request(&d, &up);

    let signalled = Instant::now();
    d.signal(libc::SIGTERM);
    // Stops accepting at once (no shutdown_delay), while the slow request still runs.
    let refused_after = poll(Duration::from_secs(1), || refused(d.addr));
    assert!(
        refused_after.is_some(),
        "new connections still accepted 1 s after SIGTERM; output:\n{}",
        d.output()
    );
    assert!(
        matches!(slow.try_recv(), Err(mpsc::TryRecvError::Empty)),
        "the slow request ended before the listener closed"
    );
    assert!(d.is_running(), "exited before the running request finished");

    let (resp, ending, at) = slow
        .recv_timeout(Duration::from_secs(10))
        .expect("no answer to the slow request")
        .unwrap_or_else(|p| panic!("slow request failed: {p}; output:\n{}", d.output()));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body_str(), "slow\n");
    assert!(
        at.duration_since(signalled) >= SLOW - Duration::from_millis(500),
        "answered too early for a {SLOW:?} upstream"
    );
    assert_eq!(
        ending,
        Ending::Closed,
        "the busy connection after its response"
    );
    assert_eq!(
        d.wait_exit(Duration::from_secs(5)),
        Some(0),
        "exit status; output:\n{}",
        d.output()
    );
    assert!(refused(d.addr), "connections accepted after exit");
    assert_eq!(
        resp.header("connection")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("close"),
        "the last response of a draining connection says Connection: close: {resp:?}"
    );
}

#[test]
fn sigterm_closes_idle_keep_alive_connections() {
    let up = slow_upstream();
    let mut d = dito_to(&up, "");
    let mut idle = Client::connect(d.addr);
    idle.send(b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(idle.read_response().status, 200);
    assert!(up.next_request(Duration::from_secs(5)).is_some());
    // A busy connection keeps the process alive meanwhile.
    let slow = start_slow_request(&d, &up);

    d.signal(libc::SIGTERM);
    assert_eq!(
        idle.ending(Duration::from_secs(1)),
        Ending::Closed,
        "the idle keep-alive connection was not closed within 1 s of SIGTERM"
    );
    assert!(
        matches!(slow.try_recv(), Err(mpsc::TryRecvError::Empty)),
        "the slow request ended before the idle connection closed"
    );
    let r = slow.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(r.0.status, 200);
    assert_eq!(d.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn shutdown_delay_keeps_serving_while_readyz_says_503() {
    let e = Echo::start();
    let mut d = Dito::start(&echo_yaml(
        &e,
        "shutdown_delay: 2s\n",
        &[("^/p$", "/echo/p")],
    ));
    assert_eq!(get(d.addr, "/readyz").status, 200);

    let signalled = Instant::now();
    d.signal(libc::SIGTERM);
    assert!(
        poll(Duration::from_secs(1), || status(d.addr, "/readyz")
            == Some(503))
        .is_some(),
        "/readyz not 503 within 1 s of SIGTERM; output:\n{}",
        d.output()
    );
    let r = get(d.addr, "/readyz");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.body_str().starts_with(r#"{"error":{"code":503,"#),
        "{}",
        r.body_str()
    );
    assert_eq!(get(d.addr, "/healthz").status, 200);
    assert_eq!(
        target(d.addr, "/p").as_deref(),
        Some("/echo/p"),
        "proxying stops during shutdown_delay"
    );
    assert!(
        signalled.elapsed() < Duration::from_millis(1800),
        "checks ran past the delay; the test proves nothing"
    );

    let code = d.wait_exit(Duration::from_secs(6));
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "exit status; output:\n{}", d.output());
    assert!(
        took >= Duration::from_millis(1900),
        "exited {took:?} after SIGTERM, before the 2 s shutdown_delay"
    );
}

#[test]
fn a_second_sigterm_during_the_delay_exits_1_at_once() {
    let e = Echo::start();
    let mut d = Dito::start(&echo_yaml(
        &e,
        "shutdown_delay: 5s\n",
        &[("^/p$", "/echo/p")],
    ));
    d.signal(libc::SIGTERM);
    // The first signal is being handled.
    assert!(
        poll(Duration::from_secs(1), || status(d.addr, "/readyz")
            == Some(503))
        .is_some(),
        "/readyz not 503 after SIGTERM; output:\n{}",
        d.output()
    );
    let second = Instant::now();
    d.signal(libc::SIGTERM);
    let code = d.wait_exit(Duration::from_secs(1));
    assert_eq!(
        code,
        Some(1),
        "after {:?}; output:\n{}",
        second.elapsed(),
        d.output()
    );
}

#[test]
fn a_second_sigterm_while_draining_exits_1_at_once() {
    let up = slow_upstream();
    let mut d = dito_to(&up, "");
    let slow = start_slow_request(&d, &up);
    d.signal(libc::SIGTERM);
    assert!(
        poll(Duration::from_secs(1), || refused(d.addr)).is_some(),
        "still accepting after SIGTERM"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(
        d.wait_exit(Duration::from_secs(1)),
        Some(1),
        "output:\n{}",
        d.output()
    );
    assert!(
        matches!(
            slow.recv_timeout(Duration::from_secs(5)),
            Ok(Err(_)) | Err(mpsc::RecvTimeoutError::Disconnected)
        ),
        "the slow request completed although the process exited at once"
    );
}

#[test]
fn sigint_shuts_down_like_sigterm() {
    let up = slow_upstream();
    let mut d = dito_to(&up, "");
    let slow = start_slow_request(&d, &up);
    d.signal(libc::SIGINT);
    assert!(
        poll(Duration::from_secs(1), || refused(d.addr)).is_some(),
        "still accepting after SIGINT; output:\n{}",
        d.output()
    );
    let r = slow.recv_timeout(Duration::from_secs(10)).unwrap();
    let (resp, _, _) = r.unwrap_or_else(|p| panic!("slow request failed: {p}"));
    assert_eq!(resp.status, 200);
    assert_eq!(
        d.wait_exit(Duration::from_secs(5)),
        Some(0),
        "output:\n{}",
        d.output()
    );
}

// ---------------------------------------------------------------------------------------------
// Limits live in the snapshot (issue 5: "all of these limits reload with the config")
// ---------------------------------------------------------------------------------------------

#[test]
fn body_limits_change_with_a_reload() {
    let wide = "response_limits:\n  max_response_body_size: 1000\n";
    let narrow = "response_limits:\n  max_response_body_size: 10\nrequest_limits:\n  max_request_body_size: 5\n";
    let (e, d) = echo_and_dito(wide, &[("^/b", "/bytes")]);
    assert_eq!(status(d.addr, "/b/100"), Some(200));
    std::fs::write(cfg_path(&d), echo_yaml(&e, narrow, &[("^/b", "/bytes")])).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/b/100") == Some(413)).is_some(),
        "the narrower response limit did not apply; output:\n{}",
        d.output()
    );
    let r = support::client::request(
        d.addr,
        b"POST /b/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabcdef",
    );
    assert_eq!(r.status, 413, "the narrower request limit did not apply");
    assert!(r.body_str().contains("Request body too large"));
}
