//! Config text → validation: any text gives a config or one-line errors, never a panic; a
//! config that validates builds a snapshot, and the limits it accepts work in the codec
//! (a request in two reads, a chunked body with trailers) and its routes rewrite paths.

use crate::config::parse_str_without_system_roots;
use crate::http::limits::HeadLimits;
use crate::route::write_upstream_target;
use crate::snapshot::Snapshot;

const FILE: &str = "fuzz.yaml";

/// The whole property for one config text.
pub fn check_config(yaml: &str) {
    let loaded = match parse_str_without_system_roots(FILE, yaml) {
        Ok(loaded) => loaded,
        Err(err) => {
            assert!(!err.errors.is_empty(), "a refused config without an error");
            for d in err.errors.iter().chain(&err.warnings) {
                let line = d.render(FILE);
                assert!(
                    !line.contains('\n'),
                    "a diagnostic of several lines: {line:?}"
                );
            }
            return;
        }
    };
    for d in &loaded.warnings {
        assert!(!d.render(FILE).contains('\n'), "a warning of several lines");
    }
    let snapshot = match Snapshot::build(loaded.config) {
        Ok(s) => s,
        Err(e) => panic!("a validated config does not build a snapshot: {e}"),
    };
    let limits = snapshot.session_limits.head;
    check_limits_in_codec(&limits);
    for path in [&b"/"[..], b"/api/users", b"", b"/a%2Fb//c", b"/\xff"] {
        if let Some(m) = snapshot.router.lookup(path) {
            let route = snapshot
                .router
                .get(m.index)
                .expect("lookup gave an index it has");
            let mut out = Vec::new();
            write_upstream_target(route, path, Some(b"q=1"), &m, &mut out);
            assert_eq!(out.first(), Some(&b'/'), "upstream target {out:?}");
        }
    }
}

/// A small request and a small chunked body, whole and in every split, under `limits`.
fn check_limits_in_codec(limits: &HeadLimits) {
    let request = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
    for split in 0..request.len() {
        super::request::check_parse(request, limits, split);
    }
    let body = b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n";
    for size in 1..body.len() {
        super::chunked::check_chunked(body, &[size], 2, limits.max_header_bytes);
    }
}

/// Fuzz entry: the bytes as config text (invalid UTF-8 is the file reader's error, not the
/// validator's, so it is skipped).
pub fn fuzz_one(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_config(text);
    }
}
