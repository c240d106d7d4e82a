//! Go duration strings (`90s`, `500ms`, `1m30s`, `1.5h`), as Go's `time.ParseDuration` reads
//! them, minus negative values.
//!
//! Grammar: an optional `+`, then one or more `NUMBER UNIT` pairs, where NUMBER is decimal
//! digits with an optional fraction (`1.5`, `.5`, `5.`) and UNIT is `ns`, `us`, `µs` (or `μs`),
//! `ms`, `s`, `m` or `h`. The special value `0` (optionally signed) needs no unit. The total
//! must fit Go's limit (i64 nanoseconds, about 292 years). Pure function; no YAML here.

use std::time::Duration;

/// Go's maximum duration: `i64::MAX` nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Digits of a fraction beyond this cannot change the result by a nanosecond.
const MAX_FRACTION_DIGITS: usize = 20;

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration string. The error is a one-line message that quotes the input.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let shown = super::raw::quote(text);
    if text.is_empty() {
        return Err("empty duration; write it with a unit such as \"30s\"".to_string());
    }
    if text.starts_with('-') {
        return Err(format!("negative duration {shown} is not allowed"));
    }
    let body = text.strip_prefix('+').unwrap_or(text);
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(format!("invalid duration {shown}"));
    }
    let mut rest = body;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (whole, fraction, after_number) = split_number(rest);
        if whole.is_empty() && fraction.is_none_or(str::is_empty) {
            return Err(format!("invalid duration {shown}"));
        }
        let unit_len = after_number
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_number.len());
        let unit = &after_number[..unit_len];
        if unit.is_empty() {
            if rest == body && after_number.is_empty() {
                return Err(format!(
                    "missing unit in duration {shown}; write it with a unit such as \"{body}s\""
                ));
            }
            return Err(format!("missing unit in duration {shown}"));
        }
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!(
                "unknown unit {} in duration {shown} (use ns, us, ms, s, m or h)",
                super::raw::quote(unit)
            ));
        };
        let part = component_nanos(whole, fraction.unwrap_or(""), scale)
            .ok_or_else(|| format!("duration {shown} is too large"))?;
        total = total.saturating_add(part);
        if total > MAX_NANOS {
            return Err(format!("duration {shown} is too large"));
        }
        rest = &after_number[unit_len..];
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| format!("duration {shown} is too large"))?;
    // The remainder is below 1e9, so it fits a u32.
    let nanos = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

/// Splits `12.5ms…` into (`12`, Some(`5`), `ms…`); the fraction is `None` without a dot.
fn split_number(s: &str) -> (&str, Option<&str>, &str) {
    let whole_len = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (whole, rest) = s.split_at(whole_len);
    match rest.strip_prefix('.') {
        Some(after_dot) => {
            let frac_len = after_dot
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_dot.len());
            let (fraction, rest) = after_dot.split_at(frac_len);
            (whole, Some(fraction), rest)
        }
        None => (whole, None, rest),
    }
}

/// `whole.fraction × scale` in nanoseconds (fraction truncated), or `None` on overflow.
fn component_nanos(whole: &str, fraction: &str, scale: u128) -> Option<u128> {
    let mut value: u128 = 0;
    for digit in whole.bytes() {
        value = value
            .checked_mul(10)?
            .checked_add(u128::from(digit - b'0'))?;
        if value > MAX_NANOS {
            return None;
        }
    }
    let mut nanos = value.checked_mul(scale)?;
    let mut numerator: u128 = 0;
    let mut denominator: u128 = 1;
    for digit in fraction.bytes().take(MAX_FRACTION_DIGITS) {
        numerator = numerator * 10 + u128::from(digit - b'0');
        denominator *= 10;
    }
    nanos = nanos.checked_add(numerator * scale / denominator)?;
    Some(nanos)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_go_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        parse_go_duration(s).expect_err(s)
    }

    #[test]
    fn good_durations() {
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("+0"), Duration::ZERO);
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("5.s"), Duration::from_secs(5));
        assert_eq!(ok("+2s"), Duration::from_secs(2));
        assert_eq!(ok("10ns"), Duration::from_nanos(10));
        assert_eq!(ok("7us"), Duration::from_micros(7));
        assert_eq!(ok("7µs"), Duration::from_micros(7));
        assert_eq!(ok("7μs"), Duration::from_micros(7));
        assert_eq!(ok("1h2m3s4ms5us6ns"), Duration::new(3723, 4_005_006));
        assert_eq!(ok("1.000000001s"), Duration::new(1, 1));
        assert_eq!(ok("0.1234567891234s"), Duration::new(0, 123_456_789));
        assert_eq!(ok("2562047h"), Duration::from_secs(2_562_047 * 3600));
    }

    #[test]
    fn bad_durations() {
        assert!(err("").contains("empty duration"));
        assert!(err("-5s").contains("negative"));
        assert!(err("-0").contains("negative"));
        assert_eq!(
            err("30"),
            "missing unit in duration \"30\"; write it with a unit such as \"30s\""
        );
        assert!(err("1h30").contains("missing unit"));
        assert!(err("5d").contains("unknown unit \"d\""));
        assert!(err("5 s").contains("unknown unit \" s\""));
        assert!(err("s").contains("invalid duration"));
        assert!(err(".s").contains("invalid duration"));
        assert!(err("+").contains("invalid duration"));
        assert!(err("abc").contains("invalid duration"));
        assert_eq!(err("1.2.3s"), "missing unit in duration \"1.2.3s\"");
        assert!(err("2562048h").contains("too large"));
        assert!(err("99999999999999999999999999999s").contains("too large"));
    }
}
