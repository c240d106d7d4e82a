//! Errors and warnings: key paths, wording, positions, and what is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn bare_numbers_are_not_durations() {
    assert_eq!(
        errors("request_timeout: 30"),
        ["c.yaml: request_timeout: bare number 30 is not a duration; write it with a unit such as \"30s\""]
    );
    assert_eq!(
        errors("transport: { http: { dial_timeout: \"5\" } }"),
        ["c.yaml: transport.http.dial_timeout: missing unit in duration \"5\"; write it with a unit such as \"5s\""]
    );
    assert_eq!(
        errors("shutdown_delay: \"\""),
        ["c.yaml: shutdown_delay: empty duration; write it with a unit such as \"30s\""]
    );
    assert_eq!(
        errors("shutdown_delay: -1s"),
        ["c.yaml: shutdown_delay: negative duration \"-1s\" is not allowed"]
    );
}

#[test]
fn unknown_log_level_warns_and_uses_info() {
    let loaded = load("logging:\n  level: verbose\n");
    assert_eq!(loaded.config.logging.level, LogLevel::Info);
    assert_eq!(
        warnings(&loaded),
        ["c.yaml: logging.level: unknown level \"verbose\"; using info (expected debug, info, warn or error)"]
    );
}

#[test]
fn unknown_keys_warn_with_full_paths() {
    let yaml = format!(
        "{MINIMAL_LOCATION}  - path: ^/b\n    pathh: x\n    target_url: http://h\n    transport:\n      http:\n        dial_timout: 1s\n      grpc: {{}}\nlogging:\n  colour: true\nextra: 1\n"
    );
    let loaded = load(&yaml);
    assert_eq!(
        warnings(&loaded),
        [
            "c.yaml: locations[1].pathh: unknown key (did you mean \"path\"?)",
            "c.yaml: locations[1].transport.http.dial_timout: unknown key (did you mean \"dial_timeout\"?)",
            "c.yaml: locations[1].transport.grpc: unknown key",
            "c.yaml: logging.colour: unknown key",
            "c.yaml: extra: unknown key",
        ]
    );
}

/// Found by the `config` fuzz target: a key with a line break (a multi-line plain scalar
/// key, or an escaped one) made a warning of several lines, where spec §1 promises one line
/// per diagnostic. Control characters in a rendered diagnostic are escaped.
#[test]
fn keys_with_line_breaks_render_on_one_line() {
    let loaded = load("\"bad\\nkey\\r\": 1\nlogging:\n  \"x\\ty\\e\": 2\n");
    assert_eq!(
        warnings(&loaded),
        [
            "c.yaml: bad\\nkey\\r: unknown key",
            "c.yaml: logging.x\\ty\\u{1b}: unknown key",
        ]
    );
    // The fuzzer's input, as found.
    let found = load("nport: 8081\nrmax_request_body_size:rmax_request_body_size: ^/api\n?   tarnhttprepla\r\r\r\r\r\r\r\r fal{e\n");
    for line in warnings(&found) {
        assert!(!line.contains(['\n', '\r']), "{line:?}");
    }
    assert_eq!(
        errors(
            "locations:\n  - path: ^/a\n    target_url: http://h\n    additional_headers:\n      \"X\\nY\": v\n"
        ),
        ["c.yaml: locations[0].additional_headers.X\\nY: invalid header name \"X\\nY\": \"\\n\" is not allowed in an HTTP token"]
    );
}

#[test]
fn dead_keys_warn_that_they_do_nothing() {
    let yaml = format!(
        "{MINIMAL_LOCATION}    rate_limiting: {{ enabled: true, requests_per_second: 10 }}\n    cache: [1, 2]\n    enable_compression: true\nredis:\n  address: localhost:6379\n"
    );
    let loaded = load(&yaml);
    let dead = "has no effect: the Go version read this key but never used it; remove it";
    assert_eq!(
        warnings(&loaded),
        [
            format!("c.yaml: locations[0].rate_limiting: {dead}"),
            format!("c.yaml: locations[0].cache: {dead}"),
            format!("c.yaml: locations[0].enable_compression: {dead}"),
            format!("c.yaml: redis: {dead}"),
        ]
    );
}

#[test]
fn all_errors_in_one_run_with_zero_based_paths() {
    let yaml = r#"
port: 99999
workers: -2
hot_reload: "yes"
metrics:
  path: metrics
request_limits:
  max_headers: 0
  keep_alive_timeout: 60
locations:
  - path: ^/ok
    target_url: http://ok
  - path: "^/bad("
    target_url: "http://:8080/x"
  - target_url: 5
    replace_path: 1
    additional_headers:
      Connection: close
      X-Ok: "a\nb"
    excluded_headers: [Transfer-Encoding, 7]
  - "not a mapping"
  - path: ^/x
    target_url: gopher://x
    transport:
      http:
        max_idle_conns: 1.5
"#;
    assert_eq!(
        errors(yaml),
        [
            "c.yaml: port: port 99999 is out of range (0-65535)",
            "c.yaml: workers: must not be negative, found -2",
            "c.yaml: hot_reload: expected a boolean (true or false), found string \"yes\"",
            "c.yaml: metrics.path: must start with /, found \"metrics\"",
            "c.yaml: request_limits.max_headers: must be at least 1",
            "c.yaml: request_limits.keep_alive_timeout: bare number 60 is not a duration; write it with a unit such as \"60s\"",
            "c.yaml: locations[1].path: invalid regex: unclosed group (at character 6)",
            "c.yaml: locations[1].target_url: missing host",
            "c.yaml: locations[2].path: required key is missing",
            "c.yaml: locations[2].target_url: expected a string, found integer 5; put it in quotes",
            "c.yaml: locations[2].replace_path: expected a boolean (true or false), found integer 1",
            "c.yaml: locations[2].additional_headers.Connection: \"Connection\" is a hop-by-hop header, which Dito manages itself",
            "c.yaml: locations[2].additional_headers.X-Ok: value must not contain CR, LF, NUL or other control characters (found \\n)",
            "c.yaml: locations[2].excluded_headers[0]: \"Transfer-Encoding\" is a hop-by-hop header, which Dito manages itself",
            "c.yaml: locations[2].excluded_headers[1]: expected a string, found integer 7; put it in quotes",
            "c.yaml: locations[3]: expected a mapping, found string \"not a mapping\"",
            "c.yaml: locations[4].target_url: unsupported scheme \"gopher\" (expected http, https, ws or wss)",
            "c.yaml: locations[4].transport.http.max_idle_conns: expected a non-negative integer, found number 1.5",
        ]
    );
}

#[test]
fn header_rules() {
    let yaml = format!(
        "{MINIMAL_LOCATION}    additional_headers:\n      Content-Length: \"1\"\n      \"Bad Name\": x\n      X-A: a\n      x-a: b\n      X-N: 5\n    excluded_headers: [keep-alive, host, \"\"]\n"
    );
    assert_eq!(
        errors(&yaml),
        [
            "c.yaml: locations[0].additional_headers.Content-Length: \"Content-Length\" is a framing header, which Dito manages itself",
            "c.yaml: locations[0].additional_headers.Bad Name: invalid header name \"Bad Name\": \" \" is not allowed in an HTTP token",
            "c.yaml: locations[0].additional_headers.x-a: same header as \"X-A\" (names are case-insensitive)",
            "c.yaml: locations[0].additional_headers.X-N: expected a string, found integer 5; put it in quotes",
            "c.yaml: locations[0].excluded_headers[0]: \"keep-alive\" is a hop-by-hop header, which Dito manages itself",
            "c.yaml: locations[0].excluded_headers[1]: Host cannot be excluded (an HTTP/1.1 request needs it); set it with additional_headers",
            "c.yaml: locations[0].excluded_headers[2]: empty header name",
        ]
    );
}

#[test]
fn not_supported_yet_and_plugin_references() {
    let yaml = r#"
plugins:
  directory: ./plugins
  public_key_path: k.pub
  public_key_hash: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
transport:
  http:
    force_http2: true
locations:
  - path: ^/
    target_url: ws://h
    enable_websocket: true
    middlewares: [auth]
    transport: { http: { force_http2: true } }
"#;
    assert_eq!(
        errors(yaml),
        [
            "c.yaml: plugins.public_key_path: k.pub: cannot read: No such file or directory (os error 2)",
            "c.yaml: locations[0].enable_websocket: WebSocket upgrades need HTTP/1.1 to the upstream, but this location's transport sets force_http2: true",
            "c.yaml: locations[0].middlewares[0]: unknown middleware \"auth\": no such plugin in ./plugins (expected ./plugins/auth/auth.so)",
        ]
    );
}

#[test]
fn plugin_and_tls_required_fields() {
    let errs = errors("plugins:\n  directory: ./p\n  public_key_hash: xyz\ntls:\n  alpn: [h3]\n");
    assert_eq!(
        errs,
        [
            "c.yaml: plugins.public_key_path: required when plugins.directory is set",
            "c.yaml: plugins.public_key_hash: must be 64 hexadecimal characters (the SHA-256 of the public key file)",
            "c.yaml: tls.cert_file: required in a tls block",
            "c.yaml: tls.key_file: required in a tls block",
            "c.yaml: tls.alpn[0]: unsupported protocol \"h3\": expected h2 or http/1.1",
        ]
    );
}

#[test]
fn endpoint_paths() {
    assert_eq!(
        parse_str("c.yaml", "metrics: { enabled: true, path: /healthz }")
            .expect_err("collision")
            .errors
            .iter()
            .map(|d| d.render("c.yaml"))
            .collect::<Vec<_>>(),
        ["c.yaml: metrics.path: same path as health.liveness_path (\"/healthz\")"]
    );
    let loaded = load("locations:\n  - path: health\n    target_url: http://h\n");
    assert_eq!(
        warnings(&loaded),
        ["c.yaml: locations[0].path: also matches \"/healthz\" (health.liveness_path), which Dito answers itself before routing"]
    );
    assert!(load(
        "health: { enabled: false }\nlocations:\n  - path: health\n    target_url: http://h\n"
    )
    .warnings
    .is_empty());
}

#[test]
fn yaml_syntax_errors_report_line_and_column() {
    let err = parse_str("c.yaml", "port: 8081\nlocations:\n  - path: \"^/a\n").unwrap_err();
    assert_eq!(err.errors.len(), 1);
    let line = err.to_string();
    let pos = err.errors[0].position.expect("a position");
    assert!(
        line.starts_with(&format!("c.yaml:{}:{}: ", pos.line, pos.column)),
        "{line}"
    );
    assert!(!line.contains('\n'));

    let err = parse_str("c.yaml", "a: 1\n b: 2\n").unwrap_err();
    assert!(err.errors[0].position.is_some(), "{err}");

    let err = parse_str("c.yaml", "port: 1\nport: 2\n").unwrap_err();
    let pos = err.errors[0].position.expect("a position");
    assert_eq!(pos.line, 2, "{err}");
}

#[test]
fn top_level_must_be_a_mapping() {
    assert_eq!(
        errors("- a\n- b\n"),
        ["c.yaml: the top level must be a mapping of keys, found a list"]
    );
    assert_eq!(
        errors("just text"),
        ["c.yaml: the top level must be a mapping of keys, found string \"just text\""]
    );
}

#[test]
fn a_catch_all_location_warns_once_about_every_endpoint() {
    let loaded =
        load("metrics: { enabled: true }\nlocations:\n  - path: ^/\n    target_url: http://h\n");
    assert_eq!(
        warnings(&loaded),
        ["c.yaml: locations[0].path: also matches \"/healthz\" (health.liveness_path), \"/readyz\" (health.readiness_path), \"/metrics\" (metrics.path), which Dito answers itself before routing"]
    );
}

#[test]
fn non_finite_floats_are_type_errors() {
    let yaml = format!("{MINIMAL_LOCATION}    additional_headers: {{ X-A: .nan, X-B: 1e999 }}\n");
    assert_eq!(
        errors(&yaml),
        [
            "c.yaml: locations[0].additional_headers.X-A: expected a string, found number NaN; put it in quotes",
            "c.yaml: locations[0].additional_headers.X-B: expected a string, found number inf; put it in quotes",
        ]
    );
}

#[test]
fn websocket_needs_http1_upstreams() {
    let ws = "locations:\n  - path: ^/\n    target_url: ws://h\n    enable_websocket: true\n";
    assert!(parse_str("c.yaml", ws).is_ok());
    // force_http2 from the global transport counts as much as the location's own.
    let global = format!("transport: {{ http: {{ force_http2: true }} }}\n{ws}");
    assert_eq!(
        errors(&global),
        ["c.yaml: locations[0].enable_websocket: WebSocket upgrades need HTTP/1.1 to the upstream, but this location's transport sets force_http2: true"]
    );
    let off = format!("{ws}    transport: {{ http: {{ force_http2: false }} }}\ntransport: {{ http: {{ force_http2: true }} }}\n");
    assert!(parse_str("c.yaml", &off).is_ok());
    assert!(parse_str(
        "c.yaml",
        "hot_reload: false\nmetrics: { enabled: true }\nlogging: { format: json, verbose: true }\n"
    )
    .is_ok());
}

#[test]
fn request_limits_have_ceilings() {
    let yaml = "request_limits:\n  max_request_line_bytes: 18446744073709551615\n  \
                max_header_bytes: 1048577\n  max_headers: 1025\n  \
                headers_with_underscores: ignore\n";
    assert_eq!(
        errors(yaml),
        [
            "c.yaml: request_limits.max_request_line_bytes: 18446744073709551615 is too large (the maximum is 1048576)",
            "c.yaml: request_limits.max_header_bytes: 1048577 is too large (the maximum is 1048576)",
            "c.yaml: request_limits.max_headers: 1025 is too large (the maximum is 1024)",
            "c.yaml: request_limits.headers_with_underscores: invalid value \"ignore\": expected drop, allow or reject",
        ]
    );
    // Exactly at each ceiling is fine.
    let at = load(
        "request_limits:\n  max_request_line_bytes: 1048576\n  max_header_bytes: 1048576\n  \
         max_headers: 1024\n  max_request_body_size: 18446744073709551615\n\
         response_limits:\n  max_response_body_size: 18446744073709551615\n",
    );
    let rl = &at.config.request_limits;
    assert_eq!(rl.max_request_line_bytes, MAX_REQUEST_LINE_BYTES_CEILING);
    assert_eq!(rl.max_header_bytes, MAX_HEADER_BYTES_CEILING);
    assert_eq!(rl.max_headers, MAX_HEADERS_CEILING);
    assert_eq!(rl.max_request_body_size, u64::MAX);
}
