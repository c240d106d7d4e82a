//! The access line written straight into bytes, without a `tracing` event (spec §11).
//!
//! One access line per request is the hottest log line by far: going through `tracing`'s
//! field visitor and `fmt` machinery cost about a tenth of a small request's CPU. This writes
//! the same line (byte for byte, timestamp aside; a unit test compares the two) with plain
//! byte appends, digits without `fmt`, and the timestamp's date and time reused within a
//! second. The line then goes to the worker's queue like every other line.

use std::borrow::Cow;
use std::cell::RefCell;
use std::net::IpAddr;

use super::access::AccessRecord;
use super::log::format::{needs_quotes, Style};
use crate::config::LogFormat;
use crate::json::escape_into;
use crate::relay::headers::format_u64;

/// The text of the access line's message.
pub const MESSAGE: &str = "HTTP request processed";

/// Appends the access line of `rec`, logged at `micros` since the epoch, ending in `\n`.
/// `style.ansi` is not supported here (the caller uses `tracing` on a terminal).
pub fn write_access_line(out: &mut Vec<u8>, style: Style, micros: u64, rec: &AccessRecord<'_>) {
    let json = style.format == LogFormat::Json;
    if json {
        out.extend_from_slice(b"{\"timestamp\":\"");
        write_timestamp(out, micros);
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"");
        out.extend_from_slice(MESSAGE.as_bytes());
        out.push(b'"');
    } else {
        write_timestamp(out, micros);
        out.extend_from_slice(b"  INFO ");
        out.extend_from_slice(MESSAGE.as_bytes());
    }
    let mut f = Fields { out, json };
    f.ip("client_ip", rec.client_ip);
    f.string("method", rec.method);
    f.string("url", rec.url);
    f.string("protocol", rec.protocol.as_bytes());
    f.key("status_code");
    push_u64(f.out, u64::from(rec.status_code));
    f.string("referer", rec.referer.unwrap_or_default());
    f.string("user_agent", rec.user_agent.unwrap_or_default());
    f.key("duration_seconds");
    push_seconds(f.out, rec.duration.as_nanos());
    f.string("request_id", rec.request_id.as_bytes());
    f.string("upstream", rec.upstream.unwrap_or_default().as_bytes());
    f.key("bytes_sent");
    push_u64(f.out, rec.bytes_sent);
    f.key("aborted");
    f.out
        .extend_from_slice(if rec.aborted { b"true" } else { b"false" });
    if json {
        out.push(b'}');
    }
    out.push(b'\n');
}

struct Fields<'a> {
    out: &'a mut Vec<u8>,
    json: bool,
}

impl Fields<'_> {
    fn key(&mut self, name: &str) {
        if self.json {
            self.out.extend_from_slice(b",\"");
            self.out.extend_from_slice(name.as_bytes());
            self.out.extend_from_slice(b"\":");
        } else {
            self.out.push(b' ');
            self.out.extend_from_slice(name.as_bytes());
            self.out.push(b'=');
        }
    }

    /// A string field: bytes that are not UTF-8 become U+FFFD, as `tracing`'s path does.
    fn string(&mut self, name: &str, value: &[u8]) {
        self.key(name);
        // Most values are printable ASCII that needs no escaping: copied as they are.
        let json_plain = value
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
        if json_plain && self.json {
            self.out.push(b'"');
            self.out.extend_from_slice(value);
            self.out.push(b'"');
            return;
        }
        if json_plain && !needs_quotes(value) {
            self.out.extend_from_slice(value);
            return;
        }
        let value: Cow<'_, str> = String::from_utf8_lossy(value);
        let v = value.as_bytes();
        if self.json || needs_quotes(v) {
            self.out.push(b'"');
            escape_into(self.out, v);
            self.out.push(b'"');
        } else {
            self.out.extend_from_slice(v);
        }
    }

    fn ip(&mut self, name: &str, ip: IpAddr) {
        self.key(name);
        if self.json {
            self.out.push(b'"');
        }
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(b'.');
                    }
                    push_u64(self.out, u64::from(octet));
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write as _;
                let _ = write!(self.out, "{v6}");
            }
        }
        if self.json {
            self.out.push(b'"');
        }
    }
}

/// Decimal digits of `n`.
fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(format_u64(n, &mut [0; 20]));
}

/// Seconds with up to nine decimals and no trailing zeros (`0.0015`, `2`, `0`): the same
/// digits `f64`'s shortest form gives for a duration's seconds.
fn push_seconds(out: &mut Vec<u8>, nanos: u128) {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let mut frac = (nanos % 1_000_000_000) as u32;
    push_u64(out, secs);
    if frac == 0 {
        return;
    }
    let mut digits = 9;
    while frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    out.push(b'.');
    let mut buf = [b'0'; 9];
    let mut i = digits;
    while frac > 0 {
        i -= 1;
        buf[i] = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    out.extend_from_slice(&buf[..digits]);
}

thread_local! {
    /// The last second formatted on this thread and its `YYYY-MM-DDTHH:MM:SS.` prefix.
    static SECOND: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the date and time reused within one second.
fn write_timestamp(out: &mut Vec<u8>, micros: u64) {
    let secs = micros / 1_000_000;
    let cached = SECOND.try_with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else {
            return false;
        };
        if c.0 != secs {
            c.1.clear();
            super::log::format::write_rfc3339(&mut c.1, secs * 1_000_000);
            // Keep `...SS.`: drop the `000000Z` the full form ends with.
            let keep = c.1.len().saturating_sub(7);
            c.1.truncate(keep);
            c.0 = secs;
        }
        out.extend_from_slice(&c.1);
        true
    });
    if cached != Ok(true) {
        super::log::format::write_rfc3339(out, micros);
        return;
    }
    let frac = micros % 1_000_000;
    let mut buf = [b'0'; 6];
    let mut n = frac;
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(nanos: u128) -> String {
        let mut out = Vec::new();
        push_seconds(&mut out, nanos);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn seconds_match_the_float_form() {
        for nanos in [
            0u128,
            1,
            1_500_000,
            3_147_680,
            1_000_000_000,
            2_000_000_001,
            123_456_789,
        ] {
            let float = (nanos as f64 / 1e9).to_string();
            assert_eq!(seconds(nanos), float, "{nanos} ns");
        }
    }

    #[test]
    fn timestamps_match_the_full_form_across_seconds() {
        for micros in [
            0u64,
            1_764_337_936_278_064,
            1_764_337_936_999_999,
            1_764_337_937_000_001,
        ] {
            let (mut fast, mut full) = (Vec::new(), Vec::new());
            write_timestamp(&mut fast, micros);
            super::super::log::format::write_rfc3339(&mut full, micros);
            assert_eq!(fast, full);
        }
    }
}
