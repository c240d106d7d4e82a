//! Access lines and header dumps (spec §11).
//!
//! [`log_access`] writes one INFO `HTTP request processed` line per request with exactly the
//! spec's fields; [`log_headers`] writes one INFO line per header dump (`logging.verbose`),
//! with secret values redacted. Both use the [`ACCESS`] target, which no level hides: they
//! follow `logging.enabled` (access lines) and `logging.verbose` (dumps) only, and the
//! **caller checks those flags** before calling — these functions always log. They run on the
//! worker thread that served the request; the line goes to that worker's queue and never
//! makes it wait. Bytes that are not UTF-8 are rendered lossily (U+FFFD).

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use super::access_line::write_access_line;
use super::log;

/// Target of access lines and header dumps: printed whatever `logging.level` says.
pub const ACCESS: &str = "dito::access";

/// What a redacted header value is replaced by.
pub const REDACTED: &str = "[REDACTED]";

/// Headers whose values never reach a log line.
const SECRET_HEADERS: [&str; 4] = [
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// One served request, as the access line reports it.
#[derive(Debug, Clone)]
pub struct AccessRecord<'a> {
    pub client_ip: IpAddr,
    pub method: &'a [u8],
    /// Path and query as received.
    pub url: &'a [u8],
    /// `"HTTP/1.1"`.
    pub protocol: &'static str,
    pub status_code: u16,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub duration: Duration,
    pub request_id: &'a str,
    /// The upstream the request went to (`host:port`), if any.
    pub upstream: Option<&'a str>,
    /// Response bytes written to the client (head and body).
    pub bytes_sent: u64,
    /// The response could not be completed (the connection was cut).
    pub aborted: bool,
}

fn lossy(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Logs the access line of `rec`. Absent `referer`, `user_agent` and `upstream` are empty
/// strings, so every line has the same fields. Call only when `logging.enabled` is true.
/// Once logging is installed the line is written directly (`access_line`), else (unit
/// tests, a terminal with colours) it goes through `tracing` like every other line.
pub fn log_access(rec: &AccessRecord<'_>) {
    if let Some(style) = log::installed_style().filter(|s| !s.ansi) {
        let micros = log::format::now_micros();
        // On a worker the line joins the worker's batch; elsewhere it is queued alone.
        if !log::queue::gather_worker_line(|out| write_access_line(out, style, micros, rec)) {
            let mut line = Vec::with_capacity(LINE_CAPACITY);
            write_access_line(&mut line, style, micros, rec);
            log::queue::deliver(line);
        }
        return;
    }
    log_access_event(rec);
}

/// Room for a typical access line.
const LINE_CAPACITY: usize = 384;

/// [`log_access`] as a `tracing` event.
pub fn log_access_event(rec: &AccessRecord<'_>) {
    let method = lossy(rec.method);
    let url = lossy(rec.url);
    let referer = rec.referer.map(lossy).unwrap_or_default();
    let user_agent = rec.user_agent.map(lossy).unwrap_or_default();
    tracing::info!(
        target: ACCESS,
        client_ip = %rec.client_ip,
        method = &*method,
        url = &*url,
        protocol = rec.protocol,
        status_code = rec.status_code,
        referer = &*referer,
        user_agent = &*user_agent,
        duration_seconds = rec.duration.as_secs_f64(),
        request_id = rec.request_id,
        upstream = rec.upstream.unwrap_or(""),
        bytes_sent = rec.bytes_sent,
        aborted = rec.aborted,
        "HTTP request processed"
    );
}

/// Logs one header dump: INFO `request headers` or `response headers` (`kind` is
/// `"request"` or `"response"`) with `request_id` and `headers`, the headers in order as
/// `Name: value` lines joined by `\n`, secret values replaced by `[REDACTED]`. Call only
/// when `logging.verbose` is true.
pub fn log_headers<'h>(
    kind: &'static str,
    request_id: &str,
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
) {
    let dump = render_headers(headers);
    tracing::info!(
        target: ACCESS,
        request_id,
        headers = &*dump,
        "{kind} headers"
    );
}

/// `Name: value` lines joined by `\n`, secrets redacted, non-UTF-8 bytes lossy.
pub fn render_headers<'h>(headers: impl Iterator<Item = (&'h [u8], &'h [u8])>) -> String {
    let mut out = String::new();
    for (name, value) in headers {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&lossy(name));
        out.push_str(": ");
        if is_secret(name) {
            out.push_str(REDACTED);
        } else {
            out.push_str(&lossy(value));
        }
    }
    out
}

fn is_secret(name: &[u8]) -> bool {
    SECRET_HEADERS
        .iter()
        .any(|s| name.eq_ignore_ascii_case(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_whatever_their_case() {
        let headers: [(&[u8], &[u8]); 7] = [
            (b"Host", b"example.com"),
            (b"authorization", b"Bearer abc"),
            (b"COOKIE", b"sid=1"),
            (b"Set-Cookie", b"sid=2; HttpOnly"),
            (b"Proxy-Authorization", b"Basic xyz"),
            (b"X-Authorization-Hint", b"kept"),
            (b"Accept", b"\xff/*"),
        ];
        let dump = render_headers(headers.into_iter());
        assert_eq!(
            dump,
            "Host: example.com\nauthorization: [REDACTED]\nCOOKIE: [REDACTED]\n\
             Set-Cookie: [REDACTED]\nProxy-Authorization: [REDACTED]\n\
             X-Authorization-Hint: kept\nAccept: \u{fffd}/*"
        );
        for secret in ["abc", "sid=", "xyz"] {
            assert!(!dump.contains(secret), "{secret} leaked: {dump}");
        }
    }

    #[test]
    fn no_headers_is_an_empty_dump() {
        assert_eq!(render_headers(std::iter::empty()), "");
    }
}
