//! `dito check` and config loading as users see them (spec §1, §2): exit codes, the exact
//! `FILE: KEY_PATH: problem` lines on stderr in file order, YAML syntax errors with line and
//! column, unknown-key and dead-key warnings (also when the load fails, in check and run
//! mode), not-supported-yet features, upstream TLS files and system roots, hop-by-hop and framing header names, and the trailing
//! newline of error output.
//!
//! Every process is the real `dito` binary; commands that could start serving run through
//! [`run_bounded`], which kills the process if it has not exited in time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_common;
mod support;

use cli_common::{
    assert_configuration_ok, assert_exit_and_stderr, expected_lines, good_config, run_bounded,
    run_bounded_in, shown, sorted_lines, stderr, stdout, TempDir, MANY_ERRORS, MANY_ERRORS_LINES,
    ONE_LOCATION,
};

// ---- dito check ----

#[test]
fn check_good_config_exits_0_and_says_ok() {
    let dir = TempDir::new();
    let file = dir.file("good.yaml", &good_config());
    let out = support::run_dito(&["check", "-f", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_configuration_ok(&out, &file);
    assert_eq!(stderr(&out), "", "no warnings expected\n{}", shown(&out));
}

#[test]
fn check_empty_config_is_valid() {
    // An empty file is every default (spec §2: `locations` empty = 404 for everything).
    let dir = TempDir::new();
    let file = dir.file("empty.yaml", "");
    let out = support::run_dito(&["check", "-f", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_configuration_ok(&out, &file);
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
    assert_configuration_ok(&out, &file);
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
    assert_configuration_ok(&out, &file);
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
fn bad_plugin_references_and_websocket_over_http2_are_refused() {
    const HASH: &str = "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "plugins block",
            format!(
                "plugins:\n  directory: /x/plugins\n  public_key_path: /x/pub.key\n  public_key_hash: {HASH}\n{ONE_LOCATION}"
            ),
            "plugins.public_key_path: /x/pub.key: cannot read: No such file or directory (os error 2)",
        ),
        (
            "middlewares without plugins",
            format!("{ONE_LOCATION}    middlewares: [x]\n"),
            "locations[0].middlewares[0]: unknown middleware \"x\": plugins.directory is not set",
        ),
        (
            "enable_websocket with force_http2",
            format!("{ONE_LOCATION}    enable_websocket: true\n    transport: {{ http: {{ force_http2: true }} }}\n"),
            "locations[0].enable_websocket: WebSocket upgrades need HTTP/1.1 to the upstream, but this location's transport sets force_http2: true",
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

/// `dito check` with `SSL_CERT_FILE` set (read instead of the system store).
fn check_with_cert_file(config: &str, ssl_cert_file: &str) -> std::process::Output {
    std::process::Command::new(support::dito_bin())
        .args(["check", "-f", config])
        .env("SSL_CERT_FILE", ssl_cert_file)
        .env_remove("SSL_CERT_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run dito check")
}

#[test]
fn https_and_wss_targets_use_the_system_roots() {
    let dir = TempDir::new();
    let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()]).unwrap();
    let roots = dir.file("roots.pem", &ca.cert.pem());
    let empty = dir.file("empty.pem", "");
    let file = dir.file(
        "tls.yaml",
        &format!("{ONE_LOCATION}  - path: ^/b\n    target_url: https://example.com\n  - path: ^/c\n    target_url: wss://127.0.0.1:8443/ws\n"),
    );
    let out = check_with_cert_file(&file, &roots);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_configuration_ok(&out, &file);

    // No system roots at all: each TLS target says how to fix it.
    let out = check_with_cert_file(&file, &empty);
    assert_exit_and_stderr(
        &out,
        1,
        &file,
        &[
            "{F}: locations[1].target_url: no system CA certificates found; set transport.http.ca_file",
            "{F}: locations[2].target_url: no system CA certificates found; set transport.http.ca_file",
        ],
    );
}

#[test]
fn tls_files_are_read_and_checked_with_their_key_paths() {
    let dir = TempDir::new();
    let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()]).unwrap();
    let ca_file = dir.file("ca.pem", &ca.cert.pem());
    let key_file = dir.file("key.pem", &ca.signing_key.serialize_pem());
    let empty = dir.file("empty.pem", "");
    let good = dir.file(
        "good.yaml",
        &format!("transport:\n  http:\n    ca_file: {ca_file}\n{ONE_LOCATION}  - path: ^/b\n    target_url: https://127.0.0.1:8443\n    transport:\n      http:\n        cert_file: {ca_file}\n        key_file: {key_file}\n"),
    );
    let out = support::run_dito(&["check", "-f", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));

    let bad = dir.file(
        "bad.yaml",
        &format!("transport:\n  http:\n    ca_file: {empty}\n{ONE_LOCATION}  - path: ^/b\n    target_url: https://127.0.0.1:8443\n    transport:\n      http:\n        cert_file: {ca_file}\n"),
    );
    let out = support::run_dito(&["check", "-f", &bad]);
    let empty_bundle = format!(
        "{{F}}: transport.http.ca_file: no certificates found in {empty} (an empty CA bundle is an error)"
    );
    assert_exit_and_stderr(
        &out,
        1,
        &bad,
        &[
            &empty_bundle,
            "{F}: locations[1].transport.http.key_file: required when cert_file is set",
        ],
    );
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
