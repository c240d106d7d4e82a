//! Dito's own errors: who failed, which status that is, and the JSON envelope (spec §7).
//!
//! Every error Dito answers itself is a [`ProxyError`]; its status, message and details are
//! decided here and nowhere else, and the envelope never carries internal addresses, paths or
//! error texts. Pure data; used on worker threads.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::response::Response;
use crate::http::status::reason_phrase;
use crate::json::escape_into;

/// Which side of the proxy caused an error (logged, and later used for metrics labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Client,
    Upstream,
    Internal,
}

/// What went wrong with an upstream: one vocabulary for `details.upstream_error` and the
/// metric labels (spec §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    ConnectRefused,
    ConnectTimeout,
    Dns,
    Reset,
    ConnectionLimit,
    /// The upstream's certificate chain does not lead to a trusted root.
    TlsUnknownCa,
    /// The upstream's certificate is expired or not yet valid.
    TlsExpired,
    /// The upstream's certificate does not name the target host.
    TlsNameMismatch,
    /// The upstream wants a client certificate: none was configured, or it refused ours.
    TlsClientCertRequired,
    /// Any other TLS failure, including a handshake timeout.
    TlsOther,
    InvalidResponse,
    ResponseHeaderTimeout,
    RequestTimeout,
    /// No byte of the response body arrived within `transport.http.read_timeout` (spec §6).
    ReadTimeout,
}

impl UpstreamErrorKind {
    /// Every kind, in discriminant order (metrics index their counters with `kind as usize`).
    pub const ALL: [UpstreamErrorKind; 14] = [
        UpstreamErrorKind::ConnectRefused,
        UpstreamErrorKind::ConnectTimeout,
        UpstreamErrorKind::Dns,
        UpstreamErrorKind::Reset,
        UpstreamErrorKind::ConnectionLimit,
        UpstreamErrorKind::TlsUnknownCa,
        UpstreamErrorKind::TlsExpired,
        UpstreamErrorKind::TlsNameMismatch,
        UpstreamErrorKind::TlsClientCertRequired,
        UpstreamErrorKind::TlsOther,
        UpstreamErrorKind::InvalidResponse,
        UpstreamErrorKind::ResponseHeaderTimeout,
        UpstreamErrorKind::RequestTimeout,
        UpstreamErrorKind::ReadTimeout,
    ];

    /// The label and `details.upstream_error` value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::ConnectRefused => "connect_refused",
            UpstreamErrorKind::ConnectTimeout => "connect_timeout",
            UpstreamErrorKind::Dns => "dns",
            UpstreamErrorKind::Reset => "reset",
            UpstreamErrorKind::ConnectionLimit => "connection_limit",
            UpstreamErrorKind::TlsUnknownCa => "tls_unknown_ca",
            UpstreamErrorKind::TlsExpired => "tls_expired",
            UpstreamErrorKind::TlsNameMismatch => "tls_name_mismatch",
            UpstreamErrorKind::TlsClientCertRequired => "tls_client_cert_required",
            UpstreamErrorKind::TlsOther => "tls_other",
            UpstreamErrorKind::InvalidResponse => "invalid_response",
            UpstreamErrorKind::ResponseHeaderTimeout => "response_header_timeout",
            UpstreamErrorKind::RequestTimeout => "request_timeout",
            UpstreamErrorKind::ReadTimeout => "read_timeout",
        }
    }

    /// 504 for the timeouts that wait on the upstream's answer, else 502.
    pub fn status(self) -> u16 {
        match self {
            UpstreamErrorKind::ResponseHeaderTimeout
            | UpstreamErrorKind::RequestTimeout
            | UpstreamErrorKind::ReadTimeout => 504,
            _ => 502,
        }
    }
}

/// An error that Dito answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// Malformed or ambiguous request; the text is for the log only.
    BadRequest(&'static str),
    /// No location matched, or `OPTIONS *`.
    NotFound,
    /// CONNECT.
    MethodNotAllowed,
    /// Header or body timeout.
    RequestTimeout,
    /// Request line over `max_request_line_bytes`.
    UriTooLong,
    /// Header section over `max_header_bytes` or `max_headers`.
    HeadersTooLarge,
    /// `/readyz` while not ready or draining.
    NotReady,
    /// A metrics scrape the control thread did not answer in time.
    MetricsUnavailable,
    /// The upstream failed before a response could start: 502 or 504.
    Upstream(UpstreamErrorKind),
    /// A request body over `max_request_body_size`.
    RequestTooLarge,
    /// A response body over the effective limit, found before any byte was sent. `path` is
    /// the raw request path (no query).
    ResponseTooLarge { limit: u64, path: Vec<u8> },
    /// A plugin hook failed or panicked (spec §8): 500.
    PluginFailed,
}

impl ProxyError {
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::BadRequest(_) => 400,
            ProxyError::NotFound => 404,
            ProxyError::MethodNotAllowed => 405,
            ProxyError::RequestTimeout => 408,
            ProxyError::UriTooLong => 414,
            ProxyError::HeadersTooLarge => 431,
            ProxyError::NotReady | ProxyError::MetricsUnavailable => 503,
            ProxyError::Upstream(kind) => kind.status(),
            ProxyError::PluginFailed => 500,
            ProxyError::RequestTooLarge | ProxyError::ResponseTooLarge { .. } => 413,
        }
    }

    pub fn fault(&self) -> Fault {
        match self {
            ProxyError::NotReady | ProxyError::MetricsUnavailable | ProxyError::PluginFailed => {
                Fault::Internal
            }
            ProxyError::Upstream(_) | ProxyError::ResponseTooLarge { .. } => Fault::Upstream,
            _ => Fault::Client,
        }
    }

    /// Whether the connection must close after this error (every framing problem does).
    pub fn closes_connection(&self) -> bool {
        !matches!(
            self,
            ProxyError::NotFound
                | ProxyError::PluginFailed
                | ProxyError::NotReady
                | ProxyError::MetricsUnavailable
                | ProxyError::Upstream(_)
                | ProxyError::ResponseTooLarge { .. }
        )
    }

    /// The `message` of the envelope: the standard reason phrase, except for the two 413s
    /// (spec §7).
    pub fn message(&self) -> &'static str {
        match self {
            ProxyError::RequestTooLarge => "Request body too large",
            ProxyError::ResponseTooLarge { .. } => "Response body size exceeds limit",
            _ => reason_phrase(self.status()),
        }
    }

    /// The `details` object, already serialised, when there is one.
    fn details(&self) -> Option<String> {
        match self {
            ProxyError::Upstream(kind) => {
                Some(format!(r#"{{"upstream_error":"{}"}}"#, kind.as_str()))
            }
            ProxyError::ResponseTooLarge { limit, path } => {
                let mut out = format!(r#"{{"limit_bytes":{limit},"path":""#).into_bytes();
                escape_into(&mut out, percent_encode_invalid_utf8(path).as_bytes());
                out.extend_from_slice(b"\"}");
                Some(String::from_utf8_lossy(&out).into_owned())
            }
            _ => None,
        }
    }

    /// The JSON error response with `X-Request-ID` and `nosniff` (spec §4, §7).
    pub fn to_response(&self, request_id: &str) -> Response {
        let mut body = Vec::with_capacity(160);
        let details = self.details();
        write_envelope(
            &mut body,
            self.status(),
            self.message(),
            details.as_deref(),
            request_id,
            unix_seconds(),
        );
        let mut resp = Response::new(self.status())
            .header("Content-Type", "application/json")
            .header("X-Request-ID", request_id.to_owned())
            .header("X-Content-Type-Options", "nosniff")
            .body(body);
        if matches!(self, ProxyError::MethodNotAllowed) {
            resp = resp.header(
                "Allow",
                "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE",
            );
        }
        resp
    }
}

/// Writes `{"error":{"code":C,"message":"…"[,"details":{…}]},"request_id":"…","timestamp":T}`.
/// `details_json` is an already-serialised JSON object.
pub fn write_envelope(
    out: &mut Vec<u8>,
    status: u16,
    message: &str,
    details_json: Option<&str>,
    request_id: &str,
    timestamp: u64,
) {
    out.extend_from_slice(b"{\"error\":{\"code\":");
    out.extend_from_slice(status.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":\"");
    escape_into(out, message.as_bytes());
    out.push(b'"');
    if let Some(d) = details_json {
        out.extend_from_slice(b",\"details\":");
        out.extend_from_slice(d.as_bytes());
    }
    out.extend_from_slice(b"},\"request_id\":\"");
    escape_into(out, request_id.as_bytes());
    out.extend_from_slice(b"\",\"timestamp\":");
    out.extend_from_slice(timestamp.to_string().as_bytes());
    out.push(b'}');
}

/// The path as text: valid UTF-8 kept, each byte of an invalid sequence as `%XX` (spec §6).
fn percent_encode_invalid_utf8(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for chunk in path.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape() {
        let mut out = Vec::new();
        write_envelope(&mut out, 404, "Not Found", None, "abc", 17);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"error":{"code":404,"message":"Not Found"},"request_id":"abc","timestamp":17}"#
        );
        out.clear();
        write_envelope(&mut out, 413, "x", Some(r#"{"limit_bytes":5}"#), "r\"q", 1);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"error":{"code":413,"message":"x","details":{"limit_bytes":5}},"request_id":"r\"q","timestamp":1}"#
        );
    }

    #[test]
    fn response_too_large_details_escape_the_path() {
        let e = ProxyError::ResponseTooLarge {
            limit: 90,
            path: b"/a\"b\\c\xff\x01\xc3\xa9".to_vec(),
        };
        let body = String::from_utf8(e.to_response("id").body).unwrap_or_default();
        assert!(
            body.contains(r#""message":"Response body size exceeds limit","details":{"limit_bytes":90,"path":"/a\"b\\c%FF\u0001é"}}"#),
            "{body}"
        );
    }

    #[test]
    fn all_kinds_are_listed_in_discriminant_order() {
        for (i, kind) in UpstreamErrorKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{}", kind.as_str());
        }
        let tls: Vec<_> = UpstreamErrorKind::ALL
            .iter()
            .map(|k| k.as_str())
            .filter(|s| s.starts_with("tls_"))
            .collect();
        assert_eq!(
            tls,
            [
                "tls_unknown_ca",
                "tls_expired",
                "tls_name_mismatch",
                "tls_client_cert_required",
                "tls_other"
            ]
        );
        assert_eq!(
            ProxyError::Upstream(UpstreamErrorKind::TlsOther).status(),
            502
        );
    }

    #[test]
    fn statuses_in_one_place() {
        assert_eq!(ProxyError::BadRequest("x").status(), 400);
        assert_eq!(ProxyError::UriTooLong.status(), 414);
        assert_eq!(ProxyError::HeadersTooLarge.status(), 431);
        assert!(ProxyError::BadRequest("x").closes_connection());
        assert!(!ProxyError::NotFound.closes_connection());
    }
}
