//! Builds a [`RequestHead`] from a request that arrived already parsed (HTTP/2 pseudo-headers
//! and fields), with the same request-target checks as HTTP/1.1, so routing, header
//! rewriting and limits see the same head whatever the client's protocol.

use super::{
    is_valid_authority, span_of, split_target, BodyFraming, HeadError, HeaderSpan, RequestHead,
    Span, Version,
};

fn push(raw: &mut Vec<u8>, part: &[u8]) -> Span {
    let start = raw.len() as u32;
    raw.extend_from_slice(part);
    start..raw.len() as u32
}

impl RequestHead {
    /// A head from parsed parts. `authority` (`:authority` in HTTP/2) becomes the Host field
    /// and the effective Host; `fields` are the regular fields in received order.
    /// `keep_alive` is true: the connection outlives the exchange.
    pub fn assemble<'f>(
        method: &[u8],
        target: &[u8],
        authority: Option<&[u8]>,
        fields: impl Iterator<Item = (&'f [u8], &'f [u8])>,
        version: Version,
        framing: BodyFraming,
    ) -> Result<RequestHead, HeadError> {
        let method_str =
            std::str::from_utf8(method).map_err(|_| HeadError::BadRequest("invalid method"))?;
        let mut raw = Vec::with_capacity(256);
        let method_span = push(&mut raw, method);
        let target_span = push(&mut raw, target);
        let mut headers = Vec::new();
        let mut host: Option<Span> = None;
        if let Some(a) = authority {
            if !is_valid_authority(a) {
                return Err(HeadError::BadRequest("invalid :authority"));
            }
            let name = push(&mut raw, b"host");
            let value = push(&mut raw, a);
            host = Some(value.clone());
            headers.push(HeaderSpan { name, value });
        }
        for (n, v) in fields {
            if n.eq_ignore_ascii_case(b"host") {
                if let Some(a) = authority {
                    if v != a {
                        return Err(HeadError::BadRequest("Host differs from :authority"));
                    }
                    continue;
                }
                if host.is_some() {
                    return Err(HeadError::BadRequest("duplicate Host header"));
                }
                if !is_valid_authority(v) {
                    return Err(HeadError::BadRequest("invalid Host header"));
                }
                let name = push(&mut raw, n);
                let value = push(&mut raw, v);
                host = Some(value.clone());
                headers.push(HeaderSpan { name, value });
                continue;
            }
            let name = push(&mut raw, n);
            let value = push(&mut raw, v);
            headers.push(HeaderSpan { name, value });
        }
        if raw.len() > u32::MAX as usize / 2 {
            return Err(HeadError::HeadersTooLarge);
        }
        if host.is_none() && method != b"CONNECT" {
            return Err(HeadError::BadRequest("missing :authority and Host"));
        }
        let t = &raw[target_span.start as usize..target_span.end as usize];
        let (form, path, query, _) = split_target(method_str, t)?;
        let (path, query) = (
            span_of(&raw, path)?,
            query.map(|q| span_of(&raw, q)).transpose()?,
        );
        Ok(RequestHead {
            method: method_span,
            target: target_span,
            path,
            query,
            host,
            headers,
            version,
            form,
            framing,
            expect_continue: false,
            keep_alive: true,
            raw,
        })
    }
}
