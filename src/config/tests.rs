//! End-to-end tests of the config loader: YAML text in, `Config` or rendered messages out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::*;

/// Loads with every feature allowed: these tests are about how values parse.
fn load(yaml: &str) -> Loaded {
    parse_str_all_features("c.yaml", yaml).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

fn errors(yaml: &str) -> Vec<String> {
    let err = parse_str("c.yaml", yaml).expect_err("expected errors");
    err.errors.iter().map(|d| d.render("c.yaml")).collect()
}

fn warnings(loaded: &Loaded) -> Vec<String> {
    loaded.warnings.iter().map(|d| d.render("c.yaml")).collect()
}

const MINIMAL_LOCATION: &str =
    "locations:\n  - path: ^/app\n    target_url: http://127.0.0.1:9000\n";

const GO_EXAMPLE: &str = r#"
port: 8081
hot_reload: true
logging:
  enabled: true
  verbose: false
  level: "info"
metrics:
  enabled: true
  path: "/metrics"
response_limits:
  max_response_body_size: 10485760
transport:
  http:
    idle_conn_timeout: 90s
    max_idle_conns: 1000
    max_idle_conns_per_host: 200
    max_conns_per_host: 0
    tls_handshake_timeout: 2s
    response_header_timeout: 2s
    expect_continue_timeout: 500ms
    disable_compression: false
    dial_timeout: 2s
    keep_alive: 30s
    force_http2: false
locations:
  - path: "^/dito$"
    target_url: "https://httpbin.org/get"
    replace_path: true
    additional_headers:
      X-Custom-Header: "CustomValue"
    excluded_headers:
      - "Cookie"
    transport:
      http:
        dial_timeout: 1s
  - path: "^/api"
    target_url: "http://127.0.0.1:8080/base"
    rate_limiting:
      enabled: true
"#;

#[test]
fn every_default() {
    for yaml in ["", "# only a comment\n", "{}\n"] {
        let c = load(yaml).config;
        assert_eq!(c.port, 8081);
        assert_eq!(c.listen, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(c.workers, 0);
        assert_eq!(c.pin_workers, PinWorkers::Auto);
        assert_eq!(c.io_driver, IoDriver::Auto);
        assert!(!c.hot_reload);
        assert_eq!(c.request_timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.shutdown_delay, Duration::ZERO);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(
            c.logging,
            Logging {
                enabled: true,
                verbose: false,
                level: LogLevel::Info,
                format: LogFormat::Text
            }
        );
        assert_eq!(
            c.metrics,
            Metrics {
                enabled: false,
                path: "/metrics".into()
            }
        );
        assert_eq!(
            c.health,
            Health {
                enabled: true,
                liveness_path: "/healthz".into(),
                readiness_path: "/readyz".into()
            }
        );
        assert_eq!(
            c.profiler.listen,
            "127.0.0.1:6060".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(c.response_limits.max_response_body_size, 104_857_600);
        assert_eq!(
            c.request_limits,
            RequestLimits {
                max_request_line_bytes: 8192,
                max_header_bytes: 65536,
                max_headers: 100,
                header_read_timeout: Duration::from_secs(10),
                keep_alive_timeout: Duration::from_secs(60),
                body_idle_timeout: Duration::from_secs(30),
                max_request_body_size: 10_485_760,
            }
        );
        assert_eq!(c.transport, HttpTransport::default());
        assert!(c.locations.is_empty());
        assert!(c.plugins.is_none());
        assert!(c.tls.is_none());
    }
}

#[test]
fn location_defaults() {
    let c = load(MINIMAL_LOCATION).config;
    let l = &c.locations[0];
    assert_eq!(l.pattern, "^/app");
    assert!(l.regex.is_match("/app/x"));
    assert_eq!(l.target.host_header(), "127.0.0.1:9000");
    assert!(!l.replace_path);
    assert!(!l.enable_websocket);
    assert_eq!(l.websocket_idle_timeout, Duration::from_secs(300));
    assert!(l.additional_headers.is_empty());
    assert!(l.excluded_headers.is_empty());
    assert!(l.middlewares.is_empty());
    assert_eq!(l.max_response_body_size, 0);
    assert!(!l.disable_response_buffering);
    assert_eq!(l.transport, HttpTransport::default());
}

#[test]
fn explicit_values() {
    let yaml = r#"
port: "0"
listen: "::1"
workers: 4
pin_workers: false
io_driver: epoll
request_timeout: 0s
shutdown_delay: 5s
shutdown_timeout: 1m
logging: { level: DEBUG, format: json, enabled: false, verbose: true }
health: { enabled: false, liveness_path: /live, readiness_path: /ready }
profiler: { listen: "[::1]:7070" }
response_limits: { max_response_body_size: 0 }
request_limits:
  max_request_line_bytes: 100
  max_headers: 5
  header_read_timeout: 1.5s
  max_request_body_size: 0
locations:
  - path: ^/a
    target_url: ws://[::1]:8080/x?y
    replace_path: true
    websocket_idle_timeout: 10s
    additional_headers: { X-B: "2", x-a: one, Host: "example.com" }
    excluded_headers: [Cookie, Authorization]
    max_response_body_size: 42
    disable_response_buffering: true
"#;
    let c = load(yaml).config;
    assert_eq!(c.port, 0);
    assert_eq!(c.listen, IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(c.workers, 4);
    assert_eq!(c.pin_workers, PinWorkers::Never);
    assert_eq!(c.io_driver, IoDriver::Epoll);
    assert_eq!(c.request_timeout, None);
    assert_eq!(c.shutdown_delay, Duration::from_secs(5));
    assert_eq!(c.shutdown_timeout, Duration::from_secs(60));
    assert_eq!(c.logging.level, LogLevel::Debug);
    assert_eq!(c.logging.format, LogFormat::Json);
    assert!(!c.logging.enabled && c.logging.verbose);
    assert!(!c.health.enabled);
    assert_eq!(c.health.liveness_path, "/live");
    assert_eq!(
        c.profiler.listen,
        "[::1]:7070".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        c.response_limits.max_response_body_size,
        DEFAULT_MAX_RESPONSE_BODY_SIZE
    );
    assert_eq!(c.request_limits.max_request_line_bytes, 100);
    assert_eq!(c.request_limits.max_header_bytes, DEFAULT_MAX_HEADER_BYTES);
    assert_eq!(c.request_limits.max_headers, 5);
    assert_eq!(
        c.request_limits.header_read_timeout,
        Duration::from_millis(1500)
    );
    assert_eq!(c.request_limits.max_request_body_size, 0);
    let l = &c.locations[0];
    assert_eq!(l.target.scheme, Scheme::Ws);
    assert_eq!(l.target.host, "::1");
    assert!(l.replace_path);
    assert_eq!(l.websocket_idle_timeout, Duration::from_secs(10));
    let headers: Vec<(&str, &str)> = l
        .additional_headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        headers,
        [("X-B", "2"), ("x-a", "one"), ("Host", "example.com")]
    );
    assert_eq!(l.excluded_headers, ["Cookie", "Authorization"]);
    assert_eq!(l.max_response_body_size, 42);
    assert!(l.disable_response_buffering);
}

#[test]
fn port_as_string_or_integer() {
    assert_eq!(load("port: 9000").config.port, 9000);
    assert_eq!(load("port: \"9000\"").config.port, 9000);
    assert_eq!(load("port: 0").config.port, 0);
    assert_eq!(load("port: 65535").config.port, 65535);
    assert_eq!(
        errors("port: 65536"),
        ["c.yaml: port: port 65536 is out of range (0-65535)"]
    );
    assert_eq!(
        errors("port: \"80a\""),
        ["c.yaml: port: invalid port \"80a\": expected 0-65535"]
    );
    assert_eq!(
        errors("port: -1"),
        ["c.yaml: port: must not be negative, found -1"]
    );
    assert_eq!(
        errors("port: \"\""),
        ["c.yaml: port: invalid port \"\": expected 0-65535"]
    );
}

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
fn enum_like_keys() {
    assert_eq!(
        load("pin_workers: auto").config.pin_workers,
        PinWorkers::Auto
    );
    assert_eq!(
        load("pin_workers: true").config.pin_workers,
        PinWorkers::Always
    );
    assert_eq!(load("io_driver: uring").config.io_driver, IoDriver::Uring);
    assert_eq!(
        errors("pin_workers: sometimes\nio_driver: kqueue\nlogging: { format: xml }"),
        [
            "c.yaml: pin_workers: invalid value \"sometimes\": expected auto, true or false",
            "c.yaml: io_driver: invalid value \"kqueue\": expected auto, uring or epoll",
            "c.yaml: logging.format: invalid value \"xml\": expected text or json",
        ]
    );
    assert_eq!(
        errors("pin_workers: 1"),
        ["c.yaml: pin_workers: expected auto, true or false, found integer 1"]
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
fn not_supported_yet() {
    let yaml = r#"
tls:
  cert_file: c.pem
  key_file: k.pem
plugins:
  directory: ./plugins
  public_key_path: k.pub
  public_key_hash: 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
transport:
  http:
    force_http2: true
    ca_file: ca.pem
locations:
  - path: ^/
    target_url: wss://h
    enable_websocket: true
    middlewares: [auth]
    transport: { http: { force_http2: true } }
"#;
    assert_eq!(
        errors(yaml),
        [
            "c.yaml: tls: not supported yet (TLS listener)",
            "c.yaml: plugins: not supported yet (plugins)",
            "c.yaml: transport.http.force_http2: not supported yet (HTTP/2 upstreams)",
            "c.yaml: transport.http.ca_file: not supported yet (upstream TLS client certificates and CA files)",
            "c.yaml: locations[0].target_url: not supported yet (HTTPS upstreams)",
            "c.yaml: locations[0].enable_websocket: not supported yet (WebSocket)",
            "c.yaml: locations[0].middlewares: not supported yet (middlewares)",
            "c.yaml: locations[0].transport.http.force_http2: not supported yet (HTTP/2 upstreams)",
        ]
    );
}

#[test]
fn plugin_and_tls_required_fields() {
    let errs = errors("plugins:\n  directory: ./p\n  public_key_hash: xyz\ntls:\n  alpn: [h3]\n");
    assert_eq!(
        errs,
        [
            "c.yaml: plugins: not supported yet (plugins)",
            "c.yaml: plugins.public_key_path: required when plugins.directory is set",
            "c.yaml: plugins.public_key_hash: must be 64 hexadecimal characters (the SHA-256 of the public key file)",
            "c.yaml: tls: not supported yet (TLS listener)",
            "c.yaml: tls.cert_file: required in a tls block",
            "c.yaml: tls.key_file: required in a tls block",
            "c.yaml: tls.alpn[0]: unsupported protocol \"h3\": expected h2 or http/1.1",
        ]
    );
}

#[test]
fn endpoint_paths() {
    assert_eq!(
        parse_str_all_features("c.yaml", "metrics: { enabled: true, path: /healthz }")
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
fn per_location_transport_overrides_only_its_keys() {
    let c = load(GO_EXAMPLE_PLAIN).config;
    let global = &c.transport;
    assert_eq!(global.dial_timeout, Duration::from_secs(2));
    assert_eq!(global.response_header_timeout, Duration::from_secs(2));
    assert_eq!(global.expect_continue_timeout, Duration::from_millis(500));
    let first = &c.locations[0].transport;
    assert_eq!(first.dial_timeout, Duration::from_secs(1));
    assert_eq!(
        HttpTransport {
            dial_timeout: global.dial_timeout,
            ..first.clone()
        },
        *global
    );
    assert_eq!(c.locations[1].transport, *global);
}

/// The Go example with its https target made plain, so it loads.
const GO_EXAMPLE_PLAIN: &str = r#"
transport:
  http:
    tls_handshake_timeout: 2s
    response_header_timeout: 2s
    expect_continue_timeout: 500ms
    dial_timeout: 2s
locations:
  - path: "^/dito$"
    target_url: "http://httpbin.org/get"
    transport:
      http:
        dial_timeout: 1s
  - path: "^/api"
    target_url: "http://127.0.0.1:8080/base"
"#;

#[test]
fn go_example_config_only_fails_on_its_https_target() {
    let err = parse_str("config.yaml", GO_EXAMPLE).expect_err("https is not supported yet");
    assert_eq!(
        err.to_string(),
        "config.yaml: metrics.enabled: not supported yet (metrics endpoint)\n\
         config.yaml: locations[0].target_url: not supported yet (HTTPS upstreams)"
    );
    assert_eq!(err.errors[1].path, "locations[0].target_url");
    let warnings: Vec<_> = err
        .warnings
        .iter()
        .map(|d| d.render("config.yaml"))
        .collect();
    assert_eq!(
        warnings,
        ["config.yaml: locations[1].rate_limiting: has no effect: the Go version read this key but never used it; remove it"]
    );

    // With the target made plain, it loads with only the dead-key warning.
    let plain = GO_EXAMPLE.replace("https://httpbin.org", "http://httpbin.org");
    let loaded = parse_str_all_features("config.yaml", &plain).unwrap();
    assert_eq!(loaded.warnings, err.warnings);
    let c = loaded.config;
    assert!(c.hot_reload);
    assert!(c.metrics.enabled);
    assert_eq!(c.response_limits.max_response_body_size, 10_485_760);
    assert_eq!(c.transport.max_idle_conns, 1000);
    assert_eq!(c.transport.keep_alive, Duration::from_secs(30));
    assert_eq!(c.locations.len(), 2);
    assert_eq!(
        c.locations[0].transport.dial_timeout,
        Duration::from_secs(1)
    );
    assert_eq!(
        c.locations[0].transport.tls_handshake_timeout,
        Duration::from_secs(2)
    );
    assert_eq!(
        c.locations[0].additional_headers,
        [("X-Custom-Header".to_string(), "CustomValue".to_string())]
    );
    assert_eq!(c.locations[0].excluded_headers, ["Cookie"]);
    assert_eq!(c.locations[1].target.path, "/base");
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
fn null_values_mean_absent() {
    let c = load("port:\nlogging:\nlocations:\n").config;
    assert_eq!(c.port, 8081);
    assert!(c.locations.is_empty());
}

#[test]
fn load_file_reports_the_path_as_given() {
    let err = load_file(std::path::Path::new("/nonexistent/dito.yaml")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("/nonexistent/dito.yaml: cannot read the file: "),
        "{text}"
    );

    let dir = std::env::temp_dir().join(format!("dito-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.yaml");
    std::fs::write(&file, "port: x\n").unwrap();
    let err = load_file(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: port: invalid port \"x\": expected 0-65535",
            file.display()
        )
    );
    std::fs::write(&file, MINIMAL_LOCATION).unwrap();
    assert_eq!(load_file(&file).unwrap().config.locations.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn anchors_and_merge_keys_work() {
    let yaml =
        "x-common: &common\n  target_url: http://h\nlocations:\n  - <<: *common\n    path: ^/a\n";
    let loaded = load(yaml);
    assert_eq!(loaded.config.locations[0].target.host, "h");
    assert_eq!(warnings(&loaded), ["c.yaml: x-common: unknown key"]);
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
fn unfinished_features_are_refused_not_ignored() {
    assert_eq!(
        errors("hot_reload: true\nmetrics: { enabled: true }\nlogging: { format: json, verbose: true }\n"),
        [
            "c.yaml: metrics.enabled: not supported yet (metrics endpoint)",
            "c.yaml: logging.format: not supported yet (JSON log lines)",
            "c.yaml: logging.verbose: not supported yet (verbose header dumps)",
        ]
    );
    assert!(parse_str("c.yaml", "hot_reload: false\nmetrics: { enabled: false }\n").is_ok());
}
