//! `request_limits` (spec §6): defaults applied, every size limit kept between 1 and a
//! ceiling, and the underscore policy for header names (spec §3).
//!
//! The ceilings exist because the codec sizes buffers and parser slots from these values: a
//! limit near `u64::MAX` would overflow the arithmetic around it and ask for impossible
//! allocations. They are generous next to what nginx and HAProxy ship (nginx reads a request
//! line and each header line into 8 KiB buffers by default; HAProxy's whole head must fit its
//! 16 KiB buffer and it allows 101 fields by default) and still keep one connection's head
//! buffer bounded (at most request line + header section ≈ 2 MiB). Control thread only.

use std::time::Duration;

use super::defaults::*;
use super::file::FileConfig;
use super::raw::quote;
use super::types::{HeadersWithUnderscores, RequestLimits};
use super::validate::{count, duration};
use super::{join, Report};

/// Largest `request_limits.max_request_line_bytes`: 1 MiB.
pub const MAX_REQUEST_LINE_BYTES_CEILING: usize = 1 << 20;
/// Largest `request_limits.max_header_bytes`: 1 MiB.
pub const MAX_HEADER_BYTES_CEILING: usize = 1 << 20;
/// Largest `request_limits.max_headers` (the HTTP/1.1 parser keeps this many field slots on
/// the stack, so no request allocates them).
pub const MAX_HEADERS_CEILING: usize = 1024;

pub(crate) fn request_limits(file: &FileConfig, r: &mut Report) -> RequestLimits {
    let f = &file.request_limits;
    let bounded =
        |value: Option<u64>, key: &str, default: usize, ceiling: usize, r: &mut Report| {
            let path = join("request_limits", key);
            let Some(n) = value else {
                return default;
            };
            if n == 0 {
                r.error(&path, "must be at least 1");
                return default;
            }
            match count(Some(n), &path, r) {
                Some(n) if n <= ceiling => n,
                Some(_) => {
                    r.error(
                        &path,
                        format!("{n} is too large (the maximum is {ceiling})"),
                    );
                    default
                }
                None => default,
            }
        };
    let timeout = |text: &Option<String>, key: &str, default: Duration, r: &mut Report| {
        duration(text, &join("request_limits", key), r).unwrap_or(default)
    };
    RequestLimits {
        max_request_line_bytes: bounded(
            f.max_request_line_bytes,
            "max_request_line_bytes",
            DEFAULT_MAX_REQUEST_LINE_BYTES,
            MAX_REQUEST_LINE_BYTES_CEILING,
            r,
        ),
        max_header_bytes: bounded(
            f.max_header_bytes,
            "max_header_bytes",
            DEFAULT_MAX_HEADER_BYTES,
            MAX_HEADER_BYTES_CEILING,
            r,
        ),
        max_headers: bounded(
            f.max_headers,
            "max_headers",
            DEFAULT_MAX_HEADERS,
            MAX_HEADERS_CEILING,
            r,
        ),
        header_read_timeout: timeout(
            &f.header_read_timeout,
            "header_read_timeout",
            DEFAULT_HEADER_READ_TIMEOUT,
            r,
        ),
        keep_alive_timeout: timeout(
            &f.keep_alive_timeout,
            "keep_alive_timeout",
            DEFAULT_KEEP_ALIVE_TIMEOUT,
            r,
        ),
        body_idle_timeout: timeout(
            &f.body_idle_timeout,
            "body_idle_timeout",
            DEFAULT_BODY_IDLE_TIMEOUT,
            r,
        ),
        // Only ever compared with byte counts, never added to: any u64 is safe.
        max_request_body_size: f
            .max_request_body_size
            .unwrap_or(DEFAULT_MAX_REQUEST_BODY_SIZE),
        headers_with_underscores: underscores(&f.headers_with_underscores, r),
        send_timeout: timeout(&f.send_timeout, "send_timeout", DEFAULT_SEND_TIMEOUT, r),
    }
}

fn underscores(value: &Option<String>, r: &mut Report) -> HeadersWithUnderscores {
    match value.as_deref() {
        None => DEFAULT_HEADERS_WITH_UNDERSCORES,
        Some("drop") => HeadersWithUnderscores::Drop,
        Some("allow") => HeadersWithUnderscores::Allow,
        Some("reject") => HeadersWithUnderscores::Reject,
        Some(other) => {
            r.error(
                "request_limits.headers_with_underscores",
                format!(
                    "invalid value {}: expected drop, allow or reject",
                    quote(other)
                ),
            );
            DEFAULT_HEADERS_WITH_UNDERSCORES
        }
    }
}
