//! Unit tests for the request-head parser: every rejection of spec §7's 400 row and the limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const LIMITS: HeadLimits = HeadLimits {
    max_request_line_bytes: 64,
    max_header_bytes: 128,
    max_headers: 4,
    headers_with_underscores: crate::http::limits::HeadersWithUnderscores::Drop,
};

fn parse(s: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    parse_head(s, &LIMITS)
}

fn ok(s: &[u8]) -> RequestHead {
    match parse(s) {
        Ok(Some((h, n))) => {
            assert_eq!(n, s.len());
            h
        }
        other => panic!(
            "expected a head for {:?}, got {other:?}",
            String::from_utf8_lossy(s)
        ),
    }
}

fn bad(s: &[u8]) -> HeadError {
    match parse(s) {
        Err(e) => e,
        other => panic!(
            "expected an error for {:?}, got {other:?}",
            String::from_utf8_lossy(s)
        ),
    }
}

#[test]
fn simple_get() {
    let h = ok(b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n\r\n");
    assert_eq!(h.method(), b"GET");
    assert_eq!(h.path(), b"/a/b");
    assert_eq!(h.query(), Some(&b"x=1"[..]));
    assert_eq!(h.host(), Some(&b"example.com"[..]));
    assert_eq!(h.framing, BodyFraming::None);
    assert!(h.keep_alive);
    assert_eq!(h.headers().count(), 2);
}

#[test]
fn partial_heads_need_more() {
    assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None)));
    assert!(matches!(parse(b"GE"), Ok(None)));
}

#[test]
fn bare_question_mark_is_an_empty_query() {
    let h = ok(b"GET /p? HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(h.query(), Some(&b""[..]));
}

#[test]
fn framing_rules() {
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Length(10));
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(h.framing, BodyFraming::Chunked);
    for s in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        assert!(matches!(bad(s), HeadError::BadRequest(_)), "{}", String::from_utf8_lossy(s));
    }
}

#[test]
fn header_syntax_rejections() {
    for s in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: u@h\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert!(
            matches!(bad(s), HeadError::BadRequest(_)),
            "{}",
            String::from_utf8_lossy(s)
        );
    }
}

#[test]
fn http10_needs_no_host_and_closes_by_default() {
    let h = ok(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(h.version, Version::Http10);
    assert!(!h.keep_alive);
    assert_eq!(h.host(), None);
    let h = ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(h.keep_alive);
    let h = ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n");
    assert!(!h.keep_alive);
}

#[test]
fn absolute_form_authority_becomes_host() {
    let h = ok(b"GET http://Example.com:8080/p/q?z HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(h.form, TargetForm::Absolute);
    assert_eq!(h.host(), Some(&b"Example.com:8080"[..]));
    assert_eq!(h.path(), b"/p/q");
    assert_eq!(h.query(), Some(&b"z"[..]));
    let h = ok(b"GET http://[::1]:9 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(h.host(), Some(&b"[::1]:9"[..]));
    assert_eq!(h.path(), b"");
}

#[test]
fn connect_options_star_and_preface() {
    let h = ok(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_eq!(h.form, TargetForm::Authority);
    let h = ok(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(h.form, TargetForm::Asterisk);
    assert_eq!(
        bad(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        HeadError::Http2Preface
    );
}

#[test]
fn expect_continue_only_for_http11() {
    let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
    assert!(h.expect_continue);
    let h = ok(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    assert!(!h.expect_continue);
}

#[test]
fn request_line_limit_is_exact() {
    // "GET " + path + " HTTP/1.1" = 64 bytes exactly passes; 65 fails.
    let path = "/".repeat(64 - 13);
    let at = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
    ok(at.as_bytes());
    let over = format!("GET {path}/ HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(bad(over.as_bytes()), HeadError::UriTooLong);
    // Without any newline yet, a line already over the limit is refused early.
    let long = format!("GET /{} ", "a".repeat(100));
    assert_eq!(bad(long.as_bytes()), HeadError::UriTooLong);
}

#[test]
fn header_section_limits_are_exact() {
    // Header section = 128 bytes passes, 129 fails.
    let fill = |n: usize| format!("X: {}\r\n", "v".repeat(n - 5));
    let at = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", fill(128 - 9));
    ok(at.as_bytes());
    let over = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", fill(129 - 9));
    assert_eq!(bad(over.as_bytes()), HeadError::HeadersTooLarge);
    let four = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\n\r\n";
    ok(four);
    let five = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n";
    assert_eq!(bad(five), HeadError::HeadersTooLarge);
}

#[test]
fn authority_validation() {
    assert!(is_valid_authority(b"example.com"));
    assert!(is_valid_authority(b"example.com:80"));
    assert!(is_valid_authority(b"[::1]:8080"));
    assert!(!is_valid_authority(b""));
    assert!(!is_valid_authority(b"a/b"));
    assert!(!is_valid_authority(b"a:port"));
    assert!(!is_valid_authority(b"[::1"));
}

#[test]
fn request_line_of_a_refused_head() {
    assert_eq!(
        request_line(b"\r\nGET /a?b HTTP/1.1\r\nBad Header\r\n"),
        Some((&b"GET"[..], &b"/a?b"[..], Version::Http11))
    );
    assert_eq!(
        request_line(b"POST / HTTP/1.0\r\n"),
        Some((&b"POST"[..], &b"/"[..], Version::Http10))
    );
    assert_eq!(request_line(b"GET /partial"), None);
    assert_eq!(request_line(b"GET / HTTP/2.0\r\n"), None);
    assert_eq!(request_line(b"GET  / HTTP/1.1\r\n"), None);
    assert_eq!(request_line(b"G(T / HTTP/1.1\r\n"), None);
    assert_eq!(request_line(b"GET / HTTP/1.1\n"), None);
}

fn with_underscores(policy: HeadersWithUnderscores) -> HeadLimits {
    HeadLimits {
        headers_with_underscores: policy,
        ..LIMITS
    }
}

#[test]
fn underscored_names_are_dropped_by_default() {
    let raw = b"POST / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nContent_Length: 5\r\nX-Ok: 1\r\n\r\n";
    let (h, n) = parse(raw).unwrap().unwrap();
    assert_eq!(n, raw.len());
    let names: Vec<&[u8]> = h.headers().map(|(n, _)| n).collect();
    assert_eq!(names, [&b"Host"[..], b"X-Ok"]);
    // A dropped `Content_Length` is not framing.
    assert_eq!(h.framing, BodyFraming::None);
}

#[test]
fn underscored_names_are_kept_or_refused_as_configured() {
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n";
    let allow = with_underscores(HeadersWithUnderscores::Allow);
    let (h, _) = parse_head(raw, &allow).unwrap().unwrap();
    assert_eq!(h.header("x_forwarded_for"), Some(&b"6.6.6.6"[..]));
    // Kept, `Content_Length` is still not `Content-Length`.
    let raw_cl = b"GET / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n";
    let (h, _) = parse_head(raw_cl, &allow).unwrap().unwrap();
    assert_eq!(h.framing, BodyFraming::None);
    let reject = with_underscores(HeadersWithUnderscores::Reject);
    assert!(matches!(
        parse_head(raw, &reject),
        Err(HeadError::BadRequest(_))
    ));
    // Names without `_` are untouched by every policy.
    ok(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b_c\r\n\r\n");
    parse_head(b"GET /a_b HTTP/1.1\r\nHost: a\r\nX-A: b_c\r\n\r\n", &reject)
        .unwrap()
        .unwrap();
}

#[test]
fn limits_at_usize_max_do_not_overflow() {
    // The arithmetic around each limit must not wrap: a head split across reads needs more,
    // never gets 414/431 (and never panics in a debug build).
    let huge = HeadLimits {
        max_request_line_bytes: usize::MAX,
        max_header_bytes: usize::MAX,
        max_headers: usize::MAX,
        headers_with_underscores: HeadersWithUnderscores::Drop,
    };
    let full = b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    for cut in 1..full.len() {
        assert!(
            matches!(parse_head(&full[..cut], &huge), Ok(None)),
            "cut at {cut}"
        );
    }
    let (h, n) = parse_head(full, &huge).unwrap().unwrap();
    assert_eq!(n, full.len());
    assert_eq!(h.framing, BodyFraming::Chunked);
}

#[test]
fn the_maximum_header_count_is_parsed_without_a_heap_slot_array() {
    let at_ceiling = HeadLimits {
        max_request_line_bytes: 8192,
        max_header_bytes: 1 << 20,
        max_headers: MAX_HEADERS_CEILING,
        headers_with_underscores: HeadersWithUnderscores::Drop,
    };
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 1..MAX_HEADERS_CEILING {
        raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    let mut exact = raw.clone();
    exact.extend_from_slice(b"\r\n");
    let (h, _) = parse_head(&exact, &at_ceiling).unwrap().unwrap();
    assert_eq!(h.headers().count(), MAX_HEADERS_CEILING);
    raw.extend_from_slice(b"X-Over: v\r\n\r\n");
    assert_eq!(
        parse_head(&raw, &at_ceiling).err(),
        Some(HeadError::HeadersTooLarge)
    );
    // A limit above the ceiling (code can build one) behaves as the ceiling.
    let above = HeadLimits {
        max_headers: usize::MAX,
        ..at_ceiling
    };
    assert_eq!(
        parse_head(&raw, &above).err(),
        Some(HeadError::HeadersTooLarge)
    );
}
