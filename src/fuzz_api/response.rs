//! Upstream response heads: `parse_response_head` never panics, a prefix of an accepted head
//! asks for more, the framing follows RFC 9112 §6.3, and a head written back out from what was
//! parsed parses to the same facts.

use crate::http::response_head::{parse_response_head, ResponseFraming, ResponseHead};

/// What a parsed response head tells the forwarder, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFacts {
    pub status: u16,
    pub http11: bool,
    pub reason: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub framing: ResponseFraming,
    pub keep_alive: bool,
}

impl ResponseFacts {
    pub fn of(h: &ResponseHead) -> ResponseFacts {
        ResponseFacts {
            status: h.status,
            http11: h.http11,
            reason: h.reason().to_vec(),
            headers: h.headers().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
            framing: h.framing,
            keep_alive: h.keep_alive,
        }
    }

    /// The head written back out as an upstream would send it.
    pub fn serialize(&self) -> Vec<u8> {
        let minor = if self.http11 { 1 } else { 0 };
        let mut out = format!("HTTP/1.{minor} {:03} ", self.status).into_bytes();
        out.extend_from_slice(&self.reason);
        out.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            out.extend_from_slice(n);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

type Parsed = Result<Option<(ResponseFacts, usize)>, &'static str>;

fn parse(buf: &[u8], head_request: bool) -> Parsed {
    parse_response_head(buf, head_request)
        .map(|o| o.map(|(h, n)| (ResponseFacts::of(&h), n)))
        .map_err(|e| e.0)
}

/// The whole property, for `buf` and its first `split` bytes.
pub fn check_response(buf: &[u8], head_request: bool, split: usize) {
    let whole = parse(buf, head_request);
    let k = split % (buf.len() + 1);
    let part = parse(&buf[..k], head_request);
    match (&whole, &part) {
        (Ok(Some((_, n))), Ok(None)) => assert!(k < *n, "complete at {n}, wanted more at {k}"),
        (Ok(Some(w)), Ok(Some(p))) => assert_eq!(w, p, "a prefix parsed differently"),
        (Ok(Some(w)), Err(e)) => panic!("prefix of {k} bytes refused ({e}), whole gave {w:?}"),
        _ => {}
    }
    let Ok(Some((facts, n))) = whole else {
        return;
    };
    assert!(n <= buf.len());
    check_framing(&facts, head_request);
    // Written back out, the head parses to the same facts.
    let again = facts.serialize();
    match parse(&again, head_request) {
        Ok(Some((f, m))) => {
            assert_eq!(m, again.len());
            assert_eq!(f, facts, "re-serialised head parsed differently");
        }
        other => panic!("re-serialised head {again:?} gave {other:?}"),
    }
}

fn check_framing(f: &ResponseFacts, head_request: bool) {
    let bodiless = head_request || f.status < 200 || f.status == 204 || f.status == 304;
    if bodiless {
        assert_eq!(f.framing, ResponseFraming::None);
    }
    if f.framing == ResponseFraming::Close {
        assert!(!f.keep_alive);
    }
    let te = f
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"transfer-encoding"));
    let cl = f
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(b"content-length"));
    assert!(
        !(te && cl),
        "both Content-Length and Transfer-Encoding accepted"
    );
    if !bodiless && te {
        assert_eq!(f.framing, ResponseFraming::Chunked);
    }
    if !bodiless && !te && !cl {
        assert_eq!(f.framing, ResponseFraming::Close);
    }
    assert!((100..=999).contains(&f.status));
}

/// Fuzz entry: byte 0 = HEAD request (low bit), bytes 1–2 = split; the rest is the head.
pub fn fuzz_one(data: &[u8]) {
    let [flags, s0, s1, rest @ ..] = data else {
        return;
    };
    let split = usize::from(u16::from_le_bytes([*s0, *s1]));
    check_response(rest, flags & 1 == 1, split);
}
