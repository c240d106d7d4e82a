//! Shared helpers of the command-line tests (`cli_check`, `cli_run`): a temporary directory,
//! the bounded runner that kills a `dito` still running after [`EXIT_TIMEOUT`], the stderr
//! line comparisons, and the configs several tests load. A directory module, so Cargo does
//! not build it as a test target of its own.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support;

/// How long a command that should exit by itself may run.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One valid location, for configs that need a route.
pub const ONE_LOCATION: &str = "locations:\n  - path: ^/a\n    target_url: http://127.0.0.1:9\n";

/// A temporary directory removed when the test ends (kept if the removal fails).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        TempDir(support::temp_dir())
    }

    /// Writes `name` with `text`; returns its path as a string (the FILE of messages).
    pub fn file(&self, name: &str, text: &str) -> String {
        support::write_file(&self.0, name, text)
            .to_str()
            .expect("utf-8 temp path")
            .to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Everything a process printed, for assertion messages.
pub fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

/// The lines of `text`, sorted (the spec fixes the lines, not their order).
pub fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// `expected` lines with `{F}` replaced by the file name, sorted.
pub fn expected_lines(file: &str, expected: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = expected.iter().map(|l| l.replace("{F}", file)).collect();
    lines.sort();
    lines
}

/// Asserts the exit code and that stderr holds exactly `expected` (`{F}` = the file), one per
/// line, in any order.
pub fn assert_exit_and_stderr(out: &Output, code: i32, file: &str, expected: &[&str]) {
    assert_eq!(out.status.code(), Some(code), "{}", shown(out));
    assert_eq!(
        sorted_lines(&stderr(out)),
        expected_lines(file, expected),
        "{}",
        shown(out)
    );
}

/// Runs `dito ARGS` in `cwd` (or the test's directory) and waits for it to exit, at most
/// [`EXIT_TIMEOUT`]; a process still running then is killed and the test fails.
pub fn run_bounded_in(cwd: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(support::dito_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().expect("spawn dito");
    // Each reader ends at EOF, which comes when the process exits.
    let (tx, rx) = mpsc::channel();
    let mut readers = Vec::new();
    for (n, mut stream) in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            let _ = tx.send(n);
            bytes
        }));
    }
    let deadline = std::time::Instant::now() + EXIT_TIMEOUT;
    let mut finished = 0;
    while finished < 2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(_) => finished += 1,
            Err(_) => break,
        }
    }
    let timed_out = finished < 2;
    if timed_out {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait for dito");
    let mut outputs = readers.into_iter().map(|r| r.join().unwrap());
    let out = Output {
        status,
        stdout: outputs.next().unwrap(),
        stderr: outputs.next().unwrap(),
    };
    assert!(
        !timed_out,
        "dito {args:?} was still running after {EXIT_TIMEOUT:?} (killed)\n{}",
        shown(&out)
    );
    out
}

pub fn run_bounded(args: &[&str]) -> Output {
    run_bounded_in(None, args)
}

/// A config that loads, on an ephemeral loopback port with the driver under test.
pub fn good_config() -> String {
    support::config(ONE_LOCATION)
}

/// A config with several problems at once, and the lines `dito` must print for it.
pub const MANY_ERRORS: &str = "\
port: 0
listen: 127.0.0.1
request_timeout: 30
response_limits:
  max_response_body_size: -1
locations:
  - path: \"^/a(\"
    target_url: http://127.0.0.1:9
  - path: ^/b
  - path: ^/c
    target_url: ftp://x
";

pub const MANY_ERRORS_LINES: &[&str] = &[
    "{F}: request_timeout: bare number 30 is not a duration; write it with a unit such as \"30s\"",
    "{F}: response_limits.max_response_body_size: must not be negative, found -1",
    "{F}: locations[0].path: invalid regex: unclosed group (at character 4)",
    "{F}: locations[1].target_url: required key is missing",
    "{F}: locations[2].target_url: unsupported scheme \"ftp\" (expected http, https, ws or wss)",
];

/// Asserts that stdout is exactly the `FILE: configuration OK` line of `dito check`.
#[track_caller]
pub fn assert_configuration_ok(out: &Output, file: &str) {
    assert_eq!(
        stdout(out),
        format!("{file}: configuration OK\n"),
        "{}",
        shown(out)
    );
}
