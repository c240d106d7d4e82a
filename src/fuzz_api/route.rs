//! `target_url` parsing and the upstream request-target rewrite (spec §3, "Upstream path" and
//! "Query"): the parser never panics and what it accepts is a URL that can be written back;
//! the router's rewrite equals the spec's rule written out here, byte for byte; with more
//! than `crate::route::SET_THRESHOLD` locations the `RegexSet` lookup picks what a plain first-match scan
//! picks.

use std::cell::RefCell;
use std::collections::HashMap;

use regex::bytes::Regex;

use crate::config::TargetUrl;
use crate::route::{write_upstream_target, RouteSpec, Router};

/// Patterns the rewrite checks route with: anchored and not, a segment-anchored one, ones
/// that match the empty string, and ones that match late in the path.
pub const PATTERNS: [&str; 10] = [
    "^/api",
    "/v1",
    "^/",
    "",
    "^/api(/|$)",
    "x*",
    "^/s",
    "[0-9]+",
    "/$",
    "(?-u:\\xff)",
];

/// The reference's compiled regex for a stock pattern (compiled once per thread: compiling
/// dominated the fuzz target's time).
fn reference_regex(pattern: &'static str) -> Regex {
    thread_local! {
        static CACHE: RefCell<HashMap<&'static str, Regex>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|c| {
        c.borrow_mut()
            .entry(pattern)
            .or_insert_with(|| Regex::new(pattern).expect("a stock pattern compiles"))
            .clone()
    })
}

/// `TargetUrl::parse` never panics; an accepted URL is visible ASCII whose parts write back
/// to a URL that parses to the same parts.
pub fn check_target_url(text: &str) {
    let Ok(t) = TargetUrl::parse(text) else {
        return;
    };
    assert!(t.raw.bytes().all(|b| b.is_ascii_graphic()));
    assert!(
        t.path.is_empty() || t.path.starts_with('/'),
        "path {:?}",
        t.path
    );
    assert!(!t.path.contains('?') && !t.host.is_empty());
    assert_ne!(t.port, Some(0));
    let mut again = format!("{}://{}{}", t.scheme, t.host_header(), t.path);
    if let Some(q) = &t.query {
        again.push('?');
        again.push_str(q);
    }
    match TargetUrl::parse(&again) {
        Ok(u) => assert_eq!(
            (u.scheme, &u.host, u.port, &u.path, &u.query),
            (t.scheme, &t.host, t.port, &t.path, &t.query),
            "{text:?} written back as {again:?}"
        ),
        Err(e) => panic!("{text:?} written back as {again:?} is refused: {e}"),
    }
}

/// Spec §3's rule, written from the spec's text: P = raw path (empty = `/`), T = target path,
/// m = the leftmost match of the location regex in P.
pub fn spec_upstream_target(
    pattern: &Regex,
    target_path: &[u8],
    target_query: &[u8],
    replace_path: bool,
    raw_path: &[u8],
    client_query: Option<&[u8]>,
) -> Vec<u8> {
    let p: &[u8] = if raw_path.is_empty() { b"/" } else { raw_path };
    let t_or_root: &[u8] = if target_path.is_empty() {
        b"/"
    } else {
        target_path
    };
    let mut out = Vec::new();
    if replace_path {
        out.extend_from_slice(t_or_root);
    } else {
        let r = match pattern.find(p) {
            Some(m) if m.start() == 0 && !m.is_empty() => &p[m.end()..],
            _ => p,
        };
        if r.is_empty() {
            out.extend_from_slice(t_or_root);
        } else {
            out.extend_from_slice(target_path.strip_suffix(b"/").unwrap_or(target_path));
            out.push(b'/');
            out.extend_from_slice(r.strip_prefix(b"/").unwrap_or(r));
        }
    }
    let c = client_query.unwrap_or_default();
    match (target_query.is_empty(), c.is_empty()) {
        (false, false) => out.extend([&b"?"[..], target_query, b"&", c].concat()),
        (false, true) => out.extend([&b"?"[..], target_query].concat()),
        (true, false) => out.extend([&b"?"[..], c].concat()),
        (true, true) if client_query.is_some() => out.push(b'?'),
        (true, true) => {}
    }
    out
}

/// One location (pattern `PATTERNS[pattern]`, the target's path and query) and one request:
/// the router's rewrite equals [`spec_upstream_target`].
pub fn check_rewrite(
    pattern: usize,
    target: &TargetUrl,
    replace_path: bool,
    raw_path: &[u8],
    client_query: Option<&[u8]>,
) {
    let pattern = PATTERNS[pattern % PATTERNS.len()];
    let spec = RouteSpec {
        pattern: pattern.to_string(),
        target_path: target.path.clone(),
        target_query: target.query.clone(),
        replace_path,
    };
    let router = Router::build(&[spec]).expect("a stock pattern compiles");
    let regex = reference_regex(pattern);
    let effective: &[u8] = if raw_path.is_empty() { b"/" } else { raw_path };
    let Some(m) = router.lookup(raw_path) else {
        assert!(!regex.is_match(effective), "{pattern} matches {raw_path:?}");
        return;
    };
    let route = router.get(m.index).expect("lookup gave an index it has");
    let mut got = Vec::new();
    write_upstream_target(route, raw_path, client_query, &m, &mut got);
    let want = spec_upstream_target(
        &regex,
        target.path.as_bytes(),
        target.query.as_deref().unwrap_or("").as_bytes(),
        replace_path,
        raw_path,
        client_query,
    );
    assert_eq!(
        got,
        want,
        "location {pattern} → {}, replace_path {replace_path}, request {:?} ? {:?}",
        target.raw,
        String::from_utf8_lossy(raw_path),
        client_query.map(String::from_utf8_lossy)
    );
}

/// With more than [`crate::route::SET_THRESHOLD`] locations the lookup uses a `RegexSet`; it must pick the
/// first location, in order, whose regex matches, with that regex's leftmost match.
pub fn check_lookup_order(order: &[usize], raw_path: &[u8]) {
    let patterns: Vec<&str> = order
        .iter()
        .map(|&i| PATTERNS[i % PATTERNS.len()])
        .collect();
    let specs: Vec<RouteSpec> = patterns
        .iter()
        .map(|p| RouteSpec {
            pattern: (*p).to_string(),
            target_path: String::new(),
            target_query: None,
            replace_path: false,
        })
        .collect();
    let router = Router::build(&specs).expect("stock patterns compile");
    let effective: &[u8] = if raw_path.is_empty() { b"/" } else { raw_path };
    let want = patterns.iter().enumerate().find_map(|(i, p)| {
        let m = Regex::new(p)
            .expect("a stock pattern compiles")
            .find(effective)?;
        Some((i, m.start(), m.end()))
    });
    let got = router
        .lookup(raw_path)
        .map(|m| (m.index, m.match_start, m.match_end));
    assert_eq!(got, want, "{} locations {patterns:?}", patterns.len());
}

/// Fuzz entry: byte 0 picks the mode; `\0` separates target URL, request path and query.
pub fn fuzz_one(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 0x80 != 0 {
        // Location order for the set lookup: the next up to 16 bytes, then the path.
        let n = (usize::from(mode & 0x0f) + 1).min(rest.len());
        let (order, path) = rest.split_at(n);
        let order: Vec<usize> = order.iter().map(|&b| usize::from(b)).collect();
        check_lookup_order(&order, path);
        return;
    }
    let mut parts = rest.split(|&b| b == 0);
    let url = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let query = parts.next();
    let Ok(url) = std::str::from_utf8(url) else {
        return;
    };
    check_target_url(url);
    if let Ok(target) = TargetUrl::parse(url) {
        check_rewrite(
            usize::from(mode & 0x3f),
            &target,
            mode & 0x40 != 0,
            path,
            query,
        );
    }
}
