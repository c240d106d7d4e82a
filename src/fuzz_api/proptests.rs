//! Property tests on stable, in every `cargo test` (so every CI run): the `fuzz_api` checks on
//! inputs that proptest generates, mostly well-formed with a random defect, plus raw bytes.
//! Case counts are bounded so the lot takes a few seconds; `PROPTEST_CASES=N` overrides them
//! for a longer local run.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::Config;

use super::{chunked, config, keys, request, response, route};
use crate::config::TargetUrl;

fn cases(n: u32) -> Config {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A random defect applied to well-formed bytes: none, a byte changed, one removed, or the
/// tail cut.
#[derive(Debug, Clone)]
enum Defect {
    None,
    Set(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn defect() -> impl Strategy<Value = Defect> {
    prop_oneof![
        4 => Just(Defect::None),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Defect::Set(i, b)),
        1 => any::<usize>().prop_map(Defect::Remove),
        1 => any::<usize>().prop_map(Defect::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, d: &Defect) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    let len = bytes.len();
    match *d {
        Defect::None => {}
        Defect::Set(i, b) => bytes[i % len] = b,
        Defect::Remove(i) => {
            bytes.remove(i % len);
        }
        Defect::Truncate(i) => bytes.truncate(i % len),
    }
    bytes
}

// ---- request heads ----

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_string()),
        Just("POST".to_string()),
        Just("OPTIONS".to_string()),
        Just("CONNECT".to_string()),
        "[A-Z]{1,8}",
    ]
}

fn request_target() -> impl Strategy<Value = String> {
    prop_oneof![
        "/[a-z0-9/%._-]{0,20}(\\?[a-z0-9=&]{0,10})?",
        Just("*".to_string()),
        "(http|HTTPS)://[a-z0-9.-]{1,10}(:[0-9]{1,5})?(/[a-z/]{0,10})?(\\?[a-z]{0,5})?",
        "[a-z]{1,8}:[0-9]{1,5}",
        "[!-~]{1,12}",
    ]
}

fn header_field() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        Just("Host".to_string()),
        Just("Content-Length".to_string()),
        Just("Transfer-Encoding".to_string()),
        Just("Connection".to_string()),
        Just("Expect".to_string()),
        "[A-Za-z][A-Za-z0-9_-]{0,12}",
    ];
    let value = prop_oneof![
        "[0-9]{1,21}",
        Just("chunked".to_string()),
        Just("close, keep-alive".to_string()),
        Just("100-continue".to_string()),
        "[a-z0-9.-]{1,10}(:[0-9]{1,6})?",
        "[ -~]{0,16}",
    ];
    (name, value)
}

prop_compose! {
    fn request_head()(
        m in method(),
        t in request_target(),
        v in prop_oneof![Just("HTTP/1.1"), Just("HTTP/1.0"), Just("HTTP/2.0")],
        fields in vec(header_field(), 0..8),
        lead in prop_oneof![4 => Just(""), 1 => Just("\r\n")],
        eol in prop_oneof![8 => Just("\r\n"), 1 => Just("\n")],
        body in "[a-z]{0,4}",
    ) -> Vec<u8> {
        let mut s = format!("{lead}{m} {t} {v}\r\n");
        for (n, val) in fields {
            s.push_str(&format!("{n}: {val}{eol}"));
        }
        s.push_str("\r\n");
        s.push_str(&body);
        s.into_bytes()
    }
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn request_head_parse_is_consistent(
        head in request_head(),
        d in defect(),
        sel in any::<u8>(),
        split in any::<usize>(),
    ) {
        request::check_parse(&apply(head, &d), &request::limits_for(sel), split);
    }

    #[test]
    fn request_head_parse_survives_any_bytes(
        bytes in vec(any::<u8>(), 0..300),
        sel in any::<u8>(),
        split in any::<usize>(),
    ) {
        request::check_parse(&bytes, &request::limits_for(sel), split);
    }

    #[test]
    fn request_assembler_survives_any_parts(
        m in prop_oneof![method().prop_map(String::into_bytes), vec(any::<u8>(), 0..8)],
        t in prop_oneof![request_target().prop_map(String::into_bytes), vec(any::<u8>(), 0..16)],
        authority in proptest::option::of("[a-z0-9.:\\[\\]-]{0,12}"),
        fields in vec(header_field(), 0..6),
    ) {
        let fields: Vec<(Vec<u8>, Vec<u8>)> =
            fields.into_iter().map(|(n, v)| (n.into_bytes(), v.into_bytes())).collect();
        request::check_assemble(&m, &t, authority.as_deref().map(str::as_bytes), &fields);
    }
}

// ---- chunked bodies ----

prop_compose! {
    fn chunked_body()(
        chunks in vec((vec(any::<u8>(), 1..40), 0usize..3, any::<bool>(), any::<bool>()), 0..5),
        last_zeros in 1usize..3,
        trailers in vec(("[A-Za-z-]{1,8}", "[ -~]{0,10}"), 0..3),
        next_request in "(GET / HTTP/1.1\r\n)?",
    ) -> Vec<u8> {
        let mut out = Vec::new();
        for (data, zeros, upper, ext) in chunks {
            let size = format!("{}{:x}", "0".repeat(zeros), data.len());
            out.extend(if upper { size.to_uppercase() } else { size }.bytes());
            if ext {
                out.extend_from_slice(b";name=\"v\"");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend("0".repeat(last_zeros).bytes());
        out.extend_from_slice(b"\r\n");
        for (n, v) in trailers {
            out.extend(format!("{n}: {v}\r\n").bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend(next_request.bytes());
        out
    }
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn chunked_in_any_reads_equals_reference(
        body in chunked_body(),
        d in defect(),
        sizes in vec(1usize..64, 1..6),
        max_data in 1usize..50,
        max_trailer in prop_oneof![Just(0usize), Just(8), Just(64), Just(65_536)],
    ) {
        chunked::check_chunked(&apply(body, &d), &sizes, max_data, max_trailer);
    }

    #[test]
    fn chunked_survives_any_bytes(
        body in vec(any::<u8>(), 0..200),
        sizes in vec(1usize..64, 1..4),
        max_data in 1usize..50,
    ) {
        chunked::check_chunked(&body, &sizes, max_data, 64);
    }
}

/// The trailer-field bound the reference shares with `http::chunked` (the chunked target
/// found it): 64 fields end the body, 65 refuse it, in both decoders.
#[test]
fn trailer_field_bound_is_the_decoders() {
    for (fields, ok) in [(64, true), (65, false)] {
        let mut body = b"1\r\nx\r\n0\r\n".to_vec();
        for i in 0..fields {
            body.extend(format!("T{i}: v\r\n").bytes());
        }
        body.extend_from_slice(b"\r\n");
        chunked::check_chunked(&body, &[7], 4, 65_536);
        let (_, end) = chunked::reference_decode(&body, 65_536);
        assert_eq!(
            matches!(end, chunked::Outcome::Done { .. }),
            ok,
            "{fields} fields"
        );
    }
}

// ---- upstream response heads ----

prop_compose! {
    fn response_head()(
        minor in 0u8..2,
        status in prop_oneof![100u16..1000, Just(204), Just(304), Just(101)],
        reason in "[ -~]{0,12}",
        fields in vec(prop_oneof![
            "[0-9]{1,20}(, ?[0-9]{1,3})?".prop_map(|v| ("Content-Length".to_string(), v)),
            prop_oneof![Just("chunked"), Just("gzip, chunked"), Just(" chunked ")]
                .prop_map(|v| ("Transfer-Encoding".to_string(), v.to_string())),
            prop_oneof![Just("close"), Just("keep-alive"), Just("Upgrade, close")]
                .prop_map(|v| ("Connection".to_string(), v.to_string())),
            ("[A-Za-z-]{1,10}", "[ -~]{0,12}"),
        ], 0..6),
    ) -> Vec<u8> {
        let mut s = format!("HTTP/1.{minor} {status:03} {reason}\r\n");
        for (n, v) in fields {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str("\r\n");
        s.into_bytes()
    }
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn response_head_parse_is_consistent(
        head in response_head(),
        d in defect(),
        head_request in any::<bool>(),
        split in any::<usize>(),
    ) {
        response::check_response(&apply(head, &d), head_request, split);
    }

    #[test]
    fn response_head_parse_survives_any_bytes(
        bytes in vec(any::<u8>(), 0..200),
        split in any::<usize>(),
    ) {
        response::check_response(&bytes, false, split);
    }
}

// ---- config text ----

fn yaml_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("18446744073709551615".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        "[0-9]{1,6}",
        "[0-9]{1,4}(ms|s|m|h)",
        Just("true".to_string()),
        Just("~".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        "\"[ -~]{0,10}\"",
        "(http|https|ws|ftp)://[a-z0-9.:\\[\\]]{0,12}(/[a-z]{0,5})?",
        "\\^?/[a-z(|)$*\\[]{0,8}",
    ]
}

fn yaml_key() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "listen",
        "port",
        "middlewares",
        "enable_websocket",
        "workers",
        "io_driver",
        "request_timeout",
        "max_request_line_bytes",
        "max_header_bytes",
        "max_headers",
        "max_request_body_size",
        "header_read_timeout",
        "keep_alive_timeout",
        "max_response_body_size",
        "path",
        "target_url",
        "replace_path",
        "excluded_headers",
        "additional_headers",
        "dial_timeout",
        "max_idle_conns",
        "force_http2",
        "level",
        "format",
        "enabled",
        "bogus_key",
        // A key with a line break (the config target found one in a warning).
        "\"odd\\nkey\"",
    ])
}

fn limit_entry() -> impl Strategy<Value = (&'static str, String)> {
    let key = proptest::sample::select(vec![
        "max_request_line_bytes",
        "max_header_bytes",
        "max_headers",
        "max_request_body_size",
    ]);
    let value = prop_oneof![
        4 => "[1-9][0-9]{0,5}",
        1 => "[1-9][0-9]{6,19}",
        1 => Just("18446744073709551615".to_string()),
        1 => Just("0".to_string()),
    ];
    let timeout = (
        proptest::sample::select(vec![
            "header_read_timeout",
            "keep_alive_timeout",
            "body_idle_timeout",
        ]),
        "[0-9]{1,4}(ms|s|m|h)",
    );
    prop_oneof![4 => (key, value), 1 => timeout, 1 => (yaml_key(), yaml_scalar())]
}

/// A YAML double-quoted scalar.
fn yaml_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

prop_compose! {
    /// One location, mostly well-formed, sometimes with a random extra entry.
    fn location()(
        path in prop_oneof!["\\^?/[a-z]{0,6}(\\(/\\|\\$\\))?", "[ -~]{0,8}"],
        url in prop_oneof![
            4 => "(http|ws)://(127\\.0\\.0\\.1|u|\\[::1\\])(:[0-9]{1,5})?(/[a-z/]{0,8})?(\\?[a-z=]{0,5})?",
            1 => "[ -~]{0,16}",
        ],
        replace_path in proptest::option::of(any::<bool>()),
        extra in vec((yaml_key(), yaml_scalar()), 0..2),
    ) -> String {
        let mut s = format!(
            "  - path: {}\n    target_url: {}\n",
            yaml_quote(&path),
            yaml_quote(&url)
        );
        if let Some(r) = replace_path {
            s.push_str(&format!("    replace_path: {r}\n"));
        }
        for (k, v) in extra {
            s.push_str(&format!("    {k}: {v}\n"));
        }
        s
    }
}

prop_compose! {
    /// A config in the file's shape: request limits, a list of locations, random entries.
    fn config_text()(
        limits in vec(limit_entry(), 0..4),
        locations in vec(location(), 0..3),
        top in vec((yaml_key(), yaml_scalar()), 0..2),
    ) -> String {
        let mut s = String::new();
        for (k, v) in top {
            s.push_str(&format!("{k}: {v}\n"));
        }
        s.push_str("request_limits:\n");
        for (k, v) in limits {
            s.push_str(&format!("  {k}: {v}\n"));
        }
        s.push_str("locations:\n");
        for loc in locations {
            s.push_str(&loc);
        }
        s
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn config_validation_never_panics(text in config_text(), d in defect()) {
        let bytes = apply(text.into_bytes(), &d);
        config::fuzz_one(&bytes);
    }

    #[test]
    fn config_validation_survives_any_text(text in "[ -~\n\t\r]{0,200}") {
        config::check_config(&text);
    }
}

// ---- target URL and the upstream path ----

fn target_url() -> impl Strategy<Value = String> {
    prop_oneof![
        "(http|https|ws|wss|HTTP)://(u|127\\.0\\.0\\.1|\\[::1\\])(:[0-9]{1,5})?(/[a-z%0-9/]{0,8})?(\\?[a-z=&]{0,6})?",
        "[ -~]{0,24}",
    ]
}

fn request_path() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "(/api|/v1|/s|/x|/apiary|)(/[a-z0-9%]{0,6}){0,3}/?".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..16),
    ]
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn target_url_parse_round_trips(text in target_url()) {
        route::check_target_url(&text);
    }

    #[test]
    fn rewrite_follows_spec(
        url in target_url(),
        pattern in any::<usize>(),
        replace_path in any::<bool>(),
        path in request_path(),
        query in proptest::option::of(vec(any::<u8>(), 0..6)),
    ) {
        if let Ok(target) = TargetUrl::parse(&url) {
            route::check_rewrite(pattern, &target, replace_path, &path, query.as_deref());
        }
    }

    /// Spec §3's first rows for any remainder: `^/api` → `http://u/base` sends `/api<R>` to
    /// `/base/<R without one leading />`, and `/api` alone to `/base`.
    #[test]
    fn prefix_rows_of_the_spec_table(rest in "(/[a-z0-9%._~-]{0,6}){0,3}/?", q in "[a-z=&]{0,6}") {
        let target = TargetUrl::parse("http://u/base").unwrap();
        let router = crate::route::Router::build(&[crate::route::RouteSpec {
            pattern: "^/api".to_string(),
            target_path: target.path.clone(),
            target_query: None,
            replace_path: false,
        }]).unwrap();
        let path = format!("/api{rest}");
        let m = router.lookup(path.as_bytes()).unwrap();
        let mut out = Vec::new();
        let query = (!q.is_empty()).then_some(q.as_bytes());
        crate::route::write_upstream_target(
            router.get(m.index).unwrap(), path.as_bytes(), query, &m, &mut out,
        );
        let r = rest.strip_prefix('/').unwrap_or(&rest);
        let mut want = if rest.is_empty() { "/base".to_string() } else { format!("/base/{r}") };
        if !q.is_empty() {
            want = format!("{want}?{q}");
        }
        prop_assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    fn set_lookup_equals_first_match(
        order in vec(any::<usize>(), 1..14),
        path in request_path(),
    ) {
        route::check_lookup_order(&order, &path);
    }
}

// ---- key and signature files ----

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn key_and_signature_parsers_never_panic(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..140),
            "[0-9a-fA-F]{126,130}[ \t\r\n]{0,3}".prop_map(String::into_bytes),
            vec(any::<u8>(), 32..=32),
            vec(any::<u8>(), 64..=64),
        ],
    ) {
        keys::check_file_contents(&bytes);
    }

}

proptest! {
    // Ed25519 in a debug build costs ~150 ms a case; the parsers above get the many cases.
    #![proptest_config(cases(16))]

    #[test]
    fn signatures_verify_only_their_image(
        seed in any::<[u8; 32]>(),
        image in vec(any::<u8>(), 0..64),
        flip in any::<usize>(),
    ) {
        keys::check_sign_verify(seed, &image, flip);
    }
}
