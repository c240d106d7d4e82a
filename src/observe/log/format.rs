//! One log event as one output line (spec §11): `text` or `json`, always ending in `\n`.
//!
//! `text`: `TIMESTAMP LEVEL message key=value ...`, the level right-aligned in five columns as
//! `tracing` prints it; a value is quoted (JSON-style escapes) only when it is empty or holds a
//! space, `"`, `=` or a control character; control characters in the message are escaped, so
//! one event is always one line. ANSI colours (dim timestamp, coloured level) only when asked.
//! `json`: one object, `{"timestamp":…,"level":…,"message":…,` then every field as a top-level
//! key: integers and floats as numbers (a non-finite float as `null`), bools as bools,
//! everything else as an escaped string. Timestamps are RFC 3339 UTC with microseconds.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level};

use crate::config::LogFormat;
use crate::json::escape_into;

/// How lines look; fixed at startup (`logging.format` needs a restart, spec §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub format: LogFormat,
    /// ANSI colours (text only): on when stdout is a terminal.
    pub ansi: bool,
}

/// Scratch buffers a scratch-less re-entrant call (a `Debug` impl that logs) does without.
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Formats `event`, logged at `micros` since the epoch, as one line ending in `\n`.
pub fn format_event(event: &Event<'_>, style: Style, micros: u64) -> Vec<u8> {
    format_event_at(event, *event.metadata().level(), style, micros)
}

/// [`format_event`] with the level the line shows given (a demoted event's, see the layer).
pub fn format_event_at(event: &Event<'_>, level: Level, style: Style, micros: u64) -> Vec<u8> {
    let with = |message: &mut Vec<u8>, fields: &mut Vec<u8>| {
        event.record(&mut Collect {
            format: style.format,
            message: &mut *message,
            fields: &mut *fields,
        });
        let line = assemble(style, level, micros, message, fields);
        message.clear();
        fields.clear();
        if message.capacity() > SCRATCH_KEEP || fields.capacity() > SCRATCH_KEEP {
            *message = Vec::new();
            *fields = Vec::new();
        }
        line
    };
    let pooled = SCRATCH.try_with(|s| {
        s.try_borrow_mut().ok().map(|mut s| {
            let (m, f) = &mut *s;
            with(m, f)
        })
    });
    match pooled {
        Ok(Some(line)) => line,
        _ => with(&mut Vec::new(), &mut Vec::new()),
    }
}

fn assemble(style: Style, level: Level, micros: u64, message: &[u8], fields: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len() + fields.len());
    match style.format {
        LogFormat::Json => {
            out.extend_from_slice(b"{\"timestamp\":\"");
            write_rfc3339(&mut out, micros);
            out.extend_from_slice(b"\",\"level\":\"");
            out.extend_from_slice(level.as_str().as_bytes());
            out.extend_from_slice(b"\",\"message\":\"");
            out.extend_from_slice(message);
            out.push(b'"');
            out.extend_from_slice(fields);
            out.extend_from_slice(b"}\n");
        }
        LogFormat::Text => {
            if style.ansi {
                out.extend_from_slice(b"\x1b[2m");
            }
            write_rfc3339(&mut out, micros);
            if style.ansi {
                out.extend_from_slice(b"\x1b[0m ");
                out.extend_from_slice(level_colour(level));
                let _ = write!(out, "{:>5}", level.as_str());
                out.extend_from_slice(b"\x1b[0m");
            } else {
                let _ = write!(out, " {:>5}", level.as_str());
            }
            if !message.is_empty() {
                out.push(b' ');
                out.extend_from_slice(message);
            }
            out.extend_from_slice(fields);
            out.push(b'\n');
        }
    }
    out
}

fn level_colour(level: Level) -> &'static [u8] {
    match level {
        Level::ERROR => b"\x1b[31m",
        Level::WARN => b"\x1b[33m",
        Level::INFO => b"\x1b[32m",
        Level::DEBUG => b"\x1b[34m",
        Level::TRACE => b"\x1b[35m",
    }
}

/// Writes `micros` since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn write_rfc3339(out: &mut Vec<u8>, micros: u64) {
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The field visitor: the message into one buffer (escaped for the format), every other
/// field into another, each with its leading separator.
struct Collect<'a> {
    format: LogFormat,
    message: &'a mut Vec<u8>,
    fields: &'a mut Vec<u8>,
}

impl Collect<'_> {
    fn key(&mut self, field: &Field) {
        match self.format {
            LogFormat::Json => {
                self.fields.extend_from_slice(b",\"");
                escape_into(self.fields, field.name().as_bytes());
                self.fields.extend_from_slice(b"\":");
            }
            LogFormat::Text => {
                self.fields.push(b' ');
                self.fields.extend_from_slice(field.name().as_bytes());
                self.fields.push(b'=');
            }
        }
    }

    /// A plain number or bool: the same text in both formats.
    fn plain(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if field.name() == "message" {
            let _ = self.message.write_fmt(value);
            return;
        }
        self.key(field);
        let _ = self.fields.write_fmt(value);
    }

    fn text(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if field.name() == "message" {
            let _ = match self.format {
                LogFormat::Json => JsonEscape(self.message).write_fmt(value),
                LogFormat::Text => ControlEscape(self.message).write_fmt(value),
            };
            return;
        }
        self.key(field);
        match self.format {
            LogFormat::Json => {
                self.fields.push(b'"');
                let _ = JsonEscape(self.fields).write_fmt(value);
                self.fields.push(b'"');
            }
            LogFormat::Text => {
                let start = self.fields.len();
                let _ = self.fields.write_fmt(value);
                if needs_quotes(&self.fields[start..]) {
                    let raw = self.fields.split_off(start);
                    self.fields.push(b'"');
                    escape_into(self.fields, &raw);
                    self.fields.push(b'"');
                }
            }
        }
    }
}

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, format_args!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, format_args!("{value}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.plain(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.plain(field, format_args!("{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.plain(field, format_args!("{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.plain(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.plain(field, format_args!("{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.plain(field, format_args!("{value}"));
        } else if self.format == LogFormat::Json && field.name() != "message" {
            self.plain(field, format_args!("null"));
        } else {
            self.plain(field, format_args!("{value}"));
        }
    }
}

/// Whether a text-format value must be quoted to stay one unambiguous `key=value` token.
pub fn needs_quotes(v: &[u8]) -> bool {
    v.is_empty()
        || v.iter()
            .any(|&b| b == b' ' || b == b'"' || b == b'=' || b < 0x20 || b == 0x7f)
}

/// A `fmt::Write` that escapes for the inside of a JSON string.
struct JsonEscape<'a>(&'a mut Vec<u8>);

impl fmt::Write for JsonEscape<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s.as_bytes());
        Ok(())
    }
}

/// A `fmt::Write` that escapes control characters only (the text-format message).
struct ControlEscape<'a>(&'a mut Vec<u8>);

impl fmt::Write for ControlEscape<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.split_inclusive(|c: char| c.is_ascii_control()) {
            match chunk.chars().last() {
                Some(c) if c.is_ascii_control() => {
                    let body = &chunk[..chunk.len() - 1];
                    self.0.extend_from_slice(body.as_bytes());
                    match c {
                        '\n' => self.0.extend_from_slice(b"\\n"),
                        '\r' => self.0.extend_from_slice(b"\\r"),
                        '\t' => self.0.extend_from_slice(b"\\t"),
                        c => {
                            let _ = write!(self.0, "\\u{:04x}", c as u32);
                        }
                    }
                }
                _ => self.0.extend_from_slice(chunk.as_bytes()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
