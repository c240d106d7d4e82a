//! The chunked decoder, fed a body in arbitrary reads with an arbitrary data budget per step,
//! must agree with a small whole-buffer reference decoder written from RFC 9112 §7.1 and the
//! policy of `http::chunked` (whitespace only before `;`; extensions: any bytes but CTLs up to
//! CR, dropped; trailer lines: valid fields, at most 64, bounded in bytes, those a trailer may
//! not carry dropped): same data, same end, same trailers, and an error exactly when the
//! reference finds one.

use crate::http::chunked::ChunkedDecoder;
use crate::http::trailers::forbidden_in_trailer;

/// How a body ends, as either decoder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The last chunk and the trailer section ended after `consumed` bytes.
    Done { consumed: usize, trailers: Vec<u8> },
    /// Every byte was valid so far; more are needed.
    Incomplete,
    /// The body is malformed.
    Invalid,
}

/// The body data seen, then how the body ended.
pub type Decoded = (Vec<u8>, Outcome);

/// Most hex digits in a chunk size (as `http::chunked` allows: 16 fit a u64).
const MAX_SIZE_DIGITS: usize = 16;

/// Most trailer fields `http::chunked` accepts (its validation has 64 header slots; found by
/// this target: 82 short fields within the byte limit were refused).
const MAX_TRAILER_FIELDS: usize = 64;

/// The reference: one pass over the whole input, no state machine.
pub fn reference_decode(input: &[u8], max_trailer_bytes: usize) -> Decoded {
    let mut data = Vec::new();
    let mut pos = 0;
    loop {
        let digits = input[pos..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if digits > MAX_SIZE_DIGITS {
            return (data, Outcome::Invalid);
        }
        let after = pos + digits;
        if after == input.len() {
            return (data, Outcome::Incomplete);
        }
        if digits == 0 {
            return (data, Outcome::Invalid);
        }
        let text = std::str::from_utf8(&input[pos..after]).unwrap_or_default();
        let size = u64::from_str_radix(text, 16).unwrap_or(u64::MAX);
        // The size line: optional whitespace (BWS) only before a `;extension` (CTLs but HTAB
        // refused) up to CRLF.
        let mut p = after;
        while matches!(input.get(p), Some(b' ' | b'\t')) {
            p += 1;
        }
        match input.get(p) {
            None => return (data, Outcome::Incomplete),
            Some(b'\r') if p == after => {}
            Some(b';') => loop {
                p += 1;
                match input.get(p) {
                    None => return (data, Outcome::Incomplete),
                    Some(b'\r') => break,
                    Some(&b) if (b < 0x20 && b != b'\t') || b == 0x7f => {
                        return (data, Outcome::Invalid)
                    }
                    Some(_) => {}
                }
            },
            _ => return (data, Outcome::Invalid),
        }
        match input.get(p + 1) {
            None => return (data, Outcome::Incomplete),
            Some(b'\n') => pos = p + 2,
            Some(_) => return (data, Outcome::Invalid),
        }
        if size == 0 {
            return trailer_section(input, pos, max_trailer_bytes, data);
        }
        let available = (input.len() - pos) as u64;
        if available < size {
            data.extend_from_slice(&input[pos..]);
            return (data, Outcome::Incomplete);
        }
        let end = pos + size as usize;
        data.extend_from_slice(&input[pos..end]);
        for (i, want) in [b'\r', b'\n'].into_iter().enumerate() {
            match input.get(end + i) {
                None => return (data, Outcome::Incomplete),
                Some(&b) if b != want => return (data, Outcome::Invalid),
                Some(_) => {}
            }
        }
        pos = end + 2;
    }
}

/// The trailer section from `start`: CRLF-terminated field lines, then an empty line; at most
/// `max` bytes of fields (the whole section, CRLFs included, without the final empty line),
/// at most [`MAX_TRAILER_FIELDS`] of them.
fn trailer_section(input: &[u8], start: usize, max: usize, data: Vec<u8>) -> Decoded {
    let rest = &input[start..];
    let mut line_start = 0;
    for (i, &b) in rest.iter().enumerate() {
        if i + 1 > max + 2 {
            return (data, Outcome::Invalid);
        }
        if b != b'\n' {
            continue;
        }
        if i == 0 || rest[i - 1] != b'\r' {
            return (data, Outcome::Invalid);
        }
        if i + 1 - line_start == 2 {
            let section = &rest[..line_start];
            let mut lines = section.split(|&b| b == b'\n').filter(|l| !l.is_empty());
            let fields = lines.clone().count();
            if fields > MAX_TRAILER_FIELDS
                || !lines.all(|l| is_field_line(l.strip_suffix(b"\r").unwrap_or(l)))
            {
                return (data, Outcome::Invalid);
            }
            // Fields a trailer may not carry are dropped (the policy's list is
            // `http::trailers`'s; the line handling here is the reference's own).
            let trailers = section
                .split_inclusive(|&b| b == b'\n')
                .filter(|line| {
                    let name = line.split(|&b| b == b':').next().unwrap_or(line);
                    !forbidden_in_trailer(name.trim_ascii())
                })
                .flatten()
                .copied()
                .collect();
            return (
                data,
                Outcome::Done {
                    consumed: start + i + 1,
                    trailers,
                },
            );
        }
        line_start = i + 1;
    }
    (data, Outcome::Incomplete)
}

/// `token ":" OWS *(VCHAR / obs-text / SP / HTAB)` (RFC 9110 §5).
fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    !name.is_empty()
        && name.iter().all(tchar)
        && value
            .iter()
            .all(|&b| b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80)
}

/// Feeds `input` to a [`ChunkedDecoder`] in reads of the given `sizes` (cycled; 0 = one
/// byte), at most `max_data` body bytes per step, as the body readers do: unconsumed bytes
/// stay in the buffer and the next read is appended to them.
pub fn decode_in_reads(
    input: &[u8],
    sizes: &[usize],
    max_data: usize,
    max_trailer_bytes: usize,
) -> Decoded {
    let mut decoder = ChunkedDecoder::new(max_trailer_bytes);
    let max_data = max_data.max(1);
    let mut data = Vec::new();
    let mut buffered = 0; // input[start..buffered] has arrived and is not consumed
    let mut start = 0;
    let mut read = 0;
    loop {
        // Decode what has arrived until the decoder needs more.
        loop {
            match decoder.decode(&input[start..buffered], max_data) {
                Err(_) => return (data, Outcome::Invalid),
                Ok(step) => {
                    assert!(step.consumed <= buffered - start, "consumed past the input");
                    if let Some(r) = step.data {
                        assert!(r.end <= step.consumed && !r.is_empty() && r.len() <= max_data);
                        data.extend_from_slice(&input[start + r.start..start + r.end]);
                    }
                    start += step.consumed;
                    if decoder.is_done() {
                        let trailers = decoder.trailers().to_vec();
                        return (
                            data,
                            Outcome::Done {
                                consumed: start,
                                trailers,
                            },
                        );
                    }
                    if step.consumed == 0 {
                        break;
                    }
                }
            }
        }
        if buffered == input.len() {
            return (data, Outcome::Incomplete);
        }
        let size = sizes.get(read % sizes.len().max(1)).copied().unwrap_or(1);
        buffered = (buffered + size.max(1)).min(input.len());
        read += 1;
    }
}

/// The property: in any reads, the decoder agrees with the reference.
pub fn check_chunked(input: &[u8], sizes: &[usize], max_data: usize, max_trailer_bytes: usize) {
    let expected = reference_decode(input, max_trailer_bytes);
    let got = decode_in_reads(input, sizes, max_data, max_trailer_bytes);
    assert_eq!(
        got,
        expected,
        "decoder (left) and reference (right) differ on {:?} in reads {sizes:?}, max_data \
         {max_data}, max_trailer_bytes {max_trailer_bytes}",
        String::from_utf8_lossy(input)
    );
}

/// Fuzz entry: byte 0 = number of read sizes n (mod 8), then n sizes, then max_data, then the
/// trailer limit selector; the rest is the body.
pub fn fuzz_one(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8);
    if rest.len() < n + 2 {
        return;
    }
    let (sizes, rest) = rest.split_at(n);
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s)).collect();
    let max_data = usize::from(rest[0]).max(1);
    let max_trailer = [0, 1, 16, 64, 65_536][usize::from(rest[1]) % 5];
    check_chunked(&rest[2..], &sizes, max_data, max_trailer);
}
