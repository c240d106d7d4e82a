//! The upstream request as HTTP/2 fields: the HTTP/1.1 head Dito would send (built by
//! [`write_request_head`](crate::upstream::request_head::write_request_head), so both versions
//! follow spec §3 with one implementation) re-read into `:method`, `:scheme`, `:authority`
//! (the `Host` Dito chose), `:path` and the other fields. Fields HTTP/2 forbids are left out:
//! Dito's own `Transfer-Encoding: chunked` (DATA frames carry the body), its `Connection: TE`
//! (HTTP/2 has no `Connection`; `te: trailers` stands alone, RFC 9113 §8.2.2) and `Expect`
//! (the h2 client cannot show a 100, so Dito answers the client's `100-continue` itself).

use std::mem::MaybeUninit;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri};

/// Field slots kept on the stack; a head with more lines (a client near the `max_headers`
/// ceiling, plus Dito's own fields and `additional_headers`) gets slots on the heap.
const STACK_FIELDS: usize = 512;

/// Why a head could not become an HTTP/2 request (logged; the client gets 502).
#[derive(Debug)]
pub struct Untranslatable(pub &'static str);

/// The HTTP/2 request for the HTTP/1.1 head `head`, to a target with `scheme`.
pub fn from_http1_head(head: &[u8], scheme: &str) -> Result<Request<()>, Untranslatable> {
    // Every field is one line of the head Dito wrote, so there are fewer fields than lines.
    let lines = memchr::memchr_iter(b'\n', head).count();
    if lines <= STACK_FIELDS {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_FIELDS];
        translate(head, scheme, &mut slots)
    } else {
        let mut slots = Vec::new();
        slots.resize_with(lines, MaybeUninit::<httparse::Header<'_>>::uninit);
        translate(head, scheme, &mut slots)
    }
}

fn translate<'h>(
    head: &'h [u8],
    scheme: &str,
    slots: &mut [MaybeUninit<httparse::Header<'h>>],
) -> Result<Request<()>, Untranslatable> {
    let mut req = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut req, head, slots)
    {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(Untranslatable("request head")),
    }
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| Untranslatable("method"))?;
    let target = req.path.unwrap_or("/");
    let host = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| h.value)
        .ok_or(Untranslatable("host"))?;
    let host = std::str::from_utf8(host).map_err(|_| Untranslatable("host"))?;
    let uri = Uri::builder()
        .scheme(scheme)
        .authority(host)
        .path_and_query(target)
        .build()
        .map_err(|_| Untranslatable("authority or path"))?;
    let mut fields = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let forbidden = ["host", "transfer-encoding", "expect", "connection"]
            .iter()
            .any(|f| h.name.eq_ignore_ascii_case(f));
        if forbidden {
            continue;
        }
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| Untranslatable("field name"))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| Untranslatable("field value"))?;
        fields.append(name, value);
    }
    let mut out = Request::new(());
    *out.method_mut() = method;
    *out.uri_mut() = uri;
    *out.headers_mut() = fields;
    Ok(out)
}

/// The raw trailer lines of a chunked request body (`Name: value\r\n`…) as HTTP/2 fields;
/// lines that are not valid fields are skipped (the chunked decoder validated them already).
pub fn trailers(raw: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn head_becomes_pseudo_headers_and_fields() {
        let head = b"POST /a/b?c=1 HTTP/1.1\r\nHost: up.example:8443\r\nX-One: 1\r\nx-one: 2\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nTE: trailers\r\nConnection: TE\r\n\r\n";
        let r = from_http1_head(head, "https").unwrap();
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.uri().to_string(), "https://up.example:8443/a/b?c=1");
        let ones: Vec<_> = r.headers().get_all("x-one").iter().collect();
        assert_eq!(ones, ["1", "2"]);
        assert!(r.headers().get("transfer-encoding").is_none());
        assert!(r.headers().get("expect").is_none());
        assert!(r.headers().get("host").is_none());
        assert!(r.headers().get("connection").is_none());
        assert_eq!(r.headers().get("te").unwrap(), "trailers");
    }

    #[test]
    fn a_head_with_more_fields_than_stack_slots_is_translated() {
        let mut head = b"GET / HTTP/1.1\r\nHost: up\r\n".to_vec();
        for i in 0..1100 {
            head.extend_from_slice(format!("X-F{i}: {i}\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let r = from_http1_head(&head, "http").unwrap();
        assert_eq!(r.headers().len(), 1100);
        assert_eq!(r.headers().get("x-f1099").unwrap(), "1099");
    }

    #[test]
    fn a_head_without_host_is_refused() {
        assert!(from_http1_head(b"GET / HTTP/1.1\r\nA: b\r\n\r\n", "http").is_err());
    }

    #[test]
    fn trailer_lines_become_fields() {
        let map = trailers(b"X-Sum: abc\r\nbroken\r\nX-Other:  2 \r\n");
        assert_eq!(map.get("x-sum").unwrap(), "abc");
        assert_eq!(map.get("x-other").unwrap(), "2");
        assert_eq!(map.len(), 2);
    }
}
