//! An HTTP/2 request's pseudo-headers and fields as a [`RequestHead`] (RFC 9113 §8.3).
//!
//! `:authority` becomes Host, cookie crumbs are joined with `; ` (§8.2.3), `:path` gets the
//! HTTP/1.1 request-target checks, framing comes from `content-length` (or from END_STREAM
//! on the HEADERS frame: no body; otherwise a body of unknown length), and the spec §6 limits
//! apply: request line length (414) and field count (431); field names with `_` follow
//! `headers_with_underscores` as in HTTP/1.1 (spec §3). The field-section size itself is
//! enforced by the h2 crate through `max_header_list_size`. Connection-specific fields make
//! the request malformed (§8.2.2).

use http::request::Parts;

use crate::http::limits::HeadLimits;
use crate::http::request::{underscore_allowed, BodyFraming, HeadError, RequestHead, Version};

/// Connection-specific fields, which an HTTP/2 message must not carry (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Why a stream's head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2HeadError {
    /// Malformed per RFC 9113 §8.1.1: reset the stream with PROTOCOL_ERROR.
    Malformed(&'static str),
    /// Refused with a response, like the HTTP/1.1 head error.
    Refused(HeadError),
}

/// Whether `name` may not appear in an HTTP/2 message.
pub fn is_connection_specific(name: &[u8]) -> bool {
    CONNECTION_SPECIFIC
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c.as_bytes()))
}

/// Builds the head of a stream. `end_of_stream`: the HEADERS frame ended the stream.
pub fn build(
    parts: &Parts,
    end_of_stream: bool,
    limits: &HeadLimits,
) -> Result<RequestHead, H2HeadError> {
    let method = parts.method.as_str().as_bytes();
    let authority = parts.uri.authority().map(|a| a.as_str().as_bytes());
    let target: &[u8] = if parts.method == http::Method::CONNECT {
        authority.unwrap_or_default()
    } else {
        match parts.uri.path_and_query() {
            Some(pq) => pq.as_str().as_bytes(),
            None => return Err(H2HeadError::Malformed("missing :path")),
        }
    };
    if method.len() + 1 + target.len() + 9 > limits.max_request_line_bytes {
        return Err(H2HeadError::Refused(HeadError::UriTooLong));
    }
    if parts.headers.len() > limits.max_headers {
        return Err(H2HeadError::Refused(HeadError::HeadersTooLarge));
    }
    let mut content_length: Option<u64> = None;
    let mut cookie: Vec<u8> = Vec::new();
    let underscores = limits.headers_with_underscores;
    for (name, value) in &parts.headers {
        let n = name.as_str().as_bytes();
        if !underscore_allowed(n, underscores).map_err(H2HeadError::Refused)? {
            continue;
        }
        if is_connection_specific(n) {
            return Err(H2HeadError::Malformed("connection-specific field"));
        }
        if n == b"te" && value.as_bytes() != b"trailers" {
            return Err(H2HeadError::Malformed("TE other than trailers"));
        }
        if n == b"content-length" {
            let v = parse_length(value.as_bytes())
                .ok_or(H2HeadError::Malformed("malformed content-length"))?;
            if content_length.is_some_and(|c| c != v) {
                return Err(H2HeadError::Malformed("conflicting content-length"));
            }
            content_length = Some(v);
        }
        if n == b"cookie" {
            if !cookie.is_empty() {
                cookie.extend_from_slice(b"; ");
            }
            cookie.extend_from_slice(value.as_bytes());
        }
    }
    let framing = match content_length {
        Some(0) => BodyFraming::None,
        Some(n) => BodyFraming::Length(n),
        None if end_of_stream => BodyFraming::None,
        // No declared length and DATA frames to come: forwarded as a chunked body.
        None => BodyFraming::Chunked,
    };
    let mut cookie_done = false;
    let fields = parts.headers.iter().filter_map(|(name, value)| {
        let n = name.as_str().as_bytes();
        // Refusals were returned above; what is left to filter is a dropped name.
        if !underscore_allowed(n, underscores).unwrap_or(false) {
            return None;
        }
        if n == b"cookie" {
            if cookie_done {
                return None;
            }
            cookie_done = true;
            return Some((n, cookie.as_slice()));
        }
        Some((n, value.as_bytes()))
    });
    RequestHead::assemble(method, target, authority, fields, Version::Http2, framing)
        .map_err(H2HeadError::Refused)
}

/// Digits only, at most 19 (fits u64).
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_request_line_bytes: 200,
        max_header_bytes: 4096,
        max_headers: 8,
        headers_with_underscores: crate::http::limits::HeadersWithUnderscores::Drop,
    };

    fn parts(method: &str, uri: &str, fields: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (n, v) in fields {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn authority_becomes_host_and_cookies_are_joined() {
        let p = parts(
            "GET",
            "http://a.example:8443/p/q?x=1",
            &[("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2")],
        );
        let h = build(&p, true, &LIMITS).unwrap();
        assert_eq!(h.host(), Some(&b"a.example:8443"[..]));
        assert_eq!(h.header("host"), Some(&b"a.example:8443"[..]));
        assert_eq!(h.header("cookie"), Some(&b"a=1; b=2"[..]));
        assert_eq!(h.headers().filter(|(n, _)| *n == b"cookie").count(), 1);
        assert_eq!(h.path(), b"/p/q");
        assert_eq!(h.query(), Some(&b"x=1"[..]));
        assert_eq!(h.version, Version::Http2);
        assert_eq!(h.framing, BodyFraming::None);
        assert!(h.keep_alive);
    }

    #[test]
    fn framing_comes_from_content_length_or_end_of_stream() {
        let p = parts("POST", "http://a/", &[("content-length", "12")]);
        assert_eq!(
            build(&p, false, &LIMITS).unwrap().framing,
            BodyFraming::Length(12)
        );
        let p = parts("POST", "http://a/", &[]);
        assert_eq!(
            build(&p, false, &LIMITS).unwrap().framing,
            BodyFraming::Chunked
        );
        assert_eq!(build(&p, true, &LIMITS).unwrap().framing, BodyFraming::None);
        let p = parts("POST", "http://a/", &[("content-length", "1x")]);
        assert!(matches!(
            build(&p, false, &LIMITS),
            Err(H2HeadError::Malformed(_))
        ));
    }

    #[test]
    fn connection_specific_fields_are_malformed() {
        for (n, v) in [
            ("connection", "close"),
            ("keep-alive", "5"),
            ("proxy-connection", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("te", "gzip"),
        ] {
            let p = parts("GET", "http://a/", &[(n, v)]);
            assert!(
                matches!(build(&p, true, &LIMITS), Err(H2HeadError::Malformed(_))),
                "{n}"
            );
        }
        let p = parts("GET", "http://a/", &[("te", "trailers")]);
        assert!(build(&p, true, &LIMITS).is_ok());
    }

    #[test]
    fn limits_and_target_checks_match_http1() {
        let long = format!("http://a/{}", "x".repeat(300));
        let p = parts("GET", &long, &[]);
        assert_eq!(
            build(&p, true, &LIMITS).err(),
            Some(H2HeadError::Refused(HeadError::UriTooLong))
        );
        let many: Vec<(String, String)> = (0..9).map(|i| (format!("x-{i}"), "v".into())).collect();
        let fields: Vec<(&str, &str)> =
            many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let p = parts("GET", "http://a/", &fields);
        assert_eq!(
            build(&p, true, &LIMITS).err(),
            Some(H2HeadError::Refused(HeadError::HeadersTooLarge))
        );
        let p = parts("GET", "http://a/", &[("host", "b")]);
        assert!(matches!(
            build(&p, true, &LIMITS),
            Err(H2HeadError::Refused(_))
        ));
        let p = parts("OPTIONS", "*", &[("host", "a")]);
        let h = build(&p, true, &LIMITS).unwrap();
        assert_eq!(h.path(), b"*");
    }

    #[test]
    fn underscored_names_follow_the_policy() {
        use crate::http::limits::HeadersWithUnderscores;
        let p = parts(
            "GET",
            "http://a/",
            &[("x_forwarded_for", "6.6.6.6"), ("x-ok", "1")],
        );
        let h = build(&p, true, &LIMITS).unwrap();
        assert_eq!(h.header("x_forwarded_for"), None);
        assert_eq!(h.header("x-ok"), Some(&b"1"[..]));
        let allow = HeadLimits {
            headers_with_underscores: HeadersWithUnderscores::Allow,
            ..LIMITS
        };
        let h = build(&p, true, &allow).unwrap();
        assert_eq!(h.header("x_forwarded_for"), Some(&b"6.6.6.6"[..]));
        let reject = HeadLimits {
            headers_with_underscores: HeadersWithUnderscores::Reject,
            ..LIMITS
        };
        assert!(matches!(
            build(&p, true, &reject),
            Err(H2HeadError::Refused(HeadError::BadRequest(_)))
        ));
    }
}
