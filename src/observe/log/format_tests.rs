//! Line shapes, through the real layer installed as a scoped (per-test) subscriber whose sink
//! is a channel: no global subscriber, no stdout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use tracing_subscriber::prelude::*;

use super::*;
use crate::config::LogLevel;
use crate::observe::access::{log_access, log_headers, AccessRecord};
use crate::observe::log::{set_thread_level, LineSink, LogLayer, STARTUP};

struct ChannelSink(Sender<Vec<u8>>);

impl LineSink for ChannelSink {
    fn deliver(&self, line: Vec<u8>) {
        let _ = self.0.send(line);
    }
}

/// Runs `f` with the layer in `format` (no ANSI unless asked) and returns the lines it wrote.
fn capture_style(style: Style, f: impl FnOnce()) -> Vec<String> {
    let (tx, rx): (Sender<Vec<u8>>, Receiver<Vec<u8>>) = unbounded();
    let sub = tracing_subscriber::registry().with(LogLayer::new(style, ChannelSink(tx)));
    tracing::subscriber::with_default(sub, f);
    rx.try_iter()
        .map(|l| {
            let s = String::from_utf8(l).expect("lines are UTF-8");
            assert!(s.ends_with('\n'), "{s:?}");
            assert_eq!(s.matches('\n').count(), 1, "one line per event: {s:?}");
            s.trim_end_matches('\n').to_owned()
        })
        .collect()
}

fn capture(format: LogFormat, f: impl FnOnce()) -> Vec<String> {
    capture_style(
        Style {
            format,
            ansi: false,
        },
        f,
    )
}

fn json(line: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str(line) {
        Ok(serde_json::Value::Object(m)) => m,
        other => panic!("not a JSON object: {line}\n{other:?}"),
    }
}

fn is_rfc3339_micros(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 27
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            26 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn rfc3339_dates() {
    let ts = |micros| {
        let mut v = Vec::new();
        write_rfc3339(&mut v, micros);
        String::from_utf8(v).unwrap()
    };
    assert_eq!(ts(0), "1970-01-01T00:00:00.000000Z");
    assert_eq!(ts(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
    assert_eq!(ts(1_709_251_199_999_999), "2024-02-29T23:59:59.999999Z");
    assert_eq!(ts(4_102_444_800_000_000), "2100-01-01T00:00:00.000000Z");
}

#[test]
fn json_line_has_typed_top_level_fields() {
    set_thread_level(LogLevel::Info);
    let lines = capture(LogFormat::Json, || {
        tracing::info!(
            n = 42u64,
            neg = -3i64,
            ratio = 0.25f64,
            nan = f64::NAN,
            ok = true,
            s = "a\"b\\c\n\u{1}é",
            shown = %"x y",
            dbg = ?Some(1),
            "hello {}", "world"
        );
    });
    assert_eq!(lines.len(), 1, "{lines:?}");
    let m = json(&lines[0]);
    assert!(
        lines[0].starts_with("{\"timestamp\":\""),
        "timestamp first: {}",
        lines[0]
    );
    assert!(is_rfc3339_micros(m["timestamp"].as_str().unwrap()), "{m:?}");
    assert_eq!(m["level"], "INFO");
    assert_eq!(m["message"], "hello world");
    assert_eq!(m["n"], 42);
    assert_eq!(m["neg"], -3);
    assert_eq!(m["ratio"], 0.25);
    assert!(m["nan"].is_null());
    assert_eq!(m["ok"], true);
    assert_eq!(m["s"], "a\"b\\c\n\u{1}é");
    assert_eq!(m["shown"], "x y");
    assert_eq!(m["dbg"], "Some(1)");
    assert_eq!(m.len(), 11, "{m:?}");
}

#[test]
fn json_message_is_escaped() {
    set_thread_level(LogLevel::Info);
    let lines = capture(LogFormat::Json, || {
        tracing::warn!("bad \"thing\"\r\n\t\u{7f} end");
    });
    let m = json(&lines[0]);
    assert_eq!(m["level"], "WARN");
    assert_eq!(m["message"], "bad \"thing\"\r\n\t\u{7f} end");
}

#[test]
fn text_line_shape() {
    set_thread_level(LogLevel::Info);
    let lines = capture(LogFormat::Text, || {
        tracing::warn!(
            path = "/a/b",
            limit = 90u64,
            empty = "",
            spaced = "a b",
            "limit hit"
        );
        tracing::error!("two\nlines \"quoted\"");
    });
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (ts, rest) = lines[0].split_at(27);
    assert!(is_rfc3339_micros(ts), "{}", lines[0]);
    assert_eq!(
        rest,
        r#"  WARN limit hit path=/a/b limit=90 empty="" spaced="a b""#
    );
    assert_eq!(&lines[1][27..], r#" ERROR two\nlines "quoted""#);
    assert!(!lines.iter().any(|l| l.contains('\x1b')), "{lines:?}");
}

#[test]
fn text_with_ansi_colours_the_level() {
    set_thread_level(LogLevel::Info);
    let style = Style {
        format: LogFormat::Text,
        ansi: true,
    };
    let lines = capture_style(style, || tracing::info!("hi"));
    assert!(lines[0].contains("\x1b[32m INFO\x1b[0m hi"), "{lines:?}");
}

#[test]
fn the_thread_level_filters_and_startup_lines_always_print() {
    let lines = capture(LogFormat::Text, || {
        set_thread_level(LogLevel::Warn);
        tracing::info!("hidden info");
        tracing::info!(target: STARTUP, "startup info");
        tracing::warn!("shown warn");
        set_thread_level(LogLevel::Debug);
        tracing::debug!("shown debug");
        set_thread_level(LogLevel::Info);
        tracing::debug!("hidden debug");
    });
    let text = lines.join("\n");
    for shown in ["startup info", "shown warn", "shown debug"] {
        assert!(text.contains(shown), "{shown} missing:\n{text}");
    }
    assert!(!text.contains("hidden"), "{text}");
}

/// Another crate's WARN (h2 warning about what a peer sent) is a DEBUG line: hidden at INFO,
/// shown as DEBUG at DEBUG; Dito's own WARN stays a WARN.
#[test]
fn other_crates_warnings_are_debug_lines() {
    let lines = capture(LogFormat::Text, || {
        set_thread_level(LogLevel::Info);
        tracing::warn!(target: "h2::proto::ping_pong", "hidden peer warning");
        tracing::error!(target: "h2", "hidden peer error");
        tracing::warn!(target: "dito::h2::conn", "own warning");
        tracing::warn!(target: "ditox", "hidden lookalike");
        set_thread_level(LogLevel::Debug);
        tracing::warn!(target: "h2::proto::ping_pong", "recv PING ack that we never sent");
        set_thread_level(LogLevel::Info);
    });
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].ends_with(" WARN own warning"), "{lines:?}");
    assert!(
        lines[1].ends_with("DEBUG recv PING ack that we never sent"),
        "{lines:?}"
    );
}

/// The same callsite, evaluated again after a level change: the interest cache must not keep
/// the first answer.
#[test]
fn a_level_change_reaches_a_callsite_already_seen() {
    let lines = capture(LogFormat::Text, || {
        for level in [LogLevel::Info, LogLevel::Debug, LogLevel::Info] {
            set_thread_level(level);
            tracing::debug!(?level, "probe");
        }
    });
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with("probe level=Debug"), "{lines:?}");
}

#[test]
fn access_line_has_exactly_the_spec_fields() {
    set_thread_level(LogLevel::Error);
    let rec = AccessRecord {
        client_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
        method: b"GET",
        url: b"/p?q=\"1\"&r=\xff",
        protocol: "HTTP/1.1",
        status_code: 502,
        referer: None,
        user_agent: Some(b"curl/8\x01"),
        duration: Duration::from_micros(1_500),
        request_id: "abc123",
        upstream: Some("10.0.0.1:80"),
        bytes_sent: 1234,
        aborted: false,
    };
    let lines = capture(LogFormat::Json, || log_access(&rec));
    assert_eq!(lines.len(), 1, "access lines ignore the level: {lines:?}");
    let m = json(&lines[0]);
    let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = [
        "timestamp",
        "level",
        "message",
        "client_ip",
        "method",
        "url",
        "protocol",
        "status_code",
        "referer",
        "user_agent",
        "duration_seconds",
        "request_id",
        "upstream",
        "bytes_sent",
        "aborted",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(m["message"], "HTTP request processed");
    assert_eq!(m["level"], "INFO");
    assert_eq!(m["client_ip"], "::1");
    assert_eq!(m["url"], "/p?q=\"1\"&r=\u{fffd}");
    assert_eq!(m["status_code"], 502);
    assert_eq!(m["referer"], "");
    assert_eq!(m["user_agent"], "curl/8\u{1}");
    assert_eq!(m["duration_seconds"], 0.0015);
    assert_eq!(m["upstream"], "10.0.0.1:80");
    assert_eq!(m["bytes_sent"], 1234);
    assert_eq!(m["aborted"], false);

    let text = capture(LogFormat::Text, || log_access(&rec));
    assert!(
        text[0].contains(
            " INFO HTTP request processed client_ip=::1 method=GET url=\"/p?q=\\\"1\\\"&r=\u{fffd}\" \
             protocol=HTTP/1.1 status_code=502 referer=\"\" user_agent=\"curl/8\\u0001\" \
             duration_seconds=0.0015 request_id=abc123 upstream=10.0.0.1:80 bytes_sent=1234 \
             aborted=false"
        ),
        "{text:?}"
    );
}

#[test]
fn header_dump_line_redacts() {
    set_thread_level(LogLevel::Error);
    let headers: [(&[u8], &[u8]); 2] = [(b"Host", b"h"), (b"Cookie", b"secret")];
    let lines = capture(LogFormat::Json, || {
        log_headers("request", "id1", headers.into_iter())
    });
    let m = json(&lines[0]);
    assert_eq!(m["message"], "request headers");
    assert_eq!(m["request_id"], "id1");
    assert_eq!(m["headers"], "Host: h\nCookie: [REDACTED]");
}

#[test]
fn the_direct_access_line_equals_the_event_line() {
    use crate::observe::access::log_access_event;
    use crate::observe::access_line::write_access_line;
    set_thread_level(LogLevel::Error);
    let records = [
        AccessRecord {
            client_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            method: b"GET",
            url: b"/p?q=\"1\"&r=\xff x=y",
            protocol: "HTTP/1.1",
            status_code: 502,
            referer: None,
            user_agent: Some(b"curl/8\x01"),
            duration: Duration::from_micros(1_500),
            request_id: "abc123",
            upstream: Some("http://10.0.0.1:80"),
            bytes_sent: 1234,
            aborted: false,
        },
        AccessRecord {
            client_ip: "192.168.10.200".parse().unwrap(),
            method: b"POST",
            url: b"/",
            protocol: "HTTP/1.0",
            status_code: 499,
            referer: Some(b"https://r.example/a b"),
            user_agent: Some("caf\u{e9} \\ agent".as_bytes()),
            duration: Duration::new(2, 3_147_680),
            request_id: "0123456789abcdef0123456789abcdef",
            upstream: None,
            bytes_sent: 0,
            aborted: true,
        },
    ];
    for format in [LogFormat::Json, LogFormat::Text] {
        let style = Style {
            format,
            ansi: false,
        };
        for rec in &records {
            let event = capture(format, || log_access_event(rec));
            let mut direct = Vec::new();
            write_access_line(&mut direct, style, now_micros(), rec);
            let direct = String::from_utf8(direct).unwrap();
            // The timestamps differ; everything after them must not.
            let after_ts = |l: &str| l[l.find('Z').unwrap()..].trim_end().to_owned();
            assert_eq!(after_ts(&direct), after_ts(&event[0]), "{format:?}");
            assert!(direct.ends_with('\n') && direct.matches('\n').count() == 1);
        }
    }
}
