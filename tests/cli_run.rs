//! The command line and run mode as users see them (spec §1, §12): `--version`, `--help`,
//! usage errors (exit 2), the Go-style and long config flags, a bad or not-supported config
//! that never starts, the startup lines before the ready line with the real port, warnings in
//! run mode, and a port held by another socket as a startup error.
//!
//! Every process is the real `dito` binary; commands that could start serving run through
//! [`run_bounded`], which kills the process if it has not exited in time, so no test can hang.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_common;
mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use cli_common::{
    assert_exit_and_stderr, good_config, run_bounded, shown, stderr, stdout, TempDir, MANY_ERRORS,
    MANY_ERRORS_LINES, ONE_LOCATION, VERSION,
};
use support::Dito;

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
fn run_with_an_invalid_location_does_not_start() {
    let yaml = support::config(&format!(
        "{ONE_LOCATION}    enable_websocket: true\n    transport: {{ http: {{ force_http2: true }} }}\n"
    ));
    match Dito::try_start(&yaml) {
        Ok(d) => panic!(
            "dito started with WebSocket over force_http2:\n{}",
            d.output()
        ),
        Err(f) => {
            assert_eq!(f.code, Some(1), "{f:?}");
            assert!(
                f.output.lines().any(|l| l
                    .ends_with(": locations[0].enable_websocket: WebSocket upgrades need HTTP/1.1 to the upstream, but this location's transport sets force_http2: true")),
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
