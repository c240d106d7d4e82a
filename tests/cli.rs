//! Black-box tests of the command line and of config loading as users see it (spec §1, §2,
//! §12): exit codes, the exact `FILE: KEY_PATH: problem` lines on stderr, warnings, the
//! startup lines and the ready line, and port clashes.
//!
//! Every process is the real `dito` binary. Commands that could start serving (run mode, or a
//! usage error the CLI might wrongly accept) run through [`run_bounded`], which kills the
//! process if it has not exited in time, so no test can hang.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::Dito;

/// How long a command that should exit by itself may run.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One valid location, for configs that need a route.
const ONE_LOCATION: &str = "locations:\n  - path: ^/a\n    target_url: http://127.0.0.1:9\n";

// ---- helpers ----

/// A temporary directory removed when the test ends (kept if the removal fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        TempDir(support::temp_dir())
    }

    /// Writes `name` with `text`; returns its path as a string (the FILE of messages).
    fn file(&self, name: &str, text: &str) -> String {
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Everything a process printed, for assertion messages.
fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    )
}

/// The lines of `text`, sorted (the spec fixes the lines, not their order).
fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// `expected` lines with `{F}` replaced by the file name, sorted.
fn expected_lines(file: &str, expected: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = expected.iter().map(|l| l.replace("{F}", file)).collect();
    lines.sort();
    lines
}

/// Asserts the exit code and that stderr holds exactly `expected` (`{F}` = the file), one per
/// line, in any order.
fn assert_exit_and_stderr(out: &Output, code: i32, file: &str, expected: &[&str]) {
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
fn run_bounded_in(cwd: Option<&Path>, args: &[&str]) -> Output {
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

fn run_bounded(args: &[&str]) -> Output {
    run_bounded_in(None, args)
}

/// A config that loads, on an ephemeral loopback port with the driver under test.
fn good_config() -> String {
    support::config(ONE_LOCATION)
}

/// A config with several problems at once, and the lines `dito` must print for it.
const MANY_ERRORS: &str = "\
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

const MANY_ERRORS_LINES: &[&str] = &[
    "{F}: request_timeout: bare number 30 is not a duration; write it with a unit such as \"30s\"",
    "{F}: response_limits.max_response_body_size: must not be negative, found -1",
    "{F}: locations[0].path: invalid regex: unclosed group (at character 4)",
    "{F}: locations[1].target_url: required key is missing",
    "{F}: locations[2].target_url: unsupported scheme \"ftp\" (expected http, https, ws or wss)",
];

// ---- dito check ----

#[test]
fn check_good_config_exits_0_and_says_ok() {
    let dir = TempDir::new();
    let file = dir.file("good.yaml", &good_config());
    let out = support::run_dito(&["check", "-f", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(
        stdout(&out),
        format!("{file}: configuration OK\n"),
        "{}",
        shown(&out)
    );
    assert_eq!(stderr(&out), "", "no warnings expected\n{}", shown(&out));
}

#[test]
fn check_empty_config_is_valid() {
    // An empty file is every default (spec §2: `locations` empty = 404 for everything).
    let dir = TempDir::new();
    let file = dir.file("empty.yaml", "");
    let out = support::run_dito(&["check", "-f", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(
        stdout(&out),
        format!("{file}: configuration OK\n"),
        "{}",
        shown(&out)
    );
}

#[test]
fn check_missing_file_exits_1_with_one_line_naming_it() {
    let dir = TempDir::new();
    let file = dir.0.join("no-such-config.yaml");
    let file = file.to_str().unwrap();
    let out = support::run_dito(&["check", "-f", file]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert_eq!(stdout(&out), "", "{}", shown(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected\n{}", shown(&out));
    assert_eq!(
        lines[0],
        format!("{file}: cannot read the file: No such file or directory (os error 2)"),
        "{}",
        shown(&out)
    );
}

#[test]
fn check_reports_every_error_each_on_its_own_line() {
    let dir = TempDir::new();
    let file = dir.file("bad.yaml", MANY_ERRORS);
    let out = support::run_dito(&["check", "-f", &file]);
    assert_exit_and_stderr(&out, 1, &file, MANY_ERRORS_LINES);
    assert_eq!(
        stdout(&out),
        "",
        "nothing on stdout for a bad config\n{}",
        shown(&out)
    );
}

#[test]
fn errors_are_listed_in_file_order() {
    // Problems found in different passes (YAML types, then values) still read top to bottom.
    let dir = TempDir::new();
    let file = dir.file(
        "order.yaml",
        "\
locations:
  - path: ^/a
    target_url: ftp://x
    max_response_body_size: -1
  - path: \"(\"
    target_url: http://127.0.0.1:9
request_timeout: 30
",
    );
    let out = support::run_dito(&["check", "-f", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let want: Vec<String> = [
        "{F}: locations[0].target_url: unsupported scheme \"ftp\" (expected http, https, ws or wss)",
        "{F}: locations[0].max_response_body_size: must not be negative, found -1",
        "{F}: locations[1].path: invalid regex: unclosed group (at character 1)",
        "{F}: request_timeout: bare number 30 is not a duration; write it with a unit such as \"30s\"",
    ]
    .iter()
    .map(|l| l.replace("{F}", &file))
    .collect();
    let got: Vec<String> = stderr(&out).lines().map(str::to_owned).collect();
    assert_eq!(got, want, "{}", shown(&out));
}

#[test]
fn check_bare_number_durations_need_a_unit_everywhere() {
    let dir = TempDir::new();
    let file = dir.file(
        "durations.yaml",
        "\
request_timeout: 30
shutdown_delay: 1.5
request_limits:
  header_read_timeout: 10
transport:
  http:
    dial_timeout: 5
locations:
  - path: ^/a
    target_url: http://127.0.0.1:9
    websocket_idle_timeout: 300
    transport:
      http:
        response_header_timeout: 60
",
    );
    let out = support::run_dito(&["check", "-f", &file]);
    assert_exit_and_stderr(
        &out,
        1,
        &file,
        &[
            "{F}: request_timeout: bare number 30 is not a duration; write it with a unit such as \"30s\"",
            "{F}: shutdown_delay: bare number 1.5 is not a duration; write it with a unit such as \"1.5s\"",
            "{F}: request_limits.header_read_timeout: bare number 10 is not a duration; write it with a unit such as \"10s\"",
            "{F}: transport.http.dial_timeout: bare number 5 is not a duration; write it with a unit such as \"5s\"",
            "{F}: locations[0].websocket_idle_timeout: bare number 300 is not a duration; write it with a unit such as \"300s\"",
            "{F}: locations[0].transport.http.response_header_timeout: bare number 60 is not a duration; write it with a unit such as \"60s\"",
        ],
    );
}

#[test]
fn check_names_the_file_as_given() {
    // The spec's own example: `config.yaml: locations[2].target_url: missing host`, with a
    // relative path printed as written.
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.0.join("sub")).unwrap();
    dir.file(
        "sub/config.yaml",
        "\
locations:
  - path: ^/a
    target_url: http://127.0.0.1:9
  - path: ^/b
    target_url: http://127.0.0.1:9
  - path: ^/c
    target_url: http://
",
    );
    let out = run_bounded_in(Some(&dir.0), &["check", "-f", "sub/config.yaml"]);
    assert_exit_and_stderr(
        &out,
        1,
        "sub/config.yaml",
        &["{F}: locations[2].target_url: missing host"],
    );
}

#[test]
fn yaml_syntax_error_reports_file_line_and_column() {
    let dir = TempDir::new();
    // Line 7 is indented by one space: not a key of `logging`, not a top-level key.
    let file = dir.file(
        "syntax.yaml",
        "\
port: 0
listen: 127.0.0.1
workers: 2
logging:
  level: info
  enabled: true
 format: text
",
    );
    let out = support::run_dito(&["check", "-f", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert_eq!(stdout(&out), "", "{}", shown(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected\n{}", shown(&out));
    assert_syntax_line(lines[0], &file, 7);
}

#[test]
fn yaml_duplicate_key_reports_its_line() {
    let dir = TempDir::new();
    let file = dir.file(
        "dup.yaml",
        "\
port: 0
listen: 127.0.0.1
locations:
  - path: ^/a
    target_url: http://127.0.0.1:9
  - path: ^/b
    target_url: http://127.0.0.1:9
    path: ^/c
",
    );
    let out = support::run_dito(&["check", "-f", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected\n{}", shown(&out));
    assert_syntax_line(lines[0], &file, 8);
    assert!(
        lines[0].contains("duplicate") && lines[0].contains("path"),
        "the message names the duplicate key: {}",
        lines[0]
    );
}

#[test]
fn yaml_duplicate_key_message_speaks_to_users() {
    // The parser library's advice ("set DuplicateKeyPolicy in Options") names an API the user
    // of the binary cannot reach.
    let dir = TempDir::new();
    let file = dir.file("dup.yaml", "port: 0\nlisten: 127.0.0.1\nport: 1\n");
    let out = support::run_dito(&["check", "-f", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let err = stderr(&out);
    assert!(
        !err.contains("DuplicateKeyPolicy") && !err.contains("Options"),
        "the message leaks the YAML library's API\n{}",
        shown(&out)
    );
}

/// `FILE:LINE:COL: message` with the given line and a positive column.
fn assert_syntax_line(line: &str, file: &str, want_line: u32) {
    let prefix = format!("{file}:{want_line}:");
    let rest = line
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("expected `{prefix}COL: message`, got {line:?}"));
    let (col, message) = rest
        .split_once(": ")
        .unwrap_or_else(|| panic!("expected `COL: message` after {prefix:?}, got {line:?}"));
    let col: u32 = col
        .parse()
        .unwrap_or_else(|_| panic!("column {col:?} is not a number in {line:?}"));
    assert!(col >= 1, "{line:?}");
    assert!(!message.trim().is_empty(), "empty message: {line:?}");
}

#[test]
fn unknown_keys_are_warned_with_their_full_path() {
    let dir = TempDir::new();
    let file = dir.file(
        "unknown.yaml",
        "\
bogus_key: 1
logging:
  colour: red
locations:
  - path: ^/a
    target_url: http://127.0.0.1:9
  - path: ^/b
    target_url: http://127.0.0.1:9
    pathh: x
",
    );
    let out = support::run_dito(&["check", "-f", &file]);
    assert_exit_and_stderr(
        &out,
        0,
        &file,
        &[
            "WARN {F}: bogus_key: unknown key",
            "WARN {F}: logging.colour: unknown key",
            "WARN {F}: locations[1].pathh: unknown key (did you mean \"path\"?)",
        ],
    );
    assert_eq!(
        stdout(&out),
        format!("{file}: configuration OK\n"),
        "{}",
        shown(&out)
    );
}

#[test]
fn dead_go_keys_are_warned_as_doing_nothing() {
    let dir = TempDir::new();
    let file = dir.file(
        "dead.yaml",
        "\
redis:
  address: localhost:6379
locations:
  - path: ^/a
    target_url: http://127.0.0.1:9
    rate_limiting:
      enabled: true
      requests_per_second: 10
    cache:
      enabled: true
      ttl: 60
    enable_compression: true
",
    );
    let out = support::run_dito(&["check", "-f", &file]);
    const NO_EFFECT: &str =
        "has no effect: the Go version read this key but never used it; remove it";
    let lines: Vec<String> = ["redis", "locations[0].rate_limiting", "locations[0].cache"]
        .iter()
        .chain(&["locations[0].enable_compression"])
        .map(|key| format!("WARN {{F}}: {key}: {NO_EFFECT}"))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_exit_and_stderr(&out, 0, &file, &lines);
    assert_eq!(
        stdout(&out),
        format!("{file}: configuration OK\n"),
        "{}",
        shown(&out)
    );
}

/// A misspelt required key: an error (missing) and the warning that explains it. Dropping the
/// warning when the load fails hides the one hint the user needs (spec §2: unknown keys get a
/// WARN naming the key path — whether or not the rest of the file loads).
const TYPO: &str = "locations:\n  - path: ^/a\n    target_ur: http://127.0.0.1:9\n";

#[test]
fn check_prints_warnings_even_when_the_config_fails() {
    let dir = TempDir::new();
    let file = dir.file("typo.yaml", TYPO);
    let out = support::run_dito(&["check", "-f", &file]);
    assert_exit_and_stderr(
        &out,
        1,
        &file,
        &[
            "{F}: locations[0].target_url: required key is missing",
            "WARN {F}: locations[0].target_ur: unknown key (did you mean \"target_url\"?)",
        ],
    );
}

#[test]
fn run_prints_warnings_even_when_the_config_fails() {
    let dir = TempDir::new();
    let file = dir.file("typo.yaml", TYPO);
    let out = run_bounded(&["-f", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert!(
        stderr(&out)
            .lines()
            .any(|l| l == format!("{file}: locations[0].target_url: required key is missing")),
        "{}",
        shown(&out)
    );
    // Logging is not set up when the load fails, so the WARN may be on either stream.
    let all = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(
        all.lines().any(|l| l.contains("WARN")
            && l.ends_with(&format!(
                "{file}: locations[0].target_ur: unknown key (did you mean \"target_url\"?)"
            ))),
        "run mode drops the warning\n{}",
        shown(&out)
    );
}

#[test]
fn not_supported_yet_features_are_refused() {
    const HASH: &str = "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "tls block",
            format!("tls:\n  cert_file: /x/cert.pem\n  key_file: /x/key.pem\n{ONE_LOCATION}"),
            "tls: not supported yet (TLS listener)",
        ),
        (
            "plugins block",
            format!(
                "plugins:\n  directory: /x/plugins\n  public_key_path: /x/pub.key\n  public_key_hash: {HASH}\n{ONE_LOCATION}"
            ),
            "plugins: not supported yet (plugins)",
        ),
        (
            "middlewares",
            format!("{ONE_LOCATION}    middlewares: [x]\n"),
            "locations[0].middlewares: not supported yet (middlewares)",
        ),
        (
            "global force_http2",
            format!("transport:\n  http:\n    force_http2: true\n{ONE_LOCATION}"),
            "transport.http.force_http2: not supported yet (HTTP/2 upstreams)",
        ),
        (
            "per-location force_http2",
            format!("{ONE_LOCATION}    transport:\n      http:\n        force_http2: true\n"),
            "locations[0].transport.http.force_http2: not supported yet (HTTP/2 upstreams)",
        ),
        (
            "enable_websocket",
            format!("{ONE_LOCATION}    enable_websocket: true\n"),
            "locations[0].enable_websocket: not supported yet (WebSocket)",
        ),
        (
            "https target",
            "locations:\n  - path: ^/a\n    target_url: https://127.0.0.1:9\n".to_owned(),
            "locations[0].target_url: not supported yet (HTTPS upstreams)",
        ),
        (
            "upstream client certificate",
            format!(
                "{ONE_LOCATION}    transport:\n      http:\n        cert_file: /x/c.pem\n        key_file: /x/k.pem\n"
            ),
            "locations[0].transport.http.cert_file: not supported yet (upstream TLS client certificates and CA files)\nlocations[0].transport.http.key_file: not supported yet (upstream TLS client certificates and CA files)",
        ),
        (
            "upstream CA file",
            format!("transport:\n  http:\n    ca_file: /x/ca.pem\n{ONE_LOCATION}"),
            "transport.http.ca_file: not supported yet (upstream TLS client certificates and CA files)",
        ),
        (
            "metrics",
            format!("metrics:\n  enabled: true\n{ONE_LOCATION}"),
            "metrics.enabled: not supported yet (metrics endpoint)",
        ),
        (
            "JSON logs",
            format!("logging:\n  format: json\n{ONE_LOCATION}"),
            "logging.format: not supported yet (JSON log lines)",
        ),
        (
            "verbose logs",
            format!("logging:\n  verbose: true\n{ONE_LOCATION}"),
            "logging.verbose: not supported yet (verbose header dumps)",
        ),
        (
            "wss target",
            format!("{ONE_LOCATION}  - path: ^/b\n    target_url: wss://example.com/ws\n"),
            "locations[1].target_url: not supported yet (HTTPS upstreams)",
        ),
    ];
    let dir = TempDir::new();
    let mut failures = Vec::new();
    for (n, (what, yaml, line)) in cases.iter().enumerate() {
        let file = dir.file(&format!("case{n}.yaml"), yaml);
        let out = support::run_dito(&["check", "-f", &file]);
        // One expected line per `\n`-separated item, each `FILE: ` + item.
        let want: Vec<String> = line.lines().map(|l| format!("{{F}}: {l}")).collect();
        let want = expected_lines(&file, &want.iter().map(String::as_str).collect::<Vec<_>>());
        if out.status.code() != Some(1) || sorted_lines(&stderr(&out)) != want {
            failures.push(format!("{what}: want exit 1 and {want:?}\n{}", shown(&out)));
        }
        assert!(line.contains("not supported yet"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn features_switched_off_and_plain_targets_are_fine() {
    // The refusals above are about the features, not the keys.
    let dir = TempDir::new();
    let file = dir.file(
        "fine.yaml",
        &format!(
            "hot_reload: false\nmetrics:\n  enabled: false\nlogging:\n  format: text\n  verbose: false\ntransport:\n  http:\n    force_http2: false\n{ONE_LOCATION}    enable_websocket: false\n    middlewares: []\n  - path: ^/ws\n    target_url: ws://127.0.0.1:9\n"
        ),
    );
    let out = support::run_dito(&["check", "-f", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(stderr(&out), "", "{}", shown(&out));
}

#[test]
fn hop_by_hop_and_framing_header_names_are_errors() {
    let dir = TempDir::new();
    let file = dir.file(
        "headers.yaml",
        "\
locations:
  - path: ^/a
    target_url: http://127.0.0.1:9
    additional_headers:
      X-Fine: ok
      Connection: close
      Keep-Alive: timeout=5
      content-length: \"5\"
    excluded_headers:
      - X-Also-Fine
      - Transfer-Encoding
      - upgrade
      - TE
  - path: ^/b
    target_url: http://127.0.0.1:9
    additional_headers:
      Proxy-Authorization: secret
    excluded_headers:
      - HTTP2-Settings
",
    );
    let out = support::run_dito(&["check", "-f", &file]);
    assert_exit_and_stderr(
        &out,
        1,
        &file,
        &[
            "{F}: locations[0].additional_headers.Connection: \"Connection\" is a hop-by-hop header, which Dito manages itself",
            "{F}: locations[0].additional_headers.Keep-Alive: \"Keep-Alive\" is a hop-by-hop header, which Dito manages itself",
            "{F}: locations[0].additional_headers.content-length: \"content-length\" is a framing header, which Dito manages itself",
            "{F}: locations[0].excluded_headers[1]: \"Transfer-Encoding\" is a hop-by-hop header, which Dito manages itself",
            "{F}: locations[0].excluded_headers[2]: \"upgrade\" is a hop-by-hop header, which Dito manages itself",
            "{F}: locations[0].excluded_headers[3]: \"TE\" is a hop-by-hop header, which Dito manages itself",
            "{F}: locations[1].additional_headers.Proxy-Authorization: \"Proxy-Authorization\" is a hop-by-hop header, which Dito manages itself",
            "{F}: locations[1].excluded_headers[0]: \"HTTP2-Settings\" is a hop-by-hop header, which Dito manages itself",
        ],
    );
}

#[test]
fn error_output_ends_with_a_newline() {
    // "one line each" (spec §1): the last line too, or the shell prompt lands on it.
    let dir = TempDir::new();
    let bad = dir.file("bad.yaml", MANY_ERRORS);
    let syntax = dir.file("syntax.yaml", "a: [1, 2\n");
    let missing = dir.0.join("missing.yaml").to_str().unwrap().to_owned();
    let mut failures = Vec::new();
    for args in [
        vec!["check", "-f", &bad],
        vec!["check", "-f", &syntax],
        vec!["check", "-f", &missing],
        vec!["-f", &bad],
        vec!["-f", &missing],
    ] {
        let out = run_bounded(&args);
        let err = stderr(&out);
        if out.status.code() != Some(1) || !err.ends_with('\n') {
            failures.push(format!(
                "dito {args:?}: stderr does not end with a newline\n{}",
                shown(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---- command-line forms ----

#[test]
fn version_prints_the_version_and_exits_0() {
    for flag in ["--version", "-V"] {
        let out = support::run_dito(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}\n{}", shown(&out));
        assert_eq!(
            stdout(&out),
            format!("dito {VERSION}\n"),
            "{flag}\n{}",
            shown(&out)
        );
        assert_eq!(stderr(&out), "", "{flag}\n{}", shown(&out));
    }
}

#[test]
fn help_exits_0_and_lists_the_command_and_flags() {
    for flag in ["--help", "-h"] {
        let out = support::run_dito(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}\n{}", shown(&out));
        let text = stdout(&out);
        for needle in ["Usage:", "check", "--config", "-f"] {
            assert!(
                text.contains(needle),
                "{flag}: help lacks {needle:?}\n{}",
                shown(&out)
            );
        }
    }
    let out = support::run_dito(&["check", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(stdout(&out).contains("Usage:"), "{}", shown(&out));
}

#[test]
fn usage_errors_exit_2() {
    let dir = TempDir::new();
    let file = dir.file("good.yaml", &good_config());
    let mut failures = Vec::new();
    for (args, mention) in [
        (vec!["--bogus"], "--bogus"),
        (vec!["check", "--bogus", "-f", &file], "--bogus"),
        (vec!["-f", &file, "--no-such-flag"], "--no-such-flag"),
        (vec!["nosuchcommand", "-f", &file], "nosuchcommand"),
        (vec!["check", "-f", &file, "extra"], "extra"),
        (vec!["check", "-f"], ""),
    ] {
        let out = run_bounded(&args);
        if out.status.code() != Some(2) || !stderr(&out).contains(mention) {
            failures.push(format!(
                "dito {args:?}: want exit 2 naming {mention:?}\n{}",
                shown(&out)
            ));
        }
        if !stdout(&out).is_empty() {
            failures.push(format!(
                "dito {args:?}: usage errors go to stderr\n{}",
                shown(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn go_style_and_long_config_flags_all_load_the_file() {
    let dir = TempDir::new();
    let good = dir.file("good.yaml", &good_config());
    let bad = dir.file(
        "bad.yaml",
        "locations:\n  - path: ^/a\n    target_url: http://\n",
    );
    let forms: &[&[&str]] = &[
        &["check", "-f", "FILE"],
        &["check", "-f=FILE"],
        &["check", "--f", "FILE"],
        &["check", "--f=FILE"],
        &["check", "--config", "FILE"],
        &["check", "--config=FILE"],
        &["-f", "FILE", "check"],
        &["-f=FILE", "check"],
        &["--f", "FILE", "check"],
        &["--config", "FILE", "check"],
        &["-enable-profiler=false", "check", "-f", "FILE"],
    ];
    let mut failures = Vec::new();
    for form in forms {
        // The good file says OK; the bad one gives its own error: the file named was loaded,
        // not the default `config.yaml`.
        for (file, code, want_out, want_err) in [
            (
                &good,
                0,
                format!("{good}: configuration OK\n"),
                String::new(),
            ),
            (
                &bad,
                1,
                String::new(),
                format!("{bad}: locations[0].target_url: missing host"),
            ),
        ] {
            let args: Vec<String> = form.iter().map(|a| a.replace("FILE", file)).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = run_bounded(&args);
            if out.status.code() != Some(code)
                || stdout(&out) != want_out
                || stderr(&out).trim_end() != want_err
            {
                failures.push(format!(
                    "dito {args:?}: want exit {code}, stdout {want_out:?}, stderr {want_err:?}\n{}",
                    shown(&out)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---- run mode ----

#[test]
fn run_with_a_bad_config_exits_1_with_the_same_lines_and_does_not_start() {
    let dir = TempDir::new();
    let file = dir.file("bad.yaml", MANY_ERRORS);
    for flag in ["-f", "--config"] {
        let out = run_bounded(&[flag, &file]);
        assert_exit_and_stderr(&out, 1, &file, MANY_ERRORS_LINES);
        let printed = stdout(&out);
        assert!(
            !printed.contains("Dito is ready") && !printed.contains("listening on"),
            "{}",
            shown(&out)
        );
    }
    // Same through the harness: it never reaches the ready line.
    match Dito::try_start(MANY_ERRORS) {
        Ok(d) => panic!(
            "dito started on {} with a bad config:\n{}",
            d.addr,
            d.output()
        ),
        Err(f) => {
            assert_eq!(f.code, Some(1), "{f:?}");
            for line in MANY_ERRORS_LINES {
                let tail = line.strip_prefix("{F}").unwrap();
                assert!(
                    f.output.lines().any(|l| l.ends_with(tail)),
                    "missing {tail:?} in:\n{}",
                    f.output
                );
            }
        }
    }
}

#[test]
fn run_with_a_not_supported_feature_does_not_start() {
    let yaml = support::config(&format!("{ONE_LOCATION}    enable_websocket: true\n"));
    match Dito::try_start(&yaml) {
        Ok(d) => panic!("dito started with enable_websocket: true:\n{}", d.output()),
        Err(f) => {
            assert_eq!(f.code, Some(1), "{f:?}");
            assert!(
                f.output.lines().any(|l| l
                    .ends_with(": locations[0].enable_websocket: not supported yet (WebSocket)")),
                "{}",
                f.output
            );
        }
    }
}

/// The position of the first line containing every `needles` item, or a panic showing `all`.
fn line_with(lines: &[&str], needles: &[&str], all: &str) -> usize {
    lines
        .iter()
        .position(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no line contains all of {needles:?} in:\n{all}"))
}

#[test]
fn startup_prints_its_lines_then_ready_with_the_real_port() {
    let d = Dito::start(&good_config());
    assert_eq!(d.addr.ip().to_string(), "127.0.0.1", "{}", d.output());
    assert_ne!(
        d.addr.port(),
        0,
        "the ready line must print the real port\n{}",
        d.output()
    );
    let all = d.output();
    let lines: Vec<&str> = all.lines().collect();
    let addr = d.addr.to_string();
    let version = line_with(&lines, &["Dito", VERSION], &all);
    let driver_name = match support::io_driver().as_str() {
        "uring" => "io_uring",
        other => other,
    }
    .to_owned();
    let driver = line_with(&lines, &["io driver", &driver_name], &all);
    let workers = line_with(&lines, &["workers: 2", "pinning"], &all);
    let listen = line_with(&lines, &["listening on", &addr], &all);
    let ready = line_with(&lines, &[&format!("Dito is ready on {addr}")], &all);
    assert!(
        lines[ready].ends_with(&format!("Dito is ready on {addr}")),
        "{}",
        lines[ready]
    );
    for (what, at) in [
        ("version", version),
        ("io driver", driver),
        ("workers", workers),
        ("listen", listen),
    ] {
        assert!(
            at < ready,
            "the {what} line comes after the ready line:\n{all}"
        );
    }
    TcpStream::connect_timeout(&d.addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {}: {e}\n{all}", d.addr));
}

#[test]
fn run_mode_prints_unknown_key_warnings_and_starts() {
    let d = Dito::start(&support::config(&format!(
        "{ONE_LOCATION}    pathh: x\nredis:\n  address: localhost:6379\n"
    )));
    let all = d.output();
    for tail in [
        ": locations[0].pathh: unknown key (did you mean \"path\"?)",
        ": redis: has no effect: the Go version read this key but never used it; remove it",
    ] {
        assert!(
            all.lines().any(|l| l.contains("WARN") && l.ends_with(tail)),
            "no WARN line ending with {tail:?} in:\n{all}"
        );
    }
}

#[test]
fn go_style_enable_profiler_false_runs_normally() {
    let d = Dito::try_start_with(&good_config(), |cmd| {
        cmd.arg("-enable-profiler=false");
    })
    .unwrap_or_else(|f| panic!("dito -f FILE -enable-profiler=false did not start: {f:?}"));
    TcpStream::connect_timeout(&d.addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {}: {e}\n{}", d.addr, d.output()));
}

// ---- port clashes (spec §12) ----

/// A config on a fixed loopback port.
fn config_on_port(port: u16) -> String {
    format!(
        "port: {port}\nlisten: 127.0.0.1\nworkers: 2\nio_driver: {}\n",
        support::io_driver()
    )
}

/// Starts Dito on `port`, which `holder` holds: it must exit 1 saying the address is in use.
fn assert_port_clash(port: u16, holder: &str) {
    match Dito::try_start(&config_on_port(port)) {
        Ok(d) => panic!(
            "dito started on {} although {holder} holds port {port}:\n{}",
            d.addr,
            d.output()
        ),
        Err(f) => {
            assert_eq!(f.code, Some(1), "{holder}: {f:?}");
            assert!(
                f.output.contains("address already in use"),
                "{holder}: the output does not say the address is in use:\n{}",
                f.output
            );
            assert!(
                f.output.contains(&format!("127.0.0.1:{port}")),
                "{holder}: the output does not name the address:\n{}",
                f.output
            );
            assert!(!f.output.contains("Dito is ready"), "{}", f.output);
        }
    }
}

/// A listening socket with SO_REUSEADDR and SO_REUSEPORT, as another server would make.
fn reuseport_listener(addr: SocketAddr) -> socket2::Socket {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(&addr.into()).unwrap();
    s.listen(128).unwrap();
    s
}

fn socket_port(s: &socket2::Socket) -> u16 {
    s.local_addr().unwrap().as_socket().unwrap().port()
}

#[test]
fn port_held_by_a_plain_listener_is_a_startup_error() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    assert_port_clash(port, "a plain std listener");
    drop(holder);
}

#[test]
fn port_held_by_a_reuseport_listener_is_a_startup_error() {
    // Dito's own sockets use SO_REUSEPORT; another SO_REUSEPORT socket of the same user must
    // not let it silently share the port (spec §12).
    let holder = reuseport_listener("127.0.0.1:0".parse().unwrap());
    let port = socket_port(&holder);
    assert_port_clash(port, "an SO_REUSEPORT listener on 127.0.0.1");
    // The holder still gets its connections: Dito left nothing behind on the port.
    let _client = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(5),
    )
    .unwrap();
    holder.set_nonblocking(false).unwrap();
    holder
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    holder.accept().unwrap();
}

#[test]
fn port_held_on_the_wildcard_address_is_a_startup_error() {
    let holder = reuseport_listener("0.0.0.0:0".parse().unwrap());
    let port = socket_port(&holder);
    assert_port_clash(port, "an SO_REUSEPORT listener on 0.0.0.0");
}
