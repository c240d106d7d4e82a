//! Logging as an operator sees it (spec §11): `json` lines that all parse, `text` without ANSI
//! on a pipe, `level: warn` hiding INFO lines but not startup lines, a reload changing what a
//! worker logs, and every line written before the process exits.
//!
//! Most tests redirect stdout to a file, as an operator would: after the process exits the
//! file holds everything it printed, so a line's absence is checked on the complete output.
//! Readiness and reloads are bounded polls for an observable change, never sleeps. Worker
//! lines come from a malformed request, which a worker logs at DEBUG (`request rejected`)
//! with the client address, so each request's line can be told apart by its client port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::client::get;
use support::{dito_bin, io_driver, temp_dir, write_file, Dito};

/// How long a start, a reload or an exit may take.
const LIMIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(10);

/// One worker, so a request seen on the new generation proves *the* worker committed it.
fn yaml(logging: &str, liveness: &str, extra: &str) -> String {
    format!(
        "port: 0\nlisten: 127.0.0.1\nworkers: 1\nio_driver: {}\n\
         health:\n  liveness_path: {liveness}\nlogging:\n{logging}{extra}",
        io_driver()
    )
}

/// A `dito` whose stdout and stderr go to files.
struct Run {
    child: Child,
    dir: PathBuf,
    cfg: PathBuf,
    addr: SocketAddr,
}

impl Run {
    fn start(config: &str) -> Run {
        let dir = temp_dir();
        let cfg = write_file(&dir, "config.yaml", config);
        let child = Command::new(dito_bin())
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("stdout")).unwrap())
            .stderr(File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("spawn dito");
        let mut run = Run {
            child,
            dir,
            cfg,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = run
            .wait_line(|l| l.contains("Dito is ready on "))
            .unwrap_or_else(|| panic!("no ready line:\n{}", run.all_output()));
        let tail = line.split("Dito is ready on ").nth(1).unwrap();
        let addr: String = tail
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || ".:[]".contains(*c))
            .collect();
        run.addr = addr.parse().expect("ready line address");
        run
    }

    fn stdout(&self) -> String {
        read(&self.dir.join("stdout"))
    }

    fn all_output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            read(&self.dir.join("stderr"))
        )
    }

    /// The first stdout line matching `pred`, polling up to [`LIMIT`].
    fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(l) = self.stdout().lines().find(|l| pred(l)) {
                return Some(l.to_owned());
            }
            if Instant::now() >= deadline || !matches!(self.child.try_wait(), Ok(None)) {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    fn signal(&self, sig: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child, not reaped before this handle drops.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// Rewrites the config with `liveness` as the liveness path, sends SIGHUP and waits until
    /// the worker answers on that path: it has committed the new generation.
    fn reload(&mut self, config: &str, liveness: &str) {
        std::fs::write(&self.cfg, config).unwrap();
        self.signal(libc::SIGHUP);
        let deadline = Instant::now() + LIMIT;
        while get(self.addr, liveness).status != 200 {
            assert!(
                Instant::now() < deadline,
                "reload not applied:\n{}",
                self.all_output()
            );
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, then the exit code and the complete stdout.
    fn stop(mut self) -> (Option<i32>, String) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + LIMIT;
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            assert!(Instant::now() < deadline, "no exit:\n{}", self.all_output());
            std::thread::sleep(POLL);
        };
        (code, self.stdout())
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read(path: &std::path::Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Sends a request line the worker rejects (400); the client port names the worker's line.
fn malformed(addr: SocketAddr) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let port = s.local_addr().unwrap().port();
    s.write_all(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 400", "{}", String::from_utf8_lossy(&head));
    port
}

/// The text-format `request rejected` line of the request from `port`.
fn rejected_text(port: u16) -> impl Fn(&str) -> bool {
    let needle = format!("client=127.0.0.1:{port} ");
    move |l: &str| l.contains("request rejected") && l.contains(&needle)
}

fn is_rfc3339_utc(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && ts.ends_with('Z')
}

#[test]
fn json_format_every_stdout_line_is_a_json_object() {
    let a = yaml("  format: json\n  level: info\n", "/live-a", "");
    let mut run = Run::start(&a);
    run.reload(
        &yaml("  format: json\n  level: debug\n", "/live-b", ""),
        "/live-b",
    );
    let port = malformed(run.addr);
    let client = format!("127.0.0.1:{port}");
    let seen = run.wait_line(|l| l.contains("request rejected") && l.contains(&client));
    assert!(seen.is_some(), "{}", run.all_output());
    let (code, out) = run.stop();
    assert_eq!(code, Some(0), "{out}");

    let mut messages = Vec::new();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{out}"));
        let m = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        let ts = m["timestamp"].as_str().unwrap_or_default();
        assert!(is_rfc3339_utc(ts), "timestamp {ts:?} in {line}");
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG"].contains(&m["level"].as_str().unwrap_or_default()),
            "{line}"
        );
        let msg = m["message"].as_str().unwrap_or_default().to_owned();
        if msg == "request rejected" && m["client"] == client.as_str() {
            assert_eq!(m["status"], 400, "a number: {line}");
            assert_eq!(m["level"], "DEBUG", "{line}");
        }
        messages.push(msg);
    }
    for want in [
        "Dito is ready on ",
        "config reloaded",
        "request rejected",
        "shutting down",
        "shutdown complete",
    ] {
        assert!(
            messages.iter().any(|m| m.starts_with(want)),
            "no {want:?} line:\n{out}"
        );
    }
}

#[test]
fn text_format_on_a_pipe_has_no_ansi_escapes() {
    // The harness reads stdout through a pipe: not a terminal.
    let d = Dito::start(&support::config(
        "logging:\n  format: text\n  level: debug\n",
    ));
    let out = d.output();
    assert!(!out.contains('\x1b'), "ANSI escape on a pipe:\n{out:?}");
    let ready = out
        .lines()
        .find(|l| l.contains("Dito is ready on"))
        .unwrap_or_else(|| panic!("{out}"));
    let (ts, rest) = ready.split_once(' ').unwrap();
    assert!(is_rfc3339_utc(ts), "{ready}");
    assert!(rest.starts_with(" INFO Dito is ready on "), "{ready:?}");
}

#[test]
fn the_harness_starts_a_json_configured_dito() {
    let d = Dito::start(&support::config("logging:\n  format: json\n"));
    assert_eq!(get(d.addr, "/healthz").status, 200, "{}", d.output());
}

#[test]
fn level_warn_hides_info_lines_except_startup_lines() {
    let cfg = yaml("  level: warn\n", "/live-a", "");
    let mut run = Run::start(&cfg);
    let port = malformed(run.addr);
    // A valid reload with an unknown key: its WARN shows, its INFO "config reloaded" does not.
    run.reload(
        &yaml("  level: warn\n", "/live-b", "bogus_key: 1\n"),
        "/live-b",
    );
    assert!(
        run.wait_line(|l| l.contains(" WARN ") && l.contains("bogus_key"))
            .is_some(),
        "{}",
        run.all_output()
    );
    let (code, out) = run.stop();
    assert_eq!(code, Some(0), "{out}");
    for startup in [
        "starting",
        "io driver",
        "workers: 1",
        "listening on",
        "Dito is ready on",
    ] {
        assert!(
            out.contains(startup),
            "startup line {startup:?} missing:\n{out}"
        );
    }
    let startup_info = [
        "Dito 0.1.0 starting",
        "io driver",
        "workers: 1",
        "listening on",
        "Dito is ready on",
    ];
    // Access lines follow `logging.enabled` only, never the level (spec §11).
    for line in out
        .lines()
        .filter(|l| l.contains(" INFO ") && !l.contains("HTTP request processed"))
    {
        assert!(
            startup_info.iter().any(|s| line.contains(s)),
            "an INFO line at level warn:\n{line}\n{out}"
        );
    }
    assert!(!out.contains("DEBUG"), "{out}");
    assert!(!rejected_text(port)(&out), "{out}");
}

#[test]
fn a_reload_changes_the_worker_level() {
    let mut run = Run::start(&yaml("  level: info\n", "/live-a", ""));
    let before = malformed(run.addr);

    run.reload(&yaml("  level: debug\n", "/live-b", ""), "/live-b");
    let during = malformed(run.addr);
    assert!(
        run.wait_line(rejected_text(during)).is_some(),
        "the worker does not log at DEBUG after the reload:\n{}",
        run.all_output()
    );

    run.reload(&yaml("  level: info\n", "/live-c", ""), "/live-c");
    let after = malformed(run.addr);
    let (code, out) = run.stop();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.lines().any(rejected_text(during)), "{out}");
    for (when, port) in [("before", before), ("after", after)] {
        assert!(
            !out.lines().any(rejected_text(port)),
            "DEBUG line {when} the debug generation:\n{out}"
        );
    }
}

/// Many worker lines as fast as the worker logs them, stdout to a file: none is dropped, and
/// every one is written before the process exits.
#[test]
fn ten_thousand_worker_lines_reach_the_file_before_exit() {
    const PER_THREAD: usize = 2_500;
    let mut cfg = yaml("  level: debug\n", "/live-a", "");
    cfg = cfg.replace("workers: 1", "workers: 2");
    let run = Run::start(&cfg);
    let addr = run.addr;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    malformed(addr);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (code, out) = run.stop();
    assert_eq!(code, Some(0));
    let n = out
        .lines()
        .filter(|l| l.contains("request rejected"))
        .count();
    assert_eq!(n, 4 * PER_THREAD, "lines lost");
}
