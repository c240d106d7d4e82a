//! The upstream request head, built in exactly the order of spec §3 "Upstream headers".
//!
//! 1. hop-by-hop fields and every field `Connection` names are removed (`TE: trailers` kept,
//!    named in Dito's own `Connection: TE`; an upgrade gets `Connection: upgrade` and
//!    `Upgrade: websocket`, both tokens in one field when both apply);
//! 2. `X-Forwarded-For` (client chain, then the client IP), `X-Forwarded-Host`,
//!    `X-Forwarded-Proto`;
//! 3. `Host` := the target's host (and port when the target URL writes one);
//! 4. `excluded_headers` removed, then `additional_headers` set (a `Host` key overrides 3);
//! 5. `X-Request-ID`.
//!
//! Framing fields are Dito's own: `Content-Length` for a sized body, `Transfer-Encoding:
//! chunked` for a chunked one. Everything else keeps its order and case. Pure function of its
//! inputs; worker thread.

use std::io::Write;
use std::net::IpAddr;

use crate::http::headers::has_token;
use crate::http::request::{BodyFraming, RequestHead};
use crate::http::upgrade::UPGRADE_FIELDS;
use crate::route::{write_upstream_target, Route, RouteMatch};

/// Per-location header rules, prepared once per generation.
#[derive(Debug, Clone)]
pub struct HeaderRules {
    /// `Host` value from the target URL.
    pub host: Vec<u8>,
    /// `excluded_headers`, lowercase.
    pub excluded: Vec<String>,
    /// `additional_headers` other than `Host`, in file order.
    pub additional: Vec<(String, String)>,
    /// An `additional_headers` `Host` key, any case (overrides the target's host).
    pub host_override: Option<String>,
}

impl HeaderRules {
    fn excludes(&self, name: &[u8]) -> bool {
        self.excluded
            .iter()
            .any(|e| name.eq_ignore_ascii_case(e.as_bytes()))
    }

    fn adds(&self, name: &[u8]) -> bool {
        self.additional
            .iter()
            .any(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
    }
}

use crate::http::headers::REQUEST_HOP_BY_HOP as HOP_BY_HOP;

/// Fields Dito writes itself, so the client's copies are dropped.
const REPLACED: &[&str] = &[
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
];

fn is_in(list: &[&str], name: &[u8]) -> bool {
    list.iter().any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
}

/// Everything the head depends on besides the client's request.
pub struct HeadInputs<'a> {
    /// The matched location and where its pattern matched: the upstream path and query are
    /// rewritten from them (spec §3).
    pub route: &'a Route,
    pub route_match: &'a RouteMatch,
    pub client_ip: IpAddr,
    /// `http` or `https`: the listener's scheme.
    pub proto: &'a str,
    pub request_id: &'a str,
    pub rules: &'a HeaderRules,
    /// A WebSocket upgrade on a location that allows it: `Connection: upgrade` and
    /// `Upgrade: websocket` are written in place of the client's hop-by-hop copies (spec §13).
    pub upgrade: bool,
}

/// Appends the complete upstream request head to `out`.
pub fn write_request_head(out: &mut Vec<u8>, req: &RequestHead, inp: &HeadInputs<'_>) {
    out.extend_from_slice(req.method());
    out.push(b' ');
    write_upstream_target(inp.route, req.path(), req.query(), inp.route_match, out);
    out.extend_from_slice(b" HTTP/1.1\r\n");

    // Step 3 (and its step-4 override) first: Host leads the head by convention.
    out.extend_from_slice(b"Host: ");
    match &inp.rules.host_override {
        Some(h) => out.extend_from_slice(h.as_bytes()),
        None => out.extend_from_slice(&inp.rules.host),
    }
    out.extend_from_slice(b"\r\n");

    // Step 1: the fields `Connection` names are hop-by-hop too.
    let connection_values: Vec<&[u8]> = req
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .map(|(_, v)| v)
        .collect();
    let named_by_connection = |name: &[u8]| {
        !connection_values.is_empty()
            && std::str::from_utf8(name)
                .is_ok_and(|n| !n.is_empty() && connection_values.iter().any(|v| has_token(v, n)))
    };

    let mut te_trailers_sent = false;
    for (name, value) in req.headers() {
        if name.eq_ignore_ascii_case(b"te")
            && has_token(value, "trailers")
            && !named_by_connection(name)
            && !te_trailers_sent
            && !inp.rules.excludes(name)
        {
            // Only the `trailers` token survives, in the field's own place.
            push_field(out, name, b"trailers");
            te_trailers_sent = true;
            continue;
        }
        if is_in(HOP_BY_HOP, name) || named_by_connection(name) {
            continue;
        }
        if is_in(REPLACED, name) || inp.rules.excludes(name) || inp.rules.adds(name) {
            continue;
        }
        push_field(out, name, value);
    }
    // A kept `TE: trailers` is hop-by-hop too: an HTTP/1.1 recipient must find it named in
    // `Connection` (RFC 9110 §7.6.1, §10.1.4). One `Connection` field carries every token.
    match (inp.upgrade, te_trailers_sent) {
        (true, true) => {
            out.extend_from_slice(b"Connection: upgrade, TE\r\nUpgrade: websocket\r\n");
        }
        (true, false) => out.extend_from_slice(UPGRADE_FIELDS),
        (false, true) => out.extend_from_slice(b"Connection: TE\r\n"),
        (false, false) => {}
    }

    // Step 2, with step 4's exclusions applied to Dito's own fields too.
    if !inp.rules.excludes(b"x-forwarded-for") && !inp.rules.adds(b"x-forwarded-for") {
        out.extend_from_slice(b"X-Forwarded-For: ");
        for (name, value) in req.headers() {
            let v = value.trim_ascii();
            if name.eq_ignore_ascii_case(b"x-forwarded-for")
                && !named_by_connection(name)
                && !v.is_empty()
            {
                out.extend_from_slice(v);
                out.extend_from_slice(b", ");
            }
        }
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{}\r\n", inp.client_ip.to_canonical());
    }
    if let Some(host) = req.host() {
        if !inp.rules.excludes(b"x-forwarded-host") && !inp.rules.adds(b"x-forwarded-host") {
            push_field(out, b"X-Forwarded-Host", host);
        }
    }
    if !inp.rules.excludes(b"x-forwarded-proto") && !inp.rules.adds(b"x-forwarded-proto") {
        push_field(out, b"X-Forwarded-Proto", inp.proto.as_bytes());
    }
    // Step 4: additional headers (replacing).
    for (n, v) in &inp.rules.additional {
        if !n.eq_ignore_ascii_case("x-request-id") {
            push_field(out, n.as_bytes(), v.as_bytes());
        }
    }
    // Step 5.
    push_field(out, b"X-Request-ID", inp.request_id.as_bytes());

    match req.framing {
        BodyFraming::None => {}
        BodyFraming::Length(n) => push_field(out, b"Content-Length", n.to_string().as_bytes()),
        BodyFraming::Chunked => push_field(out, b"Transfer-Encoding", b"chunked"),
    }
    out.extend_from_slice(b"\r\n");
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[path = "request_head_tests.rs"]
mod tests;
