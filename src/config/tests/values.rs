//! What a valid config loads as: defaults, explicit values, per-location merges.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

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
                headers_with_underscores: HeadersWithUnderscores::Drop,
                send_timeout: Duration::from_secs(60),
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
  headers_with_underscores: reject
  send_timeout: 0s
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
    assert_eq!(
        c.request_limits.headers_with_underscores,
        HeadersWithUnderscores::Reject
    );
    assert_eq!(c.request_limits.send_timeout, Duration::ZERO);
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

/// The Go example, https target included, loads with only the dead-key warning.
#[test]
fn go_example_config_loads() {
    let loaded = super::tls::parse_with_roots(GO_EXAMPLE, super::tls::stand_in_roots).unwrap();
    let warnings: Vec<_> = loaded.warnings.iter().map(|d| d.render("c.yaml")).collect();
    assert_eq!(
        warnings,
        ["c.yaml: locations[1].rate_limiting: has no effect: the Go version read this key but never used it; remove it"]
    );
    assert!(loaded.config.locations[0].tls.is_some());
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
fn null_values_mean_absent() {
    let c = load("port:\nlogging:\nlocations:\n").config;
    assert_eq!(c.port, 8081);
    assert!(c.locations.is_empty());
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
