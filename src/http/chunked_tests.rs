//! Unit tests for the chunked decoder: data, extensions, trailers, every malformed form.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// Decodes `input` fed in pieces of `step` bytes; returns (body, trailers) or the error.
fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), ChunkError> {
    let mut d = ChunkedDecoder::new(64);
    let mut body = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut fed = 0;
    while !d.is_done() {
        if fed < input.len() {
            let end = (fed + step).min(input.len());
            pending.extend_from_slice(&input[fed..end]);
            fed = end;
        } else if pending.is_empty() {
            break;
        }
        loop {
            let s = d.decode(&pending, 5)?;
            if let Some(r) = s.data.clone() {
                body.extend_from_slice(&pending[r]);
            }
            pending.drain(..s.consumed);
            if s.consumed == 0 || d.is_done() {
                break;
            }
        }
        if fed >= input.len() && !d.is_done() && pending.is_empty() {
            break;
        }
    }
    assert!(d.is_done(), "decoder not done");
    Ok((body, d.trailers().to_vec()))
}

#[test]
fn decodes_in_any_split() {
    let input = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
    for step in 1..input.len() {
        let (body, trailers) = decode_all(input, step).unwrap();
        assert_eq!(body, b"hello world");
        assert!(trailers.is_empty());
    }
}

#[test]
fn extensions_may_have_whitespace_around_semicolon_and_equals() {
    // RFC 9112 §7.1.1: BWS before `;`, after it, and around `=`.
    for line in [
        &b"5 ;a=b"[..],
        b"5\t;a=b",
        b"5 \t ;a=b",
        b"5; a=b",
        b"5 ; a = b",
        b"5;a=\"q s\"",
        b"5 ;a;b=c",
    ] {
        let mut input = line.to_vec();
        input.extend_from_slice(b"\r\nhello\r\n0 ;last\r\n\r\n");
        for step in 1..input.len() {
            let (body, _) = decode_all(&input, step)
                .unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(line)));
            assert_eq!(body, b"hello");
        }
    }
}

#[test]
fn a_trailer_limit_at_the_maximum_does_not_overflow() {
    let mut d = ChunkedDecoder::new(usize::MAX);
    let s = d.decode(b"0\r\nX: 1\r\n\r\n", 100).unwrap();
    assert!(d.is_done());
    assert_eq!(s.consumed, 11);
}

#[test]
fn keeps_trailers() {
    let input = b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n";
    let (body, trailers) = decode_all(input, 3).unwrap();
    assert_eq!(body, b"abc");
    assert_eq!(trailers, b"X-Sum: 1\r\nY: 2\r\n");
}

#[test]
fn drops_trailer_fields_a_trailer_may_not_carry() {
    let input = b"3\r\nabc\r\n0\r\nContent-Length: 9\r\nX-Sum: 1\r\nHost: e\r\nTE: x\r\n\r\n";
    for step in [1, 4, input.len()] {
        let (body, trailers) = decode_all(input, step).unwrap();
        assert_eq!(body, b"abc");
        assert_eq!(trailers, b"X-Sum: 1\r\n");
    }
}

#[test]
fn stops_at_the_end_of_the_body() {
    let mut d = ChunkedDecoder::new(64);
    let input = b"0\r\n\r\nGET / HTTP/1.1\r\n";
    let s = d.decode(input, 100).unwrap();
    assert_eq!(s.consumed, 5);
    assert!(d.is_done());
}

#[test]
fn rejects_malformed() {
    for bad in [
        &b"x\r\n"[..],
        b"\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n",
        b"5\t\r\nhello\r\n",
        b"5 x;a=b\r\nhello\r\n",
        b"5 6\r\nhello\r\n",
        b" 5\r\nhello\r\n",
        b"5 ;a\nhello\r\n",
        b"5 \n",
        b"-5\r\n",
        b"5\r\nhelloX\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"11111111111111111\r\n",
        b"0\r\nbad trailer\r\n\r\n",
        b"0\r\nX: 1\n\r\n",
        b"1;a\nb\r\n",
    ] {
        let mut d = ChunkedDecoder::new(64);
        let mut input = bad.to_vec();
        let mut failed = false;
        for _ in 0..10 {
            match d.decode(&input, 100) {
                Err(_) => {
                    failed = true;
                    break;
                }
                Ok(s) if s.consumed == 0 => break,
                Ok(s) => {
                    input.drain(..s.consumed);
                }
            }
        }
        assert!(failed, "accepted {:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn trailer_section_is_bounded() {
    let mut d = ChunkedDecoder::new(8);
    let r = d.decode(b"0\r\nX-Long: aaaaaaaaaaaaaaaa\r\n\r\n", 100);
    assert_eq!(r, Err(ChunkError::TrailerTooLarge));
}
